/// An API error: rendered as OpenAI's error shape `{"error": {"message", "type", "param", "code"}}`
/// with its HTTP status.
public struct ServingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// HTTP status to answer with.
    public let status: Int
    /// Human-readable message naming what is wrong.
    public let message: String
    /// OpenAI error type (`invalid_request_error`, `authentication_error`, `rate_limit_error`, `server_error`).
    public let type: String
    /// The request field at fault, if one is.
    public let param: String?
    /// A stable machine-readable code (`invalid_value`, `missing_field`, `queue_full`, ...).
    public let code: String?
    /// Seconds to send in `Retry-After` (429 and 503), if any.
    public let retryAfterSeconds: Int?

    /// An error; `type` defaults to `invalid_request_error`.
    public init(status: Int, message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil,
                retryAfterSeconds: Int? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// `status type: message`.
    public var description: String { "\(status) \(type): \(message)" }
}
