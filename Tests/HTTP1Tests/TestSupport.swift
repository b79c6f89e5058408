import Foundation
// Every file of the target sees the shared helpers (RawClient, eventually, SplitMix, crlf).
@_exported import TestSupport
import Testing
@testable import HTTP1
#if canImport(Glibc)
import Glibc
#endif

/// A handler from a closure.
struct ClosureHandler: HTTPHandler {
    let body: @Sendable (HTTPRequest, HTTPResponseWriter) -> Void
    var expectation: @Sendable (HTTPRequestHead) -> HTTPError? = { _ in nil }
    /// Which requests are handled inline on the connection's queue (`HTTPHandler.isQuick`).
    var quick: @Sendable (HTTPRequest) -> Bool = { _ in false }
    func handle(_ request: HTTPRequest, _ response: HTTPResponseWriter) { body(request, response) }
    func checkExpectation(_ head: HTTPRequestHead) -> HTTPError? { expectation(head) }
    func isQuick(_ request: HTTPRequest) -> Bool { quick(request) }
}

/// Answers `METHOD path body` with a Content-Length (or streamed in 3 chunks for `/stream`).
let echoHandler = ClosureHandler { request, response in
    let text = "\(request.method) \(request.path) \(String(decoding: request.body, as: UTF8.self))"
    if request.path == "/stream" {
        response.writeHead(status: 200, headers: [("Content-Type", "text/plain")])
        for part in ["one,", "two,", "three"] { try? response.write(part) }
        response.finish()
    } else {
        response.respond(status: 200, headers: [("Content-Type", "text/plain")], body: Array(text.utf8))
    }
}

/// Runs `body` against a server on 127.0.0.1 with a free port, then shuts it down.
func withServer(limits: HTTPLimits = HTTPLimits(), tls: HTTPTLSConfiguration? = nil,
                eventLoops: Int = HTTPServerConfiguration.defaultEventLoops, handler: some HTTPHandler = echoHandler,
                _ body: (HTTPServer) throws -> Void) throws {
    let server = HTTPServer(configuration: HTTPServerConfiguration(
        host: "127.0.0.1", port: 0, limits: limits, tls: tls, eventLoops: eventLoops), handler: handler)
    try server.start()
    defer {
        let done = DispatchSemaphore(value: 0)
        server.shutdown(deadline: 0.5) { done.signal() }
        _ = done.wait(timeout: .now() + 5)
    }
    try body(server)
}

/// A handler that holds each request until its client goes away: `closed` is set by `onClose`, and
/// `started` is signalled once a request reached it (and `first` was written), which is what a test waits
/// for before disconnecting instead of a sleep.
final class HeldUntilClosed: Sendable {
    let closed = Locked(false)
    let started = DispatchSemaphore(value: 0)
    let probe: [UInt8]?, first: String?

    /// `probe`: the response's streaming probe; `first`: a part written before holding.
    init(probe: [UInt8]? = nil, first: String? = nil) {
        self.probe = probe
        self.first = first
    }

    var handler: ClosureHandler {
        ClosureHandler { _, response in
            if let probe = self.probe { response.setStreamingProbe(probe) }
            let sem = DispatchSemaphore(value: 0)
            response.onClose { self.closed.withValue { $0 = true }; sem.signal() }
            if let first = self.first { try? response.write(first) }
            self.started.signal()
            _ = sem.wait(timeout: .now() + 10)
            response.finish()
        }
    }

    /// Waits until a request reached the handler.
    func waitStarted() -> Bool { started.wait(timeout: .now() + 10 * testTimeScale) == .success }
}

