import Foundation
import Testing
@testable import HTTP1

/// `wrk` against a `GET /healthz` handler (not a CI test: run with HTTP1_BENCH=1 in release,
/// `swift test -c release -Xswiftc -enable-testing --filter HTTPBenchmark`).
@Suite("HTTPBenchmark", .enabled(if: ProcessInfo.processInfo.environment["HTTP1_BENCH"] == "1"))
struct HTTPBenchmark {
    @Test func wrkHealthz() throws {
        let body = Array("{\"status\":\"ok\"}".utf8)
        let handler = ClosureHandler { request, response in
            if request.path == "/healthz" {
                response.respond(status: 200, headers: [("Content-Type", "application/json")], body: body)
            } else {
                response.respond(status: 404)
            }
        }
        try withServer(handler: handler) { server in
            let seconds = ProcessInfo.processInfo.environment["HTTP1_BENCH_SECONDS"] ?? "10"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/wrk")
            p.arguments = ["-t2", "-c64", "-d\(seconds)s", "--latency", "http://127.0.0.1:\(server.port)/healthz"]
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            print(text)
            #expect(text.contains("Requests/sec"))
        }
    }
}
