import Foundation
import Testing
@testable import HTTP1
#if canImport(Glibc)
import Glibc
#endif

/// Requests marked `HTTPHandler.isQuick`, handled inline on the connection's queue: same ordering,
/// framing and cancellation guarantees as the handler-queue path, and no deadlock when they write.
@Suite("HTTPQuickHandler")
struct HTTPQuickHandlerTests {
    /// `/q…` is quick; other paths sleep on the handler's queue, later ones shorter.
    static let mixed = ClosureHandler(body: { request, response in
        if !request.path.hasPrefix("/q") {
            let n = Int(request.path.dropFirst()) ?? 0
            usleep(UInt32((10 - n % 10) * 1000))
        }
        response.respond(status: 200, body: Array(request.path.utf8))
    }, quick: { $0.path.hasPrefix("/q") })

    @Test func quickAndQueuedPipelinedRequestsAnswerInOrder() throws {
        var limits = HTTPLimits()
        limits.maxPipelinedRequests = 4  // pauses and resumes reading along the way
        try withServer(limits: limits, handler: Self.mixed) { server in
            let c = try RawClient(port: server.port, timeout: 5)
            var all = ""
            var paths: [String] = []
            for i in 0..<40 {
                let path = i % 3 == 0 ? "/\(i)" : "/q\(i)"
                paths.append(path)
                all += "GET \(path) HTTP/1.1\nHost: t\n\n"
            }
            c.send(all)
            for path in paths {
                #expect(try c.readResponse().text == path)
            }
            // Keep-alive afterwards, one at a time.
            for i in 0..<50 {
                #expect(try c.request("GET /q\(i) HTTP/1.1\nHost: t\n\n").text == "/q\(i)")
            }
        }
    }

    @Test func quickHandlerRunsOnTheEventLoopThread() throws {
        let onLoop = Locked<[Bool]>([])
        let handler = ClosureHandler(body: { _, response in
            onLoop.withValue { $0.append(HTTPEventLoop.isLoopThread) }
            response.respond(status: 200, body: Array("ok".utf8))
        }, quick: { _ in true })
        try withServer(handler: handler) { server in
            let c = try RawClient(port: server.port, timeout: 5)
            for _ in 0..<3 { #expect(try c.request("GET /healthz HTTP/1.1\nHost: t\n\n").text == "ok") }
        }
        #expect(onLoop.get == [true, true, true])
    }

    @Test func quickHandlerStreamingALargeBodyDoesNotDeadlock() throws {
        // Inline writes skip backpressure (only the connection's queue drains the output): 4 MB, chunked.
        let handler = ClosureHandler(body: { _, response in
            response.writeHead(status: 200, headers: [("Content-Type", "application/octet-stream")])
            for i in 0..<64 { try? response.write([UInt8](repeating: UInt8(i), count: 64 * 1024)) }
            response.finish()
        }, quick: { _ in true })
        var limits = HTTPLimits()
        limits.writeHighWaterMark = 64 * 1024
        try withServer(limits: limits, handler: handler) { server in
            let c = try RawClient(port: server.port, timeout: 5)
            let r = try c.request("GET /big HTTP/1.1\nHost: t\n\n")
            #expect(r.status == 200)
            #expect(r.body.count == 64 * 64 * 1024)
            #expect(r.body[64 * 1024 * 63] == 63)
            #expect(try c.request("GET /again HTTP/1.1\nHost: t\n\n").status == 200)
        }
    }

    @Test func quickHandlerWithoutAResponseGets500AndTheConnectionLives() throws {
        let handler = ClosureHandler(body: { request, response in
            if request.path == "/ok" { response.respond(status: 200, body: Array("ok".utf8)) }
        }, quick: { _ in true })
        try withServer(handler: handler) { server in
            let c = try RawClient(port: server.port, timeout: 5)
            c.send("GET /nothing HTTP/1.1\nHost: t\n\nGET /ok HTTP/1.1\nHost: t\n\n")
            #expect(try c.readResponse().status == 500)
            #expect(try c.readResponse().text == "ok")
        }
    }

    @Test func quickHandlerMayFinishLaterFromAnotherThread() throws {
        let handler = ClosureHandler(body: { request, response in
            if request.path == "/later" {
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) {
                    response.respond(status: 200, body: Array("later".utf8))
                }
            } else {
                response.respond(status: 200, body: Array("now".utf8))
            }
        }, quick: { _ in true })
        try withServer(handler: handler) { server in
            let c = try RawClient(port: server.port, timeout: 5)
            c.send("GET /later HTTP/1.1\nHost: t\n\nGET /now HTTP/1.1\nHost: t\n\n")
            #expect(try c.readResponse().text == "later")
            #expect(try c.readResponse().text == "now")
        }
    }

    @Test func clientDisconnectFiresOnCloseOfAQuickResponseHandedOff() throws {
        let closed = Locked(false), started = DispatchSemaphore(value: 0)
        let handler = ClosureHandler(body: { _, response in
            response.onClose { closed.withValue { $0 = true } }
            started.signal()
            // Never answered: only the disconnect ends it.
            DispatchQueue.global().asyncAfter(deadline: .now() + 5) { response.finish() }
        }, quick: { _ in true })
        try withServer(handler: handler) { server in
            do {
                let c = try RawClient(port: server.port, timeout: 5)
                c.send("GET /hang HTTP/1.1\nHost: t\n\n")
                #expect(started.wait(timeout: .now() + 10 * testTimeScale) == .success)
            }
            #expect(eventually { closed.get })
            #expect(eventually { server.connectionCount == 0 })
        }
    }
}
