import Foundation

/// Where and how the server listens.
public struct HTTPServerConfiguration: Sendable, Equatable {
    /// Numeric address to bind (`127.0.0.1`, `0.0.0.0`, `::1`, `::`).
    public var host: String
    /// Port to bind; 0 picks a free one (read it back from `HTTPServer.port`).
    public var port: Int
    /// Size, count and time limits.
    public var limits: HTTPLimits
    /// Certificate and key to serve HTTPS; nil serves plain HTTP.
    public var tls: HTTPTLSConfiguration?
    /// Value of the `Server` header.
    public var serverName: String
    /// listen(2) backlog (nginx's default).
    public var backlog: Int
    /// Event loops (one thread and epoll set each) the server starts and assigns its connections to
    /// round robin; at least 1. Default: one per active processor (nginx's `worker_processes auto`).
    public var eventLoops: Int

    /// One event loop per active processor.
    public static var defaultEventLoops: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// A configuration; every argument has a default.
    public init(host: String = "127.0.0.1", port: Int = 8080, limits: HTTPLimits = HTTPLimits(),
                tls: HTTPTLSConfiguration? = nil, serverName: String = "wuerstchen", backlog: Int = 511,
                eventLoops: Int = HTTPServerConfiguration.defaultEventLoops) {
        self.host = host
        self.port = port
        self.limits = limits
        self.tls = tls
        self.serverName = serverName
        self.backlog = backlog
        self.eventLoops = eventLoops
    }

    /// Throws an `HTTPServerError` naming the field when a value is out of range (`HTTPServer.start`
    /// calls it before binding). The limits checked are those under which no request would ever be read.
    public func validate() throws {
        guard eventLoops >= 1 else {
            throw HTTPServerError("HTTPServerConfiguration.eventLoops must be at least 1, got \(eventLoops)")
        }
        guard limits.writeHighWaterMark >= 0 else {
            throw HTTPServerError("HTTPServerConfiguration.limits.writeHighWaterMark must be at least 0 (bytes of unsent "
                + "answers above which no further request is read), got \(limits.writeHighWaterMark)")
        }
        guard limits.maxPipelinedRequests >= 1 else {
            throw HTTPServerError("HTTPServerConfiguration.limits.maxPipelinedRequests must be at least 1, got \(limits.maxPipelinedRequests)")
        }
    }
}
