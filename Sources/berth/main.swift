#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthBench
import BerthDaemon
import BerthEngine
import BerthImage
import BerthProbes
import BerthRuntime
import BerthSys
import BerthTrace
import CBerthLaunch

/// `berth`: the engine CLI. For now: the probes (trace, top) over the containers
/// of a berth-runtime root, and the benchmark reports.
let usage = """
usage: berth [--data-root DIR] [--exec-root DIR] [--bip CIDR] COMMAND   (images and containers: default \(ImageStore.defaultRoot) and \(Engine.defaultRunRoot))
       berth -H unix:///PATH|tcp://ADDR:PORT [--tlsverify --tlscacert CA --tlscert CERT --tlskey KEY] COMMAND
                                          the same commands through a daemon's API (also BERTH_HOST): ps, images, inspect, run, create,
                                          start, stop, restart, kill, rm, pause, unpause, rename, wait, logs, exec, top, stats, pull
       berth daemon [-H unix:///PATH] [-H tcp://ADDR:PORT --tlsverify --tlscacert CA --tlscert CERT --tlskey KEY] [--insecure-tcp] [-G GROUP] [--probes]
                                          the Docker Engine API (\(DockerAPI.version)) on a Unix socket (default EXEC-ROOT/berth.sock, mode 0660);
                                          TCP only with mutual TLS, or with --insecure-tcp (DANGEROUS: root for anyone who connects);
                                          GET /metrics: per-container figures (cAdvisor's names), with --probes also eBPF syscall
                                          counts and latency histograms and run-queue latency
       berth run [--rm] [-d] [-t] [-i] [--name N] [-e K=V] [--env-file F] [-w DIR] [-u USER[:GROUP]] [--entrypoint E] [-h HOST] [--cgroup-parent P]
                 [-v SRC:DST[:ro]] [--tmpfs DST[:OPTS]] [--read-only] [--ulimit NAME=SOFT[:HARD]] [--cap-add C] [--cap-drop C]
                 [--security-opt seccomp=FILE|unconfined|no-new-privileges] [--init]
                 [--network bridge|NETWORK|none|host|container:NAME] [-p [IP:][HOST:]PORT[/tcp|udp]]… IMAGE [COMMAND…]
           limits: [-m SIZE] [--memory-swap SIZE|-1] [--memory-reservation SIZE] [--cpus N] [-c SHARES] [--cpu-period US]
                   [--cpu-quota US] [--cpuset-cpus LIST] [--pids-limit N]   (docker's rules: swap is memory+swap, --cpus → quota/100 ms)
                   [--blkio-weight W] [--device-read-bps|--device-write-bps DEV:RATE] [--device-read-iops|--device-write-iops DEV:N]
       berth create [same options] IMAGE [COMMAND…]
       berth start [-a] CONTAINER… / stop [-t SECONDS] CONTAINER… / restart [-t SECONDS] CONTAINER…
       berth kill [-s SIGNAL] CONTAINER… / wait CONTAINER… / inspect CONTAINER…
       berth logs [-f] [--tail N] [-t] CONTAINER   what the container wrote (json-file, rotated at 10 MB, 3 files)
       berth exec [-d] [-i] [-t] [-e K=V] [--env-file F] [-u USER] [-w DIR] [--privileged] CONTAINER COMMAND…
                                          run a command in a running container; its exit code is exec's
       berth attach [--no-stdin] CONTAINER   the output (and, for -i containers, the input) of a running container
       berth top CONTAINER / stats [--no-stream] [CONTAINER…] / pause / unpause CONTAINER… / rename CONTAINER NAME
       berth update [-m SIZE] [--memory-swap SIZE] [--cpus N] [-c SHARES] [--cpuset-cpus LIST] [--pids-limit N] [--blkio-weight W] CONTAINER…
       berth cp CONTAINER:PATH HOSTPATH|-  /  berth cp HOSTPATH|- CONTAINER:PATH
       berth events [--since T] [--until T] [-f type=|event=|container=|image=] [--format json]
       berth ps [-a] [-q] [--format TEMPLATE|json]   containers (running; -a: all); {{.ID}} {{.Names}} {{.Status}} {{.State}} …
       berth info / berth system df       the engine and its disk use
       berth network create [--subnet CIDR] [--internal] [--label K=V] NAME / ls [-q] / inspect NETWORK… / rm NETWORK… / prune
                                          bridge networks: containers on one reach each other by name; the default
                                          network (bridge) has its subnet from --bip CIDR (a global option) or a free 172.x/16
       berth volume create [NAME] / ls [-q] / inspect NAME… / rm NAME… / prune [-a]   local volumes (DATA-ROOT/volumes)
       berth rm [-f] [-v] CONTAINER…      remove containers and their writable layers (-v: and their anonymous volumes)
       berth export [-o FILE] CONTAINER   the container's filesystem as a tar
       berth pull [--insecure] [--platform OS/ARCH] [-q] REF   from a registry (OCI distribution API; plain HTTP for loopback or --insecure)
       berth push [--insecure] [--chunk-size BYTES] REF   to a registry (existing blobs skipped, cross-repository mounts, chunked uploads)
       berth image tags REPOSITORY        the registry's tags of a repository
                                          (registry credentials: --username U --password P, or BERTH_REGISTRY_AUTH=user:password)
       berth build [-f FILE] [-t NAME]… [--build-arg K=V]… [--target STAGE] [--no-cache] DIR   a Containerfile: FROM (stages, AS), RUN, COPY [--from] [--chown],
                                          ADD (files, local tars), ENV, ARG, WORKDIR, USER, CMD, ENTRYPOINT, LABEL, EXPOSE, VOLUME, STOPSIGNAL
       berth images [-q] [REPOSITORY]     images in the store (also: berth image ls)
       berth image inspect IMAGE…         JSON, as docker image inspect
       berth tag SOURCE TARGET            another name for an image
       berth rmi [-f] IMAGE…              untag, and delete images left without a name
       berth image prune [-a]             delete unnamed images (-a: all without a container), and every blob and layer nothing uses
       berth load [-i FILE]               docker save archives and OCI archives (plain, gzip or zstd); stdin without -i
       berth save [-o FILE] IMAGE…        one archive readable as both (docker 25+'s layout); stdout without -o
       berth import [-c CHANGE]… FILE|DIR|- [NAME]   a rootfs tarball or directory as a one-layer image
       berth image bootstrap busybox [--helper PATH]  busybox:latest from Debian's busybox-static, with no network
       berth trace [--syscalls | --counts] [--exec] [--oom] [--runq] [--duration D] [--wait D] [--json] [--root DIR] CONTAINER…
                                          trace containers with eBPF: syscall counts and latency (--counts: counts
                                          only, no sys_exit program: cheapest for the host), exec/exit/fork,
                                          OOM kills, run-queue latency (all when none is named); D like 5, 2.5s, 500ms, 1m;
                                          --wait: wait up to D for containers not created yet
       berth top [--interval S] [--iterations N] [--json] [--root DIR]
                                          live per-container CPU, memory, pids, syscalls/s, latency, run queue, OOM kills
       berth report [DIR]                 regenerate DIR/report.md and DIR/index.html from DIR/results.json
                                          (DIR defaults to the newest reports/<timestamp>)
       berth report diff [--fail] A B     compare two runs (directories or results.json files); with --fail,
                                          exit 1 when B regressed beyond the noise
       berth --version

DIR for trace and top is the berth-runtime state root (default \(Runtime.defaultRoot)). A container whose config has the
annotation \(Tracing.waitAnnotation)=SECONDS is held at start until `berth trace` counts it: traced from its first instruction.
"""

