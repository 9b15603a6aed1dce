import BerthSys

extension Spec {
    /// The spec's MUSTs that the launch path depends on; every message names the field.
    public func validate(source: String = "config.json") throws(BerthError) {
        func fail(_ field: String, _ why: String) -> BerthError { BerthError("\(source): \(field): \(why)") }

        let parts = ociVersion.split(separator: ".")
        guard parts.count >= 2, parts[0] == "1", let minor = Int(parts[1]), minor <= 3 else {
            throw fail("ociVersion", "\"\(ociVersion)\" is not a supported runtime-spec version (1.0 to 1.3)")
        }
        guard let root, !root.path.isEmpty else { throw fail("root.path", "required field is missing") }
        if let process {
            guard let args = process.args, !args.isEmpty, !args[0].isEmpty else { throw fail("process.args", "must name a program") }
            guard process.cwd.hasPrefix("/") else { throw fail("process.cwd", "\"\(process.cwd)\" is not an absolute path") }
            for (i, entry) in (process.env ?? []).enumerated() where !entry.containsText("=") {
                throw fail("process.env[\(i)]", "\"\(entry)\" is not KEY=VALUE")
            }
            if let caps = process.capabilities {
                let sets: [(String, [String]?)] = [("bounding", caps.bounding), ("effective", caps.effective), ("inheritable", caps.inheritable),
                                                   ("permitted", caps.permitted), ("ambient", caps.ambient)]
                for (set, names) in sets {
                    for (i, name) in (names ?? []).enumerated() where CapabilityTable.number(name) == nil {
                        throw fail("process.capabilities.\(set)[\(i)]", "unknown capability \"\(name)\"")
                    }
                }
            }
            var seen = Set<String>()
            for (i, limit) in (process.rlimits ?? []).enumerated() {
                guard RlimitTable.resources[limit.type] != nil else { throw fail("process.rlimits[\(i)].type", "unknown rlimit \"\(limit.type)\"") }
                guard seen.insert(limit.type).inserted else { throw fail("process.rlimits[\(i)].type", "\"\(limit.type)\" given twice") }
                guard limit.soft <= limit.hard else { throw fail("process.rlimits[\(i)]", "soft limit \(limit.soft) exceeds hard limit \(limit.hard)") }
            }
            if let adj = process.oomScoreAdj, adj < -1000 || adj > 1000 {
                throw fail("process.oomScoreAdj", "\(adj) is outside -1000...1000")
            }
        }
        for (i, mount) in (mounts ?? []).enumerated() {
            guard !mount.destination.isEmpty else { throw fail("mounts[\(i)].destination", "required field is missing") }
            guard mount.destination.hasPrefix("/") else {
                throw fail("mounts[\(i)].destination", "\"\(mount.destination)\" is not an absolute path")
            }
        }
        for (name, hooks) in hookLists {
            for (i, hook) in hooks.enumerated() {
                guard hook.path.hasPrefix("/") else { throw fail("hooks.\(name)[\(i)].path", "\"\(hook.path)\" is not an absolute path") }
                if let t = hook.timeout, t <= 0 { throw fail("hooks.\(name)[\(i)].timeout", "must be greater than zero") }
            }
        }
        guard let linux else { return }
        var kinds = Set<NamespaceKind>()
        for (i, ns) in (linux.namespaces ?? []).enumerated() {
            guard let kind = NamespaceKind(rawValue: ns.type) else {
                throw fail("linux.namespaces[\(i)].type", "unknown namespace \"\(ns.type)\"")
            }
            guard kinds.insert(kind).inserted else { throw fail("linux.namespaces[\(i)].type", "\"\(ns.type)\" given twice") }
            if let path = ns.path, !path.hasPrefix("/") { throw fail("linux.namespaces[\(i)].path", "\"\(path)\" is not an absolute path") }
        }
        let newUserNS = (linux.namespaces ?? []).contains { $0.type == "user" && $0.path == nil }
        if newUserNS && (linux.uidMappings ?? []).isEmpty {
            throw fail("linux.uidMappings", "a new user namespace needs uid mappings")
        }
        if !kinds.contains(.user) && !((linux.uidMappings ?? []).isEmpty && (linux.gidMappings ?? []).isEmpty) {
            throw fail("linux.uidMappings", "mappings given without a user namespace")
        }
        if linux.timeOffsets != nil && !kinds.contains(.time) {
            throw fail("linux.timeOffsets", "offsets given without a time namespace")
        }
        for key in (linux.timeOffsets ?? [:]).keys where key != "monotonic" && key != "boottime" {
            throw fail("linux.timeOffsets", "unknown clock \"\(key)\" (monotonic or boottime)")
        }
        if let propagation = linux.rootfsPropagation, MountOptions.propagation[propagation] == nil {
            throw fail("linux.rootfsPropagation", "unknown propagation \"\(propagation)\"")
        }
        for (i, device) in (linux.devices ?? []).enumerated() {
            guard ["c", "u", "b", "p"].contains(device.type) else { throw fail("linux.devices[\(i)].type", "unknown device type \"\(device.type)\"") }
            guard device.path.hasPrefix("/dev/") || device.path.hasPrefix("/") else { throw fail("linux.devices[\(i)].path", "not an absolute path") }
            if device.type != "p" && (device.major == nil || device.minor == nil) {
                throw fail("linux.devices[\(i)]", "major and minor are required for type \"\(device.type)\"")
            }
        }
        for key in (linux.sysctl ?? [:]).keys where key.containsText("/") || key.containsText("..") || key.isEmpty {
            throw fail("linux.sysctl", "invalid key \"\(key)\"")
        }
    }

    /// Every hook list with its spec name, in the order they run.
    public var hookLists: [(String, [Hook])] {
        guard let hooks else { return [] }
        return [("prestart", hooks.prestart ?? []), ("createRuntime", hooks.createRuntime ?? []),
                ("createContainer", hooks.createContainer ?? []), ("startContainer", hooks.startContainer ?? []),
                ("poststart", hooks.poststart ?? []), ("poststop", hooks.poststop ?? [])]
    }
}
