import BerthSys

// config.json read without Codable (see BerthSys/JSON.swift for why): one initializer
// per type, fields as the runtime-spec names them. Unknown fields are ignored.
// SpecJSONTests checks these against the Codable conformance on a spec that sets every field.

extension Spec: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(ociVersion: try o.required("ociVersion"), process: try o.optional("process"), root: try o.optional("root"),
                  hostname: try o.optional("hostname"), domainname: try o.optional("domainname"), mounts: try o.optional("mounts"),
                  hooks: try o.optional("hooks"), annotations: try o.optional("annotations"), linux: try o.optional("linux"))
    }
}

extension Root: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(path: try o.required("path"), readonly: try o.optional("readonly"))
    }
}

extension Mount: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(destination: try o.required("destination"), type: try o.optional("type"), source: try o.optional("source"),
                  options: try o.optional("options"))
    }
}

extension Process: JSONObjectReadable, JSONWritable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(terminal: try o.optional("terminal"), user: try o.required("user"), args: try o.optional("args"), env: try o.optional("env"),
                  cwd: try o.required("cwd"), capabilities: try o.optional("capabilities"), rlimits: try o.optional("rlimits"),
                  noNewPrivileges: try o.optional("noNewPrivileges"), oomScoreAdj: try o.optional("oomScoreAdj"))
        consoleSize = try o.optional("consoleSize")
        commandLine = try o.optional("commandLine")
        apparmorProfile = try o.optional("apparmorProfile")
        selinuxLabel = try o.optional("selinuxLabel")
    }
    public var json: JSON {
        var b = JSONObjectBuilder()
        b.set("terminal", terminal); b.set("consoleSize", consoleSize); b.set("user", user); b.set("args", args)
        b.set("commandLine", commandLine); b.set("env", env); b.set("cwd", cwd); b.set("capabilities", capabilities)
        b.set("rlimits", rlimits); b.set("noNewPrivileges", noNewPrivileges); b.set("apparmorProfile", apparmorProfile)
        b.set("oomScoreAdj", oomScoreAdj); b.set("selinuxLabel", selinuxLabel)
        return b.json
    }
}

extension Process.ConsoleSize: JSONObjectReadable, JSONWritable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(height: try o.required("height"), width: try o.required("width"))
    }
    public var json: JSON { .object(["height": height.json, "width": width.json]) }
}

extension User: JSONObjectReadable, JSONWritable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(uid: try o.required("uid"), gid: try o.required("gid"), umask: try o.optional("umask"), additionalGids: try o.optional("additionalGids"))
        username = try o.optional("username")
    }
    public var json: JSON {
        var b = JSONObjectBuilder()
        b.set("uid", uid); b.set("gid", gid); b.set("umask", umask); b.set("additionalGids", additionalGids); b.set("username", username)
        return b.json
    }
}

extension Capabilities: JSONObjectReadable, JSONWritable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(bounding: try o.optional("bounding"), effective: try o.optional("effective"), inheritable: try o.optional("inheritable"),
                  permitted: try o.optional("permitted"), ambient: try o.optional("ambient"))
    }
    public var json: JSON {
        var b = JSONObjectBuilder()
        b.set("bounding", bounding); b.set("effective", effective); b.set("inheritable", inheritable)
        b.set("permitted", permitted); b.set("ambient", ambient)
        return b.json
    }
}

extension Rlimit: JSONObjectReadable, JSONWritable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(type: try o.required("type"), hard: try o.required("hard"), soft: try o.required("soft"))
    }
    public var json: JSON { .object(["type": type.json, "hard": hard.json, "soft": soft.json]) }
}

extension Hooks: JSONObjectReadable, JSONWritable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init()
        prestart = try o.optional("prestart"); createRuntime = try o.optional("createRuntime")
        createContainer = try o.optional("createContainer"); startContainer = try o.optional("startContainer")
        poststart = try o.optional("poststart"); poststop = try o.optional("poststop")
    }
    public var json: JSON {
        var b = JSONObjectBuilder()
        b.set("prestart", prestart); b.set("createRuntime", createRuntime); b.set("createContainer", createContainer)
        b.set("startContainer", startContainer); b.set("poststart", poststart); b.set("poststop", poststop)
        return b.json
    }
}

extension Hook: JSONObjectReadable, JSONWritable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(path: try o.required("path"), args: try o.optional("args"), env: try o.optional("env"), timeout: try o.optional("timeout"))
    }
    public var json: JSON {
        var b = JSONObjectBuilder()
        b.set("path", self.path); b.set("args", args); b.set("env", env); b.set("timeout", timeout)
        return b.json
    }
}

extension Linux: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init()
        namespaces = try o.optional("namespaces"); uidMappings = try o.optional("uidMappings"); gidMappings = try o.optional("gidMappings")
        timeOffsets = try o.optional("timeOffsets"); devices = try o.optional("devices"); cgroupsPath = try o.optional("cgroupsPath")
        resources = try o.optional("resources"); rootfsPropagation = try o.optional("rootfsPropagation"); seccomp = try o.optional("seccomp")
        sysctl = try o.optional("sysctl"); maskedPaths = try o.optional("maskedPaths"); readonlyPaths = try o.optional("readonlyPaths")
        mountLabel = try o.optional("mountLabel")
    }
}

