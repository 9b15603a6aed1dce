import Foundation
import Testing
import BerthCgroups
import BerthOCI
@testable import BerthRuntime
import BerthSys

/// The state record and container ids: pure logic, no kernel.
@Suite("state.json: the record as written and read back; container ids")
struct StateRecordTests {
    @Test("a record with every field survives the JSON writer and reader, and reads as an object Foundation parses")
    func recordRoundTrip() throws {
        let text = #"""
        {"id":"c1","bundle":"/b/c1","rootfs":"/b/c1/rootfs","pid":4242,"startTime":123456789,"created":"2026-11-30T00:00:00Z",
         "phase":"created","owner":0,"cgroupV1":["/sys/fs/cgroup/cpu/berth/c1"],"cgroupV2":"/sys/fs/cgroup/unified/berth/c1","cgroupAncestors":[],
         "cgroupLayout":{"mode":"hybrid","v1":[{"version":"v1","mountPoint":"/sys/fs/cgroup/cpu","root":"/","controllers":["cpu"]}],
                         "v2":{"version":"v2","mountPoint":"/sys/fs/cgroup/unified","root":"/","controllers":[]}},
         "process":{"args":["sh","-c","echo \"hi\" \\ there"],"env":["A=1"],"cwd":"/w",
                    "user":{"uid":1000,"gid":1000,"umask":18,"additionalGids":[10,20]},
                    "capabilities":{"bounding":["CAP_KILL"],"effective":[]},"rlimits":[{"type":"RLIMIT_NOFILE","hard":18446744073709551615,"soft":1024}]},
         "hooks":{"poststop":[{"path":"/bin/hook","args":["hook","é"],"timeout":3}]},"annotations":{"org.example/key":"v"},
         "seccompFilter":true,"seccompListener":{"path":"/run/agent.sock","metadata":"m"}}
        """#
        let record = try ContainerRecord(json: JSON.parse(Array(text.utf8)), path: "")
        #expect(record.process?.rlimits?.first?.hard == UInt64.max && record.process?.args?[2] == #"echo "hi" \ there"#)
        #expect(record.hooks?.poststop?.first?.args == ["hook", "é"] && record.cgroupLayout.layout.mode == .hybrid)
        let root = NSTemporaryDirectory() + "berth-record-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = StateStore(root: root)
        try store.reserve("c1")
        try store.save(record)
        let again = try #require(try store.load("c1"))
        #expect(again.json == record.json)
        #expect(again.process == record.process && again.hooks == record.hooks && again.cgroupLayout.layout == record.cgroupLayout.layout)
        #expect(again.phase == .created && again.seccompListener?.metadata == "m")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: root + "/c1/state.json"))
        #expect((try JSONSerialization.jsonObject(with: bytes) as? [String: Any])?["pid"] as? Int == 4242)
        // a torn or foreign file is named, not trusted
        try Files.writeAtomically(Array("{\"id\":\"c1\"".utf8), to: root + "/c1/state.json")
        #expect(throws: BerthError.self) { try store.load("c1") }
    }

    @Test("container ids: letters, digits, _ . - and not starting with . or -", arguments: [
        ("a-b.c_1", true), ("C0", true), ("../evil", false), (".hidden", false), ("-x", false), ("é", false), ("a b", false), ("", false),
        (String(repeating: "a", count: 1024), true), (String(repeating: "a", count: 1025), false),
    ])
    func ids(id: String, valid: Bool) {
        #expect(((try? StateStore.validate(id: id)) != nil) == valid)
    }

    @Test("created timestamps: days since the epoch to the civil date, leap days and far years included")
    func civilDates() {
        let cases: [(Int, Int, Int, Int)] = [(0, 1970, 1, 1), (-1, 1969, 12, 31), (11016, 2000, 2, 29), (11017, 2000, 3, 1),
                                             (19782, 2024, 2, 29), (20422, 2025, 11, 30), (2_932_896, 9999, 12, 31)]
        for (days, year, month, day) in cases {
            let d = civilDate(daysSinceEpoch: days)
            #expect(d.year == year && d.month == month && d.day == day, "day \(days): \(d)")
        }
        let now = rfc3339Now()
        #expect(now.count == 30 && now.hasSuffix("Z") && now.dropFirst(10).first == "T", "\(now)")
    }
}
