/// One part of a request, in the order the parser produces them:
/// `head`, zero or more `body`, `end`; or a single `error` after which the parser stops.
public enum HTTPParserEvent: Sendable, Equatable {
    /// The request line and headers, validated, with framing resolved.
    case head(HTTPRequestHead)
    /// Body bytes (already de-chunked); never empty.
    case body([UInt8])
    /// The request is complete; `trailers` holds a chunked body's trailer fields (else empty).
    case end(trailers: HTTPHeaders)
    /// The bytes are not a valid request (or exceed a limit): answer `status` and close the connection.
    case error(HTTPError)
}

/// A strict, incremental HTTP/1.1 request parser (RFC 9112) as a value type: append bytes as they
/// arrive, pull events with `next()` (or both at once with `feed`). Bytes after the end of one
/// request stay buffered for the next (pipelining), and parsing resumes on the next `next()`.
///
/// Policies (what swift-nio's llhttp and nginx do in strict mode, where RFC 9112 leaves a choice):
/// - Lines end with CRLF. A bare LF or bare CR anywhere in the head or chunk framing is a 400
///   (RFC 9112 §2.2 allows accepting a bare LF; refusing it closes a request-smuggling gap behind proxies).
/// - Up to 4 empty lines before a request line are skipped (§2.2); more are a 400.
/// - Request targets: origin-form (`/path?query`, RFC 3986 characters, valid `%XX`) or `*` with OPTIONS.
///   absolute-form and authority-form answer 400 (this server sits behind a reverse proxy).
/// - `HTTP/1.0` and `HTTP/1.1`; `HTTP/1.2`…`1.9` are served as 1.1 (RFC 9110 §6.2); other versions 505.
/// - Headers: token names, no whitespace before the colon, obs-fold rejected, values without controls.
///   HTTP/1.1 needs exactly one valid Host (RFC 9112 §3.2).
/// - Content-Length: digits; repeated values (fields or list elements) must agree; else 400. Larger
///   than `maxBodyBytes` answers 413 before any body byte is read.
/// - Transfer-Encoding: `chunked` must be the last coding (else 400) and appear once; any other coding
///   answers 501; with Content-Length, or in an HTTP/1.0 request, 400.
/// - Chunk extensions are checked for control bytes and skipped; trailers are parsed like headers,
///   count against the same limits and are returned with `end`.
/// - `Expect: 100-continue` sets `expectsContinue` (ignored in HTTP/1.0, §10.1.1); other expectations 417.
public struct HTTPParser: Sendable {
    /// The limits checked while parsing (line, header and body sizes).
    public let limits: HTTPLimits

    private enum State: Sendable, Equatable {
        case requestLine
        case headers
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case messageEnd
        case failed
    }

    private var buffer: [UInt8] = []
    /// Index of the first unconsumed byte of `buffer`.
    private var start = 0
    /// Bytes after `start` already searched for a LF (so a line arriving byte by byte is scanned once).
    private var scanned = 0
    private var state = State.requestLine
    private var emptyLines = 0
    private var headerBytes = 0
    private var method = ""
    private var target = ""
    private var version = HTTPVersion.http1_1
    private var headers = HTTPHeaders()
    private var bodyBytes = 0

