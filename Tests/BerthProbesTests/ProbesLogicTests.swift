import Testing
import BerthSys
@testable import BerthProbes
import BerthSecurity

@Suite("probes: histograms, deltas, the embedded object, syscall names")
struct ProbesLogicTests {
    @Test("a log2 histogram's percentiles interpolate inside the bucket that holds the rank")
    func percentiles() {
        var h = Histogram()
        h.buckets[8] = 90   // [256, 512) ns
        h.buckets[12] = 10  // [4096, 8192) ns
        #expect(h.count == 100)
        #expect(h.percentile(0.5) == 256 + 256 * (50.0 / 90.0))
        #expect(h.percentile(0.9) == 512)
        #expect(h.percentile(0.99) == 4096 + 4096 * 0.9)
        #expect(Histogram().percentile(0.5) == nil, "no samples, no percentile")
        var zero = Histogram()
        zero.buckets[0] = 4
        #expect(zero.percentile(0.5) == 1, "bucket 0 spans [0, 2)")
    }

    @Test("since(): counters and histograms subtract, syscalls that did nothing drop out")
    func deltas() {
        func snapshot(getpid: UInt64, read: UInt64, forks: UInt64, runq: UInt64) -> ProbeSnapshot {
            var hist = Histogram()
            hist.buckets[7] = getpid
            var rq = Histogram()
            rq.buckets[10] = runq
            return ProbeSnapshot(cgroupID: 9, syscalls: [
                SyscallStat(number: 39, name: "getpid", count: getpid, timed: getpid, totalNanoseconds: getpid * 200, latency: hist),
                SyscallStat(number: 0, name: "read", count: read, timed: read, totalNanoseconds: read * 1000, latency: nil),
            ], forks: forks, threads: 0, execs: 1, exits: 0, oomKills: 0, lostEvents: 0, runQueue: rq, runQueueTotalNanoseconds: runq * 1500)
        }
        let a = snapshot(getpid: 100, read: 5, forks: 1, runq: 3)
        let b = snapshot(getpid: 250, read: 5, forks: 4, runq: 10)
        let d = b.since(a)
        #expect(d.syscalls.map(\.name) == ["getpid"])
        #expect(d.syscalls.first?.count == 150)
        #expect(d.syscalls.first?.latency?.buckets[7] == 150)
        #expect(d.forks == 3 && d.execs == 0)
        #expect(d.runQueue.count == 7 && d.runQueueTotalNanoseconds == 7 * 1500)
        #expect(d.totalSyscalls == 150)
        #expect(a.since(b).totalSyscalls == 0, "a counter that went backwards (a reused slot) reads as zero, never wraps")
    }

    @Test("the embedded BPF object decodes to an ELF for the BPF machine")
    func embeddedObject() {
        let bytes = ProbeObject.bytes
        #expect(bytes.count > 10_000)
        #expect(Array(bytes.prefix(4)) == [0x7f, 0x45, 0x4c, 0x46], "ELF magic")
        #expect(bytes[18] == 247 && bytes[19] == 0, "e_machine EM_BPF (247)")
        #expect(Base64.decode("aGk=") == Array("hi".utf8))
        #expect(Base64.decode("YWJj") == Array("abc".utf8))
    }

    @Test("syscall numbers and names come from libseccomp's table for this architecture")
    func syscallNames() {
        #expect(SyscallNames.name(39) == "getpid")
        #expect(SyscallNames.name(110) == "getppid")
        #expect(SyscallNames.number("getppid") == 110)
        #expect(SyscallNames.number("no_such_call") == nil)
        #expect(SyscallNames.name(511) == "syscall_511")
        #expect(ProbeSet.all.names == ["syscalls", "latency", "exec", "oom", "runq"])
    }
}
