import Foundation
import Testing
@testable import BerthEngine
import BerthSys

@Suite("engine logic: docker's flag rules, the json log format")
struct EngineLogicTests {
    @Test("sizes parse as docker's: 64m, 1g, 512k, bytes", arguments: [
        ("64m", Int64(64 << 20)), ("1g", Int64(1 << 30)), ("512k", Int64(512 << 10)), ("1048576", Int64(1 << 20)), ("2GB", Int64(2 << 30)),
    ])
    func sizes(text: String, bytes: Int64) throws {
        #expect(try DockerFlags.bytes(text, flag: "--memory") == bytes)
    }

    @Test("memory, swap and cpus follow docker's rules")
    func resources() throws {
        let r = try #require(try DockerFlags.resources(memory: 64 << 20, memorySwap: nil, memoryReservation: nil, cpus: 1.5, cpuShares: nil,
                                                       cpuPeriod: nil, cpuQuota: nil, cpusetCpus: "0", pidsLimit: 10))
        #expect(r.memory?.limit == 64 << 20 && r.memory?.swap == 128 << 20, "no --memory-swap: as much swap as memory")
        #expect(r.cpu?.quota == 150_000 && r.cpu?.period == 100_000 && r.cpu?.cpus == "0")
        #expect(r.pids?.limit == 10)
        #expect(try DockerFlags.resources(memory: nil, memorySwap: nil, memoryReservation: nil, cpus: nil, cpuShares: nil, cpuPeriod: nil,
                                          cpuQuota: nil, cpusetCpus: nil, pidsLimit: nil) == nil)
        func message(_ body: () throws -> Void) -> String { do { try body(); return "" } catch { return "\(error)" } }
        #expect(message { _ = try DockerFlags.resources(memory: 1 << 20, memorySwap: nil, memoryReservation: nil, cpus: nil, cpuShares: nil,
                                                          cpuPeriod: nil, cpuQuota: nil, cpusetCpus: nil, pidsLimit: nil) }.contains("6MiB"))
        #expect(message { _ = try DockerFlags.resources(memory: 64 << 20, memorySwap: 32 << 20, memoryReservation: nil, cpus: nil, cpuShares: nil,
                                                          cpuPeriod: nil, cpuQuota: nil, cpusetCpus: nil, pidsLimit: nil) }.contains("at least --memory"))
        #expect(message { _ = try DockerFlags.resources(memory: nil, memorySwap: nil, memoryReservation: nil, cpus: 1, cpuShares: nil,
                                                          cpuPeriod: nil, cpuQuota: 50_000, cpusetCpus: nil, pidsLimit: nil) }.contains("conflict"))
        #expect(message { _ = try DockerFlags.bytes("lots", flag: "--memory") }.contains("--memory \"lots\""))
    }

    @Test("log lines are docker's json-file objects; control bytes are escaped; rotation keeps max-file files")
    func jsonLog() throws {
        var template = Array("/tmp/berth-log-test-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        defer { try? Files.removeTree(dir) }
        let log = try ContainerLog(path: dir + "/c-json.log", maxSize: 400, maxFiles: 2)
        Array("one\n\"two\"\tthree\u{1}\npartial".utf8).withUnsafeBytes { log.write(stream: "stdout", $0) }
        let entries = ContainerLog.read(path: dir + "/c-json.log", maxFiles: 2)
        #expect(entries.map(\.log) == ["one\n", "\"two\"\tthree\u{1}\n", "partial"])
        #expect(entries.allSatisfy { $0.stream == "stdout" && $0.time.hasSuffix("Z") && $0.time.count == 30 })
        let raw = try Files.read(dir + "/c-json.log")
        #expect(raw.contains(#"{"log":"\"two\"\tthree\u0001\n","stream":"stdout","time":""#))
        for i in 0..<20 { Array("line \(i)\n".utf8).withUnsafeBytes { log.write(stream: "stderr", $0) } }
        let kept = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(kept == ["c-json.log", "c-json.log.1"], "rotated, at most 2 files")
        #expect(ContainerLog.read(path: dir + "/c-json.log", maxFiles: 2).last?.log == "line 19\n")
    }
}
