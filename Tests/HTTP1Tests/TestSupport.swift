import Foundation
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

/// A parsed response.
struct TestResponse {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
}

struct TestClientError: Error, CustomStringConvertible {
    var description: String
}

/// A blocking loopback client with a receive timeout, reading responses with a minimal parser.
final class TestClient {
    let fd: Int32
    private var buffer: [UInt8] = []
    /// Set by `TLSTestClient`: reads and writes go through it.
    var tlsRead: ((UnsafeMutableRawPointer, Int) -> Int)?
    var tlsWrite: ((UnsafeRawPointer, Int) -> Int)?

    init(port: Int, timeout: Double = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            close(fd)
            throw TestClientError(description: "connect failed: errno \(errno)")
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { raw in
                if let tlsWrite, let base = raw.baseAddress { return tlsWrite(base, raw.count) }
                return Glibc.send(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { return }
            offset += n
        }
    }

    func send(_ text: String) { send(crlf(text)) }

    /// Reads more bytes; false on EOF, error or timeout.
    @discardableResult
    func fill(max: Int = 65536) -> Bool {
        var chunk = [UInt8](repeating: 0, count: max)
        let n = chunk.withUnsafeMutableBytes { raw in
            if let tlsRead, let base = raw.baseAddress { return tlsRead(base, max) }
            return recv(fd, raw.baseAddress, max, 0)
        }
        if n <= 0 { return false }
        buffer += chunk[..<n]
        return true
    }

    /// True if the server closed the connection (EOF or reset) before `timeout`.
    func isClosedByServer() -> Bool {
        while true {
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
            buffer.append(byte)
        }
    }

    private func takeLine() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 0x0A), i > 0, buffer[i - 1] == 0x0D {
                let line = String(decoding: buffer[..<(i - 1)], as: UTF8.self)
                buffer.removeFirst(i + 1)
                return line
            }
            guard fill() else { throw TestClientError(description: "connection ended inside a line; have \(String(decoding: buffer, as: UTF8.self).debugDescription)") }
        }
    }

    private func take(_ n: Int) throws -> [UInt8] {
        while buffer.count < n {
            guard fill() else { throw TestClientError(description: "connection ended inside a body (\(buffer.count) of \(n))") }
        }
        let out = Array(buffer[..<n])
        buffer.removeFirst(n)
        return out
    }

    /// Reads one response (`isHead`: no body follows).
    func readResponse(isHead: Bool = false) throws -> TestResponse {
        let statusLine = try takeLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0] == "HTTP/1.1", let status = Int(parts[1]) else {
            throw TestClientError(description: "bad status line \(statusLine.debugDescription)")
        }
        var headers = HTTPHeaders()
        while true {
            let line = try takeLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { throw TestClientError(description: "bad header \(line)") }
            headers.add(name: String(line[..<colon]), value: String(line[line.index(after: colon)...]).trimmingHTTPWhitespace())
        }
        if isHead || status < 200 || status == 204 || status == 304 { return TestResponse(status: status, headers: headers, body: []) }
        var body: [UInt8] = []
        if headers["transfer-encoding"] == "chunked" {
            while true {
                let sizeLine = try takeLine()
                guard let size = Int(sizeLine, radix: 16) else { throw TestClientError(description: "bad chunk size \(sizeLine)") }
                if size == 0 {
                    while try !takeLine().isEmpty {}
                    break
                }
                body += try take(size)
                guard try takeLine().isEmpty else { throw TestClientError(description: "chunk without CRLF") }
            }
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            body = try take(length)
        } else {
            while fill() {}
            body = buffer
            buffer = []
        }
        return TestResponse(status: status, headers: headers, body: body)
    }

    /// Sends a request and reads its response.
    func request(_ text: String) throws -> TestResponse {
        send(text)
        return try readResponse(isHead: text.hasPrefix("HEAD "))
    }
}

/// What the tests' waits are multiplied by: `WUERSTCHEN_TEST_TIME_SCALE` (default 1; e.g. 10 under the
/// thread sanitizer). Waits only: no test asserts an upper bound on wall-clock time.
let testTimeScale = Double(ProcessInfo.processInfo.environment["WUERSTCHEN_TEST_TIME_SCALE"] ?? "").flatMap { $0 > 0 ? $0 : nil } ?? 1

/// Waits until `condition` holds or `timeout` seconds pass; returns whether it held.
func eventually(timeout: Double = 5, _ condition: () -> Bool) -> Bool {
    let end = Date(timeIntervalSinceNow: timeout * testTimeScale)
    while Date() < end {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
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