    /// A parser with the given limits.
    public init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
    }

    /// Bytes received and not yet consumed by an event.
    public var bufferedByteCount: Int { buffer.count - start }

    /// True between requests: nothing of a next request has been parsed or buffered.
    public var isAtMessageBoundary: Bool {
        state == .requestLine && emptyLines == 0 && start == buffer.count
    }

    /// True when bytes of a next message beyond empty lines are here (a request line begun, or a head or
    /// body being parsed): what starts a header timeout. Empty lines before a request line do not.
    public var hasPartialRequest: Bool {
        if state == .failed { return false }
        if state != .requestLine { return true }
        return buffer[start...].contains { $0 != 0x0D && $0 != 0x0A }
    }

    /// True after an error: the parser produces nothing more.
    public var hasFailed: Bool { state == .failed }

    /// Adds received bytes (parsed by the next calls to `next()`).
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard state != .failed, !bytes.isEmpty else { return }
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// Adds received bytes (parsed by the next calls to `next()`).
    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Appends `bytes` and returns every event they complete.
    public mutating func feed(_ bytes: [UInt8]) -> [HTTPParserEvent] {
        append(bytes)
        var events: [HTTPParserEvent] = []
        while let event = next() { events.append(event) }
        return events
    }

    /// The end of the input (the client closed): an error if a request was cut short, else nil.
    public mutating func finish() -> HTTPParserEvent? {
        switch state {
        case .failed: return nil
        case .requestLine where start == buffer.count && emptyLines == 0: return nil
        default: return fail(400, "incomplete_request", "the connection closed in the middle of a request")
        }
    }

    /// The next event the buffered bytes complete, or nil when more bytes are needed.
    public mutating func next() -> HTTPParserEvent? {
        while true {
            switch state {
            case .failed:
                return nil

            case .messageEnd:
                let trailers = headers
                resetMessage()
                return .end(trailers: trailers)

            // Deliberate parallel of the `.headers` and `.chunkSize` cases' `takeLine` switches: each state's own
            // limit, status and code for a too-long line.
            case .requestLine:
                switch takeLine(limit: limits.maxRequestLineBytes,
                                tooLong: HTTPError(status: 414, code: "request_line_too_long",
                                                   message: "the request line exceeds \(limits.maxRequestLineBytes) bytes")) {
                case .needMore: return nil
                case .error(let e): return fail(e)
                case .line(let line):
                    if line.isEmpty {
                        emptyLines += 1
                        if emptyLines > 4 { return fail(400, "bad_request_line", "too many empty lines before the request line") }
                        continue
                    }
                    if let e = parseRequestLine(line) { return fail(e) }
                    state = .headers
                }

            case .headers, .trailers:
                let isTrailer = state == .trailers
                let remaining = limits.maxHeaderBytes - headerBytes
                let what = isTrailer ? "trailer fields" : "header fields"
                switch takeLine(limit: max(remaining - 2, 0),
                                tooLong: HTTPError(status: 431, code: "header_fields_too_large",
                                                   message: "the \(what) exceed \(limits.maxHeaderBytes) bytes")) {
                case .needMore: return nil
                case .error(let e): return fail(e)
                case .line(let line):
                    headerBytes += line.count + 2
                    if line.isEmpty {
                        if isTrailer {
                            state = .messageEnd
                            continue
                        }
                        return finishHead()
                    }
                    if let e = parseField(line, what: what) { return fail(e) }
                }

            case .fixedBody(let remaining):
                guard let chunk = takeBody(upTo: remaining) else { return nil }
                state = remaining == chunk.count ? .messageEnd : .fixedBody(remaining: remaining - chunk.count)
                return .body(chunk)

            case .chunkSize:
                switch takeLine(limit: limits.maxChunkLineBytes,
                                tooLong: HTTPError(status: 400, code: "bad_chunk",
                                                   message: "a chunk-size line exceeds \(limits.maxChunkLineBytes) bytes")) {
                case .needMore: return nil
                case .error(let e): return fail(e)
                case .line(let line):
                    switch parseChunkSize(line) {
                    case .failure(let e): return fail(e)
                    case .success(let size):
                        if size == 0 {
                            headerBytes = 0
                            state = .trailers
                        } else {
                            state = .chunkData(remaining: size)
                        }
                    }
                }

            case .chunkData(let remaining):
                guard let chunk = takeBody(upTo: remaining) else { return nil }
                state = remaining == chunk.count ? .chunkDataEnd : .chunkData(remaining: remaining - chunk.count)
                return .body(chunk)

            case .chunkDataEnd:
                let available = buffer.count - start
                if available >= 1, buffer[start] != 0x0D { return fail(400, "bad_chunk", "chunk data is not followed by CRLF") }
                if available < 2 { return nil }
                if buffer[start + 1] != 0x0A { return fail(400, "bad_chunk", "chunk data is not followed by CRLF") }
                start += 2
                scanned = 0
                state = .chunkSize
            }
        }
    }

    // MARK: - Lines

    private enum LineResult {
        case line(Range<Int>)
        case needMore
        case error(HTTPError)
    }

    /// The next CRLF-terminated line (range without CRLF), consuming it. A line longer than `limit`
    /// (counted before its CRLF) is `tooLong`, detected as soon as `limit + 2` bytes hold no LF.
    private mutating func takeLine(limit: Int, tooLong: HTTPError) -> LineResult {
        var i = start + scanned
        let end = buffer.count
        while i < end, buffer[i] != 0x0A { i += 1 }
        if i == end {
            scanned = i - start
            if end - start > limit + 1 { return .error(tooLong) }
            return .needMore
        }
        // buffer[i] is LF. The length first, by the rule `needMore` applies above (`limit` bytes and the
        // CR): else a too-long line ending in a bare LF is 400 whole and 414 when split before its LF.
        if i - start > limit + 1 { return .error(tooLong) }
        guard i > start, buffer[i - 1] == 0x0D else {
            return .error(HTTPError(status: 400, code: "bare_lf", message: "a line ends with LF without CR"))
        }
        let line = start..<(i - 1)
        start = i + 1
        scanned = 0
        return .line(line)
    }

    // MARK: - Body bytes

    /// Up to `limit` buffered body bytes (a fixed body's or a chunk's rest), consuming them; nil when
    /// none are buffered.
    private mutating func takeBody(upTo limit: Int) -> [UInt8]? {
        let n = min(limit, buffer.count - start)
        if n == 0 { return nil }
        let chunk = Array(buffer[start..<start + n])
        start += n
        return chunk
    }

    // MARK: - Request line

    private mutating func parseRequestLine(_ line: Range<Int>) -> HTTPError? {
        let bad = HTTPError(status: 400, code: "bad_request_line", message: "the request line is not `method SP target SP HTTP/x.y`")
        guard let sp1 = buffer[line].firstIndex(of: 0x20) else { return bad }
        guard let sp2 = buffer[(sp1 + 1)..<line.upperBound].firstIndex(of: 0x20) else { return bad }
        let methodRange = line.lowerBound..<sp1
        let targetRange = (sp1 + 1)..<sp2
        let versionRange = (sp2 + 1)..<line.upperBound
        guard !methodRange.isEmpty, buffer[methodRange].allSatisfy({ HTTPSyntax.tchar[Int($0)] }) else {
            return HTTPError(status: 400, code: "bad_method", message: "the method is not a token")
        }
        // Version: exactly HTTP/DIGIT.DIGIT (RFC 9112 §2.3).
        let v = buffer[versionRange]
        guard v.count == 8, v.starts(with: Array("HTTP/".utf8)),
              let major = HTTPSyntax.hexValue(v[v.startIndex + 5]), major < 10,
              v[v.startIndex + 6] == 0x2E,
              let minor = HTTPSyntax.hexValue(v[v.startIndex + 7]), minor < 10,
              v[v.startIndex + 5] <= 0x39, v[v.startIndex + 7] <= 0x39
        else { return HTTPError(status: 400, code: "bad_version", message: "the protocol version is not HTTP/x.y") }
        guard major == 1 else {
            return HTTPError(status: 505, code: "http_version_not_supported",
                             message: "HTTP/\(major).\(minor) is not supported; use HTTP/1.1")
        }
        method = String(decoding: buffer[methodRange], as: UTF8.self)
        version = minor == 0 ? .http1_0 : .http1_1
        // Target: origin-form, or asterisk-form for OPTIONS (RFC 9112 §3.2).
        let t = buffer[targetRange]
        if t.count == 1, t.first == 0x2A {
            guard method == "OPTIONS" else {
                return HTTPError(status: 400, code: "bad_target", message: "the `*` target is only valid with OPTIONS")
            }
        } else {
            guard t.first == 0x2F else {
                return HTTPError(status: 400, code: "bad_target", message: "the request target must start with `/`")
            }
            var i = t.startIndex
            while i < t.endIndex {
                let c = t[i]
                if c == 0x25 {
                    guard i + 2 < t.endIndex, HTTPSyntax.hexValue(t[i + 1]) != nil, HTTPSyntax.hexValue(t[i + 2]) != nil else {
                        return HTTPError(status: 400, code: "bad_target", message: "the request target has an invalid percent-encoding")
                    }
                    i += 3
                    continue
                }
                guard HTTPSyntax.targetChar[Int(c)] else {
                    return HTTPError(status: 400, code: "bad_target", message: "the request target has a byte not allowed in a URI path or query")
                }
                i += 1
            }
        }
        target = String(decoding: t, as: UTF8.self)
        return nil
    }

    // MARK: - Fields

    private mutating func parseField(_ line: Range<Int>, what: String) -> HTTPError? {
        let first = buffer[line.lowerBound]
        if first == 0x20 || first == 0x09 {
            return HTTPError(status: 400, code: "obsolete_line_folding", message: "\(what) may not be folded over lines")
        }
        guard let colon = buffer[line].firstIndex(of: 0x3A) else {
            return HTTPError(status: 400, code: "bad_header", message: "a line among the \(what) has no colon")
        }
        let nameRange = line.lowerBound..<colon
        guard !nameRange.isEmpty, buffer[nameRange].allSatisfy({ HTTPSyntax.tchar[Int($0)] }) else {
            return HTTPError(status: 400, code: "bad_header",
                             message: "a field name among the \(what) is not a token (no whitespace before the colon)")
        }
        var lo = colon + 1, hi = line.upperBound
        while lo < hi, buffer[lo] == 0x20 || buffer[lo] == 0x09 { lo += 1 }
        while hi > lo, buffer[hi - 1] == 0x20 || buffer[hi - 1] == 0x09 { hi -= 1 }
        guard buffer[lo..<hi].allSatisfy({ HTTPSyntax.fieldValue[Int($0)] }) else {
            return HTTPError(status: 400, code: "bad_header", message: "a field value among the \(what) holds a control character")
        }
        if headers.count >= limits.maxHeaderCount {
            return HTTPError(status: 431, code: "header_fields_too_large", message: "more than \(limits.maxHeaderCount) \(what)")
        }
        headers.add(name: String(decoding: buffer[nameRange], as: UTF8.self),
                    value: String(decoding: buffer[lo..<hi], as: UTF8.self))
        return nil
    }

    /// Validates the header section and resolves framing, keep-alive and Expect (RFC 9112 §6-9).
    private mutating func finishHead() -> HTTPParserEvent {
        let is11 = version == .http1_1
        let hosts = headers.values("host")
        if is11 && hosts.isEmpty { return fail(400, "missing_host", "an HTTP/1.1 request needs a Host header") }
        if hosts.count > 1 { return fail(400, "bad_host", "more than one Host header") }
        if let host = hosts.first, !host.utf8.allSatisfy({ HTTPSyntax.hostChar[Int($0)] }) {
            return fail(400, "bad_host", "the Host header is not a valid host[:port]")
        }

        var framing = HTTPBodyFraming.none
        let lengths = headers.values("content-length")
        if headers.contains("transfer-encoding") {
            if !lengths.isEmpty { return fail(400, "bad_framing", "a request may not have both Transfer-Encoding and Content-Length") }
            if !is11 { return fail(400, "bad_framing", "Transfer-Encoding is not allowed in an HTTP/1.0 request") }
            let codings = headers.tokens("transfer-encoding")
            guard codings.last == "chunked" else {
                return fail(400, "bad_framing", "chunked must be the final transfer coding of a request")
            }
            if codings.dropLast().contains("chunked") { return fail(400, "bad_framing", "chunked is applied more than once") }
            if let other = codings.first(where: { $0 != "chunked" }) {
                return fail(501, "unsupported_transfer_coding", "the transfer coding `\(other)` is not implemented")
            }
            framing = .chunked
        } else if !lengths.isEmpty {
            var value: Int?
            for element in lengths.flatMap({ $0.split(separator: ",", omittingEmptySubsequences: false) }) {
                let digits = element.trimmingHTTPWhitespace().utf8
                guard !digits.isEmpty, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    return fail(400, "bad_content_length", "Content-Length is not a number")
                }
                var n = 0
                for d in digits {
                    let (m, o1) = n.multipliedReportingOverflow(by: 10)
                    let (s, o2) = m.addingReportingOverflow(Int(d - 0x30))
                    if o1 || o2 { return fail(413, "body_too_large", "the body exceeds \(limits.maxBodyBytes) bytes") }
                    n = s
                }
                if let v = value, v != n { return fail(400, "bad_content_length", "Content-Length values disagree") }
                value = n
            }
            let n = value ?? 0
            if n > limits.maxBodyBytes { return fail(413, "body_too_large", "the body exceeds \(limits.maxBodyBytes) bytes") }
            framing = n > 0 ? .length(n) : .none
        }

        var expectsContinue = false
        let expectations = headers.tokens("expect")
        if !expectations.isEmpty && is11 {
            guard expectations.allSatisfy({ $0 == "100-continue" }) else {
                return fail(417, "expectation_failed", "only `Expect: 100-continue` is supported")
            }
            expectsContinue = framing != .none
        }

        let connection = headers.tokens("connection")
        let keepAlive = connection.contains("close") ? false : (is11 || connection.contains("keep-alive"))

        let head = HTTPRequestHead(method: method, target: target, version: version, headers: headers,
                                   keepAlive: keepAlive, expectsContinue: expectsContinue, bodyFraming: framing)
        headers = HTTPHeaders()
        headerBytes = 0
        switch framing {
        case .none: state = .messageEnd
        case .length(let n): state = .fixedBody(remaining: n)
        case .chunked: state = .chunkSize
        }
        return .head(head)
    }

    // MARK: - Chunked

    /// chunk-size [ chunk-ext ] (RFC 9112 §7.1): hex digits, then optional `;ext[=val]` items.
    private mutating func parseChunkSize(_ line: Range<Int>) -> Result<Int, HTTPError> {
        let bad = HTTPError(status: 400, code: "bad_chunk", message: "a chunk-size line is not hex digits with optional extensions")
        var i = line.lowerBound
        var size = 0
        while i < line.upperBound, let d = HTTPSyntax.hexValue(buffer[i]) {
            if size > (Int.max >> 4) { return .failure(HTTPError(status: 413, code: "body_too_large", message: "the body exceeds \(limits.maxBodyBytes) bytes")) }
            size = size << 4 | d
            i += 1
        }
        if i == line.lowerBound { return .failure(bad) }
        // Extensions: BWS ";" ... with no control bytes other than HTAB.
        var j = i
        while j < line.upperBound, buffer[j] == 0x20 || buffer[j] == 0x09 { j += 1 }
        if j < line.upperBound {
            guard buffer[j] == 0x3B, buffer[j..<line.upperBound].allSatisfy({ HTTPSyntax.fieldValue[Int($0)] }) else { return .failure(bad) }
        }
        let (total, overflow) = bodyBytes.addingReportingOverflow(size)
        if overflow || total > limits.maxBodyBytes {
            return .failure(HTTPError(status: 413, code: "body_too_large", message: "the body exceeds \(limits.maxBodyBytes) bytes"))
        }
        bodyBytes = total
        return .success(size)
    }

    // MARK: - State

    private mutating func resetMessage() {
        state = .requestLine
        emptyLines = 0
        headerBytes = 0
        headers = HTTPHeaders()
        bodyBytes = 0
        method = ""
        target = ""
    }

    private mutating func fail(_ status: Int, _ code: String, _ message: String) -> HTTPParserEvent {
        fail(HTTPError(status: status, code: code, message: message))
    }

    private mutating func fail(_ error: HTTPError) -> HTTPParserEvent {
        state = .failed
        buffer = []
        start = 0
        scanned = 0
        return .error(error)
    }

    /// Drops consumed bytes once they are at least half the buffer (amortised O(1) per byte).
    private mutating func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 4096 && start * 2 > buffer.count {
            buffer.removeSubrange(0..<start)
            start = 0
        }
    }
}
