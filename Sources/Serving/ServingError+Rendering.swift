import Foundation
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

    /// 503 once shutdown began.
    static let draining = ServingError(
        status: 503, message: "the server is shutting down", type: "server_error", code: "draining", retryAfterSeconds: 1)

    /// 429: `waiting` requests wait already, at most `maxQueue`.
    static func queueFull(waiting: Int, maxQueue: Int, retryAfterSeconds wait: Int) -> ServingError {
        ServingError(
            status: 429, message: "the queue is full (\(waiting) requests waiting, at most \(maxQueue)); retry in about \(wait) s",
            type: "rate_limit_error", code: "queue_full", retryAfterSeconds: wait)
    }

    /// 504: the request's deadline (`timeout` seconds from submission) passed with `stepsRun` of `stepsTotal` steps done.
    static func deadlineExceeded(timeout: Double, stepsRun: Int, stepsTotal: Int) -> ServingError {
        let seconds = timeout == timeout.rounded() ? String(Int(timeout)) : String(format: "%.1f", timeout)
        return ServingError(
            status: 504, message: "the request did not finish within its deadline of \(seconds) s (\(stepsRun) of \(stepsTotal) steps done)",
            type: "server_error", code: "deadline_exceeded")
    }
}
