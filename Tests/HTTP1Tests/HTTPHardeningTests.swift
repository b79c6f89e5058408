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
    static func finalResponse(_ c: RawClient) throws -> Response {
        while true {
            let r = try c.readResponse()
            if r.status >= 200 { return r }
        }
    }

    @Test func strayCRLFAfterABodyDoesNotTimeTheRequestOut() throws {
        var limits = HTTPLimits()
        limits.headerTimeout = 0.3
        try withServer(limits: limits, handler: Self.slow(1.0)) { server in
            let c = try RawClient(port: server.port, timeout: 10)
            c.send("POST /gen HTTP/1.1\nHost: t\nContent-Length: 2\n\nok\n")
            let r = try c.readResponse()
            #expect(r.status == 200 && r.text == "done /gen")
        }
    }

    /// A head the client began behind a large answer gets its header timeout once that answer is out,
    /// not while the client is still reading it (the answer's writing has its own stall timeout).
    @Test func partialNextHeadIsNotTimedOutWhileTheAnswerBeforeItIsBeingSent() throws {
        var limits = HTTPLimits()
        limits.headerTimeout = 2
        let size = 16 << 20
        let handler = ClosureHandler { request, response in
            if request.path == "/big" {
                response.respond(status: 200, body: [UInt8](repeating: 0x44, count: size))
            } else {
                response.respond(status: 200, body: Array("done \(request.path)".utf8))
            }
        }
        try withServer(limits: limits, handler: handler) { server in
            let c = try RawClient(port: server.port, timeout: 10)
            // A locked receive buffer: the kernel holds little of the answer, most stays queued in the server.
            var window: Int32 = 64 * 1024
            setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &window, socklen_t(MemoryLayout<Int32>.size))
            c.send("GET /big HTTP/1.1\nHost: t\n\nGET /small HTTP/1.1\n")
            usleep(2_500_000)  // longer than the header timeout, all of it spent with the answer unsent
            #expect(try c.readResponse().body.count == size)
            c.send("Host: t\n\n")
            let r = try c.readResponse()
            #expect(r.status == 200 && r.text == "done /small")
        }
    }

    @Test func halfClosedClientGetsTheWholeAnswer() throws {
        try withServer(handler: Self.slow(0.4)) { server in
            let c = try RawClient(port: server.port, timeout: 10)
            c.send("GET /1 HTTP/1.1\nHost: t\n\nGET /2 HTTP/1.1\nHost: t\n\n")
            shutdown(c.fd, Int32(SHUT_WR))  // `nc -N`
            #expect(try Self.finalResponse(c).text == "done /1")
            #expect(try Self.finalResponse(c).text == "done /2")
            #expect(c.isClosedByServer())
        }
    }

    /// A half-close that arrives while the answer streams (head and first chunk out) does not cut it short:
    /// only a reset or a failed write ends a streaming answer.
    @Test func halfCloseDuringAStreamingAnswerGetsTheWholeAnswer() throws {
        let handler = ClosureHandler { _, response in
            for part in ["one ", "two ", "three"] {
                try? response.write(part)
                usleep(300_000)
            }
            response.finish()
        }
        try withServer(handler: handler) { server in
            let c = try RawClient(port: server.port, timeout: 10)
            c.send("GET /stream HTTP/1.1\nHost: t\n\n")
            // Half-close once the head and "one " have arrived (read, not slept for).
            let (status, _) = try c.readHead()
            var text = try c.readChunk()
            shutdown(c.fd, Int32(SHUT_WR))
            while true {
                let chunk = try c.readChunk()
                if chunk.isEmpty { break }
                text += chunk
            }
            #expect(status == 200 && String(decoding: text, as: UTF8.self) == "one two three")
            #expect(c.isClosedByServer())
        }
    }

    /// A streaming answer with a streaming probe, waiting for its next write, learns that a client which
    /// half-closed then went away is gone (the probe chunk is answered with a reset).
    @Test func streamingProbeTellsAClientThatWentAway() throws {
        try Self.expectShutdownSeen(HeldUntilClosed(probe: Array(":\n\n".utf8), first: "event: queued\ndata: {}\n\n"), path: "/events")
    }

    /// Sends `GET path` to a handler that holds it, shuts the socket down both ways once the handler has
    /// it, and expects the handler to be told.
    static func expectShutdownSeen(_ held: HeldUntilClosed, path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        try withServer(handler: held.handler) { server in
            let c = try RawClient(port: server.port, timeout: 5)
            c.send("GET \(path) HTTP/1.1\nHost: t\n\n")
            #expect(held.waitStarted(), sourceLocation: sourceLocation)
            shutdown(c.fd, Int32(SHUT_RDWR))
            #expect(eventually { held.closed.get }, sourceLocation: sourceLocation)
        }
    }

    /// A client that closes its socket (or shuts down both ways) while its answer is computed still
    /// cancels it, though its FIN looks like a half-close.
    @Test func clientThatShutsDownBothWaysIsStillSeenGone() throws {
        try Self.expectShutdownSeen(HeldUntilClosed(), path: "/work")
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
            let c = try RawClient(port: server.port, timeout: 10)
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
        let answered = Locked(false)
        let handler = ClosureHandler { _, response in
            response.respond(status: 200, body: [UInt8](repeating: 0x42, count: size))
            answered.withValue { $0 = true }
        }
        let server = HTTPServer(configuration: HTTPServerConfiguration(port: 0), handler: handler)
        try server.start()
        let c = try RawClient(port: server.port, timeout: 10)
        c.send("GET /download HTTP/1.1\nHost: t\n\n")
        c.fill(max: 16 * 1024)
        // Drain once the handler has finished (its answer queued, mostly unsent); whether the drain leaves
        // an answer being written alone is HTTPConnectionStateMachineTests' drainFinishesAnAnswerStillBeingWritten.
        #expect(eventually { answered.get })
        let done = Locked(false)
        server.shutdown(deadline: 30) { done.withValue { $0 = true } }
        let r = try c.readResponse()
        #expect(r.body.count == size)
        #expect(eventually { done.get })
    }

    /// A last answer (`Connection: close`) still in the kernel's send buffer when the client sends more
    /// (a next request it pipelined before it saw the close) is not reset away: the server closes in
    /// stages (RFC 9112 §9.6), its FIN after the answer, reading and dropping input until the client closes.
    @Test func inputAfterTheLastAnswerDoesNotResetItAway() throws {
        var limits = HTTPLimits()
        limits.maxRequestsPerConnection = 1
        let size = 16 << 20
        let writer = Locked<HTTPResponseWriter?>(nil)
        let handler = ClosureHandler { _, response in
            writer.withValue { $0 = response }
            response.respond(status: 200, body: [UInt8](repeating: 0x45, count: size))
        }
        try withServer(limits: limits, handler: handler) { server in
            let c = try RawClient(port: server.port, timeout: 10)
            c.send("GET /last HTTP/1.1\nHost: t\n\n")
            // Read until the server has handed the whole answer to the kernel (it closes then).
            while writer.get.map({ $0.queuedBytes > 0 }) ?? true {
                guard c.fill(max: 64 * 1024) else { break }
                usleep(5_000)
            }
            usleep(50_000)
            c.send("GET /next HTTP/1.1\nHost: t\n\n")
            let r = try c.readResponse()
            #expect(r.status == 200 && r.headers["connection"] == "close" && r.body.count == size)
            #expect(c.isClosedByServer())
            writer.withValue { $0 = nil }
        }
    }

    @Test func pipelinedAnswersNobodyReadsStayBounded() throws {
        var limits = HTTPLimits()
        limits.writeHighWaterMark = 64 * 1024
        let piece = 64 * 1024
        let stats = Locked((handled: 0, maxQueued: 0))
        let handler = ClosureHandler { request, response in
            let queued = response.queuedBytes
            stats.withValue { $0.handled += 1; $0.maxQueued = max($0.maxQueued, queued) }
            response.respond(status: 200, body: Array(request.path.utf8) + [UInt8](repeating: 0x43, count: piece))
        }
        try withServer(limits: limits, handler: handler) { server in
            let c = try RawClient(port: server.port, timeout: 10)
            // A small locked window: the kernel takes little of the answers (64 KB, not less: loopback's
            // segments are 64 KB, and a smaller window slows TCP to zero-window probes).
            var small: Int32 = 64 * 1024
            setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            let count = 400
            c.send((0..<count).map { "GET /m\($0) HTTP/1.1\nHost: t\n\n" }.joined())
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
            // Reading resumes the answering: every request is answered, in order.
            for i in 0..<count {
                let r = try c.readResponse()
                #expect(r.status == 200 && r.body.count == "/m\(i)".utf8.count + piece)
                #expect(r.body.starts(with: Array("/m\(i)".utf8)) && r.body.last == 0x43)
            }
            #expect(stats.get.handled == count && stats.get.maxQueued <= limits.writeHighWaterMark)
        }
    }
}
