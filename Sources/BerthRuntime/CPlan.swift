#if canImport(Glibc)
import Glibc
#endif
import CBerthLaunch
import BerthSys
import BerthOCI

typealias BerthOCIHook = BerthOCI.Hook

/// Owns the C memory a `berth_plan` points into. The child gets a copy of the
/// address space at clone(), so the arena only has to outlive the clone call.
final class PlanArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit { allocations.forEach { free($0) } }

    func cString(_ s: String?) -> UnsafePointer<CChar>? {
        guard let s else { return nil }
        let p = strdup(s)!
        allocations.append(UnsafeMutableRawPointer(p))
        return UnsafePointer(p)
    }

    /// A NULL-terminated `char *const *`.
    func cStringArray(_ strings: [String]) -> UnsafePointer<UnsafeMutablePointer<CChar>?> {
        UnsafePointer(mutableCStringArray(strings, spare: 0))
    }

    /// A NULL-terminated `char **` with `spare` more NULL slots the child may fill (calloc'd: all NULL).
    func mutableCStringArray(_ strings: [String], spare: Int) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let array = allocate(UnsafeMutablePointer<CChar>?.self, count: strings.count + 1 + spare)
        for (i, s) in strings.enumerated() {
            let p = strdup(s)!
            allocations.append(UnsafeMutableRawPointer(p))
            array[i] = p
        }
        return array
    }

    func array<T>(_ items: [T]) -> UnsafePointer<T>? {
        guard !items.isEmpty else { return nil }
        let p = allocate(T.self, count: items.count)
        for (i, item) in items.enumerated() { (p + i).initialize(to: item) }
        return UnsafePointer(p)
    }

    private func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!
        allocations.append(raw)
        return raw.bindMemory(to: T.self, capacity: count)
    }
}

/// Descriptors opened for one launch; all are CLOEXEC, so the container never sees them.
struct LaunchFDs {
    var cgroupTasks: [Int32] = []
    var cgroup2: Int32 = -1
    var execFifo: Int32 = -1
    var consoleSocket: Int32 = -1
    var joins: [(kind: Int32, fd: Int32, path: String)] = []
    var root: Int32 = -1

    func closeAll() {
        for fd in cgroupTasks + [cgroup2, execFifo, consoleSocket, root] + joins.map { $0.fd } where fd >= 0 { close(fd) }
    }
}

