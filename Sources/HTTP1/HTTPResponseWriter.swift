import Foundation

/// Writes one response: `writeHead`, then `write` body bytes, then `finish()`. Usable from any thread,
/// one call at a time (calls are serialised; a blocked `write` delays the others).
///
/// Framing is chosen at `writeHead` from the headers given:
/// - a valid `Content-Length` → sent as is; writing more throws `contentLengthExceeded`, finishing with
///   fewer bytes closes the connection (the client sees a short body);
/// - otherwise HTTP/1.1 → `Transfer-Encoding: chunked` (each non-empty `write` is one chunk);
///   HTTP/1.0 → the body ends when the connection closes.
/// - HEAD requests, 204 and 304 carry no body: written bytes are dropped.
/// The writer adds `Date`, `Server` (unless given), the framing header and `Connection: close` when the
/// connection will close (`keep-alive` for HTTP/1.0 keep-alive). Handler `Transfer-Encoding` and
/// `Connection` fields are replaced by the writer's (`Connection: close` from the handler is honoured).
/// Fields with a name that is not a token or a value with CR, LF or NUL are dropped (no header injection).
///
/// The head is buffered until the first body bytes or `finish()`. `write` returns once the bytes are
/// queued, blocking while more than `HTTPLimits.writeHighWaterMark` bytes are unsent (backpressure), and
/// throws `HTTPWriteError.closed` when the client went away. A writer released without `finish()`:
/// if nothing was written, answers 500 (JSON error) and finishes; if the head was written, drops the
/// connection so the client sees a truncated response rather than a complete-looking one.
public final class HTTPResponseWriter: @unchecked Sendable {
    private enum Framing { case none, length(Int), chunked, closeDelimited }

    private let connection: HTTPConnection
    private let isHeadRequest: Bool
    private let version: HTTPVersion
    private let requestKeepAlive: Bool

    /// Serialises writes; held across a blocking write.
    private let writeLock = NSLock()
    private var headWritten = false
    private var framing = Framing.chunked
    private var keepAlive = true

    /// Guards the flags and callbacks below (short sections only).
    private let stateLock = NSLock()
    private var finished = false
    /// `respond` or `finish` was called: the whole answer is queued or being queued.
    private var completing = false
    private var closeRequested = false
    private var closeFired = false
    private var closeCallbacks: [@Sendable () -> Void] = []
    /// See `setStreamingProbe` (guarded by `writeLock`).
    private var streamingProbe: [UInt8] = []

    init(connection: HTTPConnection, request: HTTPRequest) {
        self.connection = connection
        isHeadRequest = request.method == "HEAD"
        version = request.version
        requestKeepAlive = request.keepAlive
    }

    deinit {
        stateLock.lock()
        let done = finished
        stateLock.unlock()
        guard !done else { return }
        if headWritten {
            connection.abort()
        } else {
            let error = HTTPError(status: 500, code: "no_response", message: "the handler ended without a response")
            respond(status: 500, headers: [("Content-Type", "application/json")], body: error.jsonBody)
        }
    }

    /// True once the client went away or the connection was dropped: writes throw, and work for this
    /// response can stop.
    public var isClosed: Bool { connection.isOutputClosed }

    /// Response bytes queued and not yet written to the socket (for diagnostics and tests).
    public var queuedBytes: Int { connection.pendingOutputBytes }

    /// Calls `callback` once if the connection closes before `finish()` (client disconnect, stalled
    /// write, shutdown deadline): the cancellation signal. Called at once if already closed.
    /// Runs on an arbitrary thread; must not block.
    public func onClose(_ callback: @escaping @Sendable () -> Void) {
        stateLock.lock()
        if closeFired {
            stateLock.unlock()
            callback()
            return
        }
        closeCallbacks.append(callback)
        stateLock.unlock()
        if connection.isOutputClosed { connectionClosed() }
    }

    /// Body bytes that the answer's format ignores wherever they fall between two `write`s (for server-sent
    /// events the comment line `":\n\n"`, WHATWG HTML §9.2.6). While a chunked answer streams to a client
    /// that half-closed, the connection sends them now and then as a chunk of their own: a client that went
    /// away answers with a reset and the answer is cancelled, one that only half-closed reads on. Without
    /// them a streaming answer to a half-closed client goes on until one of its own writes meets a reset.
    public func setStreamingProbe(_ bytes: [UInt8]) {
        writeLock.lock()
        defer { writeLock.unlock() }
        streamingProbe = bytes
    }

