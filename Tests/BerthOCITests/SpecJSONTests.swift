#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
@testable import BerthOCI
import BerthSys

/// A config that sets every field the runtime-spec types carry, with values that
/// stress the reader: escapes, non-ASCII, a 64-bit seccomp value, negative integers.
private let everything = #"""
{"ociVersion":"1.2.0","hostname":"h\"1\u00e9","domainname":"d","annotations":{"a/b":"c\nd","emoji":"\ud83d\ude00"},
 "root":{"path":"rootfs","readonly":true},
 "mounts":[{"destination":"/x","type":"tmpfs","source":"tmpfs","options":["nosuid","size=1m"]},{"destination":"/y"}],
 "process":{"terminal":false,"consoleSize":{"height":24,"width":80},"user":{"uid":1,"gid":2,"umask":18,"additionalGids":[3,4],"username":"u"},
   "args":["sh","-c","echo \\ \/ \t"],"commandLine":"cmd","env":["A=1"],"cwd":"/w",
   "capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"inheritable":[],"permitted":["CAP_KILL"],"ambient":["CAP_KILL"]},
   "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true,"apparmorProfile":"p","oomScoreAdj":-500,"selinuxLabel":"l"},
 "hooks":{"prestart":[{"path":"/h","args":["h","1"],"env":["E=1"],"timeout":5}],"createRuntime":[{"path":"/a"}],"createContainer":[{"path":"/b"}],
   "startContainer":[{"path":"/c"}],"poststart":[{"path":"/d"}],"poststop":[{"path":"/e"}]},
 "linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/proc/1/ns/net"}],
   "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],"gidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
   "timeOffsets":{"monotonic":{"secs":-10,"nanosecs":5}},
   "devices":[{"type":"c","path":"/dev/fuse","major":10,"minor":229,"fileMode":438,"uid":0,"gid":0}],
   "cgroupsPath":"berth/x","rootfsPropagation":"rprivate","sysctl":{"net.ipv4.ip_forward":"1"},
   "maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"],"mountLabel":"m",
   "resources":{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}],
     "memory":{"limit":67108864,"reservation":1,"swap":-1,"kernel":2,"kernelTCP":3,"swappiness":10,"disableOOMKiller":false,"useHierarchy":true,"checkBeforeUpdate":true},
     "cpu":{"shares":512,"quota":-1,"burst":1,"period":100000,"realtimeRuntime":2,"realtimePeriod":3,"cpus":"0-1","mems":"0","idle":0},
     "pids":{"limit":64},
     "blockIO":{"weight":500,"leafWeight":400,"weightDevice":[{"major":8,"minor":0,"weight":100,"leafWeight":50}],
       "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}],"throttleWriteBpsDevice":[{"major":8,"minor":0,"rate":2}],
       "throttleReadIOPSDevice":[{"major":8,"minor":0,"rate":3}],"throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":4}]},
     "hugepageLimits":[{"pageSize":"2MB","limit":2097152}],"network":{"classID":1048577,"priorities":[{"name":"eth0","priority":5}]},
     "unified":{"memory.high":"max"}},
   "seccomp":{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64"],"flags":["SECCOMP_FILTER_FLAG_LOG"],
     "listenerPath":"/run/agent.sock","listenerMetadata":"meta",
     "syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW","errnoRet":2,
       "args":[{"index":0,"value":18446744073709551615,"valueTwo":1,"op":"SCMP_CMP_EQ"}]}]}},
 "unknownField":{"nested":[1,2,{"x":null}]}}
