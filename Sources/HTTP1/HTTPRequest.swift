/// One `name=value` pair of a query string, percent-decoded (`+` read as a space).
public struct HTTPQueryItem: Sendable, Equatable {
    /// Decoded name.
    public var name: String
    /// Decoded value (empty when the item has no `=`).
    public var value: String
}

/// A complete request as handed to an `HTTPHandler`: head, whole body (at most `HTTPLimits.maxBodyBytes`)
/// and where it came from.
public struct HTTPRequest: Sendable, Equatable {
    /// Method token, case-sensitive (`GET`, `POST`, …).
    public var method: String
    /// Request target exactly as sent (`/v1/images?x=1`, or `*`).
    public var target: String
    /// Path part of the target, still percent-encoded (`/a%20b`).
    public var rawPath: String
    /// Path part of the target, percent-decoded (`/a b`); invalid UTF-8 is replaced by U+FFFD.
    public var path: String
    /// Query part after `?`, raw, or nil without `?`.
    public var query: String?
    /// The query's `&`-separated items, decoded.
    public var queryItems: [HTTPQueryItem]
    /// Protocol version of the request.
    public var version: HTTPVersion
    /// Header fields, case-insensitive lookup, repeated names kept.
    public var headers: HTTPHeaders
    /// The body, de-chunked (empty when none).
    public var body: [UInt8]
    /// Trailer fields of a chunked body (usually empty).
    public var trailers: HTTPHeaders
    /// Peer address `ip:port` (`[ip6]:port` for IPv6).
    public var remoteAddress: String
    /// Whether the connection stays open after the response: the client allows it and the server
    /// is neither draining nor at `maxRequestsPerConnection`. The response writer announces it.
    public var keepAlive: Bool
    /// Whether the body was awaited behind `Expect: 100-continue`.
    public var expectedContinue: Bool

    /// A request from its parsed head and body.
    public init(head: HTTPRequestHead, body: [UInt8], trailers: HTTPHeaders = HTTPHeaders(), remoteAddress: String) {
        method = head.method
        target = head.target
        version = head.version
        headers = head.headers
        keepAlive = head.keepAlive
        expectedContinue = head.expectsContinue
        self.body = body
        self.trailers = trailers
        self.remoteAddress = remoteAddress
        let bytes = Array(head.target.utf8)
        if let q = bytes.firstIndex(of: 0x3F) {
            rawPath = String(decoding: bytes[..<q], as: UTF8.self)
            let queryBytes = bytes[(q + 1)...]
            query = String(decoding: queryBytes, as: UTF8.self)
            queryItems = queryBytes.split(separator: 0x26).map { item in
                if let eq = item.firstIndex(of: 0x3D) {
                    return HTTPQueryItem(name: Self.percentDecode(item[..<eq], plusAsSpace: true),
                                         value: Self.percentDecode(item[(eq + 1)...], plusAsSpace: true))
                }
                return HTTPQueryItem(name: Self.percentDecode(item[...], plusAsSpace: true), value: "")
            }
        } else {
            rawPath = head.target
            query = nil
            queryItems = []
        }
        path = Self.percentDecode(Array(rawPath.utf8)[...], plusAsSpace: false)
    }

    /// The first value of query item `name`, or nil.
    public func queryValue(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }

    /// Decodes `%XX` (an invalid escape is kept literally) and, in queries, `+` as a space.
    static func percentDecode(_ bytes: ArraySlice<UInt8>, plusAsSpace: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let c = bytes[i]
            if c == 0x25, i + 2 < bytes.endIndex,
               let hi = HTTPSyntax.hexValue(bytes[i + 1]), let lo = HTTPSyntax.hexValue(bytes[i + 2]) {
                out.append(UInt8(hi << 4 | lo))
                i += 3
                continue
            }
            out.append(plusAsSpace && c == 0x2B ? 0x20 : c)
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
