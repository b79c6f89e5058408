import Foundation
import HTTP1
import JSON
#if canImport(Glibc)
import Glibc
#endif

/// What went wrong on the test's side of a connection (connect, a malformed or truncated response).
public struct ClientError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// A parsed response.
public struct Response {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    public init(status: Int, headers: HTTPHeaders, body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
    public var text: String { String(decoding: body, as: UTF8.self) }
    public var json: JSONValue? { try? JSONValue.parse(body) }
    /// `error.param` of an error body.
    public var errorParam: String? {
        if case .string(let s)? = json?["error"]?["param"] { return s }
        return nil
    }
}

/// `s` with every `\n` turned into `\r\n`, as bytes: requests written readably in the tests.
public func crlf(_ s: String) -> [UInt8] { Array(s.replacingOccurrences(of: "\n", with: "\r\n").utf8) }

/// A blocking loopback HTTP/1.1 client on a raw socket with a receive timeout, reading responses
/// (whole, or head and chunks as they arrive) with a minimal parser of its own.
public final class RawClient {
    public let fd: Int32
    private var buffer: [UInt8] = []
    /// Set by a TLS client wrapped around this one: reads and writes go through it.
    public var tlsRead: ((UnsafeMutableRawPointer, Int) -> Int)?
    public var tlsWrite: ((UnsafeRawPointer, Int) -> Int)?

    /// Connects to 127.0.0.1:`port`; a read waits at most `timeout` seconds.
    public init(port: Int, timeout: Double = 60) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            close(fd)
            throw ClientError(description: "connect to \(port) failed: errno \(errno)")
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Closes the connection at once (a client that goes away).
    public func disconnect() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    public func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { raw in
                if let tlsWrite, let base = raw.baseAddress { return tlsWrite(base, raw.count) }
                return Glibc.send(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { return }
            offset += n
        }
    }

    /// Sends `text` with its `\n` line ends as `\r\n`.
    public func send(_ text: String) { send(crlf(text)) }

    /// Sends a request with the given method, path, headers and body (Content-Length added when there is a body).
    public func send(_ method: String, _ path: String, headers: [(String, String)] = [], body: String? = nil) {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        if let body {
            if !headers.contains(where: { $0.0.lowercased() == "content-type" }) { head += "Content-Type: application/json\r\n" }
            head += "Content-Length: \(body.utf8.count)\r\n"
        }
        send(Array((head + "\r\n" + (body ?? "")).utf8))
    }

    /// Reads more bytes; false on EOF, error or timeout.
    @discardableResult
    public func fill(max: Int = 65536) -> Bool {
        var chunk = [UInt8](repeating: 0, count: max)
        let n = chunk.withUnsafeMutableBytes { raw in
            if let tlsRead, let base = raw.baseAddress { return tlsRead(base, max) }
            return recv(fd, raw.baseAddress, max, 0)
        }
        if n <= 0 { return false }
        buffer += chunk[..<n]
        return true
    }

    /// True if the server closed the connection (EOF or reset) before the receive timeout.
    public func isClosedByServer() -> Bool {
        while true {
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
            buffer.append(byte)
        }
    }

    private func line() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 0x0A), i > 0, buffer[i - 1] == 0x0D {
                let s = String(decoding: buffer[..<(i - 1)], as: UTF8.self)
                buffer.removeFirst(i + 1)
                return s
            }
            guard fill() else {
                throw ClientError(description: "connection ended inside a line; have \(String(decoding: buffer, as: UTF8.self).debugDescription)")
            }
        }
    }

    private func take(_ n: Int) throws -> [UInt8] {
        while buffer.count < n {
            guard fill() else { throw ClientError(description: "connection ended inside a body (\(buffer.count) of \(n))") }
        }
        let out = Array(buffer[..<n])
        buffer.removeFirst(n)
        return out
    }

    /// Reads a status line (HTTP/1.1 only) and headers.
    public func readHead() throws -> (Int, HTTPHeaders) {
        let statusLine = try line()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0] == "HTTP/1.1", let status = Int(parts[1]) else {
            throw ClientError(description: "bad status line \(statusLine.debugDescription)")
        }
        var headers = HTTPHeaders()
        while true {
            let l = try line()
            if l.isEmpty { break }
            guard let colon = l.firstIndex(of: ":") else { throw ClientError(description: "bad header \(l)") }
            headers.add(name: String(l[..<colon]), value: Self.trimmed(l[l.index(after: colon)...]))
        }
        return (status, headers)
    }

    /// HTTP's optional whitespace (spaces and horizontal tabs) off both ends.
    private static func trimmed(_ s: Substring) -> String {
        let ows: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(s.drop(while: ows).reversed().drop(while: ows).reversed())
    }

    /// The next chunk of a chunked body (empty at the end, after the trailer section is read).
    public func readChunk() throws -> [UInt8] {
        let sizeLine = try line()
        guard let size = Int(sizeLine.split(separator: ";", omittingEmptySubsequences: false)[0], radix: 16) else {
            throw ClientError(description: "bad chunk size \(sizeLine)")
        }
        if size == 0 {
            while try !line().isEmpty {}
            return []
        }
        let data = try take(size)
        guard try line().isEmpty else { throw ClientError(description: "chunk without CRLF") }
        return data
    }

    /// Reads a whole response (`isHead`: no body follows).
    public func readResponse(isHead: Bool = false) throws -> Response {
        let (status, headers) = try readHead()
        var body: [UInt8] = []
        if isHead || status < 200 || status == 204 || status == 304 {
        } else if headers["Transfer-Encoding"]?.lowercased() == "chunked" {
            while true {
                let chunk = try readChunk()
                if chunk.isEmpty { break }
                body += chunk
            }
        } else if let length = headers["Content-Length"].flatMap({ Int($0) }) {
            body = try take(length)
        } else {
            while fill() {}
            body = buffer
            buffer = []
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// Sends a request written as text (`\n` line ends) and reads its response.
    public func request(_ text: String) throws -> Response {
        send(text)
        return try readResponse(isHead: text.hasPrefix("HEAD "))
    }

    /// One request and its response on a new connection.
    public static func request(_ port: Int, _ method: String, _ path: String, headers: [(String, String)] = [], body: String? = nil) throws -> Response {
        let client = try RawClient(port: port)
        client.send(method, path, headers: headers, body: body)
        return try client.readResponse(isHead: method == "HEAD")
    }
}