    /// Sends the status line and headers (buffered until the first body bytes or `finish()`).
    /// Only the first call counts. A status outside 200…599 is sent as 500.
    public func writeHead(status: Int, headers: [(String, String)] = []) {
        writeLock.lock()
        defer { writeLock.unlock() }
        writeHeadLocked(status: status, headers: headers)
    }

    /// Sends body bytes (see the type's notes on framing and backpressure).
    public func write(_ bytes: [UInt8]) throws {
        writeLock.lock()
        defer { writeLock.unlock() }
        stateLock.lock()
        let done = finished
        stateLock.unlock()
        if done { throw HTTPWriteError.finished }
        if !headWritten { writeHeadLocked(status: 200, headers: []) }
        if connection.isOutputClosed { throw HTTPWriteError.closed }
        guard !bytes.isEmpty else { return }
        switch framing {
        case .none:
            return
        case .length(let remaining):
            guard bytes.count <= remaining else { throw HTTPWriteError.contentLengthExceeded }
            framing = .length(remaining - bytes.count)
            try connection.enqueue(bytes, flush: true, wait: true)
        case .chunked:
            var framed = Array(String(bytes.count, radix: 16).utf8)
            framed.reserveCapacity(framed.count + bytes.count + 4)
            framed += [0x0D, 0x0A]
            framed += bytes
            framed += [0x0D, 0x0A]
            try connection.enqueue(framed, flush: true, wait: true)
        case .closeDelimited:
            try connection.enqueue(bytes, flush: true, wait: true)
        }
    }

    /// Sends body bytes.
    public func write(_ data: Data) throws { try write([UInt8](data)) }

    /// Sends a string's UTF-8 bytes.
    public func write(_ string: String) throws { try write(Array(string.utf8)) }

    /// Sends body bytes from a buffer (copied before returning).
    public func write(_ buffer: UnsafeRawBufferPointer) throws { try write(Array(buffer)) }

    /// Ends the response (terminating chunk if chunked). Later calls do nothing. Never blocks.
    public func finish() {
        markCompleting()
        writeLock.lock()
        finishLocked()
        writeLock.unlock()
    }

    /// Writes a whole response with a Content-Length: head, body, finish (one flush for all three).
    public func respond(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        markCompleting()
        writeLock.lock()
        defer { writeLock.unlock() }
        stateLock.lock()
        let done = finished
        stateLock.unlock()
        guard !done else { return }
        writeHeadLocked(status: status, headers: headers.filter { !HTTPHeaders.equalsIgnoringCase($0.0, "content-length") }
            + [("Content-Length", String(body.count))])
        if case .length = framing, !body.isEmpty {
            framing = .length(0)
            try? connection.enqueue(body, flush: false, wait: false)
        }
        finishLocked()
    }

    private func finishLocked() {
        stateLock.lock()
        if finished {
            stateLock.unlock()
            return
        }
        stateLock.unlock()
        if !headWritten { writeHeadLocked(status: 200, headers: [("Content-Length", "0")]) }
        var keep = keepAlive
        switch framing {
        case .chunked: try? connection.enqueue([0x30, 0x0D, 0x0A, 0x0D, 0x0A], flush: false, wait: false)
        case .length(let remaining) where remaining > 0: keep = false
        case .closeDelimited: keep = false
        default: break
        }
        // Closed before this finish (a writer woken by the close can get here before the connection
        // fires the callbacks): the response did not complete, so `onClose` still fires.
        if connection.isOutputClosed { connectionClosed() }
        stateLock.lock()
        finished = true
        closeCallbacks = []
        stateLock.unlock()
        // Flushes what is queued, then lets the connection move to the next request (one queue hop).
        connection.responseFinished(keepAlive: keep)
    }

    // MARK: - Connection side

    /// What `sendInterimProbe` found.
    enum PeerProbe: Equatable {
        /// `100 Continue` is queued: a client that went away answers it with a reset.
        case sent
        /// The whole answer is queued or being queued (`respond` or `finish` was called): it can be
        /// written out whether the client only half-closed or went away.
        case answerComplete
        /// The answer is streaming (head out, end not) and its format has no probe (`setStreamingProbe`),
        /// or a `write` of it is in progress: it goes on, and its own writes fail if the client went away.
        case streaming
        /// Nothing can be sent before the answer's head: an HTTP/1.0 client takes no interim response
        /// (or the output closed).
        case unavailable
    }