func fail(_ message: String, code: Int32 = 1) -> Never {
    let line = "berth: \(message)\n"
    line.withCString { berth_write_stderr($0) }
    exit(code)
}

func newestReport() -> String? {
    let dir = Files.currentDirectory() + "/reports"
    let runs = ((try? Files.list(dir)) ?? []).filter { $0.first?.isNumber == true && Files.isDirectory(dir + "/" + $0) }.sorted()
    return runs.last.map { dir + "/" + $0 }
}

/// "5", "2.5s", "500ms", "1m" → seconds.
func seconds(_ text: String, option: String) -> Double {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60)]
    for (suffix, scale) in units where text.hasSuffix(suffix) {
        if let v = Double(text.dropLast(suffix.count)), v > 0 { return v * scale }
    }
    if let v = Double(text), v > 0 { return v }
    fail("\(option) \"\(text)\": give a positive duration like 5, 2.5s, 500ms or 1m", code: 2)
}

var args = Array(CommandLine.arguments.dropFirst())
// global options of the engine, before the command
var roots = EngineRoots()
var remote = ProcessInfo.processInfo.environment["BERTH_HOST"].flatMap { $0.isEmpty ? nil : RemoteHost(address: $0) }
var tlsFiles: [String: String] = [:]
var bridgeSubnet: String?
while let first = args.first, ["--data-root", "--exec-root", "--host", "-H", "--tlscacert", "--tlscert", "--tlskey", "--tlsverify", "--bip"].contains(first) {
    if first == "--tlsverify" { tlsFiles[first] = "1"; args.removeFirst(); continue }
    guard args.count > 1 else { fail("\(first) needs a value\n\(usage)", code: 2) }
    switch first {
    case "--data-root": roots.data = args[1]
    case "--exec-root": roots.exec = args[1]
    case "--host", "-H": remote = RemoteHost(address: args[1])
    case "--bip": bridgeSubnet = args[1]
    default: tlsFiles[first] = args[1]
    }
    args.removeFirst(2)
}
if let bridgeSubnet {
    do { try roots.engine.setDefaultSubnet(bridgeSubnet) } catch { fail("\(error)") }
}
if var host = remote, args.first != "daemon" {
    if tlsFiles["--tlsverify"] != nil || tlsFiles["--tlscacert"] != nil {
        guard let ca = tlsFiles["--tlscacert"] else { fail("--tlsverify needs --tlscacert CA (and --tlscert/--tlskey for the daemon's mutual TLS)", code: 2) }
        host.tls = (ca, tlsFiles["--tlscert"], tlsFiles["--tlskey"])
    }
    // a daemon that closes a stream first (an exec that ended) gives EPIPE, not a death by SIGPIPE
    // that would hide the container's exit code
    signal(SIGPIPE, SIG_IGN)
    remoteCommand(args, host: host)
    exit(0)
}
switch args.first {
case "images", "tag", "rmi", "load", "save", "import", "pull", "push":
    imageCommand(args[0] == "rmi" ? "rmi" : args[0], Array(args.dropFirst()), roots: roots)
case "image":
    guard args.count > 1 else { fail("image: give a command (ls, inspect, tag, rm, prune, load, save, import)\n\(usage)", code: 2) }
    imageCommand(args[1], Array(args.dropFirst(2)), roots: roots)
case "daemon":
    let a = Arguments(Array(args.dropFirst()), flags: ["--tlsverify", "--insecure-tcp", "--probes"],
                      values: ["--host", "--group", "--tlscacert", "--tlscert", "--tlskey"], aliases: ["-H": "--host", "-G": "--group"])
    let hosts = a.lists["--host"] ?? ["unix://\(roots.exec)/berth.sock"]
    let unixHosts = hosts.filter { $0.hasPrefix("unix://") }, tcpHosts = hosts.filter { $0.hasPrefix("tcp://") }
    if let other = hosts.first(where: { !$0.hasPrefix("unix://") && !$0.hasPrefix("tcp://") }) {
        fail("daemon --host \(other): want unix:///PATH or tcp://ADDRESS:PORT", code: 2)
    }
    guard unixHosts.count <= 1 else { fail("daemon: one unix:// socket at most", code: 2) }
    // TCP carries root on this machine to whoever connects: mutual TLS, or an explicit choice not to
    let certs = (a.values["--tlscacert"], a.values["--tlscert"], a.values["--tlskey"])
    let insecure = a.flags.contains("--insecure-tcp")
    if !tcpHosts.isEmpty && !insecure && (certs.0 == nil || certs.1 == nil || certs.2 == nil) {
        fail("daemon --host tcp://…: needs mutual TLS (--tlsverify --tlscacert CA --tlscert CERT --tlskey KEY), or --insecure-tcp, which gives root on this machine to anyone who can connect", code: 2)
    }
    let path = String((unixHosts.first ?? "unix://\(roots.exec)/berth.sock").dropFirst(7))
    var group: gid_t?
    if let name = a.values["--group"] {
        guard let g = getgrnam(name) else { fail("daemon --group \(name): no such group", code: 2) }
        group = g.pointee.gr_gid
    }
    do {
        try Files.makeDirectories(roots.exec, mode: 0o711)
        try roots.engine.images.prepare()
        roots.engine.releaseStaleNetworks()
        let api = DockerAPI(engine: roots.engine)
        if a.flags.contains("--probes") { api.probes = try DaemonProbes(engine: roots.engine) }
        let handler: HTTPServer.Handler = { request, connection in api.handle(request, connection) }
        let server = try HTTPServer(unixSocket: path, mode: 0o660, group: group, handler: handler)
        signal(SIGPIPE, SIG_IGN)
        var listening = ["unix://\(path)"]
        let tls = insecure ? nil : try certs.0.map { (ca) throws(BerthError) in try TCPFront.TLS(cert: certs.1!, key: certs.2!, ca: ca) }
        for address in tcpHosts {
            let front = try TCPFront(address: address)
            front.start(tls: tls, backend: path, handler: handler)
            let shown = address[..<address.lastIndex(of: ":")!] + ":\(front.port)"
            listening.append(shown + (tls == nil ? " (plain TCP: --insecure-tcp)" : " (mutual TLS)"))
        }
        print("berth daemon: Docker Engine API \(DockerAPI.version) on \(listening.joined(separator: ", ")) (data \(roots.data), exec \(roots.exec))")
        fflush(nil)
        server.serve()
    } catch { fail("\(error)") }
case "shim":
    // the per-container supervisor, started by run/start (not for people)
    let attached = args.contains("--attached"), multiplexed = args.contains("--multiplexed")
    guard let id = args.dropFirst().last(where: { !$0.hasPrefix("--") }) else { fail("shim: which container?", code: 2) }
    exit(Supervisor(engine: roots.engine, id: id).run(attached: attached, multiplexed: multiplexed))
case "run", "create", "ps", "rm", "export", "build", "start", "stop", "restart", "kill", "wait", "logs", "inspect", "exec", "stats", "pause", "unpause", "update", "rename", "cp", "events", "attach", "info", "system", "volume", "network":
    containerCommand(args[0], Array(args.dropFirst()), roots: roots)
case "container":
    guard args.count > 1 else { fail("container: give a command (run, create, ls, rm, export)\n\(usage)", code: 2) }
    containerCommand(args[1] == "ls" ? "ps" : args[1], Array(args.dropFirst(2)), roots: roots)
case "--version", "version":
    print("berth 0.3.0")
case "trace":
    let a = Arguments(Array(args.dropFirst()), flags: ["--syscalls", "--counts", "--exec", "--oom", "--runq", "--json"],
                      values: ["--duration", "--wait", "--root"])
    var options = Tracer.Options()
    var probes: ProbeSet = []
    if a.flags.contains("--syscalls") { probes.formUnion([.syscalls, .latency]) }
    if a.flags.contains("--counts") { probes.insert(.syscalls) }
    if a.flags.contains("--exec") { probes.insert(.exec) }
    if a.flags.contains("--oom") { probes.insert(.oom) }
    if a.flags.contains("--runq") { probes.insert(.runq) }
    options.probes = probes.isEmpty ? .all : probes
    options.duration = a.values["--duration"].map { seconds($0, option: "--duration") }
    options.json = a.flags.contains("--json")
    options.waitForContainers = a.values["--wait"].map { seconds($0, option: "--wait") }
    guard !a.positional.isEmpty else { fail("trace: name at least one container\n\(usage)", code: 2) }
    do {
        try Tracer(runtime: Runtime(root: a.values["--root"] ?? Runtime.defaultRoot), options: options).run(a.positional)
    } catch { fail("\(error)") }
case "top" where args.count == 2 && !args[1].hasPrefix("-"):
    // `top CONTAINER`: its processes, as docker top; `top` alone: the probes' live view
    containerCommand("top", Array(args.dropFirst()), roots: roots)
case "top":
    let a = Arguments(Array(args.dropFirst()), flags: ["--json"], values: ["--interval", "--iterations", "--root"])
    guard a.positional.isEmpty else { fail("top takes no arguments\n\(usage)", code: 2) }
    var options = Top.Options()
    if let i = a.values["--interval"] { options.interval = seconds(i, option: "--interval") }
    if let n = a.values["--iterations"] {
        guard let v = Int(n), v > 0 else { fail("--iterations \"\(n)\": give a positive number", code: 2) }
        options.iterations = v + 1 // the first refresh only takes the baseline
    }
    if a.flags.contains("--json") { options.json = true }
    do { try Top(runtime: Runtime(root: a.values["--root"] ?? Runtime.defaultRoot), options: options).run() } catch { fail("\(error)") }
case "report":
    args.removeFirst()
    do {
        if args.first == "diff" {
            args.removeFirst()
            let failOnRegression = args.contains("--fail")
            args.removeAll { $0 == "--fail" }
            guard args.count == 2 else { fail("report diff takes two runs\n\(usage)", code: 2) }
            let diff = ReportDiff(try BenchResults.read(args[0]), try BenchResults.read(args[1]))
            print(diff.markdown(nameA: args[0], nameB: args[1]), terminator: "")
            if failOnRegression && !diff.regressions.isEmpty { exit(1) }
        } else {
            guard args.count <= 1 else { fail("report takes one directory\n\(usage)", code: 2) }
            guard let dir = args.first ?? newestReport() else { fail("no reports/ directory here: give the report directory") }
            try BenchResults.read(dir).writeReports(to: dir)
            print("wrote \(dir)/report.md and \(dir)/index.html")
        }
    } catch { fail("\(error)") }
case "-h", "--help", "help", nil:
    print(usage)
default:
    fail("unknown command \"\(args[0])\"\n\(usage)", code: 2)
}
