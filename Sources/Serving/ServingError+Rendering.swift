import HTTP1
import JSON
import Wuerstchen

extension ServingError {
    /// The OpenAI error body `{"error": {"message", "type", "param", "code"}}`.
    public var json: JSONValue { HTTPError.errorDocument(message: message, type: type, param: param, code: code) }

    /// `json` as UTF-8 bytes.
    public var jsonBody: [UInt8] { json.serializedBytes }

    /// 400 for a field: `invalid_request_error` naming `param`.
    static func invalid(_ param: String?, _ message: String, code: String = "invalid_value") -> ServingError {
        ServingError(status: 400, message: message, param: param, code: code)
    }

    /// A pipeline validation error as a 400 naming its field (`rename` maps pipeline names to API names).
    static func from(_ error: GenerationError, rename: [String: String] = [:]) -> ServingError {
        let field = error.field.map { rename[$0] ?? $0 }
        return ServingError(status: 400, message: error.message, param: field, code: "invalid_value")
    }

    /// An HTTP1 protocol error in the same shape.
    static func from(_ error: HTTPError) -> ServingError {
        ServingError(status: error.status, message: error.message, type: error.type, code: error.code)
    }

    /// 401 for a missing or wrong API key.
    static let unauthorized = ServingError(
        status: 401, message: "missing or invalid API key: send `Authorization: Bearer <key>`",
        type: "authentication_error", code: "invalid_api_key")

    /// The request was cancelled (client gone or server stopping).
    static let cancelled = ServingError(status: 503, message: "the request was cancelled", type: "server_error", code: "cancelled")
}
