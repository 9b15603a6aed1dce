import Foundation
import BerthImage
import BerthOCI
import BerthSecurity
import BerthSys

/// The runtime config of a container made from an image, with docker's defaults:
/// its capability set, its seccomp profile, a hostname from the id, and
/// /etc/hostname and /etc/hosts written for it.
enum ContainerSpec {
    /// Docker's default capabilities.
    static let capabilities = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
                               "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]

    /// Where `--init` finds tini (Debian's tini package), and where it goes in the container.
    static let tiniPath = "/usr/bin/tini-static"
    static let initPath = "/sbin/docker-init"

    /// How the container's network is made, from `--network`.
    enum NetworkPlan {
        /// A namespace of its own with only lo (the runtime makes it).
        case none
        /// The host's network and UTS namespaces.
        case host
        /// The namespace file a Sandbox makes at each start, on this network.
        case bridge(namespace: String)
        /// Another container's namespace, and its hostname and /etc files.
        case container(EngineContainer, directory: String)
    }

    static func make(image: ImageConfig, options: RunOptions, id: String, rootfs: String, directory: String, volumes: String,
                     network plan: NetworkPlan = .none) throws(BerthError) -> Spec {
        let config = image.config ?? ImageConfig.Config()
        let entrypoint = options.entrypoint ?? config.Entrypoint ?? []
        let cmd = options.command.isEmpty ? (options.entrypoint != nil ? [] : config.Cmd ?? []) : options.command
        var args = entrypoint + cmd
        guard !args.isEmpty else { throw BerthError("image \(options.image) has no CMD or ENTRYPOINT: give a command") }
        var hostNetwork = false
        var hostname = options.hostname ?? String(id.prefix(12))
        var spec = Spec.defaultSpec(rootless: false)
        spec.root = Root(path: "rootfs", readonly: options.readOnly)
        switch plan {
        case .none: break
        case .host:
            // docker's host mode: the host's network stack and its name
            hostNetwork = true
            hostname = hostHostname()
            spec.linux?.namespaces?.removeAll { $0.type == "network" || $0.type == "uts" }
        case .bridge(let namespace):
            setNetworkNamespace(&spec, path: namespace)
        case .container(let other, let otherDirectory):
            // the namespace's path is the other's at each start (its pid then); its name and /etc files now
            hostname = ((try? Files.read(otherDirectory + "/hostname")) ?? other.shortID).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        spec.hostname = hostNetwork ? nil : hostname
        var env = config.Env ?? []
        if !env.contains(where: { $0.hasPrefix("PATH=") }) { env.insert(defaultPathEnv, at: 0) }
        env.append("HOSTNAME=" + hostname)
        if options.tty { env.append("TERM=xterm") }
        for e in options.env {
            let key = String(e.prefix { $0 != "=" })
            env.removeAll { $0.hasPrefix(key + "=") }
            env.append(e)
        }
        let caps = try RunFlags.capabilities(base: capabilities, add: options.capAdd, drop: options.capDrop)
        let security = try RunFlags.security(options.securityOptions, capabilities: caps)
        var mounts = spec.mounts ?? []
        if options.initProcess {
            guard Files.exists(tiniPath) else { throw BerthError("--init needs \(tiniPath), which is not there: apt-get install tini") }
            args = [initPath, "--"] + args
            mounts.append(Mount(destination: initPath, type: "bind", source: tiniPath, options: ["bind", "ro", "rprivate"]))
        }
        var process = spec.process!
        process.terminal = options.tty
        process.args = args
        process.env = env
        process.cwd = options.workdir ?? (config.WorkingDir.flatMap { $0.isEmpty ? nil : $0 } ?? "/")
        process.user = try user(options.user ?? config.User ?? "", rootfs: rootfs)
        process.capabilities = Capabilities(bounding: caps, effective: caps, permitted: caps)
        process.noNewPrivileges = security.noNewPrivileges
        process.apparmorProfile = security.apparmorProfile
        for u in options.ulimits {
            process.rlimits = (process.rlimits ?? []).filter { $0.type != u.rlimit.type } + [u.rlimit]
        }
        spec.process = process
        spec.linux?.cgroupsPath = "/" + options.cgroupParent.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/" + id
        switch security.seccomp {
        case .none: spec.linux?.seccomp = DefaultSeccompProfile.profile(capabilities: caps)
        case .some(let chosen): spec.linux?.seccomp = chosen
        }
        if let limits = options.resources {
            var r = spec.linux?.resources ?? Resources()
            r.memory = limits.memory ?? r.memory
            r.cpu = limits.cpu ?? r.cpu
            r.pids = limits.pids ?? r.pids
            r.blockIO = limits.blockIO ?? r.blockIO
            spec.linux?.resources = r
        }
        // the user's mounts after the defaults; one on a default's destination (/dev/shm, say) replaces it
        var userMounts: [Mount] = []
        for b in options.binds { userMounts.append(try RunFlags.bind(b, volumes: volumes)) }
        for t in options.tmpfs { userMounts.append(try RunFlags.tmpfs(t)) }
        mounts.removeAll { m in userMounts.contains { $0.destination == m.destination } }
        spec.mounts = mounts + userMounts
        // docker's per-container files, bind-mounted over the image's (not in build
        // steps: the mount points would end up in the step's layer)
        guard !options.buildStep else { return spec }
        let hosts = hostNetwork ? ((try? Files.read("/etc/hosts")) ?? "")
            : "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t\(hostname)\n"
        let files = [("hostname", hostname + "\n"), ("hosts", hosts), ("resolv.conf", resolvConf(hostNetwork: hostNetwork))]
        var filesDirectory = directory
        if case .container(_, let otherDirectory) = plan { filesDirectory = otherDirectory } else {
            for (name, text) in files {
                try Files.writeAtomically(Array(text.utf8), to: directory + "/" + name, mode: 0o644)
            }
        }
        let taken = Set(userMounts.map(\.destination))
        spec.mounts! += files.map { "/etc/" + $0.0 }.filter { !taken.contains($0) }.map {
            Mount(destination: $0, type: "bind", source: filesDirectory + "/" + String($0.dropFirst(5)), options: ["rbind", "rprivate"])
        }
        return spec
    }

    /// The runtime joins the namespace at `path` instead of making one.
    static func setNetworkNamespace(_ spec: inout Spec, path: String) {
        guard var linux = spec.linux else { return }
        linux.namespaces = linux.namespaces?.map { $0.type == "network" ? Namespace(type: "network", path: path) : $0 }
        spec.linux = linux
    }

    static func hostHostname() -> String {
        var b = [CChar](repeating: 0, count: 256)
        gethostname(&b, 255)
        return String(decoding: b.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The host's resolv.conf; off the host's network its loopback resolvers
    /// cannot be reached, so they are left out (docker's public fallback when none remain).
    static func resolvConf(hostNetwork: Bool) -> String {
        let host = (try? Files.read("/etc/resolv.conf")) ?? ""
        if hostNetwork { return host }
        let lines = host.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return !(f.count > 1 && f[0] == "nameserver" && (f[1].hasPrefix("127.") || f[1] == "::1"))
        }
        var text = lines.joined(separator: "\n")
        if !lines.contains(where: { $0.hasPrefix("nameserver") }) {
            text += (text.isEmpty || text.hasSuffix("\n") ? "" : "\n") + "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        }
        return text
    }

    /// `name`, `uid`, `uid:gid`, `name:group`: names looked up in the image's
    /// /etc/passwd and /etc/group, supplementary groups included.
    static func user(_ text: String, rootfs: String) throws(BerthError) -> User {
        if text.isEmpty { return User(uid: 0, gid: 0, additionalGids: groups(of: "root", gid: 0, rootfs: rootfs)) }
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        let passwd = (ContainerLayer.readFile(root: rootfs, path: "/etc/passwd") ?? "").split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        var uid: UInt32
        var gid: UInt32 = 0
        var name: String?
        if let n = UInt32(parts[0]) {
            uid = n
            if let entry = passwd.first(where: { $0.count > 3 && $0[2] == parts[0] }) { gid = UInt32(entry[3]) ?? 0; name = entry[0] }
        } else if let entry = passwd.first(where: { $0.count > 3 && $0[0] == parts[0] }), let u = UInt32(entry[2]) {
            uid = u
            gid = UInt32(entry[3]) ?? 0
            name = entry[0]
        } else {
            throw BerthError("user \"\(parts[0])\": no such user in the image's /etc/passwd")
        }
        if parts.count > 1 {
            if let g = UInt32(parts[1]) { gid = g } else {
                let group = (ContainerLayer.readFile(root: rootfs, path: "/etc/group") ?? "").split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false) }
                guard let entry = group.first(where: { $0.count > 2 && $0[0] == parts[1] }), let g = UInt32(entry[2]) else {
                    throw BerthError("group \"\(parts[1])\": no such group in the image's /etc/group")
                }
                gid = g
            }
        }
        let extra = name.map { groups(of: $0, gid: gid, rootfs: rootfs) } ?? []
        return User(uid: uid, gid: gid, additionalGids: extra.isEmpty ? nil : extra)
    }

    static func groups(of user: String, gid: UInt32, rootfs: String) -> [UInt32] {
        let group = (ContainerLayer.readFile(root: rootfs, path: "/etc/group") ?? "").split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false) }
        return group.compactMap { entry in
            guard entry.count > 3, let g = UInt32(entry[2]), g != gid, entry[3].split(separator: ",").contains(Substring(user)) else { return nil }
            return g
        }
    }
}
