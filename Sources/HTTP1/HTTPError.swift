import JSON

/// A protocol error with the status to answer it with; rendered as the OpenAI-style JSON error body
/// `{"error": {"message", "type", "param": null, "code"}}` (ARCHITECTURE.md).
public struct HTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// HTTP status to answer with (400, 408, 413, 414, 417, 431, 501, 503, 505).
    public var status: Int
    /// Machine-readable code, e.g. `header_fields_too_large`.
    public var code: String
    /// Human-readable message naming what is wrong.
    public var message: String

    /// An error with its status, code and message.
    public init(status: Int, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// `invalid_request_error` for 4xx, `server_error` for 5xx (OpenAI's `type` values).
    public var type: String { status >= 500 ? "server_error" : "invalid_request_error" }

    /// `status code: message`.
    public var description: String { "\(status) \(code): \(message)" }

    /// The UTF-8 JSON body `{"error":{"message":…,"type":…,"param":null,"code":…}}`.
    public var jsonBody: [UInt8] { Self.errorDocument(message: message, type: type, param: nil, code: code).serializedBytes }

    /// The OpenAI error document `{"error": {"message", "type", "param", "code"}}` (ARCHITECTURE.md), for
    /// these errors and Serving's.
    public static func errorDocument(message: String, type: String, param: String?, code: String?) -> JSONValue {
        .object([("error", .object([
            ("message", .string(message)), ("type", .string(type)),
            ("param", param.map(JSONValue.string) ?? .null), ("code", code.map(JSONValue.string) ?? .null),
        ]))])
    }
}

/// Why `HTTPResponseWriter.write` failed.
public struct HTTPWriteError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Kind: Sendable, Equatable { case closed, finished, contentLengthExceeded }
    private let kind: Kind

    /// The client went away (or the connection was dropped for a stalled write or shutdown).
    public static let closed = HTTPWriteError(kind: .closed)
    /// `finish()` was already called on this response.
    public static let finished = HTTPWriteError(kind: .finished)
    /// The bytes would exceed the Content-Length the head announced; nothing was written.
    public static let contentLengthExceeded = HTTPWriteError(kind: .contentLengthExceeded)

    /// What went wrong, in words.
    public var description: String {
        switch kind {
        case .closed: "the connection is closed"
        case .finished: "the response is already finished"
        case .contentLengthExceeded: "write exceeds the response's Content-Length"
        }
    }
}
