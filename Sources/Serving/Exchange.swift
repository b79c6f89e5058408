import Foundation
import HTTP1
import JSON
import Logging

/// One request and its response: adds `X-Request-Id` to every head, counts the bytes, and on `finish`
/// records the metrics and writes the access log line.
final class Exchange: @unchecked Sendable {
    let request: HTTPRequest
    let writer: HTTPResponseWriter
    let requestID: String
    /// The route label for metrics (`/v1/images`, ..., `unknown`).
    var route = "unknown"
    private let started = DispatchTime.now()
    private let metrics: ServingMetrics
    private let logger: Logger
    private let lock = NSLock()
    private var status = 0
    private var bytes = 0
    private var logged = false

    init(request: HTTPRequest, writer: HTTPResponseWriter, metrics: ServingMetrics, logger: Logger) {
        self.request = request
        self.writer = writer
        self.metrics = metrics
        self.logger = logger
        requestID = Self.requestID(from: request.headers["X-Request-Id"])
    }

    /// The client's id when it is 1-128 characters of `[A-Za-z0-9._:+=/-]`, else 32 random hex digits.
    static func requestID(from header: String?) -> String {
        if let header, (1...128).contains(header.utf8.count),
           header.utf8.allSatisfy({ c in
               (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c) || Array("._:+=/-".utf8).contains(c)
           }) {
            return header
        }
        var rng = SystemRandomNumberGenerator()
        return (0..<2).map { _ in String(rng.next() as UInt64, radix: 16).leftPadded(to: 16) }.joined()
    }

    /// Sends the head (with `X-Request-Id`).
    func head(status: Int, headers: [(String, String)]) {
        lock.lock()
        self.status = status
        lock.unlock()
        writer.writeHead(status: status, headers: [("X-Request-Id", requestID)] + headers)
    }

    /// Sends body bytes (throws when the client went away).
    func write(_ data: [UInt8]) throws {
        try writer.write(data)
        lock.lock()
        bytes += data.count
        lock.unlock()
    }

    /// A whole response with a Content-Length.
    func respond(status: Int, headers: [(String, String)], body: [UInt8]) {
        lock.lock()
        self.status = status
        bytes += body.count
        lock.unlock()
        writer.respond(status: status, headers: [("X-Request-Id", requestID)] + headers, body: body)
        finish()
    }

    /// A JSON response.
    func json(_ status: Int, _ value: JSONValue, headers: [(String, String)] = []) {
        respond(status: status, headers: [("Content-Type", "application/json")] + headers, body: value.serializedBytes)
    }

    /// An error response (with `Retry-After` when the error has one).
    func error(_ e: ServingError, headers: [(String, String)] = []) {
        var extra = headers
        if let s = e.retryAfterSeconds { extra.append(("Retry-After", String(s))) }
        if e.status == 401 { extra.append(("WWW-Authenticate", "Bearer")) }
        json(e.status, publicError(e).json, headers: extra)
    }

    /// `e` as the client may see it: an internal error (500) is logged with the request id and answered
    /// with a generic message naming that id, since its text can hold file paths and internals.
    func publicError(_ e: ServingError) -> ServingError {
        guard e.status >= 500 && e.status != 503 && e.status != 504 else { return e }
        logger.error("request failed", metadata: [
            "request_id": "\(requestID)", "path": "\(request.rawPath)", "status": "\(e.status)", "error": "\(e.message)"])
        guard e.status == 500 else { return e }
        return ServingError(status: 500, message: "internal error (request id \(requestID)); the details are in the server log",
                            type: e.type, code: e.code ?? "internal_error")
    }

    /// Ends the response (unless `complete` is false: the body was cut short and the connection
    /// must drop), then logs and counts it once.
    func finish(complete: Bool = true) {
        if complete { writer.finish() }
        lock.lock()
        let first = !logged
        logged = true
        let status = self.status == 0 ? 200 : self.status
        let bytes = self.bytes
        lock.unlock()
        guard first else { return }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        metrics.recordRequest(route: route, status: status, seconds: seconds)
        let path = request.rawPath.count > 200 ? String(request.rawPath.prefix(200)) + "..." : request.rawPath
        logger.info("request_id=\(requestID) method=\(request.method) path=\(path) status=\(status) bytes=\(bytes) duration_ms=\(String(format: "%.1f", seconds * 1000))\(complete ? "" : " incomplete=true")")
    }
}

extension String {
    /// The string with leading zeros up to `width` characters.
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
