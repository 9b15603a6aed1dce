#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthEngine
import BerthOCI
import BerthSys
import CBerthLaunch
import CBerthTLS

/// `berth --host unix:///PATH|tcp://ADDR:PORT COMMAND`: the same commands, sent to a
/// daemon through its Docker Engine API instead of run in this process.
struct RemoteHost {
    var address: String
    /// docker's client flags for a TLS daemon: --tlsverify --tlscacert --tlscert --tlskey.
    var tls: (ca: String, cert: String?, key: String?)?

    /// A fresh connection: the Unix socket itself, or for TCP with TLS one end of a
    /// socketpair whose other end a thread carries through TLS (so HTTP and hijacked
    /// streams are plain bytes on a descriptor either way).
    func connect() throws(BerthError) -> Int32 {
        if address.hasPrefix("unix://") { return try UnixSocket.connect(String(address.dropFirst(7))) }
        guard address.hasPrefix("tcp://"), let colon = address.lastIndex(of: ":"),
              let port = UInt16(address[address.index(after: colon)...]) else {
            throw BerthError("--host \(address): want unix:///PATH or tcp://ADDRESS:PORT")
        }
        let host = String(address[address.index(address.startIndex, offsetBy: 6)..<colon])
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr.sin_addr) == 1 else { throw BerthError("--host \(address): not an IPv4 address") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { let e = errno; close(fd); throw BerthError("connect to the daemon", path: address, errno: e) }
        guard let tls else { return fd }
        var err = [CChar](repeating: 0, count: 512)
        guard let client = berth_tls_client_connect(fd, tls.ca, tls.cert, tls.key, &err, Int32(err.count)) else {
            close(fd)
            throw BerthError(String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else { throw .sys("socketpair") }
        let remote = pair[1]
        nonisolated(unsafe) let c = client
        Thread { berth_tls_client_run(c, remote); close(remote) }.start()
        return pair[0]
    }

    struct Response {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        /// docker's `{"message": …}`, or the body.
        var message: String {
            ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any])?["message"] as? String ?? text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// One request; the response read whole (or, with `stream`, each body piece as it comes).
    @discardableResult
    func request(_ method: String, _ path: String, json: Any? = nil, stream: (([UInt8]) -> Void)? = nil) throws(BerthError) -> Response {
        let fd = try connect()
        defer { close(fd) }
        try send(fd, method, path, json: json)
        let reader = ResponseReader(fd: fd)
        let (status, headers) = try reader.head()
        let body = try reader.body(headers, stream: status < 300 ? stream : nil)
        let response = Response(status: status, headers: headers, body: body)
        guard status < 400 else { throw BerthError(response.message) }
        return response
    }

    /// A request whose head has been read; its body is the caller's to read (wait: the answer comes when the container ends).
    func open(_ method: String, _ path: String) throws(BerthError) -> (fd: Int32, reader: ResponseReader, headers: [String: String]) {
        let fd = try connect()
        do throws(BerthError) {
            try send(fd, method, path, json: nil)
            let reader = ResponseReader(fd: fd)
            let (status, headers) = try reader.head()
            guard status < 400 else { throw BerthError(Response(status: status, headers: headers, body: (try? reader.body(headers, stream: nil)) ?? []).message) }
            return (fd, reader, headers)
        } catch {
            close(fd)
            throw error
        }
    }

    /// A request whose answer takes the connection over (attach, exec start): returns the descriptor.
    func hijack(_ path: String, json: Any? = nil) throws(BerthError) -> Int32 {
        let fd = try connect()
        do throws(BerthError) {
            try send(fd, "POST", path, json: json, upgrade: true)
            let reader = ResponseReader(fd: fd)
            let (status, headers) = try reader.head()
            guard status == 101 || status == 200 else {
                let body = (try? reader.body(headers, stream: nil)) ?? []
                throw BerthError(Response(status: status, headers: headers, body: body).message)
            }
            guard reader.buffer.isEmpty else { throw BerthError("daemon: stream bytes before the upgrade finished") }
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    private func send(_ fd: Int32, _ method: String, _ path: String, json: Any?, upgrade: Bool = false) throws(BerthError) {
        let body = json.flatMap { try? JSONSerialization.data(withJSONObject: $0) }.map(Array.init) ?? []
        var head = "\(method) /v1.47\(path) HTTP/1.1\r\nHost: berth\r\nUser-Agent: berth-cli\r\n"
        if json != nil { head += "Content-Type: application/json\r\n" }
        head += "Content-Length: \(body.count)\r\n"
        head += upgrade ? "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" : "Connection: close\r\n\r\n"
        let bytes = Array(head.utf8) + body
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .sys("send to the daemon") }
            off += n
        }
    }
}

/// Reads an HTTP/1.1 response: head, then a body by Content-Length, chunks, or to the end.
final class ResponseReader {
    let fd: Int32
    var buffer: [UInt8] = []
    init(fd: Int32) { self.fd = fd }

    private func fill() throws(BerthError) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw .sys("read from the daemon") }
            if n == 0 { return false }
            buffer += chunk[0..<n]
            return true
        }
    }

    private func line() throws(BerthError) -> String {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                let l = String(decoding: buffer[..<i], as: UTF8.self).trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
                buffer.removeSubrange(...i)
                return l
            }
            guard try fill() else { throw BerthError("the daemon closed the connection mid-response") }
        }
    }

    func head() throws(BerthError) -> (Int, [String: String]) {
        let status = try line().split(separator: " ")
        guard status.count >= 2, let code = Int(status[1]) else { throw BerthError("the daemon's answer is not HTTP") }
        var headers: [String: String] = [:]
        while true {
            let l = try line()
            if l.isEmpty { break }
            if let colon = l.firstIndex(of: ":") {
                headers[l[..<colon].lowercased()] = l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return (code, headers)
    }

    func body(_ headers: [String: String], stream: (([UInt8]) -> Void)?) throws(BerthError) -> [UInt8] {
        var out: [UInt8] = []
        func deliver(_ piece: [UInt8]) { if let stream { stream(piece) } else { out += piece } }
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            while true {
                guard let size = Int(try line().split(separator: ";").first.map(String.init) ?? "", radix: 16) else { throw BerthError("bad chunk from the daemon") }
                if size == 0 { _ = try? line(); break }
                while buffer.count < size + 2 { guard try fill() else { throw BerthError("the daemon closed the connection mid-chunk") } }
                deliver(Array(buffer[..<size]))
                buffer.removeSubrange(..<(size + 2))
            }
        } else if let length = headers["content-length"].flatMap(Int.init) {
            while buffer.count < length { guard try fill() else { break } }
            deliver(Array(buffer.prefix(length)))
        } else {
            if !buffer.isEmpty { deliver(buffer); buffer = [] }
            while try fill() { deliver(buffer); buffer = [] }
        }
        return out
    }
}

