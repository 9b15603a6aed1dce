#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthSys
import CBerthTLS

/// The daemon on TCP. With mutual TLS (the default and the only safe way: the API is
/// root on this machine), each connection's TLS is ended here and its bytes carried
/// to the Unix socket, so every endpoint, hijacks included, works the same on both.
/// Plain TCP only with `--insecure-tcp`.
public final class TCPFront: @unchecked Sendable {
    let listener: Int32
    public let port: UInt16

    /// `tcp://127.0.0.1:2376`; port 0 picks a free one (see `port`).
    public init(address: String) throws(BerthError) {
        guard address.hasPrefix("tcp://"), let colon = address.lastIndex(of: ":"), colon > address.index(address.startIndex, offsetBy: 6),
              let port = UInt16(address[address.index(after: colon)...]) else {
            throw BerthError("daemon --host \(address): want tcp://ADDRESS:PORT")
        }
        let host = String(address[address.index(address.startIndex, offsetBy: 6)..<colon])
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr.sin_addr) == 1 else {
            throw BerthError("daemon --host \(address): \(host) is not an IPv4 address")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .sys("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 128) == 0 else { let e = errno; close(fd); throw .sys("listen on", path: address, errno: e) }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        listener = fd
        self.port = UInt16(bigEndian: actual.sin_port)
    }

    /// A TLS server context that requires clients to present a certificate signed by `ca`.
    public final class TLS: @unchecked Sendable {
        let server: OpaquePointer
        public init(cert: String, key: String, ca: String) throws(BerthError) {
            var err = [CChar](repeating: 0, count: 512)
            guard let s = berth_tls_server_new(cert, key, ca, &err, Int32(err.count)) else {
                throw BerthError("daemon TLS: " + String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            server = s
        }
        deinit { berth_tls_server_free(server) }
    }

    /// Accepts forever on a thread of its own: with `tls`, each connection is proxied to
    /// the Unix socket at `backend`; without, it is served by `handler` directly.
    public func start(tls: TLS?, backend: String, handler: @escaping HTTPServer.Handler) {
        let listener = self.listener
        let thread = Thread {
            UnixSocket.acceptLoop(listener) { conn in
                var one: Int32 = 1
                setsockopt(conn, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                let worker = Thread {
                    guard let tls else { return HTTPServer.handle(conn, handler) }
                    defer { close(conn) }
                    guard let unix = try? UnixSocket.connect(backend) else { return }
                    defer { close(unix) }
                    var err = [CChar](repeating: 0, count: 512)
                    _ = berth_tls_proxy(tls.server, conn, unix, &err, Int32(err.count))
                }
                worker.stackSize = 1 << 20
                worker.start()
            }
        }
        thread.start()
    }
}
