/// An HTTP protocol version as written in a request line (`HTTP/1.1`).
public struct HTTPVersion: Sendable, Hashable, CustomStringConvertible {
    /// The digit before the dot.
    public var major: Int
    /// The digit after the dot.
    public var minor: Int

    /// A version from its two digits.
    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// HTTP/1.0: connections close after each response unless the client asks for keep-alive.
    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    /// HTTP/1.1: persistent connections, chunked transfer coding.
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)

    /// `HTTP/major.minor`.
    public var description: String { "HTTP/\(major).\(minor)" }
}
