/// What the server calls for each request: the routing layer implements it.
///
/// Contract:
/// - `handle` runs on a Dispatch queue of its own per connection (never the connection's I/O queue),
///   which may block as long as it likes: the connection keeps reading meanwhile, so a client that
///   disconnects fires `response.onClose` and makes later writes throw `HTTPWriteError.closed`.
/// - Requests of one connection are handled one at a time, in order: the next pipelined request is
///   handed over only after `finish()` of the previous response.
/// - The request body has been read whole (at most `HTTPLimits.maxBodyBytes`).
/// - Write the head, then body bytes, then call `finish()`, from any thread (one call at a time).
///   A writer released without `finish()` is finished for you (see `HTTPResponseWriter`).
/// - Quick requests (`isQuick` true) are handled inline on the connection's I/O queue instead: no
///   thread hand-off, the cheapest path for tiny answers such as health checks and metrics.
public protocol HTTPHandler: Sendable {
    /// Answers `request` through `response`.
    func handle(_ request: HTTPRequest, _ response: HTTPResponseWriter)

    /// Called on the connection's queue (must not block) when a request carries
    /// `Expect: 100-continue`, before its body is read: nil answers `100 Continue` and reads the body;
    /// an error is answered instead (the body is never read and the connection closes), e.g. 401 or 415.
    /// The parser has already refused a Content-Length over `HTTPLimits.maxBodyBytes` with 413.
    func checkExpectation(_ head: HTTPRequestHead) -> HTTPError?

    /// Called on the connection's queue for each complete request: true lets the server call `handle`
    /// right there, on the connection's I/O queue, saving two thread hand-offs per request. Only for
    /// handlers that never block and answer in microseconds with a small body (`respond(...)` before
    /// returning; writes from an inline `handle` are not throttled by backpressure). Default: false.
    func isQuick(_ request: HTTPRequest) -> Bool
}

extension HTTPHandler {
    /// Accepts every body.
    public func checkExpectation(_ head: HTTPRequestHead) -> HTTPError? { nil }

    /// Every request goes to the handler's own queue.
    public func isQuick(_ request: HTTPRequest) -> Bool { false }
}
