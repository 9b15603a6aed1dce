// swift-tools-version:6.1
import PackageDescription

/// The modules every container start runs: in release builds a concrete generic type's
/// metadata comes from its accessor, not from demangling its name at run time (which
/// also looked conformances up by scanning every record of the static binary).
let startPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"], .when(configuration: .release)),
]

/// berth: a container runtime for Linux that measures itself.
/// Dependencies point downward: executables → Runtime → Cgroups/OCI → Sys → C.
let package = Package(
    name: "berth",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "berth-runtime", targets: ["berth-runtime"]),
        .executable(name: "berth-bench", targets: ["berth-bench"]),
        .executable(name: "berth", targets: ["berth"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // In-process benchmarks (Benchmarks/): `swift package benchmark`.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // C: the child side of clone3 (plan executor) and the exec joiner.
        .target(name: "CBerthLaunch", exclude: ["README.md"], cSettings: [.define("_GNU_SOURCE")]),
        .target(name: "BerthSys", dependencies: ["CBerthLaunch"], exclude: ["README.md"], swiftSettings: startPathSettings),
        // C: libseccomp (system library) and the macros Swift cannot call.
        .target(name: "CBerthSeccomp", linkerSettings: [.linkedLibrary("seccomp")]),
        .target(name: "BerthSecurity", dependencies: ["BerthSys", "BerthOCI", "CBerthSeccomp"], exclude: ["README.md"], swiftSettings: startPathSettings),
        .target(name: "BerthOCI", dependencies: ["BerthSys"], exclude: ["README.md"], swiftSettings: startPathSettings),
        .target(name: "BerthCgroups", dependencies: ["BerthSys", "BerthOCI"], exclude: ["README.md"], swiftSettings: startPathSettings),
        // C: libbpf (system library): load, attach and read berth's BPF programs.
        .target(name: "CBerthProbes", cSettings: [.define("_GNU_SOURCE")], linkerSettings: [.linkedLibrary("bpf")]),
        // The probes: bpf/*.bpf.c compiled by the plugin (clang -target bpf) and embedded.
        .target(name: "BerthProbes", dependencies: ["BerthSys", "BerthSecurity", "CBerthProbes"],
                exclude: ["bpf", "README.md"], plugins: ["BerthEmbedPlugin"]),
        .executableTarget(name: "berth-embed", path: "Sources/berth-embed"),
        // Compiles and embeds bpf/*.bpf.c (eBPF) and programs/*.c (berth-dmz) of the targets that use it.
        .plugin(name: "BerthEmbedPlugin", capability: .buildTool(), dependencies: ["berth-embed"]),
        // C: libcrypto (SHA-256), zlib and libzstd for image content; openat2, xattrs, the fd-based overlay mount.
        .target(name: "CBerthImage", cSettings: [.define("_GNU_SOURCE")], linkerSettings: [.linkedLibrary("crypto"), .linkedLibrary("z"), .linkedLibrary("zstd")]),
        // C: libcurl, for the registry client.
        .target(name: "CBerthHTTP", linkerSettings: [.linkedLibrary("curl")]),
        // The daemon's TLS front: OpenSSL, mutual TLS, a byte proxy to the Unix socket.
        .target(name: "CBerthTLS", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        // C: one thread's network namespace (make one, open a socket in one); libnftables.
        .target(name: "CBerthNet", cSettings: [.define("_GNU_SOURCE")], linkerSettings: [.linkedLibrary("nftables")]),
        // Networks: netlink (bridge, veth, addresses, routes), IPAM, published ports.
        .target(name: "BerthNetwork", dependencies: ["BerthSys", "CBerthNet"], exclude: ["README.md"]),
        // Images: content store, tar, layers on overlayfs, archives, import.
        .target(name: "BerthImage", dependencies: ["BerthSys", "CBerthImage", "CBerthHTTP"], exclude: ["README.md"]),
        // Engine: containers made from images (writable layer, runtime config, lifecycle).
        .target(name: "BerthEngine", dependencies: ["BerthImage", "BerthNetwork", "BerthRuntime", "BerthOCI", "BerthSecurity", "BerthSys"], exclude: ["README.md"]),
        // The daemon: the Docker Engine API on a Unix socket, over the engine.
        .target(name: "BerthDaemon", dependencies: ["BerthEngine", "BerthImage", "BerthNetwork", "BerthOCI", "BerthProbes", "BerthRuntime", "BerthSys", "CBerthTLS"], exclude: ["README.md"]),
        // programs/berth_dmz.c: the last exec before a container process, from a sealed memfd.
        .target(name: "BerthRuntime", dependencies: ["BerthSys", "BerthOCI", "BerthCgroups", "BerthSecurity", "CBerthLaunch"],
                exclude: ["README.md", "programs"], swiftSettings: startPathSettings, plugins: ["BerthEmbedPlugin"]),
        // berth trace / berth top: containers of a runtime root seen through the probes.
        .target(name: "BerthTrace", dependencies: ["BerthSys", "BerthRuntime", "BerthCgroups", "BerthProbes"], exclude: ["README.md"]),
        .target(name: "BerthBench", dependencies: ["BerthSys", "BerthOCI", "BerthCgroups", "BerthSecurity", "BerthRuntime", "BerthProbes", "BerthImage", "BerthNetwork", "CBerthLaunch"], exclude: ["README.md"]),
        .executableTarget(name: "berth", dependencies: ["BerthDaemon", "BerthEngine", "BerthImage", "BerthNetwork", "BerthBench", "BerthTrace", "BerthProbes", "BerthRuntime", "BerthSys", "CBerthLaunch", "CBerthTLS"]),
        .executableTarget(
            name: "berth-bench",
            dependencies: ["BerthBench", "BerthSys", "CBerthLaunch", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "berth-runtime",
            dependencies: ["BerthRuntime"],
            swiftSettings: startPathSettings,
            // Every container start pays the runtime's own exec: linked fully static (no PIE, no
            // shared libraries), it maps ~180 pages instead of ~480 and starts in ~2.5 ms, not ~6.
            linkerSettings: [.unsafeFlags(["-static-executable"], .when(platforms: [.linux], configuration: .release))]
        ),
        // ordo-one/benchmark targets: the in-process parts of a start and of a report.
        .executableTarget(
            name: "BerthMicro",
            dependencies: ["BerthBench", "BerthCgroups", "BerthOCI", "BerthRuntime", "BerthSys",
                           .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/BerthMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .testTarget(name: "BerthOCITests", dependencies: ["BerthOCI"]),
        .testTarget(name: "BerthCgroupsTests", dependencies: ["BerthCgroups", "BerthOCI"]),
        .testTarget(name: "BerthProbesTests", dependencies: ["BerthProbes", "BerthSecurity"]),
        .testTarget(name: "BerthImageTests", dependencies: ["BerthImage", "BerthSys", "CBerthImage"]),
        .testTarget(name: "BerthNetworkTests", dependencies: ["BerthNetwork"]),
        .testTarget(name: "BerthEngineTests", dependencies: ["BerthEngine", "BerthNetwork", "BerthSys"]),
        .testTarget(name: "BerthBenchTests", dependencies: ["BerthBench", "BerthProbes", "BerthSys"]),
        .testTarget(name: "BerthIntegrationTests", dependencies: ["BerthRuntime", "BerthImage", "BerthNetwork", "BerthCgroups", "BerthOCI", "BerthSecurity", "BerthBench", "berth-runtime", "berth-bench", "berth"]),
    ],
    swiftLanguageModes: [.v6]
)