/// Splits docker's multiplexed frames onto stdout and stderr (or copies a raw tty stream to stdout).
func demultiplex(_ fd: Int32, raw: Bool) {
    var buffer: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 32768)
    func out(_ target: Int32, _ bytes: ArraySlice<UInt8>) {
        var off = bytes.startIndex
        while off < bytes.endIndex {
            let n = bytes[off...].withUnsafeBytes { write(target, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            off += n
        }
    }
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        if raw { out(1, chunk[0..<n]); continue }
        buffer += chunk[0..<n]
        while buffer.count >= 8 {
            let size = Int(buffer[4]) << 24 | Int(buffer[5]) << 16 | Int(buffer[6]) << 8 | Int(buffer[7])
            guard buffer.count >= 8 + size else { break }
            out(buffer[0] == 2 ? 2 : 1, buffer[8..<(8 + size)])
            buffer.removeSubrange(..<(8 + size))
        }
    }
}

/// Copies this process's stdin into a hijacked stream, then half-closes it (the container sees EOF).
func forwardStdin(_ fd: Int32) {
    Thread {
        var b = [UInt8](repeating: 0, count: 32768)
        while true {
            let n = read(0, &b, b.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            var off = 0
            while off < n { let w = b.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, n - off, Int32(MSG_NOSIGNAL)) }; if w <= 0 { return }; off += w }
        }
        shutdown(fd, Int32(SHUT_WR))
    }.start()
}
