#if canImport(Glibc)
import Glibc
#endif
import BerthOCI
import BerthSys
import CBerthSeccomp

/// A compiled seccomp filter: the BPF program and the seccomp(2) flags to load it with.
public struct CompiledSeccomp: Sendable, Equatable {
    /// struct sock_filter[] as bytes (8 bytes per instruction).
    public var program: [UInt8]
    /// SECCOMP_FILTER_FLAG_* for seccomp(SECCOMP_SET_MODE_FILTER).
    public var flags: UInt32

    public init(program: [UInt8], flags: UInt32) { self.program = program; self.flags = flags }

    /// The file form (cache, container state): 4 bytes of flags, little-endian, then the program.
    public var serialized: [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: flags >> (8 * UInt32($0))) } + program }

    public init?(serialized bytes: [UInt8]) {
        guard bytes.count > 4, (bytes.count - 4) % 8 == 0 else { return nil }
        flags = bytes[0..<4].enumerated().reduce(UInt32(0)) { $0 | (UInt32($1.element) << (8 * UInt32($1.offset))) }
        program = Array(bytes[4...])
    }
}

/// OCI `linux.seccomp` → BPF, with libseccomp. Compiling costs milliseconds for a
/// Docker-sized profile, so results are cached by a hash of the profile.
public enum SeccompCompiler {
    /// Actions of the runtime spec (a table: name → libseccomp action).
    static func action(_ name: String, errnoRet: UInt32?, defaultErrno: UInt32?) throws(BerthError) -> UInt32 {
        let errnoValue = UInt16(clamping: errnoRet ?? defaultErrno ?? UInt32(EPERM))
        let table: [String: UInt32] = [
            "SCMP_ACT_KILL": SCMP_ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": SCMP_ACT_KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": SCMP_ACT_KILL_PROCESS, "SCMP_ACT_TRAP": SCMP_ACT_TRAP,
            "SCMP_ACT_ERRNO": berth_scmp_act_errno(errnoValue), "SCMP_ACT_TRACE": berth_scmp_act_trace(errnoValue),
            "SCMP_ACT_ALLOW": SCMP_ACT_ALLOW, "SCMP_ACT_LOG": SCMP_ACT_LOG, "SCMP_ACT_NOTIFY": SCMP_ACT_NOTIFY,
        ]
        guard let a = table[name] else { throw BerthError("linux.seccomp: unknown action \"\(name)\"") }
        return a
    }

    /// SCMP_ARCH_X86_64 → libseccomp's own name table ("x86_64"); nil when unknown.
    static func architecture(_ name: String) -> UInt32? {
        guard name.hasPrefix("SCMP_ARCH_") else { return nil }
        let token = String(name.dropFirst("SCMP_ARCH_".count)).lowercased()
        let value = seccomp_arch_resolve_name(token)
        return value == 0 ? nil : value
    }

    static let operators: [String: scmp_compare] = [
        "SCMP_CMP_NE": SCMP_CMP_NE, "SCMP_CMP_LT": SCMP_CMP_LT, "SCMP_CMP_LE": SCMP_CMP_LE, "SCMP_CMP_EQ": SCMP_CMP_EQ,
        "SCMP_CMP_GE": SCMP_CMP_GE, "SCMP_CMP_GT": SCMP_CMP_GT, "SCMP_CMP_MASKED_EQ": SCMP_CMP_MASKED_EQ,
    ]

    /// seccomp(2) flag bits for the spec's flag names.
    static let flagBits: [String: UInt32] = [
        "SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": waitKillableRecv,
    ]
    /// Set by the compiler, not the profile: the kernel returns a listener fd (SCMP_ACT_NOTIFY).
    public static let newListener: UInt32 = 1 << 3
    static let waitKillableRecv: UInt32 = 1 << 5
    /// The child hands the listener fd to its parent with sendmsg right after loading the
    /// filter: notifying that syscall would wait for an agent that has no fd yet.
    static let notifyRefused: Set<String> = ["sendmsg"]