"""#

@Suite("JSON without Codable: the launch path's reader and writer")
struct SpecJSONTests {
    @Test("every field reads as the Codable conformance reads it")
    func sameAsCodable() throws {
        let bytes = Array(everything.utf8)
        let manual = try Spec.decode(bytes, source: "config.json")
        let codable = try JSONDecoder().decode(Spec.self, from: Data(bytes))
        #expect(manual == codable)
        #expect(manual.linux?.seccomp?.syscalls?.first?.args?.first?.value == UInt64.max)
        #expect(manual.hostname == "h\"1é")
        #expect(manual.annotations?["emoji"] == "😀")
        #expect(manual.process?.oomScoreAdj == -500)
        // and what the Codable encoder writes reads back the same
        #expect(try Spec.decode(manual.encoded(), source: "again") == manual)
    }

    @Test("the record's parts write what they read: process, hooks, state")
    func roundTrip() throws {
        let spec = try Spec.decode(Array(everything.utf8), source: "config.json")
        let process = try #require(spec.process)
        #expect(try BerthOCI.Process(json: JSON.parse(process.json.serialized()), path: "") == process)
        let hooks = try #require(spec.hooks)
        #expect(try Hooks(json: JSON.parse(hooks.json.serialized(pretty: true)), path: "") == hooks)
        let state = State(id: "c1", status: .running, pid: 42, bundle: "/b/x", annotations: ["k": "v/w"])
        #expect(try State(json: JSON.parse(state.encoded()), path: "") == state)
        // what a hook or an agent parses with Foundation
        #expect(try JSONDecoder().decode(State.self, from: Data(state.encoded(pretty: true))) == state)
        #expect(String(decoding: state.encoded(), as: UTF8.self)
                == #"{"annotations":{"k":"v/w"},"bundle":"/b/x","id":"c1","ociVersion":"1.2.0","pid":42,"status":"running"}"#)
    }

    @Test("any Encodable as a tree: what Foundation decodes back equal; nil left out, doubles as numbers")
    func treeEncoder() throws {
        let spec = try Spec.decode(Array(everything.utf8), source: "config.json")
        #expect(try JSONDecoder().decode(Spec.self, from: Data(spec.encoded(pretty: true))) == spec)
        #expect(try JSONDecoder().decode(Spec.self, from: Data(spec.encoded(pretty: false))) == spec)
        struct Sample: Encodable { var a: Double; var b: Double; var c: Int8?; var d: [Float]; var e: [String: [UInt64]] }
        let json = try JSON(encoding: Sample(a: 2, b: 0.25, c: nil, d: [1.5], e: ["k": [UInt64.max]]))
        #expect(String(decoding: json.serialized(), as: UTF8.self) == #"{"a":2,"b":0.25,"d":[1.5],"e":{"k":[18446744073709551615]}}"#)
        #expect(throws: EncodingError.self) { try JSON(encoding: Sample(a: .nan, b: 0, c: 1, d: [], e: [:])) }
    }

    @Test("strings: escapes in, escapes out")
    func strings() throws {
        let text = "q\" b\\ s/ n\n t\t c\u{01} é 😀"
        let written = JSON.string(text).serialized()
        #expect(String(decoding: written, as: UTF8.self) == #""q\" b\\ s/ n\n t\t c\u0001 é 😀""#)
        #expect(try JSON.parse(written) == .string(text))
        #expect(try JSON.parse(Array(#""\u0041\/\ud83d\ude00""#.utf8)) == .string("A/😀"))
    }

    @Test("numbers: exact 64-bit integers, integral floats accepted, the rest refused by path", arguments: [
        (#"{"hard":18446744073709551615,"soft":0,"type":"RLIMIT_CORE"}"#, ""),
        (#"{"hard":1e3,"soft":1.0,"type":"RLIMIT_CORE"}"#, ""),
        (#"{"hard":-1,"soft":0,"type":"RLIMIT_CORE"}"#, "r.hard: -1 is not a non-negative integer in range"),
        (#"{"hard":1.5,"soft":0,"type":"RLIMIT_CORE"}"#, "r.hard: 1.5 is not a non-negative integer in range"),
        (#"{"hard":18446744073709551616,"soft":0,"type":"RLIMIT_CORE"}"#, "r.hard: 18446744073709551616 is not a non-negative integer in range"),
        (#"{"hard":"1","soft":0,"type":"RLIMIT_CORE"}"#, "r.hard: expected a non-negative integer"),
        (#"{"hard":null,"soft":0,"type":"RLIMIT_CORE"}"#, "r.hard: expected a non-negative integer, found null"),
        (#"{"soft":0,"type":"RLIMIT_CORE"}"#, "r.hard: required field is missing"),
    ])
    func numbers(json: String, expected: String) throws {
        do {
            let r = try Rlimit(json: JSON.parse(Array(json.utf8)), path: "r")
            #expect(expected.isEmpty, "decoded \(r)")
            if json.contains("1e3") { #expect(r.hard == 1000 && r.soft == 1) }
            if json.contains("551615") { #expect(r.hard == UInt64.max) }
        } catch {
            #expect(error.description == expected)
        }
    }

    @Test("malformed documents say what and where", arguments: [
        ("{\"a\":1,}", "expected a string key at line 1, column 8"),
        ("{\"a\" 1}", "expected ':' at line 1, column 6"),
        ("[1 2]", "expected ',' or ']' at line 1, column 4"),
        ("{\"a\":\n tru}", "unexpected character at line 2, column 2"),
        ("\"abc", "unterminated string at line 1, column 5"),
        ("01", "leading zero in a number at line 1, column 3"),
        ("{} x", "unexpected text after the document at line 1, column 4"),
        ("", "unexpected end of input at line 1, column 1"),
        ("\"\u{01}\"", "control character in a string at line 1, column 2"),
    ])
    func malformed(text: String, message: String) {
        do { _ = try JSON.parse(Array(text.utf8)); Issue.record("parsed \(text)") } catch {
            #expect(error.description == "malformed JSON: \(message)")
        }
    }
}
