import Foundation
import HTTP1
import JSON
import Logging
import Testing
import Wuerstchen
@testable import Serving
#if canImport(Glibc)
import Glibc
#endif

/// The embedded demo model, built once for every test (its generate calls are serialised by the suites).
enum Demo {
    static let pipeline: WuerstchenPipeline = try! DemoModel.pipeline()
}

/// Log lines kept in memory, to check the access log.
final class LogCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }

    func append(_ line: String) {
        lock.lock()
        lines.append(line)
        lock.unlock()
    }

    var logger: Logger {
        var logger = Logger(label: "test") { _ in CaptureHandler(capture: self) }
        logger.logLevel = .info
        return logger
    }

    struct CaptureHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let meta = (event.metadata ?? [:]).map { "\($0)=\($1)" }.sorted().joined(separator: " ")
            capture.append("\(event.level) \(event.message) \(meta)")
        }
    }
}

/// A running server on 127.0.0.1 with a free port and the demo model behind the configured scheduler.
struct TestServer {
    let server: ImageServer
    let service: BatchingGenerationService?
    let logs: LogCapture
    var port: Int { server.port }
}

/// Runs `body` against a fresh server (`loaded: false` leaves it loading), then drains it.
func withServer(_ configure: (inout ServerConfiguration) -> Void = { _ in }, loaded: Bool = true,
                _ body: (TestServer) throws -> Void) throws {
    var config = ServerConfiguration()
    config.port = 0
    config.drainSeconds = 2
    configure(&config)
    let logs = LogCapture()
    let server = ImageServer(configuration: config, logger: logs.logger)
    try server.start()
    var service: BatchingGenerationService?
    if loaded {
        let s = BatchingGenerationService(pipeline: Demo.pipeline, policy: config.schedulerPolicy, metrics: server.metrics, logger: logs.logger)
        server.use(s)
        service = s
    }
    defer {
        let done = DispatchSemaphore(value: 0)
        server.shutdown { done.signal() }
        _ = done.wait(timeout: .now() + 30)
    }
    try body(TestServer(server: server, service: service, logs: logs))
}

/// A small request that the demo model answers quickly.
func smallRequest(_ extra: String = "") -> String {
    #"{"prompt": "a photo of a cat", "width": 128, "height": 128, "prior_steps": 2, "decoder_steps": 2, "seed": 7\#(extra)}"#
}

struct ClientError: Error, CustomStringConvertible {
    var description: String
}

/// A parsed response.
struct Response {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: JSONValue? { try? JSONValue.parse(body) }
    /// `error.param` of an error body.
    var errorParam: String? {
        if case .string(let s)? = json?["error"]?["param"] { return s }
        return nil
    }
}

/// A blocking loopback HTTP/1.1 client on a raw socket, reading bodies incrementally.
final class RawClient {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int, timeout: Double = 60) throws {
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
            throw ClientError(description: "connect to \(port) failed: errno \(errno)")
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Closes the connection at once (a client that goes away).
    func disconnect() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }

    /// Sends a request with the given method, path, headers and body (Content-Length added when there is a body).
    func send(_ method: String, _ path: String, headers: [(String, String)] = [], body: String? = nil) {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        if let body {
            if !headers.contains(where: { $0.0.lowercased() == "content-type" }) { head += "Content-Type: application/json\r\n" }
            head += "Content-Length: \(body.utf8.count)\r\n"
        }
        send(Array((head + "\r\n" + (body ?? "")).utf8))
    }

    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 65536, 0) }
        if n <= 0 { return false }
        buffer += chunk[..<n]
        return true
    }

    private func line() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 0x0A), i > 0, buffer[i - 1] == 0x0D {
                let s = String(decoding: buffer[..<(i - 1)], as: UTF8.self)
                buffer.removeFirst(i + 1)
                return s
            }
            guard fill() else { throw ClientError(description: "connection ended inside a line") }
        }
    }

    private func take(_ n: Int) throws -> [UInt8] {
        while buffer.count < n {
            guard fill() else { throw ClientError(description: "connection ended inside a body (\(buffer.count) of \(n))") }
        }
        let out = Array(buffer[..<n])
        buffer.removeFirst(n)
        return out
    }

    /// Reads a status line and headers.
    func readHead() throws -> (Int, HTTPHeaders) {
        let status = try line()
        let parts = status.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let code = Int(parts[1]) else { throw ClientError(description: "bad status line \(status)") }
        var headers = HTTPHeaders()
        while true {
            let l = try line()
            if l.isEmpty { break }
            guard let colon = l.firstIndex(of: ":") else { throw ClientError(description: "bad header \(l)") }
            headers.add(name: String(l[..<colon]), value: String(l[l.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
        }
        return (code, headers)
    }

    /// The next chunk of a chunked body (empty at the end).
    func readChunk() throws -> [UInt8] {
        let sizeLine = try line()
        guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else { throw ClientError(description: "bad chunk size \(sizeLine)") }
        let data = try take(size)
        _ = try line()
        if size == 0 {
            return []
        }
        return data
    }

    /// Reads a whole response.
    func readResponse(isHead: Bool = false) throws -> Response {
        let (status, headers) = try readHead()
        var body: [UInt8] = []
        if isHead || status == 204 {
        } else if let length = headers["Content-Length"].flatMap({ Int($0) }) {
            body = try take(length)
        } else if headers["Transfer-Encoding"]?.lowercased() == "chunked" {
            while true {
                let chunk = try readChunk()
                if chunk.isEmpty { break }
                body += chunk
            }
        } else {
            while fill() {}
            body = buffer
            buffer = []
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// One request and its response on a new connection.
    static func request(_ port: Int, _ method: String, _ path: String, headers: [(String, String)] = [], body: String? = nil) throws -> Response {
        let client = try RawClient(port: port)
        client.send(method, path, headers: headers, body: body)
        return try client.readResponse(isHead: method == "HEAD")
    }
}

/// Server-sent events read from a chunked body as they arrive.
struct EventReader {
    let client: RawClient
    private var pending = ""

    init(client: RawClient) { self.client = client }

    /// The next `(event, data)`, or nil at the end of the stream.
    mutating func next() throws -> (event: String, data: JSONValue)? {
        while true {
            if let range = pending.range(of: "\n\n") {
                let block = String(pending[..<range.lowerBound])
                pending = String(pending[range.upperBound...])
                var event = "message", data: String?
                for line in block.split(separator: "\n") {
                    if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
                    if line.hasPrefix("data: ") { data = (data ?? "") + line.dropFirst(6) }
                }
                // A block without data (comments only: the server's streaming probes) dispatches nothing.
                guard let data else { continue }
                return (event, try JSONValue.parse(Array(data.utf8)))
            }
            let chunk = try client.readChunk()
            if chunk.isEmpty { return nil }
            pending += String(decoding: chunk, as: UTF8.self)
        }
    }
}

/// What the tests' waits are multiplied by: `WUERSTCHEN_TEST_TIME_SCALE` (default 1), e.g. 10 under the
/// thread sanitizer, whose 5-15x slowdown turns the demo model's seconds into minutes. Waits only: no
/// test asserts an upper bound on wall-clock time.
let testTimeScale = Double(ProcessInfo.processInfo.environment["WUERSTCHEN_TEST_TIME_SCALE"] ?? "").flatMap { $0 > 0 ? $0 : nil } ?? 1

/// Polls `condition` until true or `timeout` seconds pass.
func eventually(timeout: Double = 20, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout * testTimeScale)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}
