import Testing
@testable import BerthOCI
#if canImport(Glibc)
import Glibc
#endif

@Suite("tables: mount options, signals, capabilities")
struct TablesTests {
    @Test("mount options split into flags, propagation and data")
    func mountOptions() {
        let parsed = MountOptions.parse(["nosuid", "noexec", "ro", "rslave", "mode=755", "size=65536k"])
        #expect(parsed.flags == UInt(MS_NOSUID | MS_NOEXEC | MS_RDONLY))
        #expect(parsed.propagation == UInt(MS_SLAVE | MS_REC))
        #expect(parsed.data == ["mode=755", "size=65536k"])
    }

    @Test("a later option undoes an earlier one")
    func overrides() {
        #expect(MountOptions.parse(["ro", "rw"]).flags & UInt(MS_RDONLY) == 0)
        #expect(MountOptions.parse(["rbind"]).flags == UInt(MS_BIND | MS_REC))
    }

    @Test("signals parse with or without SIG, and as numbers", arguments: [
        ("TERM", 15), ("SIGTERM", 15), ("sigkill", 9), ("9", 9), ("USR1", 10), ("RTMIN", 34), ("RTMIN+2", 36), ("SIGRTMAX-1", 63),
    ] as [(String, Int32)])
    func signals(name: String, number: Int32) {
        #expect(SignalTable.parse(name) == number)
    }

    @Test("unknown signals are refused", arguments: ["NOPE", "0", "65", "RTMIN+40", ""])
    func badSignals(name: String) {
        #expect(SignalTable.parse(name) == nil)
    }

    @Test("capability names with or without CAP_")
    func capabilities() {
        #expect(CapabilityTable.number("CAP_SYS_ADMIN") == 21)
        #expect(CapabilityTable.number("net_raw") == 13)
        #expect(CapabilityTable.number("CAP_CHECKPOINT_RESTORE") == 40)
        #expect(CapabilityTable.number("CAP_NOPE") == nil)
    }

    @Test("namespace clone flags match linux/sched.h")
    func namespaceFlags() {
        #expect(NamespaceKind.pid.cloneFlag == 0x2000_0000)
        #expect(NamespaceKind.mount.cloneFlag == 0x0002_0000)
        #expect(NamespaceKind.network.procName == "net")
    }
}
