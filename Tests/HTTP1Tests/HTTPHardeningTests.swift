import Foundation
import Testing
@testable import HTTP1
#if canImport(Glibc)
import Glibc
#endif

/// Issue 12 as a client sees it: answers are never cut short by a stray CRLF, the idle timer, a drain or
/// a half-close, and pipelined answers nobody reads stay bounded in memory.
@Suite("HTTP hardening", .serialized)
struct HTTPHardeningTests {
    /// A handler that takes `seconds` and answers `done PATH`.
    static func slow(_ seconds: Double) -> ClosureHandler {
        ClosureHandler { request, response in
            usleep(UInt32(seconds * 1e6))
            response.respond(status: 200, body: Array("done \(request.path)".utf8))
        }
    }

    /// Reads the final response, skipping interim (1xx) ones.
    static func finalResponse(_ c: TestClient) throws -> TestResponse {
        while true {
            let r = try c.readResponse()
            if r.status >= 200 { return r }
        }
    }

    @Test func strayCRLFAfterABodyDoesNotTimeTheRequestOut() throws {
        var limits = HTTPLimits()
        limits.headerTimeout = 0.3
        try withServer(limits: limits, handler: Self.slow(1.0)) { server in
            let c = try TestClient(port: server.port, timeout: 10)
            c.send("POST /gen HTTP/1.1\nHost: t\nContent-Length: 2\n\nok\n")
            let r = try c.readResponse()
            #expect(r.status == 200 && r.text == "done /gen")
        }
    }

    @Test func halfClosedClientGetsTheWholeAnswer() throws {
        try withServer(handler: Self.slow(0.4)) { server in
            let c = try TestClient(port: server.port, timeout: 10)
            c.send("GET /1 HTTP/1.1\nHost: t\n\nGET /2 HTTP/1.1\nHost: t\n\n")
            shutdown(c.fd, Int32(SHUT_WR))  // `nc -N`
            #expect(try Self.finalResponse(c).text == "done /1")
            #expect(try Self.finalResponse(c).text == "done /2")
            #expect(c.isClosedByServer())
        }
    }

    /// A client that closes its socket (or shuts down both ways) while its answer is computed still
    /// cancels it, though its FIN looks like a half-close.
    @Test func clientThatShutsDownBothWaysIsStillSeenGone() throws {
        let closed = Locked(false)
        let handler = ClosureHandler { _, response in
            let sem = DispatchSemaphore(value: 0)
            response.onClose { closed.withValue { $0 = true }; sem.signal() }
            _ = sem.wait(timeout: .now() + 10)
            response.finish()
        }
        try withServer(handler: handler) { server in
            let c = try TestClient(port: server.port)
            c.send("GET /work HTTP/1.1\nHost: t\n\n")
            usleep(100_000)
            shutdown(c.fd, Int32(SHUT_RDWR))
            #expect(eventually { closed.get })
        }
    }

    @Test func slowReaderGetsTheWholeAnswerPastTheIdleTimeout() throws {
        var limits = HTTPLimits()
        limits.idleTimeout = 0.3
        // Far more than the kernel's socket buffers take (else they would hide an early close).
        let size = 16 << 20
        let handler = ClosureHandler { _, response in
            response.respond(status: 200, body: [UInt8](repeating: 0x41, count: size))
        }
        try withServer(limits: limits, handler: handler) { server in
            let c = try TestClient(port: server.port, timeout: 10)
            c.send("GET /big HTTP/1.1\nHost: t\n\n")
            var received = 0
            while received < size / 2 {  // well over a second at this pace
                guard c.fill(max: 64 * 1024) else { break }
                received += 64 * 1024
                usleep(10_000)
            }
            let r = try c.readResponse()
            #expect(r.body.count == size)
        }
    }

    @Test func drainLetsADownloadInProgressFinish() throws {
        let size = 16 << 20
        let handler = ClosureHandler { _, response in
            response.respond(status: 200, body: [UInt8](repeating: 0x42, count: size))
        }
        let server = HTTPServer(configuration: HTTPServerConfiguration(port: 0), handler: handler)
        try server.start()
        let c = try TestClient(port: server.port, timeout: 10)
        c.send("GET /download HTTP/1.1\nHost: t\n\n")
        c.fill(max: 16 * 1024)
        // Wait until the handler finished (its answer queued, mostly unsent) before draining.
        usleep(200_000)
        let done = Locked(false)
        server.shutdown(deadline: 30) { done.withValue { $0 = true } }
        usleep(200_000)
        let r = try c.readResponse()
        #expect(r.body.count == size)
        #expect(eventually { done.get })
    }

    @Test func pipelinedAnswersNobodyReadsStayBounded() throws {
        var limits = HTTPLimits()
        limits.writeHighWaterMark = 64 * 1024
        let piece = 64 * 1024
        let stats = Locked((handled: 0, maxQueued: 0))
        let handler = ClosureHandler { _, response in
            let queued = response.queuedBytes
            stats.withValue { $0.handled += 1; $0.maxQueued = max($0.maxQueued, queued) }
            response.respond(status: 200, body: [UInt8](repeating: 0x43, count: piece))
        }
        try withServer(limits: limits, handler: handler) { server in
            let c = try TestClient(port: server.port, timeout: 10)
            var small: Int32 = 4096
            setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            let count = 400
            c.send(String(repeating: "GET /m HTTP/1.1\nHost: t\n\n", count: count))
            // Let the server go as far as it will (the count stops moving).
            var last = -1
            while stats.get.handled != last {
                last = stats.get.handled
                usleep(300_000)
            }
            let s = stats.get
            print("pipelined, unread: \(s.handled) of \(count) answered, at most \(s.maxQueued >> 10) KB queued at a dispatch")
            #expect(s.handled < count)
            #expect(s.maxQueued <= limits.writeHighWaterMark)
        }
    }
}
