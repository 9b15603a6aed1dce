#if canImport(Glibc)
import Glibc
#endif
import BerthSys

/// The parent cgroups berth made for a cgroupsPath such as "berth/c1", noted as
/// files in a directory under the runtime root. Only a noted parent is removed
/// when it empties; one that was there before (a slice, a benchmark's, another
/// tool's) is not berth's to remove. The note is shared by every container
/// under the parent, so the last to go removes it, whoever made it.
public struct ParentCgroupNotes: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// One file per cgroup directory: its path with "%" and "/" escaped, or an
    /// FNV-1a hash of it when that would not fit in a file name.
    func file(for cgroup: String) -> String {
        var name = ""
        for c in cgroup.unicodeScalars {
            switch c {
            case "%": name += "%25"
            case "/": name += "%2F"
            default: name.unicodeScalars.append(c)
            }
        }
        if name.utf8.count > 240 { name = "hash-" + String(FNV1a.hash(cgroup), radix: 16) }
        return directory + "/" + name
    }

    /// Notes `cgroups` as made by berth (before they are made: a create that
    /// fails half-way still removes them).
    func note(_ cgroups: [String]) throws(BerthError) {
        guard !cgroups.isEmpty else { return }
        try Files.makeDirectories(directory, mode: 0o700)
        for cgroup in cgroups {
            let fd = open(file(for: cgroup), O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw .sys("note parent cgroup \(cgroup) in", path: file(for: cgroup)) }
            close(fd)
        }
    }

    func isNoted(_ cgroup: String) -> Bool { Files.exists(file(for: cgroup)) }

    func forget(_ cgroup: String) { unlink(file(for: cgroup)) }
}
