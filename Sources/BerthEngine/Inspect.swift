import Foundation
import BerthImage
import BerthOCI
import BerthSys

/// `docker inspect`'s shape for a container: the fields berth knows.
public struct ContainerInspect: Encodable, Sendable {
    public struct State: Encodable, Sendable {
        public var Status: String
        public var Running: Bool
        public var Paused: Bool
        public var Restarting: Bool
        public var OOMKilled: Bool
        public var Dead: Bool
        public var Pid: Int32
        public var ExitCode: Int32
        public var Error: String
        public var StartedAt: String
        public var FinishedAt: String
    }
    public struct Config: Encodable, Sendable {
        public var Hostname: String
        public var User: String
        public var Tty: Bool
        public var OpenStdin: Bool
        public var Env: [String]
        public var Cmd: [String]
        public var Image: String
        public var WorkingDir: String
        public var Entrypoint: [String]?
        public var Labels: [String: String]
    }
    public struct HostConfig: Encodable, Sendable {
        public struct LogConfig: Encodable, Sendable { public var `Type` = "json-file"; public var Config = ["max-size": "10m", "max-file": "3"] }
        public struct RestartPolicy: Encodable, Sendable { public var Name = "no"; public var MaximumRetryCount = 0 }
        public var LogConfig = LogConfig()
        public var RestartPolicy = RestartPolicy()
        public var AutoRemove: Bool
        public var NetworkMode: String
        public var PortBindings: [String: [NetworkSettings.HostPort]]
        public var CgroupParent: String
        public var Memory: Int64
        public var MemorySwap: Int64
        public var NanoCpus: Int64
        public var CpuShares: UInt64
        public var CpuPeriod: UInt64
        public var CpuQuota: Int64
        public var CpusetCpus: String
        public var PidsLimit: Int64
    }
    public var Id: String
    public var Created: String
    public var Path: String
    public var Args: [String]
    public var State: State
    public var Image: String
    public var LogPath: String
    public var Name: String
    public var Driver: String
    public var Platform: String
    public var Config: Config
    public var HostConfig: HostConfig
    public var Mounts: [String] = []
    public var NetworkSettings: NetworkSettings

    public init(_ c: EngineContainer, engine: Engine) {
        let spec = try? engine.spec(of: c)
        let process = spec?.process
        let running = c.status == .running
        let paused = running && ((try? engine.runtime.record(id: c.id))?.cgroups.isFrozen ?? false)
        Id = c.id
        Created = c.created
        Path = c.command.first ?? ""
        Args = Array(c.command.dropFirst())
        self.State = ContainerInspect.State(Status: paused ? "paused" : c.status.rawValue, Running: running, Paused: paused, Restarting: false,
                      OOMKilled: c.oomKilled ?? false, Dead: false, Pid: c.pid ?? 0, ExitCode: c.exitCode ?? 0, Error: "",
                      StartedAt: c.started ?? "0001-01-01T00:00:00Z", FinishedAt: c.finished ?? "0001-01-01T00:00:00Z")
        Image = c.image.description
        LogPath = engine.images.root + "/containers/\(c.id)/\(c.id)-json.log"
        Name = "/" + c.name
        Driver = "overlay"
        Platform = "linux"
        let r = spec?.linux?.resources
        let parent = spec?.linux?.cgroupsPath.map { path -> String in
            let parts = path.split(separator: "/")
            return parts.dropLast().joined(separator: "/")
        } ?? ""
        let quota = r?.cpu?.quota ?? 0, period = r?.cpu?.period ?? 0
        var bindings: [String: [NetworkSettings.HostPort]] = [:]
        for p in c.ports ?? [] {
            bindings["\(p.containerPort)/\(p.proto)", default: []].append(.init(HostIp: p.hostIP, HostPort: p.hostPort == 0 ? "" : String(p.hostPort)))
        }
        self.NetworkSettings = BerthEngine.NetworkSettings(c, engine: engine)
        self.HostConfig = ContainerInspect.HostConfig(AutoRemove: c.autoRemove, NetworkMode: c.networkMode ?? "none", PortBindings: bindings, CgroupParent: parent, Memory: r?.memory?.limit ?? 0,
                                                      MemorySwap: r?.memory?.swap ?? 0,
                                                      NanoCpus: period == 100_000 && quota > 0 ? quota * 10_000 : 0,
                                                      CpuShares: r?.cpu?.shares ?? 0, CpuPeriod: period, CpuQuota: quota,
                                                      CpusetCpus: r?.cpu?.cpus ?? "", PidsLimit: r?.pids?.limit ?? 0)
        let user: String = process.map { "\($0.user.uid):\($0.user.gid)" } ?? ""
        self.Config = ContainerInspect.Config(Hostname: spec?.hostname ?? "", User: user, Tty: process?.terminal ?? false,
                                              OpenStdin: c.openStdin, Env: process?.env ?? [], Cmd: c.command, Image: c.imageName,
                                              WorkingDir: process?.cwd ?? "/", Entrypoint: nil, Labels: [:])
    }
}

/// `docker image inspect`'s shape: the CLI's `image inspect` and the API's `/images/{name}/json`.
public struct ImageInspect: Encodable, Sendable {
    public struct RootFS: Encodable, Sendable { public var `Type`: String; public var Layers: [String] }
    public struct Metadata: Encodable, Sendable { public var LastTagTime: String }
    public var Id: String
    public var RepoTags: [String]
    public var RepoDigests: [String]
    public var Created: String
    public var Architecture: String
    public var Os: String
    public var Size: Int64
    public var Config: ImageConfig.Config?
    public var RootFS: RootFS
    public var Metadata: Metadata

    public init(_ r: ImageRecord, config: ImageConfig) {
        Id = r.id.description
        RepoTags = r.familiarNames
        RepoDigests = ImageInspect.repoDigests(r)
        Created = config.created ?? ""
        Architecture = config.architecture
        Os = config.os
        Size = r.size
        Config = config.config
        self.RootFS = ImageInspect.RootFS(Type: config.rootfs.type, Layers: config.rootfs.diff_ids.map(\.description))
        self.Metadata = ImageInspect.Metadata(LastTagTime: r.stored)
    }

    /// `name@sha256:…` for each repository the image is named in (the index's digest when it came as one).
    public static func repoDigests(_ r: ImageRecord) -> [String] {
        let names = r.names.compactMap { try? Reference(parsing: $0) }.map { $0.familiarName + "@" + (r.index ?? r.manifest).description }
        return Array(Set(names)).sorted()
    }
}
