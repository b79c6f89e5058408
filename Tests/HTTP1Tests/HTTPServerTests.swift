import Foundation
import Testing
@testable import HTTP1
#if canImport(Glibc)
import Glibc
#endif

@Suite("HTTPServer")
struct HTTPServerTests {
    @Test func getAndPostWithBodies() throws {
        try withServer { server in
            let c = try RawClient(port: server.port, timeout: 5)
            let get = try c.request("GET /a%20b?x=1 HTTP/1.1\nHost: t\n\n")
            #expect(get.status == 200 && get.text == "GET /a b ")
            #expect(get.headers["date"] != nil && get.headers["server"] == "wuerstchen" && get.headers["connection"] == nil)
            let post = try c.request("POST /p HTTP/1.1\nHost: t\nContent-Length: 5\n\nhello")
            #expect(post.text == "POST /p hello")
            let chunked = try c.request("POST /c HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n\n3;x=y\nabc\n2\nde\n0\nTrailer: 1\n\n")
            #expect(chunked.text == "POST /c abcde")
            let stream = try c.request("GET /stream HTTP/1.1\nHost: t\n\n")
            #expect(stream.headers["transfer-encoding"] == "chunked" && stream.text == "one,two,three")
        }
    }

    @Test func keepAliveReusesOneConnection() throws {
        try withServer { server in
            let c = try RawClient(port: server.port, timeout: 5)
            for i in 0..<100 {
                let r = try c.request("POST /k HTTP/1.1\nHost: t\nContent-Length: \(String(i).count)\n\n\(i)")
                #expect(r.status == 200 && r.text == "POST /k \(i)")
            }
            #expect(server.connectionCount == 1)
            // HTTP/1.0 keep-alive too.
            let r = try c.request("GET /ten HTTP/1.0\nConnection: keep-alive\n\n")
            #expect(r.headers["connection"] == "keep-alive")
            #expect(try c.request("GET /again HTTP/1.1\nHost: t\n\n").text == "GET /again ")
        }
    }

    @Test func pipelinedResponsesComeInOrder() throws {
        // Later requests answer faster: order must still be request order.
        let handler = ClosureHandler { request, response in
            let n = Int(request.path.dropFirst()) ?? 0
            usleep(UInt32((10 - n % 10) * 2000))
            response.respond(status: 200, body: Array(request.path.utf8))
        }
        var limits = HTTPLimits()
        limits.maxPipelinedRequests = 4
        try withServer(limits: limits, handler: handler) { server in
            let c = try RawClient(port: server.port, timeout: 5)
            var all = ""
            for i in 0..<30 { all += "GET /\(i) HTTP/1.1\nHost: t\n\n" }
            all += "POST /30 HTTP/1.1\nHost: t\nContent-Length: 3\n\nxyz"
            c.send(all)
            for i in 0...30 {
                #expect(try c.readResponse().text == "/\(i)")
            }
        }
    }

    @Test func expectContinue() throws {
        let handler = ClosureHandler(body: echoHandler.body) { head in
            head.target == "/private" ? HTTPError(status: 401, code: "unauthorized", message: "no key") : nil
        }
        try withServer(handler: handler) { server in
            let c = try RawClient(port: server.port, timeout: 5)
            c.send("POST /up HTTP/1.1\nHost: t\nExpect: 100-continue\nContent-Length: 4\n\n")
            let interim = try c.readResponse()
            #expect(interim.status == 100)
            c.send("data")
            #expect(try c.readResponse().text == "POST /up data")
            // Refused by the handler: the error instead of 100, then close.
            let d = try RawClient(port: server.port, timeout: 5)
            d.send("POST /private HTTP/1.1\nHost: t\nExpect: 100-continue\nContent-Length: 4\n\n")
            let refused = try d.readResponse()
            #expect(refused.status == 401 && refused.headers["connection"] == "close")
            #expect(refused.text.contains("\"code\":\"unauthorized\""))
            #expect(d.isClosedByServer())
            // Over the body limit: 413 without 100.
            let e = try RawClient(port: server.port, timeout: 5)
            e.send("POST /big HTTP/1.1\nHost: t\nExpect: 100-continue\nContent-Length: 99999999\n\n")
            #expect(try e.readResponse().status == 413)
        }
    }

    @Test func headHasNoBody() throws {
        try withServer { server in
            let c = try RawClient(port: server.port, timeout: 5)
            let head = try c.request("HEAD /h HTTP/1.1\nHost: t\n\n")
            #expect(head.status == 200 && head.headers["content-length"] == "8" && head.body.isEmpty)
            let headStream = try c.request("HEAD /stream HTTP/1.1\nHost: t\n\n")
            #expect(headStream.headers["transfer-encoding"] == nil)
            // The next response starts right after the heads: no body bytes were sent.
            #expect(try c.request("GET /after HTTP/1.1\nHost: t\n\n").text == "GET /after ")
        }
    }