    /// Queues a probe whether a half-closed client still reads (see `HTTPConnection`): `100 Continue` if
    /// nothing of the response was written yet and the client speaks HTTP/1.1, the streaming probe as a
    /// chunk if the answer is streaming chunked and has one. Never blocks.
    func sendInterimProbe() -> PeerProbe {
        if isCompleting { return .answerComplete }
        // Held by `respond` or `finish` (which mark the answer complete before taking it: look again),
        // or by a streaming `write` (which itself meets a reset if the client went away).
        guard writeLock.try() else { return isCompleting ? .answerComplete : .streaming }
        defer { writeLock.unlock() }
        let probe: [UInt8]
        if !headWritten {
            guard version == .http1_1 else { return .unavailable }
            probe = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
        } else {
            guard case .chunked = framing, !streamingProbe.isEmpty else { return .streaming }
            probe = Array(String(streamingProbe.count, radix: 16).utf8) + [0x0D, 0x0A] + streamingProbe + [0x0D, 0x0A]
        }
        let queued = (try? connection.enqueue(probe, flush: true, wait: false)) != nil
        return queued ? .sent : .unavailable
    }

    private var isCompleting: Bool {
        stateLock.withLock { completing || finished }
    }

    private func markCompleting() {
        stateLock.lock()
        completing = true
        stateLock.unlock()
    }

    /// Graceful shutdown: if the head is not written yet, it will say `Connection: close`.
    func requestConnectionClose() {
        stateLock.lock()
        closeRequested = true
        stateLock.unlock()
    }

    /// The connection closed: fire the close callbacks unless the response was finished.
    func connectionClosed() {
        stateLock.lock()
        guard !closeFired, !finished else {
            stateLock.unlock()
            return
        }
        closeFired = true
        let callbacks = closeCallbacks
        closeCallbacks = []
        stateLock.unlock()
        for callback in callbacks { callback() }
    }

    // MARK: - Head

    private func writeHeadLocked(status requested: Int, headers: [(String, String)]) {
        guard !headWritten else { return }
        headWritten = true
        let status = (200...599).contains(requested) ? requested : 500
        var head = "HTTP/1.1 \(status) \(HTTPStatus.reason(status))\r\n"
        var hasDate = false, hasServer = false, handlerClose = false
        var contentLength: Int?
        for (name, value) in headers {
            guard !name.isEmpty, name.utf8.allSatisfy({ HTTPSyntax.tchar[Int($0)] }),
                  value.utf8.allSatisfy({ HTTPSyntax.fieldValue[Int($0)] }) else { continue }
            if HTTPHeaders.equalsIgnoringCase(name, "content-length") {
                let digits = value.trimmingHTTPWhitespace()
                if let n = Int(digits), n >= 0, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) { contentLength = n }
                continue
            }
            if HTTPHeaders.equalsIgnoringCase(name, "transfer-encoding") { continue }
            if HTTPHeaders.equalsIgnoringCase(name, "connection") {
                if HTTPHeaders([(name, value)]).tokens(name).contains("close") { handlerClose = true }
                continue
            }
            if HTTPHeaders.equalsIgnoringCase(name, "date") { hasDate = true }
            if HTTPHeaders.equalsIgnoringCase(name, "server") { hasServer = true }
            head += "\(name): \(value)\r\n"
        }
        if status == 204 || status == 304 {
            framing = .none
        } else if let n = contentLength {
            framing = .length(n)
            head += "Content-Length: \(n)\r\n"
        } else if isHeadRequest {
            framing = .none
        } else if version == .http1_1 {
            framing = .chunked
            head += "Transfer-Encoding: chunked\r\n"
        } else {
            framing = .closeDelimited
        }
        stateLock.lock()
        let drain = closeRequested
        stateLock.unlock()
        var closeDelimited = false
        if case .closeDelimited = framing { closeDelimited = true }
        keepAlive = requestKeepAlive && !handlerClose && !drain && !closeDelimited
        if !hasDate { head += "Date: \(connection.date.now())\r\n" }
        if !hasServer { head += "Server: \(connection.serverName)\r\n" }
        if !keepAlive {
            head += "Connection: close\r\n"
        } else if version == .http1_0 {
            head += "Connection: keep-alive\r\n"
        }
        head += "\r\n"
        try? connection.enqueue(Array(head.utf8), flush: false, wait: false)
        if isHeadRequest { framing = .none }
    }
}
