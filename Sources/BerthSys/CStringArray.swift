#if canImport(Glibc)
import Glibc
#endif

/// A NULL-terminated `char *[]` (argv, envp) that frees its strings when it goes.
public final class CStringArray {
    public let pointers: [UnsafeMutablePointer<CChar>?]

    public init(_ strings: [String]) { pointers = strings.map { strdup($0) } + [nil] }

    deinit { pointers.forEach { free($0) } }
}

/// The PATH berth gives to the processes it starts itself (hooks excluded: they get the config's env).
public let defaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