    @Test func connectionCloseAndHTTP10() throws {
        try withServer { server in
            let c = try RawClient(port: server.port, timeout: 5)
            let r = try c.request("GET /bye HTTP/1.1\nHost: t\nConnection: close\n\n")
            #expect(r.headers["connection"] == "close" && r.text == "GET /bye ")
            #expect(c.isClosedByServer())
            let d = try RawClient(port: server.port, timeout: 5)
            let s = try d.request("GET /stream HTTP/1.0\n\n")
            #expect(s.headers["connection"] == "close" && s.headers["transfer-encoding"] == nil && s.text == "one,two,three")
        }
    }

    @Test func malformedRequestsGetTheirStatusAndServerKeepsServing() throws {
        var limits = HTTPLimits()
        limits.maxRequestLineBytes = 100
        limits.maxHeaderBytes = 200
        limits.maxHeaderCount = 5
        limits.maxBodyBytes = 1000
        let cases: [(String, Int)] = [
            ("GET / HTTP/1.1\nHost: t\nBad Header: x\n\n", 400),
            ("GET / HTTP/3.0\nHost: t\n\n", 505),
            ("GET /\(String(repeating: "x", count: 200)) HTTP/1.1\nHost: t\n\n", 414),
            ("GET / HTTP/1.1\nHost: t\nX: \(String(repeating: "y", count: 300))\n\n", 431),
            ("GET / HTTP/1.1\nHost: t\nA: 1\nB: 1\nC: 1\nD: 1\nE: 1\n\n", 431),
            ("POST / HTTP/1.1\nHost: t\nContent-Length: 5000\n\n" + String(repeating: "z", count: 5000), 413),
            ("POST / HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n\n800\n" + String(repeating: "z", count: 2048) + "\n0\n\n", 413),
            ("POST / HTTP/1.1\nHost: t\nTransfer-Encoding: gzip, chunked\n\n", 501),
            ("GET / HTTP/1.1\n\n", 400),
            ("\u{1}\u{2}\u{3}garbage\n\n", 400),
        ]
        try withServer(limits: limits) { server in
            let healthy = try RawClient(port: server.port, timeout: 5)
            for (raw, status) in cases {
                let c = try RawClient(port: server.port, timeout: 5)
                let r = try c.request(raw)
                #expect(r.status == status, "\(raw.prefix(40).debugDescription)")
                #expect(r.headers["connection"] == "close" && r.headers["content-type"] == "application/json")
                #expect(r.text.hasPrefix("{\"error\":{\"message\":") && r.text.contains("\"param\":null"))
                #expect(c.isClosedByServer())
                #expect(try healthy.request("GET /ok HTTP/1.1\nHost: t\n\n").status == 200)
            }
            // A pipelined bad request after a good one: the good one is answered first.
            let p = try RawClient(port: server.port, timeout: 5)
            p.send("GET /first HTTP/1.1\nHost: t\n\nGET / HTTP/1.1\nHost t\n\n")
            #expect(try p.readResponse().text == "GET /first ")
            #expect(try p.readResponse().status == 400)
        }
    }

    @Test func slowlorisIsClosedAfterHeaderTimeout() throws {
        var limits = HTTPLimits()
        limits.headerTimeout = 0.6
        try withServer(limits: limits) { server in
            let c = try RawClient(port: server.port, timeout: 5)
            let start = Date()
            let bytes = crlf("GET / HTTP/1.1\nHost: t\nX-Slow: \(String(repeating: "a", count: 100))\n\n")
            var closedAfter: Double?
            for b in bytes {
                c.send([b])
                usleep(100_000)
                var probe: UInt8 = 0
                if recv(c.fd, &probe, 1, Int32(MSG_DONTWAIT | MSG_PEEK)) >= 0 {
                    closedAfter = Date().timeIntervalSince(start)
                    break
                }
            }
            let r = try c.readResponse()
            #expect(r.status == 408)
            let after = try #require(closedAfter)
            print("slowloris answered 408 after \(after) s (header timeout 0.6 s)")
            // Not early; how late is the machine's load (the exact deadline: HTTPConnectionStateMachineTests).
            #expect(after >= 0.55)
            #expect(c.isClosedByServer())
            // A connection that never sends anything is closed too.
            let silent = try RawClient(port: server.port, timeout: 5)
            #expect(silent.isClosedByServer())
        }
    }

