/// How a request's body is delimited (RFC 9112 §6.3).
public enum HTTPBodyFraming: Sendable, Equatable {
    /// No body (neither Content-Length nor Transfer-Encoding).
    case none
    /// Exactly this many bytes (Content-Length).
    case length(Int)
    /// Transfer-Encoding: chunked.
    case chunked
}

/// A parsed request line and header section, validated and with its framing resolved.
public struct HTTPRequestHead: Sendable, Equatable {
    /// Method token, case-sensitive (`GET`, `POST`, …).
    public var method: String
    /// Request target as sent: origin-form (`/path?query`, still percent-encoded) or `*`.
    public var target: String
    /// Protocol version from the request line (`HTTP/1.2`…`1.9` are read as 1.1, RFC 9110 §6.2).
    public var version: HTTPVersion
    /// Header fields in order.
    public var headers: HTTPHeaders
    /// Whether the client allows the connection to stay open after this request
    /// (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    public var keepAlive: Bool
    /// The client sent `Expect: 100-continue` (HTTP/1.1) and waits for a 100 before sending the body.
    public var expectsContinue: Bool
    /// How the body is delimited.
    public var bodyFraming: HTTPBodyFraming

    /// Path part of the target, percent-decoded (`/a b`), as `HTTPRequest.path`: what routes match,
    /// so that checks made on the head (`checkExpectation`) see the route the request will take.
    public var path: String {
        let bytes = Array(target.utf8)
        let end = bytes.firstIndex(of: 0x3F) ?? bytes.endIndex
        return HTTPRequest.percentDecode(bytes[..<end], plusAsSpace: false)
    }
}
