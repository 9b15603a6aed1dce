import BerthOCI
import BerthCgroups
import BerthSecurity
import BerthSys

/// The runtime-spec features document (features.md), true to what berth implements.
public struct FeaturesDocument: Codable, Sendable {
    public struct LinuxFeatures: Codable, Sendable {
        public struct CgroupFeatures: Codable, Sendable { public var v1: Bool; public var v2: Bool; public var systemd: Bool; public var systemdUser: Bool; public var rdma: Bool }
        public struct SeccompFeatures: Codable, Sendable {
            public var enabled: Bool
            public var actions: [String]
            public var operators: [String]
            public var archs: [String]
            public var knownFlags: [String]
            public var supportedFlags: [String]
        }
        public struct Feature: Codable, Sendable { public var enabled: Bool }
        public var namespaces: [String]
        public var capabilities: [String]
        public var cgroup: CgroupFeatures
        public var seccomp: SeccompFeatures
        public var apparmor: Feature
        public var selinux: Feature
        public var intelRdt: Feature
        public var mountExtensions: [String: Feature]?
    }
    public var ociVersionMin: String
    public var ociVersionMax: String
    public var hooks: [String]
    public var mountOptions: [String]
    public var linux: LinuxFeatures
    public var annotations: [String: String]

    public static func current() -> FeaturesDocument {
        let options = (Array(MountOptions.flags.keys) + Array(MountOptions.propagation.keys)).sorted()
        return FeaturesDocument(
            ociVersionMin: "1.0.0", ociVersionMax: "1.3.0",
            hooks: ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
            mountOptions: options,
            linux: LinuxFeatures(
                namespaces: NamespaceKind.allCases.map(\.rawValue),
                capabilities: CapabilityTable.names,
                cgroup: .init(v1: true, v2: true, systemd: false, systemdUser: false, rdma: false),
                seccomp: .init(enabled: true,
                               actions: SeccompCompiler.supportedActions,
                               operators: SeccompCompiler.supportedOperators,
                               archs: ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"],
                               knownFlags: ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                               supportedFlags: SeccompCompiler.supportedFlags),
                apparmor: .init(enabled: true), selinux: .init(enabled: false), intelRdt: .init(enabled: false),
                mountExtensions: nil),
            annotations: ["org.berth.runtime.version": "0.1.0"])
    }

    public func encoded() -> [UInt8] {
        ((try? JSON(encoding: self)) ?? .null).serialized(pretty: true)
    }
}
