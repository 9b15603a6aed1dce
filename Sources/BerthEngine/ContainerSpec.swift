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

    static func make(image: ImageConfig, options: RunOptions, id: String, rootfs: String, directory: String) throws(BerthError) -> Spec {
        let config = image.config ?? ImageConfig.Config()
        let entrypoint = options.entrypoint ?? config.Entrypoint ?? []
        let cmd = options.command.isEmpty ? (options.entrypoint != nil ? [] : config.Cmd ?? []) : options.command
        let args = entrypoint + cmd
        guard !args.isEmpty else { throw BerthError("image \(options.image) has no CMD or ENTRYPOINT: give a command") }
        var spec = Spec.defaultSpec(rootless: false)
        spec.root = Root(path: "rootfs", readonly: false)
        let hostname = options.hostname ?? String(id.prefix(12))
        spec.hostname = hostname
        var env = config.Env ?? []
        if !env.contains(where: { $0.hasPrefix("PATH=") }) { env.insert(defaultPathEnv, at: 0) }
        env.append("HOSTNAME=" + hostname)
        if options.tty { env.append("TERM=xterm") }
        for e in options.env {
            let key = String(e.prefix { $0 != "=" })
            env.removeAll { $0.hasPrefix(key + "=") }
            env.append(e)
        }
        var process = spec.process!
        process.terminal = options.tty
        process.args = args
        process.env = env
        process.cwd = options.workdir ?? (config.WorkingDir.flatMap { $0.isEmpty ? nil : $0 } ?? "/")
        process.user = try user(options.user ?? config.User ?? "", rootfs: rootfs)
        process.capabilities = Capabilities(bounding: capabilities, effective: capabilities, permitted: capabilities)
        process.noNewPrivileges = false
        spec.process = process
        spec.linux?.cgroupsPath = "/" + options.cgroupParent.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/" + id
        spec.linux?.seccomp = DefaultSeccompProfile.profile(capabilities: capabilities)
        if let limits = options.resources {
            var r = spec.linux?.resources ?? Resources()
            r.memory = limits.memory ?? r.memory
            r.cpu = limits.cpu ?? r.cpu
            r.pids = limits.pids ?? r.pids
            r.blockIO = limits.blockIO ?? r.blockIO
            spec.linux?.resources = r
        }
        // docker's per-container files, bind-mounted over the image's (not in build
        // steps: the mount points would end up in the step's layer)
        guard !options.buildStep else { return spec }
        try Files.writeAtomically(Array((hostname + "\n").utf8), to: directory + "/hostname", mode: 0o644)
        let hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t\(hostname)\n"
        try Files.writeAtomically(Array(hosts.utf8), to: directory + "/hosts", mode: 0o644)
        spec.mounts = (spec.mounts ?? []) + ["hostname", "hosts"].map {
            Mount(destination: "/etc/" + $0, type: "bind", source: directory + "/" + $0, options: ["rbind", "rprivate"])
        }
        return spec
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
