#if canImport(Glibc)
import Glibc
#endif
import BerthSys

/// Images made on this machine, with no network: `busybox` from Debian's
/// busybox-static (every applet at the path `busybox --list-full` gives it)
/// plus, optionally, berth's static test helper at /bin/berth-test-init.
public struct Bootstrap {
    public let store: ImageStore
    public init(store: ImageStore) { self.store = store }

    public func busybox(binary: String = "/bin/busybox", helper: String?, name: String = "busybox:latest") throws(BerthError) -> ImageRecord {
        guard Files.exists(binary) else { throw BerthError("bootstrap busybox: \(binary) is missing (apt-get install busybox-static)") }
        let dir = store.root + "/ingest/bootstrap-\(getpid())"
        try? Files.removeTree(dir)
        defer { try? Files.removeTree(dir) }
        for sub in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "proc", "sys", "dev", "var/tmp", "home"] {
            try Files.makeDirectories(dir + "/" + sub, mode: 0o755)
        }
        chmod(dir + "/tmp", 0o1777)
        chmod(dir + "/var/tmp", 0o1777)
        chmod(dir + "/root", 0o700)
        try copy(binary, to: dir + "/bin/busybox", mode: 0o755)
        if let helper { try copy(helper, to: dir + "/bin/berth-test-init", mode: 0o755) }
        let list = try Self.output(binary, ["--list-full"])
        for path in list.split(separator: "\n") where !path.hasSuffix("/") && path != "bin/busybox" {
            let depth = path.split(separator: "/").count - 1
            let target = String(repeating: "../", count: depth) + "bin/busybox"
            guard symlink(depth == 1 && path.hasPrefix("bin/") ? "busybox" : target, dir + "/" + path) == 0 || errno == EEXIST else {
                throw .sys("symlink", path: dir + "/" + path)
            }
        }
        try Files.writeAtomically(Array("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n".utf8), to: dir + "/etc/passwd", mode: 0o644)
        try Files.writeAtomically(Array("root:x:0:\nwheel:x:10:root\nnogroup:x:65534:\n".utf8), to: dir + "/etc/group", mode: 0o644)
        return try ImageBuilder(store: store).importRootfs(dir, name: name, changes: ["CMD [\"sh\"]"], createdBy: "berth image bootstrap busybox")
    }

    private func copy(_ from: String, to: String, mode: mode_t) throws(BerthError) {
        let sink = try FileSink(path: to, mode: mode)
        try FileSource(path: from).copy(to: sink)
        chmod(to, mode)
    }

    /// A command's standard output (busybox --list-full).
    static func output(_ path: String, _ args: [String]) throws(BerthError) -> String {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw .sys("pipe") }
        let argv = CStringArray([path] + args)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        var pid: pid_t = 0
        let r = posix_spawn(&pid, path, &actions, nil, argv.pointers, nil)
        close(fds[1])
        guard r == 0 else { close(fds[0]); throw BerthError("run", path: path, errno: r) }
        let text = (try? FileSource(adopting: fds[0], path: path).readAll(describing: path)) ?? []
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { throw BerthError("\(path) \(args.joined(separator: " ")): exit status \(status >> 8)") }
        return String(decoding: text, as: UTF8.self)
    }
}
