#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthEngine
import BerthImage
import BerthOCI
import BerthSys

/// The container endpoints beyond the lifecycle: update, top, stats, events, system df.
extension DockerAPI {
    struct TopResponse: Encodable {
        var Titles: [String]
        var Processes: [[String]]
    }

    func update(_ r: HTTPRequest, _ c: HTTPConnection, _ id: String) throws(APIError) {
        let b: CreateBody.HostConfig
        do { b = try JSONDecoder().decode(CreateBody.HostConfig.self, from: Data(r.body)) } catch { throw APIError(400, "malformed update: \(error)") }
        do {
            if let resources = try resources(b) { try engine.update(id, resources) }
        } catch { throw APIError(400, error.description) }
        c.json(200, ["Warnings": [String]()])
    }

    /// One document (`stream=false`: two samples 0.5 s apart, so precpu is filled and the
    /// CLI's CPU % means something; `one-shot` skips the first), or one a second until the client goes.
    func stats(_ r: HTTPRequest, _ c: HTTPConnection, _ id: String) throws(APIError) {
        let stream = r.query["stream"].map { $0 == "1" || $0.lowercased() == "true" } ?? true
        var previous: ContainerStats?
        if !(r.flag("one-shot") && !stream) {
            do { previous = try engine.stats(id) } catch { throw APIError(409, error.description) }
            usleep(500_000)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        if !stream {
            do {
                let s = try engine.stats(id, previous: previous)
                c.respond(200, Array((try? encoder.encode(s)) ?? Data()) + [10])
            } catch { throw APIError(409, error.description) }
            return
        }
        c.beginStream(contentType: "application/json")
        while let s = try? engine.stats(id, previous: previous) {
            guard c.chunk(Array((try? encoder.encode(s)) ?? Data()) + [10]) else { return }
            previous = s
            usleep(1_000_000)
        }
        c.endStream()
    }

    /// `GET /events`: the past from `since`, then new events until `until` or the client goes.
    func events(_ r: HTTPRequest, _ c: HTTPConnection) {
        var filters: [String: [String]] = [:]
        if let text = r.query["filters"], let data = text.data(using: .utf8),
           let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            for (key, value) in object {
                // {"type": ["container"]} or the older {"type": {"container": true}}
                if let list = value as? [String] { filters[key] = list } else if let map = value as? [String: Bool] { filters[key] = map.filter(\.value).map(\.key) }
            }
        }
        func time(_ name: String) -> Double? { r.query[name].flatMap { $0.isEmpty ? nil : Double($0) } }
        let until = time("until")
        c.beginStream(contentType: "application/json")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        var open = true
        Events.read(engine, since: time("since"), until: until, filters: filters, follow: until == nil || until! > Date().timeIntervalSince1970,
                    stop: { [c] in
                        // a client that went away: its socket reads as closed
                        var pfd = pollfd(fd: c.fd, events: Int16(POLLIN), revents: 0)
                        if poll(&pfd, 1, 0) > 0 {
                            var byte: UInt8 = 0
                            if recv(c.fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) <= 0 { return true }
                        }
                        return false
                    }) { e in
            open = c.chunk(Array((try? encoder.encode(e)) ?? Data()) + [10])
            return open
        }
        if open { c.endStream() }
    }

    /// GET: a path of the container as a tar; HEAD: only its stat header; PUT: a tar extracted into a directory.
    func archive(_ r: HTTPRequest, _ c: HTTPConnection, _ id: String) throws(APIError) {
        guard let path = r.query["path"], !path.isEmpty else { throw APIError(400, "archive: path is required") }
        func header(_ stat: ContainerPathStat) -> (String, String) {
            ("X-Docker-Container-Path-Stat", (try? JSONEncoder().encode(stat))?.base64EncodedString() ?? "")
        }
        func status(_ error: BerthError) -> APIError {
            error.errno == ENOENT ? APIError(404, "Could not find the file \(path) in container \(id): \(error)") : APIError(400, error.description)
        }
        switch r.method {
        case "HEAD":
            do { c.respond(200, [], contentType: "application/json", headers: [header(try engine.statPath(id, path))]) } catch { throw status(error) }
        case "GET":
            do {
                // the header is known once the path is resolved; the tar follows as it is made
                let sink = FileSink(adopting: dup(c.fd), path: "client")
                try engine.archive(id, path, to: sink) { stat in c.beginRaw(contentType: "application/x-tar", headers: [header(stat)]) }
            } catch {
                if !c.responded { throw status(error) }
            }
        default:
            do { try engine.extract(id, into: path, from: MemorySource(r.body)) } catch { throw status(error) }
            c.respond(200)
        }
    }

    /// GET /volumes, POST /volumes/create, GET and DELETE /volumes/{name}, POST /volumes/prune.
    func volumes(_ r: HTTPRequest, _ c: HTTPConnection, _ parts: [String]) throws(APIError) {
        func api(_ error: BerthError) -> APIError {
            error.description.contains("in use") ? APIError(409, error.description) : APIError.from(error)
        }
        switch (r.method, parts.count > 1 ? parts[1] : "") {
        case ("GET", ""):
            var list: [VolumeInspect] = []
            for v in engine.volumes() { if let i = try? engine.volume(v.name) { list.append(i) } }
            c.json(200, VolumeList(Volumes: list))
        case ("POST", "create"):
            let name = ((try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any])?["Name"] as? String
            do { c.json(201, try engine.createVolume(name.flatMap { $0.isEmpty ? nil : $0 })) } catch { throw api(error) }
        case ("POST", "prune"):
            let result = engine.pruneVolumes(all: (r.query["filters"] ?? "").contains("\"all\""))
            c.json(200, VolumePrune(VolumesDeleted: result.names, SpaceReclaimed: result.bytes))
        case ("GET", let name):
            do { c.json(200, try engine.volume(name)) } catch { throw api(error) }
        case ("DELETE", let name):
            do { try engine.removeVolume(name) } catch { throw api(error) }
            c.respond(204)
        default:
            throw APIError(404, "page not found: \(r.method) \(r.path)")
        }
    }

