import Testing
@testable import BerthOCI
import BerthSys

private func decode(_ json: String) throws -> Spec {
    let spec = try Spec.decode(Array(json.utf8), source: "config.json")
    try spec.validate()
    return spec
}

private func errorText(_ json: String) -> String {
    do { _ = try decode(json); return "" } catch { return "\(error)" }
}

private let minimal = #"{"ociVersion":"1.2.0","root":{"path":"rootfs"},"process":{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"/"}}"#

@Suite("config.json decoding and validation")
struct SpecDecodingTests {
    @Test("a minimal config decodes and unknown fields are ignored")
    func minimalConfig() throws {
        let spec = try decode(#"{"ociVersion":"1.0.2","future":{"x":1},"root":{"path":"rootfs"},"process":{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"/","newThing":true}}"#)
        #expect(spec.root?.path == "rootfs")
        #expect(spec.process?.args == ["sh"])
    }

    @Test("malformed JSON is reported as such, naming the file")
    func malformed() {
        let text = errorText(#"{"ociVersion": "1.2.0", "root": "#)
        #expect(text.hasPrefix("config.json: malformed JSON"))
    }

    @Test("a wrong type names the field path")
    func typeMismatch() {
        let text = errorText(#"{"ociVersion":"1.2.0","root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"},{"type":7}]}}"#)
        #expect(text == "config.json: linux.namespaces[1].type: expected a string")
    }

    @Test("a missing required field is named")
    func missingField() {
        let text = errorText(#"{"ociVersion":"1.2.0","root":{"path":"rootfs"},"process":{"args":["sh"],"cwd":"/"}}"#)
        #expect(text == "config.json: process.user: required field is missing")
    }

    @Test("validation errors name the field", arguments: [
        (#""linux":{"namespaces":[{"type":"pid"},{"type":"bogus"}]}"#, "linux.namespaces[1].type: unknown namespace \"bogus\""),
        (#""linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}"#, "linux.namespaces[1].type: \"pid\" given twice"),
        (#""linux":{"namespaces":[{"type":"user"}]}"#, "linux.uidMappings: a new user namespace needs uid mappings"),
        (#""linux":{"rootfsPropagation":"sideways"}"#, "linux.rootfsPropagation: unknown propagation \"sideways\""),
        (#""mounts":[{"destination":"relative/path","type":"tmpfs"}]"#, "mounts[0].destination: \"relative/path\" is not an absolute path"),
        (#""hooks":{"poststop":[{"path":"hook"}]}"#, "hooks.poststop[0].path: \"hook\" is not an absolute path"),
    ])
    func validation(fragment: String, expected: String) {
        let json = minimal.dropLast() + "," + fragment + "}"
        #expect(errorText(String(json)) == "config.json: " + expected)
    }

    @Test("process validation", arguments: [
        (#"{"user":{"uid":0,"gid":0},"args":[],"cwd":"/"}"#, "process.args: must name a program"),
        (#"{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"tmp"}"#, "process.cwd: \"tmp\" is not an absolute path"),
        (#"{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"/","capabilities":{"bounding":["CAP_KILL","CAP_FLY"]}}"#,
         "process.capabilities.bounding[1]: unknown capability \"CAP_FLY\""),
        (#"{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"/","rlimits":[{"type":"RLIMIT_NOPE","hard":1,"soft":1}]}"#,
         "process.rlimits[0].type: unknown rlimit \"RLIMIT_NOPE\""),
        (#"{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"/","rlimits":[{"type":"RLIMIT_NOFILE","hard":1,"soft":2}]}"#,
         "process.rlimits[0]: soft limit 2 exceeds hard limit 1"),
        (#"{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"/","env":["NOEQUALS"]}"#, "process.env[0]: \"NOEQUALS\" is not KEY=VALUE"),
    ])
    func processValidation(process: String, expected: String) {
        let json = #"{"ociVersion":"1.2.0","root":{"path":"rootfs"},"process":"# + process + "}"
        #expect(errorText(json) == "config.json: " + expected)
    }

    @Test("runtime-spec versions 1.0 to 1.3 are accepted, others refused", arguments: [
        ("1.0.0", true), ("1.0.2-dev", true), ("1.1.0", true), ("1.2.1", true), ("1.3.0", true), ("1.4.0", false), ("2.0.0", false), ("x", false),
    ])
    func versions(version: String, accepted: Bool) {
        let json = minimal.replacingOccurrences(of: "1.2.0", with: version)
        #expect(errorText(json).isEmpty == accepted)
    }

    @Test("the default spec round-trips and validates")
    func defaultSpec() throws {
        for rootless in [false, true] {
            let spec = Spec.defaultSpec(rootless: rootless, uid: 1000, gid: 1000)
            let again = try Spec.decode(spec.encoded(), source: "default")
            #expect(again == spec)
            try again.validate()
        }
        #expect(Spec.defaultSpec(rootless: true, uid: 1000, gid: 1000).linux?.uidMappings?.first?.hostID == 1000)
    }
}

extension String {
    func replacingOccurrences(of a: String, with b: String) -> String {
        split(separator: a, omittingEmptySubsequences: false).joined(separator: b)
    }
}
