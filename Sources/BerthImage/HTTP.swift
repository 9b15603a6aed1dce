#if canImport(Glibc)
import Glibc
#endif
import Foundation
import CBerthHTTP
import BerthSys

/// One HTTP exchange over libcurl: the body streams from a `ByteSource` and into
/// a `ByteSink`, so a layer is never held in memory.
struct HTTPResponse {
    var status: Int
    var headers: [String: String]   // lowercased names; the last of repeated ones
    var links: [String] = []        // every Link header (pagination)

    func header(_ name: String) -> String? { headers[name.lowercased()] }
}

enum HTTP {
    private final class Context {
        var body: ByteSink?
        var upload: ByteSource?
        var headers: [String: String] = [:]
        var links: [String] = []
        var error: BerthError?
        var received: Int64 = 0
        var progress: ((Int64) -> Void)?
    }

    static func perform(_ method: String, _ url: String, headers: [String] = [], body: ByteSource? = nil, bodySize: Int64 = -1,
                        into sink: ByteSink? = nil, basicAuth: String? = nil,
                        progress: ((Int64) -> Void)? = nil) throws(BerthError) -> HTTPResponse {
        let ctx = Context()
        ctx.body = sink
        ctx.upload = body
        ctx.progress = progress
        let unmanaged = Unmanaged.passRetained(ctx)
        defer { unmanaged.release() }
        let strings = CStringArray(headers)
        var status = 0
        var error = [CChar](repeating: 0, count: 512)
        let rc: Int32 = strings.pointers.map { UnsafePointer($0) }.withUnsafeBufferPointer { hs in
            method.withCString { m in url.withCString { u in
                var request = berth_http_request()
                request.method = m
                request.url = u
                request.headers = hs.baseAddress
                request.header_count = Int32(headers.count)
                request.upload_size = body == nil ? 0 : bodySize
                request.connect_timeout = 15
                request.low_speed_time = 60
                if body != nil {
                    request.read = { ctxp, buf, len in
                        let c = Unmanaged<Context>.fromOpaque(ctxp!).takeUnretainedValue()
                        do throws(BerthError) { return try c.upload!.read(into: UnsafeMutableRawBufferPointer(start: buf, count: len)) } catch {
                            c.error = error
                            return size_t.max   // CURL_READFUNC_ABORT
                        }
                    }
                    request.read_ctx = unmanaged.toOpaque()
                }
                request.write = { ctxp, buf, len in
                    let c = Unmanaged<Context>.fromOpaque(ctxp!).takeUnretainedValue()
                    guard let sink = c.body else { return len }
                    do throws(BerthError) { try sink.write(UnsafeRawBufferPointer(start: buf, count: len)) } catch {
                        c.error = error
                        return 0
                    }
                    c.received += Int64(len)
                    c.progress?(c.received)
                    return len
                }
                request.write_ctx = unmanaged.toOpaque()
                request.header = { ctxp, buf, len in
                    let c = Unmanaged<Context>.fromOpaque(ctxp!).takeUnretainedValue()
                    let line = String(decoding: UnsafeRawBufferPointer(start: buf, count: len), as: UTF8.self)
                    if line.hasPrefix("HTTP/") { c.headers = [:]; c.links = [] }   // a redirect's headers are not the answer's
                    if let colon = line.firstIndex(of: ":") {
                        let name = line[..<colon].lowercased()
                        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
                        c.headers[name] = value
                        if name == "link" { c.links.append(value) }
                    }
                    return len
                }
                request.header_ctx = unmanaged.toOpaque()
                return basicAuth.map { auth in auth.withCString { a in
                    request.userpwd = a
                    return berth_http_perform(&request, &status, &error, error.count)
                } } ?? berth_http_perform(&request, &status, &error, error.count)
            } }
        }
        if let e = ctx.error { throw e }
        guard rc == 0 else {
            throw BerthError("\(method) \(url): \(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        return HTTPResponse(status: status, headers: ctx.headers, links: ctx.links)
    }
}
