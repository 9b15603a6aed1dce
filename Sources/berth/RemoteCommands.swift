#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthEngine
import BerthOCI
import BerthSys
import CBerthLaunch

/// The create body the Engine API takes for `options` (what docker's CLI sends for the same flags).
func createBody(_ o: RunOptions) throws(BerthError) -> [String: Any] {
    var host: [String: Any] = ["AutoRemove": o.remove, "CgroupParent": o.cgroupParent, "Binds": o.binds, "ReadonlyRootfs": o.readOnly,
                               "CapAdd": o.capAdd, "CapDrop": o.capDrop, "SecurityOpt": o.securityOptions, "Init": o.initProcess,
                               "NetworkMode": o.network,
                               "Tmpfs": Dictionary(o.tmpfs.map { t in
                                   let colon = t.firstIndex(of: ":")
                                   return (String(t[..<(colon ?? t.endIndex)]), colon.map { String(t[t.index(after: $0)...]) } ?? "")
                               }, uniquingKeysWith: { $1 }),
                               "Ulimits": o.ulimits.map { ["Name": $0.name, "Soft": $0.soft == UInt64.max ? -1 : Int64($0.soft),
                                                           "Hard": $0.hard == UInt64.max ? -1 : Int64($0.hard)] }]
    if !o.ports.isEmpty {
        var bindings: [String: [[String: String]]] = [:]
        for p in o.ports {
            bindings["\(p.containerPort)/\(p.proto)", default: []].append(["HostIp": p.hostIP, "HostPort": p.hostPort == 0 ? "" : String(p.hostPort)])
        }
        host["PortBindings"] = bindings
    }
    if let r = o.resources {
        if let m = r.memory {
            host["Memory"] = m.limit ?? 0
            host["MemorySwap"] = m.swap ?? 0
            host["MemoryReservation"] = m.reservation ?? 0
        }
        if let c = r.cpu {
            host["CpuQuota"] = c.quota ?? 0
            host["CpuPeriod"] = c.period ?? 0
            host["CpuShares"] = c.shares ?? 0
            host["CpusetCpus"] = c.cpus ?? ""
        }
        if let p = r.pids { host["PidsLimit"] = p.limit }
        if let b = r.blockIO {
            host["BlkioWeight"] = b.weight ?? 0
            if b.throttleReadBpsDevice != nil || b.throttleWriteBpsDevice != nil || b.throttleReadIOPSDevice != nil || b.throttleWriteIOPSDevice != nil {
                throw BerthError("--device-*-bps/iops: give them to a local berth (the API names devices by path on the daemon's machine)")
            }
        }
    }
    var body: [String: Any] = ["Image": o.image, "Env": o.env, "Tty": o.tty, "OpenStdin": o.interactive, "AttachStdin": o.interactive && !o.detach,
                               "AttachStdout": !o.detach, "AttachStderr": !o.detach, "StdinOnce": o.interactive && !o.detach, "HostConfig": host]
    if !o.command.isEmpty { body["Cmd"] = o.command }
    if let e = o.entrypoint { body["Entrypoint"] = e }
    if let w = o.workdir { body["WorkingDir"] = w }
    if let u = o.user { body["User"] = u }
    if let h = o.hostname { body["Hostname"] = h }
    return body
}

func percentEncoded(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+"))) ?? s }

func jsonObject(_ r: RemoteHost.Response) -> Any? { try? JSONSerialization.jsonObject(with: Data(r.body)) }

func printRawJSON(_ value: Any) {
    if let data = try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) {
        print(String(decoding: data, as: UTF8.self))
    }
}

