#if canImport(Glibc)
import Glibc
#endif
import BerthOCI
import BerthSys
import CBerthLaunch

/// One rule of a container's device policy, in the order they apply: a later
/// rule overrides an earlier one for the devices and access both cover.
struct DeviceAccessRule: Equatable, Sendable {
    var allow: Bool
    /// "a" (every device), "c" or "b".
    var type: String
    /// nil: any.
    var major: Int64?
    var minor: Int64?
    /// A subset of "rwm".
    var access: String

    /// The config's rules, then the devices every container may use (as runc appends
    /// them), then the container's own devices: one list for the v1 files and the v2 program.
    static func effective(_ rules: [Resources.DeviceRule], devices: [Device]) -> [DeviceAccessRule] {
        func number(_ v: Int64?) -> Int64? { v.flatMap { $0 < 0 ? nil : $0 } }
        var out = rules.map { r in
            DeviceAccessRule(allow: r.allow, type: r.type ?? "a", major: number(r.major), minor: number(r.minor), access: r.access ?? "rwm")
        }
        out += alwaysAllowed.map { DeviceAccessRule(allow: true, type: $0.0, major: number($0.1), minor: number($0.2), access: $0.3) }
        out += devices.filter { $0.type != "p" }.map {
            DeviceAccessRule(allow: true, type: $0.type == "u" ? "c" : $0.type, major: $0.major, minor: $0.minor, access: "rwm")
        }
        return out
    }

    /// (type, major, minor, access); -1 is the wildcard.
    static let alwaysAllowed: [(String, Int64, Int64, String)] = [
        ("c", -1, -1, "m"), ("b", -1, -1, "m"),                     // mknod of any node; opening still needs a rule
        ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"), // null, zero, full
        ("c", 1, 8, "rwm"), ("c", 1, 9, "rwm"),                     // random, urandom
        ("c", 5, 0, "rwm"), ("c", 5, 1, "rwm"), ("c", 5, 2, "rwm"), // tty, console, ptmx
        ("c", 136, -1, "rwm"),                                      // /dev/pts/*
        ("c", 10, 200, "rwm"),                                      // tun
    ]

    /// v1's devices.allow/deny line: "c 1:3 rwm", "a" for everything.
    var v1Entry: String {
        if type == "a" { return "a" }
        func n(_ v: Int64?) -> String { v.map(String.init) ?? "*" }
        return "\(type) \(n(major)):\(n(minor)) \(access)"
    }
}

/// One eBPF instruction (struct bpf_insn).
struct BPFInstruction: Equatable, Sendable {
    var code: UInt8
    var dst: UInt8 = 0
    var src: UInt8 = 0
    var off: Int16 = 0
    var imm: Int32 = 0

    var bytes: [UInt8] {
        let o = UInt16(bitPattern: off), i = UInt32(bitPattern: imm)
        return [code, dst | src << 4, UInt8(o & 0xff), UInt8(o >> 8), UInt8(i & 0xff), UInt8(i >> 8 & 0xff), UInt8(i >> 16 & 0xff), UInt8(i >> 24)]
    }

    // the opcodes used here: 32-bit loads from the context, 64-bit ALU, jumps, exit
    static func load(_ dst: UInt8, offset: Int16) -> Self { .init(code: 0x61, dst: dst, src: 1, off: offset) }   // LDX MEM W
    static func and(_ dst: UInt8, _ imm: Int32) -> Self { .init(code: 0x57, dst: dst, imm: imm) }                // ALU64 AND K
    static func rsh(_ dst: UInt8, _ imm: Int32) -> Self { .init(code: 0x77, dst: dst, imm: imm) }                // ALU64 RSH K
    static func mov(_ dst: UInt8, reg src: UInt8) -> Self { .init(code: 0xbf, dst: dst, src: src) }              // ALU64 MOV X
    static func mov(_ dst: UInt8, _ imm: Int32) -> Self { .init(code: 0xb7, dst: dst, imm: imm) }                // ALU64 MOV K
    static func jumpIfNot(_ dst: UInt8, _ imm: Int32, skip: Int16) -> Self { .init(code: 0x55, dst: dst, off: skip, imm: imm) }  // JNE K
    static func jumpIfZero(_ dst: UInt8, skip: Int16) -> Self { .init(code: 0x15, dst: dst, off: skip, imm: 0) }                 // JEQ K
    static let exit = Self(code: 0x95)
}

