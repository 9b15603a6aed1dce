#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthOCI
import BerthSecurity
import BerthSys
import CBerthImage

/// `--ulimit nofile=1024:2048` (one number: soft = hard), as docker takes it.
public struct Ulimit: Sendable, Equatable, Codable {
    public var name: String
    public var soft: UInt64
    public var hard: UInt64
    public init(name: String, soft: UInt64, hard: UInt64) { self.name = name; self.soft = soft; self.hard = hard }

    public static func parse(_ text: String) throws(BerthError) -> Ulimit {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        let values = parts.count == 2 ? parts[1].split(separator: ":").map(String.init) : []
        func number(_ s: String) -> UInt64? { s == "-1" || s == "unlimited" ? UInt64.max : UInt64(s) }
        guard parts.count == 2, (1...2).contains(values.count), let soft = number(values[0]), let hard = number(values.last!) else {
            throw BerthError("--ulimit \"\(text)\": want NAME=SOFT[:HARD], like nofile=1024:2048")
        }
        guard RlimitTable.resources["RLIMIT_" + parts[0].uppercased()] != nil else {
            throw BerthError("--ulimit \"\(text)\": unknown limit \"\(parts[0])\" (nofile, nproc, core, memlock, stack, …)")
        }
        guard soft <= hard else { throw BerthError("--ulimit \"\(text)\": the soft limit \(soft) is above the hard limit \(hard)") }
        return Ulimit(name: parts[0].lowercased(), soft: soft, hard: hard)
    }

    var rlimit: Rlimit { Rlimit(type: "RLIMIT_" + name.uppercased(), hard: hard, soft: soft) }
}