/// The commands over the API. Those that only make sense next to the store (build,
/// export, image import, trace, top of probes, report) stay local.
func remoteCommand(_ args: [String], host: RemoteHost) {
    guard let command = args.first else { fail(usage, code: 2) }
    let rest = Array(args.dropFirst())
    do {
        switch command {
        case "version":
            let v = jsonObject(try host.request("GET", "/version")) as? [String: Any] ?? [:]
            print("Client: berth 0.3.0\nServer: \(v["Platform"].flatMap { ($0 as? [String: Any])?["Name"] } ?? "?") \(v["Version"] ?? "?") (API \(v["ApiVersion"] ?? "?"))")
        case "info":
            printRawJSON(jsonObject(try host.request("GET", "/info")) ?? [:])
        case "ps":
            let a = Arguments(rest, flags: ["--all", "--quiet", "--no-trunc"], values: [], aliases: ["-a": "--all", "-q": "--quiet"])
            let list = jsonObject(try host.request("GET", "/containers/json?all=\(a.flags.contains("--all") ? 1 : 0)")) as? [[String: Any]] ?? []
            if a.flags.contains("--quiet") {
                for c in list { print(a.flags.contains("--no-trunc") ? c["Id"] as? String ?? "" : String((c["Id"] as? String ?? "").prefix(12))) }
                return
            }
            var rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
            for c in list {
                // docker's PORTS: 127.0.0.1:8080->80/tcp for a published port, 80/tcp for one not (yet) bound
                let ports = (c["Ports"] as? [[String: Any]] ?? []).map { p -> String in
                    let inside = "\(p["PrivatePort"] as? Int ?? 0)/\(p["Type"] as? String ?? "tcp")"
                    guard let published = p["PublicPort"] as? Int else { return inside }
                    return "\(p["IP"] as? String ?? "0.0.0.0"):\(published)->" + inside
                }.joined(separator: ", ")
                var cmd = c["Command"] as? String ?? ""
                if cmd.count > 20 && !a.flags.contains("--no-trunc") { cmd = String(cmd.prefix(19)) + "…" }
                let created = Date(timeIntervalSince1970: Double(c["Created"] as? Int ?? 0))
                rows.append([String((c["Id"] as? String ?? "").prefix(12)), c["Image"] as? String ?? "", "\"\(cmd)\"",
                             ago(ISO8601DateFormatter().string(from: created)), c["Status"] as? String ?? "", ports,
                             ((c["Names"] as? [String])?.first ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "/"))])
            }
            table(rows)
        case "images":
            let list = jsonObject(try host.request("GET", "/images/json")) as? [[String: Any]] ?? []
            var rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
            for i in list {
                let id = String((i["Id"] as? String ?? "").dropFirst(7).prefix(12))
                let created = ago(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(i["Created"] as? Int ?? 0))))
                for tag in i["RepoTags"] as? [String] ?? [] {
                    let colon = tag.lastIndex(of: ":") ?? tag.endIndex
                    rows.append([String(tag[..<colon]), colon < tag.endIndex ? String(tag[tag.index(after: colon)...]) : "<none>", id, created,
                                 humanSize(Int64(i["Size"] as? Int ?? 0))])
                }
            }
            table(rows)
        case "inspect":
            guard !rest.isEmpty else { fail("inspect: name at least one container\n\(usage)", code: 2) }
            var all: [Any] = []
            for ref in rest { all.append(jsonObject(try host.request("GET", "/containers/\(percentEncoded(ref))/json")) ?? [:]) }
            printRawJSON(all)
        case "run", "create":
            let options = try parseRunOptions(rest, command: command)
            let created = jsonObject(try host.request("POST", "/containers/create" + (options.name.map { "?name=" + percentEncoded($0) } ?? ""),
                                                      json: try createBody(options))) as? [String: Any]
            guard let id = created?["Id"] as? String else { throw BerthError("the daemon made no container") }
            if command == "create" { print(id); return }
            if options.detach {
                try host.request("POST", "/containers/\(id)/start")
                print(id)
                return
            }
            exit(try remoteAttachedStart(host, id: id, tty: options.tty, stdin: options.interactive, autoRemove: options.remove))
        case "start":
            let a = Arguments(rest, flags: ["--attach", "--interactive"], values: [], aliases: ["-a": "--attach", "-i": "--interactive"])
            guard !a.positional.isEmpty else { fail("start: name at least one container\n\(usage)", code: 2) }
            if a.flags.contains("--attach") {
                let c = jsonObject(try host.request("GET", "/containers/\(percentEncoded(a.positional[0]))/json")) as? [String: Any]
                let tty = (c?["Config"] as? [String: Any])?["Tty"] as? Bool ?? false
                exit(try remoteAttachedStart(host, id: c?["Id"] as? String ?? a.positional[0], tty: tty, stdin: a.flags.contains("--interactive")))
            }
            for ref in a.positional { try host.request("POST", "/containers/\(percentEncoded(ref))/start"); print(ref) }
        case "stop", "restart":
            let a = Arguments(rest, flags: [], values: ["--time"], aliases: ["-t": "--time"])
            for ref in a.positional {
                try host.request("POST", "/containers/\(percentEncoded(ref))/\(command)" + (a.values["--time"].map { "?t=" + $0 } ?? ""))
                print(ref)
            }
        case "kill":
            let a = Arguments(rest, flags: [], values: ["--signal"], aliases: ["-s": "--signal"])
            for ref in a.positional { try host.request("POST", "/containers/\(percentEncoded(ref))/kill?signal=" + (a.values["--signal"] ?? "KILL")); print(ref) }
        case "rm":
            let a = Arguments(rest, flags: ["--force"], values: [], aliases: ["-f": "--force"])
            for ref in a.positional { try host.request("DELETE", "/containers/\(percentEncoded(ref))?force=\(a.flags.contains("--force") ? 1 : 0)"); print(ref) }
        case "pause", "unpause":
            for ref in rest { try host.request("POST", "/containers/\(percentEncoded(ref))/\(command)"); print(ref) }
        case "rename":
            guard rest.count == 2 else { fail("rename takes a container and its new name\n\(usage)", code: 2) }
            try host.request("POST", "/containers/\(percentEncoded(rest[0]))/rename?name=" + percentEncoded(rest[1]))
        case "wait":
            for ref in rest {
                let r = jsonObject(try host.request("POST", "/containers/\(percentEncoded(ref))/wait")) as? [String: Any]
                print(r?["StatusCode"] as? Int ?? -1)
            }
        case "logs":
            let a = Arguments(rest, flags: ["--follow", "--timestamps"], values: ["--tail"], aliases: ["-f": "--follow", "-t": "--timestamps", "-n": "--tail"])
            guard a.positional.count == 1 else { fail("logs takes one container\n\(usage)", code: 2) }
            let ref = percentEncoded(a.positional[0])
            let c = jsonObject(try host.request("GET", "/containers/\(ref)/json")) as? [String: Any]
            let tty = (c?["Config"] as? [String: Any])?["Tty"] as? Bool ?? false
            var pending: [UInt8] = []
            try host.request("GET", "/containers/\(ref)/logs?stdout=1&stderr=1&follow=\(a.flags.contains("--follow") ? 1 : 0)&timestamps=\(a.flags.contains("--timestamps") ? 1 : 0)"
                             + (a.values["--tail"].map { "&tail=" + $0 } ?? "")) { piece in
                if tty { _ = piece.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }; return }
                pending += piece
                while pending.count >= 8 {
                    let size = Int(pending[4]) << 24 | Int(pending[5]) << 16 | Int(pending[6]) << 8 | Int(pending[7])
                    guard pending.count >= 8 + size else { break }
                    _ = pending[8..<(8 + size)].withUnsafeBytes { write(pending[0] == 2 ? 2 : 1, $0.baseAddress, $0.count) }
                    pending.removeSubrange(..<(8 + size))
                }
            }
        case "exec":
            let a = Arguments(rest, flags: ["--detach", "--tty", "--interactive", "--privileged"], values: ["--env", "--user", "--workdir"],
                              aliases: ["-d": "--detach", "-t": "--tty", "-i": "--interactive", "-e": "--env", "-u": "--user", "-w": "--workdir"],
                              stopAtPositional: true)
            guard a.positional.count >= 2 else { fail("exec: name a container and a command\n\(usage)", code: 2) }
            let tty = a.flags.contains("--tty"), stdin = a.flags.contains("--interactive"), detach = a.flags.contains("--detach")
            var body: [String: Any] = ["Cmd": Array(a.positional.dropFirst()), "Tty": tty, "AttachStdin": stdin && !detach,
                                       "AttachStdout": !detach, "AttachStderr": !detach, "Privileged": a.flags.contains("--privileged"),
                                       "Env": a.lists["--env"] ?? []]
            if let u = a.values["--user"] { body["User"] = u }
            if let w = a.values["--workdir"] { body["WorkingDir"] = w }
            let created = jsonObject(try host.request("POST", "/containers/\(percentEncoded(a.positional[0]))/exec", json: body)) as? [String: Any]
            guard let id = created?["Id"] as? String else { throw BerthError("the daemon made no exec") }
            if detach { try host.request("POST", "/exec/\(id)/start", json: ["Detach": true, "Tty": false]); return }
            let stream = try host.hijack("/exec/\(id)/start", json: ["Detach": false, "Tty": tty])
            let raw = tty && isatty(0) != 0 ? RawTerminal() : nil
            if stdin { forwardStdin(stream) }
            demultiplex(stream, raw: tty)
            raw?.restore()
            close(stream)
            let inspected = jsonObject(try host.request("GET", "/exec/\(id)/json")) as? [String: Any]
            exit(Int32(inspected?["ExitCode"] as? Int ?? 126))
        case "top":
            guard rest.count == 1 else { fail("top takes one container\n\(usage)", code: 2) }
            let t = jsonObject(try host.request("GET", "/containers/\(percentEncoded(rest[0]))/top")) as? [String: Any]
            table([t?["Titles"] as? [String] ?? []] + (t?["Processes"] as? [[String]] ?? []))
        case "stats":
            let a = Arguments(rest, flags: ["--no-stream"], values: [])
            guard a.flags.contains("--no-stream") else { fail("stats over --host: give --no-stream", code: 2) }
            let refs = a.positional.isEmpty
                ? (jsonObject(try host.request("GET", "/containers/json")) as? [[String: Any]] ?? []).compactMap { $0["Id"] as? String } : a.positional
            var rows = [["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"]]
            for ref in refs {
                let r = try host.request("GET", "/containers/\(percentEncoded(ref))/stats?stream=false")
                guard let s = try? JSONDecoder().decode(ContainerStats.self, from: Data(r.body)) else { continue }
                let mem = s.workingSet, limit = s.memory_stats.limit
                rows.append([String(s.id.prefix(12)), String(s.name.dropFirst()), String(format: "%.2f%%", s.cpuPercent),
                             binarySize(mem) + " / " + binarySize(limit), String(format: "%.2f%%", limit > 0 ? Double(mem) / Double(limit) * 100 : 0),
                             String(s.pids_stats.current)])
            }
            table(rows)
        case "pull":
            guard let ref = rest.last else { fail("pull takes one image reference\n\(usage)", code: 2) }
            var failure: String?
            try host.request("POST", "/images/create?fromImage=" + percentEncoded(ref)) { piece in
                for line in piece.split(separator: 10) {
                    guard let o = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { continue }
                    if let e = o["error"] as? String { failure = e } else if let s = o["status"] as? String { print(s); fflush(nil) }
                }
            }
            if let failure { throw BerthError(failure) }
        default:
            fail("\(command) is not available with --host (run it on the daemon's machine without --host)", code: 2)
        }
    } catch { fail("\(error)") }
}

/// `run` / `start -a` over the API, as docker's CLI does it: wait first (an --rm container
/// may be gone by the time its stream ends), attach (so no output is missed), start,
/// copy the stream until it ends, then the exit code from the wait.
func remoteAttachedStart(_ host: RemoteHost, id: String, tty: Bool, stdin: Bool, autoRemove: Bool = false) throws(BerthError) -> Int32 {
    let waiter = try host.open("POST", "/containers/\(id)/wait?condition=" + (autoRemove ? "removed" : "next-exit"))
    defer { close(waiter.fd) }
    let stream = try host.hijack("/containers/\(id)/attach?stream=1&stdout=1&stderr=1" + (stdin ? "&stdin=1" : ""))
    defer { close(stream) }
    try host.request("POST", "/containers/\(id)/start")
    let raw = tty && stdin && isatty(0) != 0 ? RawTerminal() : nil
    if stdin { forwardStdin(stream) }
    demultiplex(stream, raw: tty)
    raw?.restore()
    let body = try waiter.reader.body(waiter.headers, stream: nil)
    let r = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    return Int32(r?["StatusCode"] as? Int ?? 0)
}
