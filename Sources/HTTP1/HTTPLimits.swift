/// Bounds on what one client may send and how long it may take, so that no client can exhaust the
/// server's memory, descriptors or workers (the limits nginx and swift-nio apply, with their names).
public struct HTTPLimits: Sendable, Equatable {
    // Deliberate parallel of Serving/ServerConfiguration.swift:ServerConfiguration: documented fields with their
    // defaults, each struct its own module's settings (HTTP1 does not know the service's).
    /// Longest request line (method, target, version) in bytes; longer answers 414.
    public var maxRequestLineBytes = 8 * 1024
    /// Most bytes in all header lines together; more answers 431.
    public var maxHeaderBytes = 32 * 1024
    /// Most header fields; more answers 431.
    public var maxHeaderCount = 100
    /// Largest request body (Content-Length or the sum of chunks); larger answers 413.
    public var maxBodyBytes = 1 << 20
    /// Seconds to receive a request's head, counted from its first byte (slowloris).
    public var headerTimeout = 10.0
    /// Seconds a body may go without progress.
    public var bodyTimeout = 30.0
    /// Seconds a whole body may take from the end of its head, however steadily it trickles in (a client
    /// sending a byte every `bodyTimeout` would otherwise hold a connection slot forever).
    public var bodyDeadline = 120.0
    /// Seconds an idle keep-alive connection stays open.
    public var idleTimeout = 60.0
    /// Seconds a response write may make no progress before the connection is dropped.
    public var writeTimeout = 30.0
    /// Most open client connections; further connections are answered 503 and closed.
    public var maxConnections = 512
    /// Most requests one keep-alive connection may carry.
    public var maxRequestsPerConnection = 1000
    /// Most pipelined requests queued behind the one being answered; at least 1.
    public var maxPipelinedRequests = 16
    /// Response bytes queued unsent above which `HTTPResponseWriter.write` blocks its caller and no further
    /// (pipelined) request is parsed or dispatched until they drain below it: a slow reader, or a client
    /// that pipelines requests and reads nothing, holds about this much plus one answer in server memory
    /// per connection. At least 0 (0: each answer is written out before the next request is read).
    public var writeHighWaterMark = 256 * 1024
    /// Longest chunk-size line of a chunked body (size and extensions); longer answers 400.
    public var maxChunkLineBytes = 4 * 1024
    /// Seconds to keep reading (and discarding) before closing, once the FIN followed the last answer
    /// (an error answer, `Connection: close`, a drain): input arriving meanwhile would make the kernel
    /// reset the connection and drop answer bytes not yet delivered (nginx `lingering_timeout`).
    public var lingerTimeout = 2.0

    /// The defaults above.
    public init() {}
}
