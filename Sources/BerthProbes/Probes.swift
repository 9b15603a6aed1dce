#if canImport(Glibc)
import Glibc
#endif
import BerthSys
import CBerthProbes

/// What a probe set observes. Each part loads only the programs it needs, so a
/// trace of exec events does not slow every syscall on the host.
public struct ProbeSet: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Syscall counts per syscall number.
    public static let syscalls = ProbeSet(rawValue: UInt32(BERTH_TRACE_SYSCALLS))
    /// Syscall latency (enter → exit) histograms; implies counts.
    public static let latency = ProbeSet(rawValue: UInt32(BERTH_TRACE_LATENCY))
    /// exec and exit events, fork and thread counts.
    public static let exec = ProbeSet(rawValue: UInt32(BERTH_TRACE_EXEC))
    /// OOM kills.
    public static let oom = ProbeSet(rawValue: UInt32(BERTH_TRACE_OOM))
    /// Run-queue latency (wakeup → running).
    public static let runq = ProbeSet(rawValue: UInt32(BERTH_TRACE_RUNQ))
    public static let all: ProbeSet = [.syscalls, .latency, .exec, .oom, .runq]
    /// Benchmarks only: empty programs on the syscall tracepoints, the cost floor.
    public static let emptyPrograms = ProbeSet(rawValue: UInt32(BERTH_TRACE_EMPTY))

    public var names: [String] {
        [(ProbeSet.syscalls, "syscalls"), (.latency, "latency"), (.exec, "exec"), (.oom, "oom"), (.runq, "runq")]
            .filter { contains($0.0) }.map(\.1)
    }
}

/// A loaded and attached set of berth's BPF programs and their maps. Containers
/// are tracked by cgroup v2 id; everything else returns at the first map lookup.
/// Closing (or deinit) detaches and frees every program, link and map: nothing
/// outlives the owner.
public final class Probes {
    public private(set) var probes: ProbeSet
    /// Asked for, but not loaded: this kernel cannot run them safely (run-queue
    /// latency before Linux 6.4: task storage created under the run-queue lock).
    public private(set) var withheld: ProbeSet = []
    let handle: OpaquePointer
    let cpus: Int
    private var slots: [UInt64: UInt32] = [:]
    private var statsFD: Int32 = -1

    /// Loads and attaches the programs `probes` needs. Errors name the program and
    /// quote the verifier.
    public init(_ probes: ProbeSet) throws(BerthError) {
        let object = ProbeObject.bytes
        var message = [CChar](repeating: 0, count: 2048)
        var what = probes.rawValue
        if probes.contains(.latency) { what |= ProbeSet.syscalls.rawValue }
        self.probes = ProbeSet(rawValue: what)
        guard let handle = object.withUnsafeBytes({ berth_probes_load($0.baseAddress, $0.count, what, &message, message.count) }) else {
            throw BerthError(Probes.text(message))
        }
        let rc = berth_probes_attach(handle, &message, message.count)
        if rc != 0 {
            berth_probes_destroy(handle)
            throw BerthError(Probes.text(message))
        }
        self.handle = handle
        cpus = max(1, Int(berth_probes_possible_cpus()))
        withheld = ProbeSet(rawValue: berth_probes_withheld(handle))
        self.probes.subtract(withheld)
    }

    /// Detaches the programs: the kernel runs none of them until `attach`. Maps and
    /// tracked cgroups stay (benchmarks toggle the probes without reloading them).
    public func detach() { berth_probes_detach(handle) }

    public func attach() throws(BerthError) {
        var message = [CChar](repeating: 0, count: 512)
        berth_probes_detach(handle)
        guard berth_probes_attach(handle, &message, message.count) == 0 else { throw BerthError(Probes.text(message)) }
    }