    @Test func idleAndBodyTimeouts() throws {
        var limits = HTTPLimits()
        limits.idleTimeout = 0.3
        limits.bodyTimeout = 0.3
        try withServer(limits: limits) { server in
            let c = try RawClient(port: server.port, timeout: 5)
            #expect(try c.request("GET / HTTP/1.1\nHost: t\n\n").status == 200)
            let start = Date()
            #expect(c.isClosedByServer())
            let idle = Date().timeIntervalSince(start)
            #expect(idle >= 0.25, "idle connection closed after \(idle) s, before its 0.3 s timeout")
            #expect(eventually { server.connectionCount == 0 })
            let b = try RawClient(port: server.port, timeout: 5)
            b.send("POST / HTTP/1.1\nHost: t\nContent-Length: 10\n\nabc")
            #expect(try b.readResponse().status == 408)
        }
    }

    @Test func slowReaderBlocksTheWriterAndMemoryStaysBounded() throws {
        let total = 48 << 20
        let piece = 64 * 1024
        let stats = Locked((written: 0, maxQueued: 0, done: false))
        let handler = ClosureHandler { _, response in
            response.writeHead(status: 200, headers: [("Content-Type", "application/octet-stream")])
            let bytes = [UInt8](repeating: 0x5A, count: piece)
            while stats.get.written < total {
                do { try response.write(bytes) } catch { break }
                let queued = response.queuedBytes
                stats.withValue { $0.written += piece; $0.maxQueued = max($0.maxQueued, queued) }
            }
            response.finish()
            stats.withValue { $0.done = true }
        }
        try withServer(handler: handler) { server in
            let c = try RawClient(port: server.port, timeout: 10)
            c.send("GET /big HTTP/1.1\nHost: t\n\n")
            usleep(800_000)
            let stalled = stats.get
            print("slow reader: handler wrote \(stalled.written >> 10) KB before blocking, max queued \(stalled.maxQueued >> 10) KB")
            #expect(!stalled.done && stalled.written < total)
            #expect(stalled.maxQueued <= HTTPLimits().writeHighWaterMark + piece + 16)
            let r = try c.readResponse()
            #expect(r.body.count == total)
            #expect(eventually { stats.get.done })
            #expect(stats.get.maxQueued <= HTTPLimits().writeHighWaterMark + piece + 16)
        }
    }

    @Test func stalledReaderIsDroppedAfterTheWriteTimeout() throws {
        var limits = HTTPLimits()
        limits.writeTimeout = 0.5
        let outcome = Locked((threw: false, closed: false, at: 0.0))
        let start = Date()
        let handler = ClosureHandler { _, response in
            response.onClose { outcome.withValue { $0.closed = true } }
            response.writeHead(status: 200)
            let bytes = [UInt8](repeating: 7, count: 64 * 1024)
            for _ in 0..<4096 {
                do { try response.write(bytes) } catch {
                    outcome.withValue { $0.threw = true; $0.at = Date().timeIntervalSince(start) }
                    break
                }
            }
            response.finish()
        }
        try withServer(limits: limits, handler: handler) { server in
            let c = try RawClient(port: server.port, timeout: 5)
            c.send("GET /never-read HTTP/1.1\nHost: t\n\n")
            #expect(eventually { outcome.get.threw && outcome.get.closed })
            print("stalled reader dropped after \(outcome.get.at) s (write timeout 0.5 s)")
            #expect(eventually { server.connectionCount == 0 })
        }
    }

    @Test func clientDisconnectFiresOnCloseAndWriteThrows() throws {
        let events = Locked((closed: false, threw: false, writes: 0))
        let handler = ClosureHandler { _, response in
            response.onClose { events.withValue { $0.closed = true } }
            response.writeHead(status: 200)
            for _ in 0..<10_000 {
                do {
                    try response.write([UInt8](repeating: 1, count: 1024))
                    events.withValue { $0.writes += 1 }
                } catch {
                    #expect(error as? HTTPWriteError == .closed)
                    events.withValue { $0.threw = true }
                    break
                }
                usleep(1000)
            }
            #expect(response.isClosed)
            response.finish()
        }
        try withServer(handler: handler) { server in
            do {
                let c = try RawClient(port: server.port, timeout: 5)
                c.send("GET /forever HTTP/1.1\nHost: t\n\n")
                c.fill()
            }
            #expect(eventually { events.get.closed && events.get.threw })
            #expect(eventually { server.connectionCount == 0 })
        }
        // A handler blocked in a long computation (not writing) is told by onClose alone.
        let held = HeldUntilClosed()
        try withServer(handler: held.handler) { server in
            do {
                let c = try RawClient(port: server.port, timeout: 5)
                c.send("GET /work HTTP/1.1\nHost: t\n\n")
                #expect(held.waitStarted())
            }
            #expect(eventually { held.closed.get })
        }
    }