    /// What the features document reports.
    public static let supportedActions = ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                                          "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"]
    public static var supportedOperators: [String] { operators.keys.sorted() }
    public static var supportedFlags: [String] { flagBits.keys.sorted() }

    public static func compile(_ profile: Seccomp, warn: (String) -> Void) throws(BerthError) -> CompiledSeccomp {
        let defaultAction = try action(profile.defaultAction, errnoRet: profile.defaultErrnoRet, defaultErrno: nil)
        if defaultAction == SCMP_ACT_NOTIFY {
            throw BerthError("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY would stop the runtime's own last syscalls before the agent has the listener; name the syscalls to notify in rules")
        }
        if profile.listenerMetadata != nil && profile.listenerPath == nil {
            throw BerthError("linux.seccomp.listenerMetadata: set without listenerPath")
        }
        var notifies = false
        guard let ctx = seccomp_init(defaultAction) else { throw BerthError("linux.seccomp: seccomp_init failed") }
        defer { seccomp_release(ctx) }
        // a binary tree of syscall numbers: a big allow-list costs log(n) compares, not n
        _ = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)
        var flags: UInt32 = 0
        for flag in profile.flags ?? [] {
            guard let bit = flagBits[flag] else {
                throw BerthError("linux.seccomp.flags: \"\(flag)\" is not supported (supported: \(flagBits.keys.sorted().joined(separator: ", ")))")
            }
            flags |= bit
        }
        for arch in profile.architectures ?? [] {
            guard let a = architecture(arch) else { throw BerthError("linux.seccomp.architectures: unknown architecture \"\(arch)\"") }
            let r = seccomp_arch_add(ctx, a)
            if r < 0 && r != -EEXIST { throw BerthError("linux.seccomp: add architecture \(arch)", errno: -r) }
        }
        for (i, rule) in (profile.syscalls ?? []).enumerated() {
            let act = try action(rule.action, errnoRet: rule.errnoRet, defaultErrno: profile.defaultErrnoRet)
            guard act != defaultAction else { continue } // libseccomp refuses a rule that repeats the default
            if act == SCMP_ACT_NOTIFY {
                guard profile.listenerPath?.isEmpty == false else {
                    throw BerthError("linux.seccomp.syscalls[\(i)]: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath (the agent's Unix socket)")
                }
                if let name = rule.names.first(where: notifyRefused.contains) {
                    throw BerthError("linux.seccomp.syscalls[\(i)]: SCMP_ACT_NOTIFY on \(name) is refused: the runtime hands the listener to the agent with it")
                }
                notifies = true
            }
            var conditions: [scmp_arg_cmp] = []
            for (j, arg) in (rule.args ?? []).enumerated() {
                guard let op = operators[arg.op] else { throw BerthError("linux.seccomp.syscalls[\(i)].args[\(j)].op: unknown operator \"\(arg.op)\"") }
                guard arg.index < 6 else { throw BerthError("linux.seccomp.syscalls[\(i)].args[\(j)].index: \(arg.index) is not 0...5") }
                conditions.append(scmp_arg_cmp(arg: UInt32(arg.index), op: op, datum_a: arg.value, datum_b: arg.valueTwo ?? 0))
            }
            // Conditions on one argument index are alternatives (as runc treats them): one rule each.
            let indexes = Set(conditions.map(\.arg))
            let groups: [[scmp_arg_cmp]] = indexes.count < conditions.count ? conditions.map { [$0] } : [conditions]
            for name in rule.names {
                let nr = seccomp_syscall_resolve_name(name)
                guard nr != __NR_SCMP_ERROR else {
                    warn("linux.seccomp: unknown syscall \"\(name)\" for this architecture; skipped")
                    continue
                }
                for group in groups {
                    let r = group.withUnsafeBufferPointer { seccomp_rule_add_array(ctx, act, nr, UInt32($0.count), $0.baseAddress) }
                    if r < 0 { throw BerthError("linux.seccomp.syscalls[\(i)]: add rule for \(name)", errno: -r) }
                }
            }
        }
        if flags & waitKillableRecv != 0 && !notifies {
            throw BerthError("linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a rule with SCMP_ACT_NOTIFY")
        }
        if notifies { flags |= newListener }
        let fd = berth_seccomp_export(ctx)
        guard fd >= 0 else { throw BerthError("linux.seccomp: export the filter", errno: -fd) }
        defer { close(fd) }
        var program: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            program.append(contentsOf: buf[0..<n])
        }
        guard !program.isEmpty, program.count % 8 == 0 else { throw BerthError("linux.seccomp: libseccomp exported an empty filter") }
        return CompiledSeccomp(program: program, flags: flags)
    }

    /// compile() with a cache under `directory` keyed by a hash of the profile:
    /// a second start with the same profile reads the program instead of compiling it.
    /// `file` is the cache file, whose bytes never change once there (a new compile
    /// renames a new file in); it is missing when it could not be written.
    public static func compileCached(_ profile: Seccomp, cacheDirectory: String, warn: (String) -> Void) throws(BerthError) -> (filter: CompiledSeccomp, file: String) {
        let path = cacheDirectory + "/" + String(profile.cacheKey(), radix: 16) + ".bpf"
        if let cached = (try? Files.readBytes(path)).flatMap(CompiledSeccomp.init(serialized:)) { return (cached, path) }
        let compiled = try compile(profile, warn: warn)
        try? Files.makeDirectories(cacheDirectory, mode: 0o700)
        try? Files.writeAtomically(compiled.serialized, to: path, mode: 0o600)
        return (compiled, path)
    }

}

extension Seccomp {
    /// FNV-1a over every field, each string and number followed by a separator byte,
    /// so equal profiles hash equally without encoding them (a Docker-sized profile
    /// through JSONEncoder costs a measurable part of a start). The salt changes when
    /// the compiler's output for the same profile changes.
    func cacheKey() -> UInt64 {
        var h = FNV1a()
        func add(_ s: String) { h.add(s); h.add(0xff) }
        func add(_ n: UInt64?) { add(n.map { String($0) } ?? "-") }
        add("berth-seccomp-3")
        add(defaultAction); add(defaultErrnoRet.map(UInt64.init))
        add("arch"); (architectures ?? []).forEach { add($0) }
        add("flags"); (flags ?? []).forEach { add($0) }
        add(listenerPath ?? "-"); add(listenerMetadata ?? "-")
        for rule in syscalls ?? [] {
            add("rule"); rule.names.forEach { add($0) }
            add(rule.action); add(rule.errnoRet.map(UInt64.init))
            for arg in rule.args ?? [] { add(UInt64(arg.index)); add(arg.value); add(arg.valueTwo); add(arg.op) }
        }
        return h.value
    }
}