/// The run options that shape a container's mounts and security, in docker's terms,
/// turned into runtime config: binds and volumes, tmpfs, capabilities, seccomp.
public enum RunFlags {
    /// `-v SRC:DST[:OPTS]`: SRC an absolute host path (made as a directory when missing,
    /// as docker does) or a volume name (a directory under `volumes`); `-v DST` alone is
    /// an anonymous volume. OPTS: ro, rw, and the propagation modes.
    static func bind(_ text: String, volumes: String) throws(BerthError) -> Mount {
        var parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(parts.count), !parts.contains(where: \.isEmpty) else {
            throw BerthError("-v \"\(text)\": want [SOURCE:]DESTINATION[:OPTIONS]")
        }
        if parts.count == 1 { parts.insert((0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined(), at: 0) }
        let (source, destination) = (parts[0], parts[1])
        guard destination.hasPrefix("/") else { throw BerthError("-v \"\(text)\": the destination \(destination) is not an absolute path") }
        guard destination != "/" else { throw BerthError("-v \"\(text)\": cannot mount over the container's /") }
        var options = ["rbind"]
        var propagation = "rprivate"
        for o in parts.count > 2 ? parts[2].split(separator: ",").map(String.init) : [] {
            switch o {
            case "ro", "rw": options.append(o)
            case "shared", "rshared", "slave", "rslave", "private", "rprivate": propagation = o
            case "z", "Z", "nocopy", "copy": break   // SELinux relabels and volume copy-up: no effect here
            default: throw BerthError("-v \"\(text)\": unknown option \"\(o)\" (ro, rw, shared, slave, private and their r- forms)")
            }
        }
        options.append(propagation)
        var hostPath = source
        if !source.hasPrefix("/") {
            try ContainerNames.validate(source, what: "volume name")
            hostPath = volumes + "/" + source + "/_data"
        }
        if !Files.exists(hostPath) {
            do { try Files.makeDirectories(hostPath, mode: 0o755) } catch {
                throw BerthError("-v \"\(text)\": cannot create \(hostPath): \(error)")
            }
        }
        return Mount(destination: destination, type: "bind", source: hostPath, options: options)
    }

    /// `--tmpfs /run[:size=64m,exec]`: docker's defaults noexec, nosuid, nodev, each overridable.
    static func tmpfs(_ text: String) throws(BerthError) -> Mount {
        let colon = text.firstIndex(of: ":")
        let destination = String(text[..<(colon ?? text.endIndex)])
        guard destination.hasPrefix("/"), destination != "/" else { throw BerthError("--tmpfs \"\(text)\": want an absolute path other than /") }
        var options = ["noexec", "nosuid", "nodev"]
        for o in colon.map({ text[text.index(after: $0)...].split(separator: ",").map(String.init) }) ?? [] {
            let opposite = o.hasPrefix("no") ? String(o.dropFirst(2)) : "no" + o
            options.removeAll { $0 == opposite || $0 == o }
            options.append(o)
        }
        return Mount(destination: destination, type: "tmpfs", source: "tmpfs", options: options)
    }

    /// Docker's order: `--cap-drop ALL` starts from nothing, then adds (ALL: every
    /// capability the kernel has), then the drops.
    static func capabilities(base: [String], add: [String], drop: [String]) throws(BerthError) -> [String] {
        func normalize(_ names: [String], flag: String) throws(BerthError) -> [String] {
            var out: [String] = []
            for n in names {
                if n.uppercased() == "ALL" { out.append("ALL"); continue }
                guard let number = CapabilityTable.number(n) else { throw BerthError("\(flag) \(n): unknown capability") }
                out.append(CapabilityTable.names[number])
            }
            return out
        }
        let adds = try normalize(add, flag: "--cap-add"), drops = try normalize(drop, flag: "--cap-drop")
        let all = Array(CapabilityTable.names.prefix(CapabilityTable.lastCap() + 1))
        var caps = drops.contains("ALL") ? [] : base
        for c in adds.contains("ALL") ? all : adds where !caps.contains(c) { caps.append(c) }
        caps.removeAll { drops.contains($0) }
        return caps
    }

    /// What `--security-opt` asks for.
    struct Security {
        /// nil: the default profile; .some(nil): unconfined.
        var seccomp: Seccomp??
        var noNewPrivileges = false
        /// An AppArmor profile already loaded in the kernel ("unconfined" is one); nil = none asked.
        var apparmorProfile: String?
    }

    static func security(_ options: [String], capabilities: [String]) throws(BerthError) -> Security {
        var result = Security()
        for text in options {
            let separator = text.firstIndex { $0 == "=" || $0 == ":" }
            let key = String(text[..<(separator ?? text.endIndex)])
            let value = separator.map { String(text[text.index(after: $0)...]) }
            switch key {
            case "seccomp":
                guard let value, !value.isEmpty else { throw BerthError("--security-opt \(text): want seccomp=unconfined or seccomp=PROFILE.json") }
                result.seccomp = value == "unconfined" ? .some(nil) : .some(try dockerSeccomp(path: value, capabilities: capabilities))
            case "no-new-privileges":
                switch value ?? "true" {
                case "true": result.noNewPrivileges = true
                case "false": result.noNewPrivileges = false
                default: throw BerthError("--security-opt \(text): want no-new-privileges[=true|false]")
                }
            case "apparmor":
                guard let value, !value.isEmpty else { throw BerthError("--security-opt \(text): want apparmor=PROFILE (a profile loaded in the kernel) or apparmor=unconfined") }
                result.apparmorProfile = value
            case "label", "systempaths", "mask", "unmask":
                throw BerthError("--security-opt \(text): \(key) is not supported by berth (no SELinux labels)")
            default:
                throw BerthError("--security-opt \(text): unknown option (seccomp=…, apparmor=…, no-new-privileges)")
            }
        }
        return result
    }

    /// A docker seccomp profile (the format of moby's default.json): OCI's fields plus
    /// `archMap`, per-rule `name`, and `includes`/`excludes` by capability and arch.
    static func dockerSeccomp(path: String, capabilities: [String]) throws(BerthError) -> Seccomp {
        struct Filter: Decodable { var caps: [String]?; var arches: [String]?; var minKernel: String? }
        struct Rule: Decodable {
            var name: String?
            var names: [String]?
            var action: String
            var errnoRet: UInt32?
            var args: [Seccomp.Arg]?
            var includes: Filter?
            var excludes: Filter?
        }
        struct ArchMap: Decodable { var architecture: String; var subArchitectures: [String]? }
        struct Profile: Decodable {
            var defaultAction: String
            var defaultErrnoRet: UInt32?
            var architectures: [String]?
            var archMap: [ArchMap]?
            var flags: [String]?
            var syscalls: [Rule]?
        }
        let bytes: [UInt8]
        do { bytes = try Files.readBytes(path) } catch { throw BerthError("--security-opt seccomp=\(path): \(error)") }
        let profile: Profile
        do { profile = try JSONDecoder().decode(Profile.self, from: Data(bytes)) } catch {
            throw BerthError("--security-opt seccomp=\(path): not a seccomp profile (\(error))")
        }
        #if arch(x86_64)
        let arch = "amd64"
        #else
        let arch = "arm64"
        #endif
        let held = Set(capabilities)
        let rules = (profile.syscalls ?? []).compactMap { r -> Seccomp.Syscall? in
            if let caps = r.includes?.caps, !caps.allSatisfy(held.contains) { return nil }
            if let arches = r.includes?.arches, !arches.contains(arch) { return nil }
            if let caps = r.excludes?.caps, caps.contains(where: held.contains) { return nil }
            if let arches = r.excludes?.arches, arches.contains(arch) { return nil }
            let names = (r.names ?? []) + (r.name.map { [$0] } ?? [])
            return names.isEmpty ? nil : Seccomp.Syscall(names: names, action: r.action, errnoRet: r.errnoRet, args: r.args)
        }
        let architectures = profile.architectures ?? profile.archMap.map { $0.flatMap { [$0.architecture] + ($0.subArchitectures ?? []) } }
        return Seccomp(defaultAction: profile.defaultAction, defaultErrnoRet: profile.defaultErrnoRet, architectures: architectures,
                       flags: profile.flags, listenerPath: nil, listenerMetadata: nil, syscalls: rules)
    }

    /// `--env-file`: KEY=VALUE lines; `#` comments and blank lines skipped; a bare KEY
    /// takes its value from `environment` (left out when unset there), as docker does.
    public static func envFile(_ path: String, environment: [String: String]) throws(BerthError) -> [String] {
        let text: String
        do { text = try Files.read(path) } catch { throw BerthError("--env-file \(path): \(error)") }
        var out: [String] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? String(raw.dropLast()) : String(raw)
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let key = String(trimmed.prefix { $0 != "=" })
            guard !key.isEmpty, !key.contains(where: { $0 == " " || $0 == "\t" }) else {
                throw BerthError("--env-file \(path): line \(n + 1): \"\(line)\" is not KEY=VALUE")
            }
            if trimmed.contains("=") { out.append(String(trimmed)) } else if let v = environment[key] { out.append(key + "=" + v) }
        }
        return out
    }

