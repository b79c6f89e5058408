import Foundation
import JSON

/// A server-sent event stream (text/event-stream) on one exchange: the one writer of SSE blocks for every
/// route that streams (`POST /v1/images` with `Accept: text/event-stream`, `POST /v1/images/generations`
/// with `stream: true`, `GET /v1/jobs/{id}/events`).
final class EventStream {
    /// The response headers of every event stream (no caching, no proxy buffering).
    static let headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")]

    /// One event: `id:` when given, `event:`, `data:` (one line: serialized JSON holds no newline), blank line.
    static func block(event: String, data: JSONValue, id: Int? = nil) -> String {
        (id.map { "id: \($0)\n" } ?? "") + "event: \(event)\ndata: \(data.serialized)\n\n"
    }

    private let exchange: Exchange
    private let onGone: () -> Void
    /// False once a write failed (the client went away): later events are dropped.
    private(set) var connected = true

    /// Sends the 200 head with `headers` added. `probes`: while the stream waits, HTTP1 sends SSE
    /// comments to tell a client that went away from one that only half-closed. `onGone` runs once
    /// when a write fails.
    init(_ exchange: Exchange, headers: [(String, String)] = [], probes: Bool = true, onGone: @escaping () -> Void = {}) {
        self.exchange = exchange
        self.onGone = onGone
        if probes { exchange.writer.setStreamingProbe(Array(":\n\n".utf8)) }
        exchange.head(status: 200, headers: Self.headers + headers)
    }

    /// Writes raw SSE text (blocks or comments); false, and `onGone` once, when the client went away.
    @discardableResult
    func write(_ text: String) -> Bool {
        guard connected else { return false }
        if (try? exchange.write(Array(text.utf8))) == nil {
            connected = false
            onGone()
        }
        return connected
    }

    /// Writes one event.
    @discardableResult
    func send(_ event: String, _ data: JSONValue) -> Bool { write(Self.block(event: event, data: data)) }

    /// Ends the response (cut short when the client went away).
    func finish() { exchange.finish(complete: connected) }
}
