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

    /// A configuration; every argument has a default.
    public init(host: String = "127.0.0.1", port: Int = 8080, limits: HTTPLimits = HTTPLimits(),
                tls: HTTPTLSConfiguration? = nil, serverName: String = "wuerstchen", backlog: Int = 511) {
        self.host = host
        self.port = port
        self.limits = limits
        self.tls = tls
        self.serverName = serverName
        self.backlog = backlog
    }
}
