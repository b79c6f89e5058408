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

/// A thread-safe box for values shared with handlers.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withValue<T>(_ body: (inout Value) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
    var get: Value { withValue { $0 } }
}