    /// `/dev/vda:1mb` → the device's numbers and the rate (bytes, or operations with `iops`).
    public static func throttle(_ text: String, flag: String, iops: Bool) throws(BerthError) -> Resources.BlockIO.ThrottleDevice {
        guard let colon = text.lastIndex(of: ":") else { throw BerthError("\(flag) \"\(text)\": want DEVICE:RATE, like /dev/sda:1mb") }
        let path = String(text[..<colon]), rateText = String(text[text.index(after: colon)...])
        let rate: UInt64
        if iops {
            guard let n = UInt64(rateText) else { throw BerthError("\(flag) \"\(text)\": the rate \(rateText) is not a whole number of operations") }
            rate = n
        } else {
            rate = UInt64(try DockerFlags.bytes(rateText, flag: flag))
        }
        let (major, minor) = try blockDevice(path, flag: flag)
        return .init(major: major, minor: minor, rate: rate)
    }

    static func blockDevice(_ path: String, flag: String) throws(BerthError) -> (Int64, Int64) {
        var st = stat()
        guard stat(path, &st) == 0 else { throw BerthError("\(flag): the device", path: path, errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFBLK else { throw BerthError("\(flag): \(path) is not a block device") }
        return (Int64(berth_dev_major(UInt(st.st_rdev))), Int64(berth_dev_minor(UInt(st.st_rdev))))
    }
}
