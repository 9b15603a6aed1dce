#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthSys

/// One HTTP/1.1 request off a connection.
public struct HTTPRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [String: String]
    public var headers: [String: String]   // lowercased names
    public var body: [UInt8]

    public func flag(_ name: String) -> Bool {
        guard let v = query[name] else { return false }
        return v == "1" || v.lowercased() == "true"
    }
}

/// The connection a handler answers on: a whole response, a stream, or the raw
/// socket itself (a hijack: `attach`, `exec start`).
public final class HTTPConnection: @unchecked Sendable {
    public let fd: Int32
    var closeAfter = false
    public private(set) var hijacked = false
    public private(set) var responded = false
    /// A HEAD request: headers only.
    var head = false

    init(fd: Int32) { self.fd = fd }

    static let reasons = [200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified", 400: "Bad Request", 404: "Not Found",
                          409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error", 101: "UPGRADED"]

    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    private func statusHead(_ status: Int, _ headers: [(String, String)]) -> String {
        var text = "HTTP/1.1 \(status) \(HTTPConnection.reasons[status] ?? "Status")\r\n"
        text += "Server: berth\r\nApi-Version: \(DockerAPI.version)\r\nDocker-Experimental: false\r\nOstype: linux\r\n"
        for (k, v) in headers { text += "\(k): \(v)\r\n" }
        return text
    }

    /// A complete response.
    public func respond(_ status: Int, _ body: [UInt8] = [], contentType: String = "application/json", headers: [(String, String)] = []) {
        responded = true
        var text = statusHead(status, headers)
        if status != 204 && status != 304 { text += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n" }
        text += closeAfter ? "Connection: close\r\n\r\n" : "\r\n"
        write(Array(text.utf8) + (head ? [] : body))
    }

    public func json<T: Encodable>(_ status: Int, _ value: T) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        respond(status, Array((try? encoder.encode(value)) ?? Data("{}".utf8)) + [10])
    }

    /// Docker's error body: `{"message": "…"}`.
    public func error(_ status: Int, _ message: String) {
        json(status, ["message": message])
    }

    /// Starts a streamed response (chunked); `chunk` each piece, `end` at the end.
    public func beginStream(contentType: String, status: Int = 200) {
        responded = true
        write(Array((statusHead(status, []) + "Content-Type: \(contentType)\r\nTransfer-Encoding: chunked\r\n\r\n").utf8))
    }

    @discardableResult
    public func chunk(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty else { return true }
        return write(Array((String(bytes.count, radix: 16) + "\r\n").utf8) + bytes + [13, 10])
    }

    public func endStream() { write(Array("0\r\n\r\n".utf8)) }

    /// A response whose body runs to the end of the connection (no length known up front: a tar made as it is sent).
    public func beginRaw(contentType: String, headers: [(String, String)] = []) {
        responded = true
        closeAfter = true
        write(Array((statusHead(200, headers) + "Content-Type: \(contentType)\r\nConnection: close\r\n\r\n").utf8))
    }

    /// Takes the connection over: 101 UPGRADED when the client asked to upgrade, else 200, then raw bytes.
    public func hijack(upgrade: Bool, contentType: String) {
        responded = true
        hijacked = true
        // the stream's reader (a container's stdin) may idle as long as it likes
        var none = timeval(tv_sec: 0, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
        let status = upgrade ? 101 : 200
        var text = statusHead(status, [])
        text += "Content-Type: \(contentType)\r\n"
        text += upgrade ? "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" : "\r\n"
        write(Array(text.utf8))
    }
}

/// A small HTTP/1.1 server on a Unix socket: a thread per connection,
/// keep-alive, Content-Length and chunked bodies, a limit on body size, and a
/// read timeout so an idle or stalled client does not hold a thread forever.
public final class HTTPServer: @unchecked Sendable {
    public typealias Handler = @Sendable (HTTPRequest, HTTPConnection) -> Void
    let listener: Int32
    let handler: Handler
    public static let maxBody = 1 << 30      // image loads come as bodies; JSON is far smaller
    public static let maxJSONBody = 16 << 20

    public init(unixSocket path: String, mode: mode_t, group: gid_t?, handler: @escaping Handler) throws(BerthError) {
        self.handler = handler
        let fd = try UnixSocket.listen(path, mode: mode, group: group)
        listener = fd
    }

    /// Accepts connections until the listener is closed.
    public func serve() {
        UnixSocket.acceptLoop(listener) { [handler] conn in
            var tv = timeval(tv_sec: 300, tv_usec: 0)
            setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let thread = Thread { HTTPServer.handle(conn, handler) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    public func stop() { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }

    static func handle(_ fd: Int32, _ handler: Handler) {
        let reader = SocketReader(fd: fd)
        while true {
            let connection = HTTPConnection(fd: fd)
            let request: HTTPRequest
            do {
                guard let r = try reader.request(connection) else { break }
                request = r
            } catch {
                connection.closeAfter = true
                connection.error(error.status, error.message)
                break
            }
            if request.headers["connection"]?.lowercased() == "close" { connection.closeAfter = true }
            connection.head = request.method == "HEAD"
            handler(request, connection)
            if connection.hijacked { return }   // the descriptor now belongs to whoever took it
            if !connection.responded { connection.error(500, "no response") }
            if connection.closeAfter { break }
        }
        close(fd)
    }
}

struct HTTPError: Error {
    var status: Int
    var message: String
}

/// Buffered reads of requests off a socket.
final class SocketReader {
    let fd: Int32
    var buffer: [UInt8] = []

    init(fd: Int32) { self.fd = fd }

    private func fill() throws(HTTPError) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            buffer += chunk[0..<n]
            return true
        }
    }

    private func line() throws(HTTPError) -> String? {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                var l = Array(buffer[..<i])
                if l.last == 13 { l.removeLast() }
                buffer.removeSubrange(...i)
                return String(decoding: l, as: UTF8.self)
            }
            if buffer.count > 64 << 10 { throw HTTPError(status: 400, message: "request header line too long") }
            guard try fill() else { return nil }
        }
    }

    private func bytes(_ n: Int) throws(HTTPError) -> [UInt8] {
        while buffer.count < n { guard try fill() else { throw HTTPError(status: 400, message: "request body ends early") } }
        let out = Array(buffer[0..<n])
        buffer.removeSubrange(0..<n)
        return out
    }

    func request(_ connection: HTTPConnection) throws(HTTPError) -> HTTPRequest? {
        var first = try line()
        while first == "" { first = try line() }
        guard let requestLine = first else { return nil }
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1") else { throw HTTPError(status: 400, message: "malformed request line") }
        var headers: [String: String] = [:]
        while let l = try line(), !l.isEmpty {
            guard let colon = l.firstIndex(of: ":") else { throw HTTPError(status: 400, message: "malformed header line") }
            headers[l[..<colon].lowercased()] = l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let target = String(parts[1])
        let pathPart = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
        var query: [String: String] = [:]
        if let q = target.split(separator: "?", maxSplits: 1).dropFirst().first {
            for pair in q.split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                let key = String(kv[0]).removingPercentEncoding ?? String(kv[0])
                let value = kv.count > 1 ? (String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(kv[1])) : ""
                query[key] = value
            }
        }
        var body: [UInt8] = []
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            while true {
                guard let sizeLine = try line(), let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16) else {
                    throw HTTPError(status: 400, message: "malformed chunked body")
                }
                if size == 0 { while let l = try line(), !l.isEmpty {}; break }
                guard body.count + size <= HTTPServer.maxBody else { throw HTTPError(status: 413, message: "request body larger than \(HTTPServer.maxBody >> 20) MiB") }
                body += try bytes(size)
                _ = try line()
            }
        } else if let length = headers["content-length"].flatMap(Int.init), length > 0 {
            guard length <= HTTPServer.maxBody else { throw HTTPError(status: 413, message: "request body larger than \(HTTPServer.maxBody >> 20) MiB") }
            body = try bytes(length)
        }
        let method = String(parts[0])
        // /v1.47/containers/json → /containers/json
        var path = pathPart.removingPercentEncoding ?? pathPart
        if path.hasPrefix("/v"), let slash = path.dropFirst().firstIndex(of: "/"), Double(path[path.index(path.startIndex, offsetBy: 2)..<slash]) != nil {
            path = String(path[slash...])
        }
        return HTTPRequest(method: method, path: path, query: query, headers: headers, body: body)
    }
}
