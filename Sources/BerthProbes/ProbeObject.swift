import BerthSys

/// The compiled probes (bpf/berth_probes.bpf.c), embedded by the build plugin.
enum ProbeObject {
    static let bytes: [UInt8] = Base64.decode(berthProbesObject)
}
