#if canImport(Glibc)
import Glibc
#endif

/// The running kernel's release is at least major.minor (uname).
public func kernelAtLeast(_ major: Int, _ minor: Int) -> Bool {
    var u = utsname()
    guard uname(&u) == 0 else { return false }
    let release = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    let parts = release.split(separator: ".").prefix(2).compactMap { Int($0.prefix { $0.isNumber }) }
    guard parts.count == 2 else { return false }
    return parts[0] > major || (parts[0] == major && parts[1] >= minor)
}