extension LaunchPlan {
    /// Builds the C struct. Pointers stay valid while `arena` lives.
    /// `dmz`: the sealed berth-dmz memfd (see berth_dmz.c), or -1 to exec directly.
    func cPlan(_ arena: PlanArena, fds: LaunchFDs, preserveFDs: Int, dmz: Int32) -> berth_plan {
        var p = berth_plan()
        p.clone_flags = cloneFlags
        p.unshare_cgroupns = unshareCgroupNamespace ? 1 : 0
        p.joins = arena.array(fds.joins.map { berth_ns_join(nstype: $0.kind, fd: $0.fd, path: arena.cString($0.path)) })
        p.join_count = Int32(fds.joins.count)
        p.uid_map = arena.cString(uidMap)
        p.userns = userNamespace ? 1 : 0
        p.cgroup_task_fds = arena.array(fds.cgroupTasks)
        p.cgroup_task_fd_count = Int32(fds.cgroupTasks.count)
        p.cgroup2_fd = fds.cgroup2
        p.defer_cgroup_join = deferCgroupJoin ? 1 : 0
        p.rootfs = arena.cString(rootfs)
        p.rootfs_readonly = rootfsReadonly ? 1 : 0
        p.rootfs_propagation = rootfsPropagation
        p.no_pivot = noPivot ? 1 : 0
        p.mounts = arena.array(mounts.map {
            berth_mount(source: arena.cString($0.source), target: arena.cString($0.target), fstype: arena.cString($0.fstype),
                        data: arena.cString($0.data), flags: $0.flags, remount_flags: $0.remountFlags,
                        propagation: $0.propagation, bind: $0.bind ? 1 : 0, target_is_file: $0.targetIsFile ? 1 : 0,
                        needs_cgroups: $0.needsCgroups ? 1 : 0)
        })
        p.mount_count = Int32(mounts.count)
        p.devices = arena.array(devices.map {
            berth_device(path: arena.cString($0.path), mode: $0.mode, major: $0.major, minor: $0.minor,
                         uid: $0.uid, gid: $0.gid, bind_from_host: $0.bindFromHost ? 1 : 0)
        })
        p.device_count = Int32(devices.count)
        p.dev_symlinks = devSymlinks ? 1 : 0
        p.masked_paths = arena.array(maskedPaths.map { arena.cString($0) })
        p.masked_count = Int32(maskedPaths.count)
        p.readonly_paths = arena.array(readonlyPaths.map { arena.cString($0) })
        p.readonly_count = Int32(readonlyPaths.count)
        p.sysctls = arena.array(sysctls.map { berth_kv(key: arena.cString($0.path), value: arena.cString($0.value)) })
        p.sysctl_count = Int32(sysctls.count)
        p.hostname = arena.cString(hostname)
        p.domainname = arena.cString(domainname)
        p.rlimits = arena.array(rlimits.map { berth_rlimit(resource: $0.resource, soft: $0.soft, hard: $0.hard) })
        p.rlimit_count = Int32(rlimits.count)
        p.oom_score_adj_set = oomScoreAdj == nil ? 0 : 1
        p.oom_score_adj = Int32(oomScoreAdj ?? 0)
        p.uid = uid
        p.gid = gid
        p.additional_gids = arena.array(additionalGids)
        p.additional_gid_count = Int32(additionalGids.count)
        p.umask = umask
        if let caps = capabilities {
            p.caps_set = 1
            p.cap_bounding = caps.bounding
            p.cap_effective = caps.effective
            p.cap_inheritable = caps.inheritable
            p.cap_permitted = caps.permitted
            p.cap_ambient = caps.ambient
        }
        p.no_new_privs = noNewPrivileges ? 1 : 0
        p.apparmor_profile = arena.cString(apparmorProfile)
        if let program = seccompProgram, !program.isEmpty {
            let bytes = arena.array(program)!
            p.seccomp_filter = arena.array([berth_sock_fprog(len: UInt16(program.count / 8), filter: UnsafeRawPointer(bytes))])
            p.seccomp_flags = seccompFlags
            p.seccomp_before_start = seccompBeforeStart ? 1 : 0
        } else {
            p.seccomp_filter = nil
        }
        p.cwd = arena.cString(cwd)
        p.argv = arena.cStringArray(args)
        p.envp = arena.cStringArray(env)
        p.path_env = arena.cString(pathEnv)
        p.terminal = terminal ? 1 : 0
        p.console_socket_fd = fds.consoleSocket
        p.console_rows = consoleRows
        p.console_cols = consoleCols
        p.preserve_fds = Int32(preserveFDs)
        p.dumpable_off = 1
        p.dmz_fd = dmz
        if dmz >= 0 {
            p.dmz_envp = arena.mutableCStringArray(env, spare: 1)
            p.dmz_env_count = Int32(env.count)
        }
        p.new_session_keyring = newSessionKeyring ? 1 : 0
        p.exec_fifo_fd = fds.execFifo
        p.create_container_hooks = arena.array(createContainerHooks.map { cHook($0, arena) })
        p.create_container_hook_count = Int32(createContainerHooks.count)
        p.start_container_hooks = arena.array(startContainerHooks.map { cHook($0, arena) })
        p.start_container_hook_count = Int32(startContainerHooks.count)
        p.runtime_hooks = runtimeHooks ? 1 : 0
        p.time_offsets = arena.cString(timeOffsets)
        p.root_fd = fds.root
        return p
    }

    private func cHook(_ hook: BerthOCIHook, _ arena: PlanArena) -> berth_hook {
        berth_hook(path: arena.cString(hook.path), argv: arena.cStringArray(hook.args ?? [hook.path]),
                   envp: arena.cStringArray(hook.env ?? []), timeout: Int32(hook.timeout ?? 0))
    }
}

/// A child-side failure, `pivot_root into /path/rootfs: EINVAL (invalid argument)`.
func childError(_ msg: berth_sync_msg) -> BerthError {
    let stage = String(cString: berth_stage_name(msg.stage))
    let detail = withUnsafeBytes(of: msg.detail) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
    if msg.stage == Int32(BERTH_STAGE_APPARMOR.rawValue) && msg.err == ENOENT {
        return BerthError("process.apparmorProfile: \"\(detail)\" is not loaded in the kernel (load it with apparmor_parser -r first)")
    }
    if msg.stage == Int32(BERTH_STAGE_RLIMIT.rawValue), let resource = Int32(detail) {
        // the number as its name, and what EPERM means here: a hard limit raised above ours
        var current = rlimit()
        getrlimit(__rlimit_resource_t(UInt32(resource)), &current)
        let hard = current.rlim_max == rlim_t.max ? "unlimited" : String(current.rlim_max)
        let cause = msg.err == EPERM
            ? " (process.rlimits asks for a hard limit above the runtime's own, \(hard): raising it needs CAP_SYS_RESOURCE, which this process lacks; ask for at most \(hard))"
            : ""
        return BerthError("setrlimit \(RlimitTable.name(of: resource))\(cause)", errno: msg.err == 0 ? nil : msg.err)
    }
    return BerthError(stage, path: detail.isEmpty ? nil : detail, errno: msg.err == 0 ? nil : msg.err)
}