    /// GET /networks, POST /networks/create, GET and DELETE /networks/{id}, POST /networks/prune.
    func networks(_ r: HTTPRequest, _ c: HTTPConnection, _ parts: [String]) throws(APIError) {
        func api(_ error: BerthError) -> APIError {
            let text = error.description
            if text.contains("already exists") || text.contains("active endpoints") || text.contains("overlaps") { return APIError(409, text) }
            if text.contains("pre-defined") || text.contains("reserved") { return APIError(403, text) }
            if text.contains("want ") || text.contains("driver") { return APIError(400, text) }
            return APIError.from(error)
        }
        struct CreateBody: Decodable {
            struct IPAMBody: Decodable { struct Config: Decodable { var Subnet: String? }; var Config: [Config]? }
            var Name: String
            var Driver: String?
            var Internal: Bool?
            var Labels: [String: String]?
            var IPAM: IPAMBody?
            var CheckDuplicate: Bool?
        }
        struct Created: Encodable { var Id: String; var Warning = "" }
        struct Pruned: Encodable { var NetworksDeleted: [String] }
        switch (r.method, parts.count > 1 ? parts[1] : "", parts.count) {
        case ("GET", "", 1):
            c.json(200, engine.networkList())
        case ("POST", "create", 2):
            let body: CreateBody
            do { body = try JSONDecoder().decode(CreateBody.self, from: Data(r.body)) } catch { throw APIError(400, "malformed network config: \(error)") }
            let subnet = body.IPAM?.Config?.compactMap(\.Subnet).first
            do {
                let n = try engine.createNetwork(name: body.Name, subnet: subnet, internal: body.Internal ?? false, labels: body.Labels ?? [:],
                                                 driver: body.Driver.flatMap { $0.isEmpty ? nil : $0 } ?? "bridge")
                c.json(201, Created(Id: n.Id))
            } catch { throw api(error) }
        case ("POST", "prune", 2):
            c.json(200, Pruned(NetworksDeleted: engine.pruneNetworks()))
        case ("GET", let ref, 2):
            do { c.json(200, try engine.network(ref)) } catch { throw api(error) }
        case ("DELETE", let ref, 2):
            do { try engine.removeNetwork(ref) } catch { throw api(error) }
            c.respond(204)
        case ("POST", _, 3) where parts[2] == "connect" || parts[2] == "disconnect":
            throw APIError(501, "network \(parts[2]): berth attaches a container to one network, chosen when it is created (--network)")
        default:
            throw APIError(404, "page not found: \(r.method) \(r.path)")
        }
    }

    struct VolumeList: Encodable { var Volumes: [VolumeInspect]; var Warnings: [String] = [] }
    struct VolumePrune: Encodable { var VolumesDeleted: [String]; var SpaceReclaimed: Int64 }

    struct DiskUsage: Encodable {
        struct ImageUsage: Encodable {
            var Id: String
            var ParentId = ""
            var RepoTags: [String]
            var RepoDigests: [String]
            var Created: Int
            var Size: Int64
            var SharedSize: Int64
            var VirtualSize: Int64
            var Labels: [String: String] = [:]
            var Containers: Int
        }
        struct VolumeUsage: Encodable {
            struct Data: Encodable { var Size: Int64; var RefCount: Int }
            var Name: String
            var Driver = "local"
            var Mountpoint: String
            var Scope = "local"
            var Labels: [String: String] = [:]
            var Options: [String: String] = [:]
            var UsageData: Data
        }
        var LayersSize: Int64
        var Images: [ImageUsage]
        var Containers: [ContainerSummary]
        var Volumes: [VolumeUsage]
        var BuildCache: [String] = []
    }

    func systemDF() throws(APIError) -> DiskUsage {
        let store = engine.images
        let records: [ImageRecord]
        do { records = try store.images() } catch { throw APIError.from(error) }
        let containers = engine.containers()
        let usage = engine.diskUsage()
        let images = records.map { r in
            let config = try? store.config(of: r)
            return DiskUsage.ImageUsage(Id: r.id.description, RepoTags: r.familiarNames.isEmpty ? ["<none>:<none>"] : r.familiarNames,
                                        RepoDigests: ImageInspect.repoDigests(r), Created: unixTime(config?.created ?? r.stored),
                                        Size: r.size, SharedSize: usage.sharedSize[r.id] ?? 0, VirtualSize: r.size,
                                        Containers: containers.filter { $0.image == r.id }.count)
        }
        let list = containers.map { c in
            var s = summary(c)
            s.SizeRw = engine.sizeRw(c)
            s.SizeRootFs = s.SizeRw! + (records.first { $0.id == c.image }?.size ?? 0)
            return s
        }
        let volumes = engine.volumes().map { v in
            DiskUsage.VolumeUsage(Name: v.name, Mountpoint: v.path, UsageData: .init(Size: v.size, RefCount: v.containers))
        }
        return DiskUsage(LayersSize: usage.layers, Images: images, Containers: list, Volumes: volumes)
    }
}