    static func text(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Kernel ids of this set's programs and maps (`bpftool prog show id N`).
    public var kernelIDs: (programs: [UInt32], maps: [UInt32]) {
        func ids(_ maps: Int32) -> [UInt32] {
            var buffer = [UInt32](repeating: 0, count: 64)
            let n = berth_probes_kernel_ids(handle, maps, &buffer, 64)
            return Array(buffer.prefix(Int(max(n, 0))))
        }
        return (ids(0), ids(1))
    }

    deinit {
        berth_probes_destroy(handle)
        if statsFD >= 0 { close(statsFD) }
    }

    /// Turns on the kernel's per-program run time accounting while this set lives
    /// (BPF_ENABLE_STATS: it switches back off when the fd closes).
    public func enableSelfCost() throws(BerthError) {
        guard statsFD < 0 else { return }
        let fd = berth_probes_enable_stats()
        guard fd >= 0 else { throw BerthError.sys("enable BPF run-time statistics (BPF_ENABLE_STATS)", errno: -fd) }
        statsFD = fd
    }

    /// Starts attributing the cgroup's processes; returns its slot.
    @discardableResult
    public func track(cgroupID: UInt64, _ what: ProbeSet? = nil) throws(BerthError) -> UInt32 {
        if let slot = slots[cgroupID] { return slot }
        let used = Set(slots.values)
        guard let slot = (0..<UInt32(BERTH_MAX_SLOTS)).first(where: { !used.contains($0) }) else {
            throw BerthError("track cgroup \(cgroupID): all \(BERTH_MAX_SLOTS) probe slots are in use")
        }
        try clearSlot(slot)
        var key = cgroupID
        var value = berth_tracked(slot: slot, flags: (what ?? probes).rawValue)
        if bpf_map_update_elem(mapFD("tracked"), &key, &value, UInt64(BPF_ANY)) != 0 {
            throw BerthError.sys("register cgroup id \(cgroupID) in the probes' tracked map")
        }
        slots[cgroupID] = slot
        try writeFilter()
        return slot
    }

    /// The programs' first test: one bit per (id mod 1024) of the tracked ids
    /// (the exact map is consulted only on a hit). Rewritten whole on every change.
    private func writeFilter() throws(BerthError) {
        var words = [UInt64](repeating: 0, count: Int(BERTH_FILTER_WORDS))
        for id in slots.keys {
            let bit = Int(id % UInt64(64 * BERTH_FILTER_WORDS))
            words[bit / 64] |= 1 << UInt64(bit % 64)
        }
        var zero: UInt32 = 0
        let fd = mapFD(".data.filter")
        if words.withUnsafeBytes({ bpf_map_update_elem(fd, &zero, $0.baseAddress, UInt64(BPF_ANY)) }) != 0 {
            throw BerthError.sys("write the probes' tracked-cgroup filter (.data.filter map)")
        }
    }

    /// Stops attributing the cgroup (its counters stay readable until the slot is reused).
    public func untrack(cgroupID: UInt64) {
        var key = cgroupID
        _ = bpf_map_delete_elem(mapFD("tracked"), &key)
        slots[cgroupID] = nil
        try? writeFilter()
    }

    public func slot(of cgroupID: UInt64) -> UInt32? { slots[cgroupID] }

    func mapFD(_ name: String) -> Int32 { berth_probes_map_fd(handle, name) }

    /// Reads one element of a per-CPU array or hash map and sums the CPUs.
    func readPerCPU<Key: BitwiseCopyable, Value: BitwiseCopyable>(_ map: String, key: Key, as: Value.Type, sum: (inout Value, Value) -> Void) -> Value? {
        let stride = (MemoryLayout<Value>.size + 7) & ~7
        var buffer = [UInt8](repeating: 0, count: stride * cpus)
        var key = key
        let ok = buffer.withUnsafeMutableBytes { bpf_map_lookup_elem(mapFD(map), &key, $0.baseAddress) == 0 }
        guard ok else { return nil }
        return buffer.withUnsafeBytes { raw in
            var total = raw.loadUnaligned(fromByteOffset: 0, as: Value.self)
            for cpu in 1..<max(cpus, 1) where cpus > 1 {
                sum(&total, raw.loadUnaligned(fromByteOffset: cpu * stride, as: Value.self))
            }
            return total
        }
    }

    /// Zeroes a slot's syscall counts, counters and run-queue histogram before reuse.
    private func clearSlot(_ slot: UInt32) throws(BerthError) {
        let zero = [UInt8](repeating: 0, count: MemoryLayout<berth_counters>.stride * cpus)
        func clear(_ map: String, _ index: UInt32) {
            var key = index
            zero.withUnsafeBytes { _ = bpf_map_update_elem(mapFD(map), &key, $0.baseAddress, UInt64(BPF_ANY)) }
        }
        for nr in 0..<UInt32(BERTH_MAX_SYSCALLS) { clear("syscalls", slot * UInt32(BERTH_MAX_SYSCALLS) + nr) }
        for b in 0..<UInt32(BERTH_HIST_BUCKETS) { clear("runq_hist", slot * UInt32(BERTH_HIST_BUCKETS) + b) }
        clear("counters", slot)
        let emptyHistogram = [UInt8](repeating: 0, count: MemoryLayout<berth_hist>.stride)
        for nr in 0..<UInt32(BERTH_MAX_SYSCALLS) {
            var key = slot * UInt32(BERTH_MAX_SYSCALLS) + nr
            emptyHistogram.withUnsafeBytes { _ = bpf_map_update_elem(mapFD("syscall_hist"), &key, $0.baseAddress, UInt64(BPF_ANY)) }
        }
    }

    /// Waits up to `timeout` milliseconds for events and hands each to `handler`.
    public func poll(timeout: Int32, _ handler: (ProbeEvent) -> Void) throws(BerthError) {
        try withoutActuallyEscaping(handler) { (escapable) throws(BerthError) in
            var box = EventSink(handler: escapable)
            let rc = withUnsafeMutablePointer(to: &box) { pointer in
                berth_probes_poll(handle, timeout, { context, event in
                    guard let context, let event else { return 0 }
                    context.assumingMemoryBound(to: EventSink.self).pointee.handler(ProbeEvent(event.pointee))
                    return 0
                }, pointer)
            }
            if rc < 0 { throw BerthError.sys("read the probes' ring buffer", errno: -rc) }
        }
    }

    /// BPF run time and run count per loaded program (non-zero once enableSelfCost is on).
    public func selfCost() -> [ProgramCost] {
        (0..<berth_probes_program_count(handle)).compactMap { index in
            var time: UInt64 = 0, count: UInt64 = 0
            guard berth_probes_program_stats(handle, index, &time, &count) == 0,
                  let name = berth_probes_program_name(handle, index) else { return nil }
            let length = strlen(name)
            let program = String(decoding: UnsafeRawBufferPointer(start: name, count: length), as: UTF8.self)
            return ProgramCost(program: program, runTimeNanoseconds: time, runCount: count)
        }
    }
}

private struct EventSink {
    let handler: (ProbeEvent) -> Void
}

/// One program's self-cost as the kernel accounts it.
public struct ProgramCost: Sendable, Codable, Equatable {
    public var program: String
    public var runTimeNanoseconds: UInt64
    public var runCount: UInt64
    public init(program: String, runTimeNanoseconds: UInt64, runCount: UInt64) {
        self.program = program; self.runTimeNanoseconds = runTimeNanoseconds; self.runCount = runCount
    }
    public var nanosecondsPerRun: Double { runCount == 0 ? 0 : Double(runTimeNanoseconds) / Double(runCount) }
}