    @Test func manyConcurrentConnectionsAndTheConnectionLimit() throws {
        try withServer { server in
            var clients: [RawClient] = []
            for _ in 0..<200 { clients.append(try RawClient(port: server.port, timeout: 5)) }
            for (i, c) in clients.enumerated() { c.send("GET /\(i) HTTP/1.1\nHost: t\n\n") }
            for (i, c) in clients.enumerated() { #expect(try c.readResponse().text == "GET /\(i) ") }
            #expect(server.connectionCount == 200)
            clients.removeAll()
            #expect(eventually { server.connectionCount == 0 })
        }
        var limits = HTTPLimits()
        limits.maxConnections = 20
        try withServer(limits: limits) { server in
            var clients: [RawClient] = []
            for _ in 0..<20 { clients.append(try RawClient(port: server.port, timeout: 5)) }
            #expect(eventually { server.connectionCount == 20 })
            let extra = try RawClient(port: server.port, timeout: 5)
            let r = try extra.readResponse()
            #expect(r.status == 503 && r.headers["retry-after"] == "1")
            #expect(extra.isClosedByServer())
            // The admitted ones still work.
            #expect(try clients[0].request("GET / HTTP/1.1\nHost: t\n\n").status == 200)
        }
    }

    @Test func gracefulShutdown() throws {
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let handler = ClosureHandler { request, response in
            if request.path == "/slow" {
                started.signal()
                _ = release.wait(timeout: .now() + 10)
            }
            response.respond(status: 200, body: Array("done \(request.path)".utf8))
        }
        let server = HTTPServer(configuration: HTTPServerConfiguration(port: 0), handler: handler)
        try server.start()
        let port = server.port
        let idle = try RawClient(port: port, timeout: 5)
        #expect(try idle.request("GET /idle HTTP/1.1\nHost: t\n\n").status == 200)
        let busy = try RawClient(port: port, timeout: 5)
        busy.send("GET /slow HTTP/1.1\nHost: t\n\n")
        #expect(started.wait(timeout: .now() + 5) == .success)
        let finished = Locked(false)
        server.shutdown(deadline: 5) { finished.withValue { $0 = true } }
        #expect(server.isDraining)
        // The idle connection closes at once: while the busy request is still held in its handler.
        #expect(idle.isClosedByServer())
        #expect(eventually { (try? RawClient(port: port, timeout: 5)) == nil })
        #expect(!finished.get, "the drain must wait for the request in flight")
        release.signal()
        let r = try busy.readResponse()
        #expect(r.text == "done /slow" && r.headers["connection"] == "close")
        #expect(busy.isClosedByServer())
        #expect(eventually { finished.get })
        #expect(server.connectionCount == 0)
    }

    @Test func shutdownDeadlineDropsStuckRequests() throws {
        let closed = Locked(false), started = DispatchSemaphore(value: 0)
        let handler = ClosureHandler { _, response in
            started.signal()
            let sem = DispatchSemaphore(value: 0)
            response.onClose { closed.withValue { $0 = true }; sem.signal() }
            _ = sem.wait(timeout: .now() + 10)
        }
        let server = HTTPServer(configuration: HTTPServerConfiguration(port: 0), handler: handler)
        try server.start()
        let c = try RawClient(port: server.port, timeout: 5)
        c.send("GET /stuck HTTP/1.1\nHost: t\n\n")
        #expect(started.wait(timeout: .now() + 5 * testTimeScale) == .success)
        let finished = Locked(false)
        let start = Date()
        server.shutdown(deadline: 0.3) { finished.withValue { $0 = true } }
        #expect(eventually { finished.get })
        let took = Date().timeIntervalSince(start)
        #expect(took >= 0.25, "the stuck request was dropped after \(took) s, before the 0.3 s deadline")
        #expect(closed.get)
        #expect(c.isClosedByServer())
    }

    @Test func handlerThatNeverFinishes() throws {
        let handler = ClosureHandler { request, response in
            if request.path == "/nothing" { return }
            response.writeHead(status: 200)
            try? response.write("partial")
        }
        try withServer(handler: handler) { server in
            let c = try RawClient(port: server.port, timeout: 5)
            let r = try c.request("GET /nothing HTTP/1.1\nHost: t\n\n")
            #expect(r.status == 500 && r.text.contains("no_response"))
            let d = try RawClient(port: server.port, timeout: 5)
            d.send("GET /partial HTTP/1.1\nHost: t\n\n")
            #expect(throws: ClientError.self) { try d.readResponse() }
        }
    }
}