extension Namespace: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(type: try o.required("type"), path: try o.optional("path"))
    }
}

extension IDMapping: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(containerID: try o.required("containerID"), hostID: try o.required("hostID"), size: try o.required("size"))
    }
}

extension TimeOffset: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(secs: try o.optional("secs"), nanosecs: try o.optional("nanosecs"))
    }
}

extension Device: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(type: try o.required("type"), path: try o.required("path"), major: try o.optional("major"), minor: try o.optional("minor"),
                  fileMode: try o.optional("fileMode"), uid: try o.optional("uid"), gid: try o.optional("gid"))
    }
}

extension Resources: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init()
        devices = try o.optional("devices"); memory = try o.optional("memory"); cpu = try o.optional("cpu"); pids = try o.optional("pids")
        blockIO = try o.optional("blockIO"); hugepageLimits = try o.optional("hugepageLimits"); network = try o.optional("network")
        unified = try o.optional("unified")
    }
}

extension Resources.DeviceRule: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(allow: try o.required("allow"), type: try o.optional("type"), major: try o.optional("major"), minor: try o.optional("minor"),
                  access: try o.optional("access"))
    }
}

extension Resources.Memory: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init()
        limit = try o.optional("limit"); reservation = try o.optional("reservation"); swap = try o.optional("swap")
        kernel = try o.optional("kernel"); kernelTCP = try o.optional("kernelTCP"); swappiness = try o.optional("swappiness")
        disableOOMKiller = try o.optional("disableOOMKiller"); useHierarchy = try o.optional("useHierarchy")
        checkBeforeUpdate = try o.optional("checkBeforeUpdate")
    }
}

extension Resources.CPU: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init()
        shares = try o.optional("shares"); quota = try o.optional("quota"); burst = try o.optional("burst"); period = try o.optional("period")
        realtimeRuntime = try o.optional("realtimeRuntime"); realtimePeriod = try o.optional("realtimePeriod")
        cpus = try o.optional("cpus"); mems = try o.optional("mems"); idle = try o.optional("idle")
    }
}

extension Resources.Pids: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) { self.init(limit: try o.required("limit")) }
}

extension Resources.BlockIO: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init()
        weight = try o.optional("weight"); leafWeight = try o.optional("leafWeight"); weightDevice = try o.optional("weightDevice")
        throttleReadBpsDevice = try o.optional("throttleReadBpsDevice"); throttleWriteBpsDevice = try o.optional("throttleWriteBpsDevice")
        throttleReadIOPSDevice = try o.optional("throttleReadIOPSDevice"); throttleWriteIOPSDevice = try o.optional("throttleWriteIOPSDevice")
    }
}

extension Resources.BlockIO.WeightDevice: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(major: try o.required("major"), minor: try o.required("minor"), weight: try o.optional("weight"), leafWeight: try o.optional("leafWeight"))
    }
}

extension Resources.BlockIO.ThrottleDevice: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(major: try o.required("major"), minor: try o.required("minor"), rate: try o.required("rate"))
    }
}

extension Resources.HugepageLimit: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(pageSize: try o.required("pageSize"), limit: try o.required("limit"))
    }
}

extension Resources.Network: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(classID: try o.optional("classID"), priorities: try o.optional("priorities"))
    }
}

extension Resources.Network.Priority: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(name: try o.required("name"), priority: try o.required("priority"))
    }
}

extension Seccomp: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(defaultAction: try o.required("defaultAction"), defaultErrnoRet: try o.optional("defaultErrnoRet"),
                  architectures: try o.optional("architectures"), flags: try o.optional("flags"), listenerPath: try o.optional("listenerPath"),
                  listenerMetadata: try o.optional("listenerMetadata"), syscalls: try o.optional("syscalls"))
    }
}

extension Seccomp.Syscall: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(names: try o.required("names"), action: try o.required("action"), errnoRet: try o.optional("errnoRet"), args: try o.optional("args"))
    }
}

extension Seccomp.Arg: JSONObjectReadable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(index: try o.required("index"), value: try o.required("value"), valueTwo: try o.optional("valueTwo"), op: try o.required("op"))
    }
}

extension State: JSONObjectReadable, JSONWritable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(ociVersion: try o.required("ociVersion"), id: try o.required("id"), status: try o.required("status"), pid: try o.optional("pid"),
                  bundle: try o.required("bundle"), annotations: try o.optional("annotations"))
    }
    public var json: JSON {
        var b = JSONObjectBuilder()
        b.set("ociVersion", ociVersion); b.set("id", id); b.set("status", status); b.set("pid", pid); b.set("bundle", bundle)
        b.set("annotations", annotations)
        return b.json
    }
}

extension State.Status: JSONReadable, JSONWritable {}