/// cgroup v2 has no devices files: a BPF_PROG_TYPE_CGROUP_DEVICE program attached
/// to the container's cgroup decides each open and mknod. The rules are compiled
/// into straight-line eBPF (as runc's devicefilter and crun do): the last rule
/// that matches decides, so they are checked from last to first, and the last
/// "a" rule is the default (allow everything when there is none, as a new v1
/// cgroup inherits its parent's allow-all). The context is struct
/// bpf_cgroup_dev_ctx: access_type (access << 16 | type), major, minor.
enum V2Devices {
    static let blockType: Int32 = 1, charType: Int32 = 2                  // BPF_DEVCG_DEV_*
    static func accessBits(_ access: String) -> Int32 {                   // BPF_DEVCG_ACC_*
        (access.contains("m") ? 1 : 0) | (access.contains("r") ? 2 : 0) | (access.contains("w") ? 4 : 0)
    }

    static func compile(_ rules: [DeviceAccessRule]) -> [BPFInstruction] {
        // r2 = type, r3 = requested access, r4 = major, r5 = minor
        var program: [BPFInstruction] = [.load(2, offset: 0), .and(2, 0xffff), .load(3, offset: 0), .rsh(3, 16),
                                         .load(4, offset: 4), .load(5, offset: 8)]
        let lastWildcard = rules.lastIndex { $0.type == "a" }
        let defaultAllow = lastWildcard.map { rules[$0].allow } ?? true
        let relevant = rules[((lastWildcard ?? -1) + 1)...]
        for rule in relevant.reversed() {
            // each check jumps past the block when the rule does not match; the block's
            // length is known once it is built, so the jumps carry marks until then
            var block: [BPFInstruction] = []
            var jumps: [Int] = []
            func check(_ i: BPFInstruction) { jumps.append(block.count); block.append(i) }
            check(.jumpIfNot(2, rule.type == "b" ? blockType : charType, skip: 0))
            let bits = accessBits(rule.access)
            if bits != 7 {
                block.append(.mov(1, reg: 3))
                if rule.allow {
                    // every requested bit among the rule's
                    block.append(.and(1, ~bits & 7))
                    check(.jumpIfNot(1, 0, skip: 0))
                } else {
                    // any requested bit among the rule's
                    block.append(.and(1, bits))
                    check(.jumpIfZero(1, skip: 0))
                }
            }
            if let major = rule.major { check(.jumpIfNot(4, Int32(truncatingIfNeeded: major), skip: 0)) }
            if let minor = rule.minor { check(.jumpIfNot(5, Int32(truncatingIfNeeded: minor), skip: 0)) }
            block += [.mov(0, rule.allow ? 1 : 0), .exit]
            for j in jumps { block[j].off = Int16(block.count - j - 1) }
            program += block
        }
        return program + [.mov(0, defaultAllow ? 1 : 0), .exit]
    }

    /// Loads the program for `rules` and attaches it to the cgroup directory `path`.
    /// The cgroup holds it from then on; it goes when the cgroup is removed.
    static func attach(_ rules: [DeviceAccessRule], to path: String) throws(BerthError) {
        let bytes = compile(rules).flatMap(\.bytes)
        var program = bytes.withUnsafeBytes { berth_bpf_load_cgroup_device($0.baseAddress, UInt32(bytes.count / 8), nil, 0) }
        if program < 0 {
            let e = errno
            // again with the verifier's log, for the message
            var log = [CChar](repeating: 0, count: 65536)
            program = bytes.withUnsafeBytes { b in log.withUnsafeMutableBufferPointer { berth_bpf_load_cgroup_device(b.baseAddress, UInt32(bytes.count / 8), $0.baseAddress, UInt32($0.count)) } }
            if program < 0 {
                let text = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                let last = text.split(separator: "\n").last.map { " (verifier: \($0))" } ?? ""
                throw BerthError("linux.resources.devices: load the cgroup v2 device program\(last)", errno: e)
            }
        }
        defer { close(program) }
        let dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { throw .sys("linux.resources.devices: open", path: path) }
        defer { close(dir) }
        guard berth_bpf_attach_cgroup_device(program, dir) == 0 else {
            throw .sys("linux.resources.devices: attach the device program to", path: path)
        }
    }
}
