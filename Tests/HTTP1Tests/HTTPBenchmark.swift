import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import HTTP1

/// `wrk` against a `GET /healthz` handler (not a CI test: run with WUERSTCHEN_BENCH=1 in release,
/// `swift test -c release -Xswiftc -enable-testing --filter HTTPBenchmark`;
/// HTTP1_BENCH_QUEUED=1 measures the handler-queue path instead of the inline one).
@Suite("HTTPBenchmark", .benchmark)
struct HTTPBenchmark {
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    @Test func wrkHealthz() throws {
        let body = Array("{\"status\":\"ok\"}".utf8)
        // Inline on the connection's queue, as a health check should be (HTTP1_BENCH_QUEUED=1: the
        // handler's own queue, the path of every request not marked quick).
        let queued = ProcessInfo.processInfo.environment["HTTP1_BENCH_QUEUED"] == "1"
        let handler = ClosureHandler(body: { request, response in
            if request.path == "/healthz" {
                response.respond(status: 200, headers: [("Content-Type", "application/json")], body: body)
            } else {
                response.respond(status: 404)
            }
        }, quick: { _ in !queued })
        print("handler: \(queued ? "queued (handler queue)" : "quick (inline)")")
        try withServer(handler: handler) { server in
            let seconds = ProcessInfo.processInfo.environment["HTTP1_BENCH_SECONDS"] ?? "10"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/wrk")
            p.arguments = ["-t2", "-c64", "-d\(seconds)s", "--latency", "http://127.0.0.1:\(server.port)/healthz"]
            let out = Pipe()
            p.standardOutput = out
            let before = Self.cpuSeconds()
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            let cpu = Self.cpuSeconds() - before
            print(text)
            // Server CPU per request: comparable across runs on a shared machine, unlike req/s.
            if let line = text.split(separator: "\n").first(where: { $0.contains("requests in") }),
               let count = Double(line.split(separator: " ").first ?? "") {
                print("server CPU: \(cpu) s for \(Int(count)) requests = \(cpu / count * 1e6) us/request")
            }
            #expect(text.contains("Requests/sec"))
        }
    }
}
