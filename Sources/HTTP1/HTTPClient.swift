import COpenSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failed outbound request: names the host and what went wrong.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible, Equatable {
    /// E.g. `connect 127.0.0.1:9: Connection refused`.
    public let description: String

    init(_ description: String) { self.description = description }
}

/// The smallest outbound HTTP/1.1 client the server needs (job callbacks): one request per
/// connection (`Connection: close`), `http://` on POSIX sockets or `https://` through OpenSSL (TLS 1.2+,
/// the peer's certificate verified against the system's CAs, or a given PEM file, and its name or IP
/// checked), a timeout on connecting, on every write and on every read, and a bound on the response it
/// reads. Blocking: call it off the event loops.
public enum HTTPClient {
    /// A response: status and body (at most `maxResponseBytes`).
    public struct Response: Sendable {
        public let status: Int
        public let body: [UInt8]
    }

    /// A URL's parts.
    public struct Target: Sendable, Equatable {
        /// `https`.
        public let isTLS: Bool
        /// Lower-cased; an IPv6 address without its brackets.
        public let host: String
        public let port: Int
        /// The path and query (`/` at least).
        public let path: String
    }

    /// `http[s]://host[:port]/path` split into its parts; nil for anything else (other schemes, user info, no host).
    public static func parse(_ url: String) -> Target? {
        let lower = url.lowercased()
        let isTLS = lower.hasPrefix("https://")
        guard isTLS || lower.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst(isTLS ? 8 : 7)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var path = String(rest.dropFirst(authority.count))
        if let hash = path.firstIndex(of: "#") { path = String(path[..<hash]) }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        guard !authority.isEmpty, !authority.contains("@"), path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        var host = String(authority), port = isTLS ? 443 : 80
        if host.hasPrefix("[") {  // [::1]:8080
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { return nil }
                port = p
            } else if !after.isEmpty { return nil }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
            host = String(host[..<colon])
        }
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }) else { return nil }
        return Target(isTLS: isTLS, host: host.lowercased(), port: port, path: path)
    }

    /// POSTs `body` to `url` with `headers`; waits at most `timeout` seconds for each step (connect,
    /// handshake, each write, each read). `https://` trusts the system's CAs, or only the PEM
    /// certificates in `trusting`.
    public static func post(_ url: String, headers: [(String, String)], body: [UInt8], timeout: Double = 10,
                            maxResponseBytes: Int = 65_536, trusting certificates: String? = nil) throws(HTTPClientError) -> Response {
        guard let target = parse(url) else { throw HTTPClientError("not an http:// or https:// URL: \(url)") }
        let (host, port) = (target.host, target.port)
        let fd = try connect(host: host, port: port, timeout: timeout)
        defer { close(fd) }
        let what = "\(host):\(port)"
        let tls = target.isTLS ? try TLSClientSession(fd: fd, host: host, trusting: certificates, what: what) : nil
        let io = ClientIO(fd: fd, tls: tls)
        let defaultPort = target.isTLS ? 443 : 80
        var head = "POST \(target.path) HTTP/1.1\r\nHost: \(host.contains(":") ? "[\(host)]" : host)\(port == defaultPort ? "" : ":\(port)")\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        try send(io, Array(head.utf8) + body, what: what)
        return try readResponse(io, maxBytes: maxResponseBytes, what: what)
    }

    /// The connection's bytes: the socket, or the TLS session over it.
    private struct ClientIO {
        let fd: Int32
        let tls: TLSClientSession?

        func write(_ buffer: UnsafeRawBufferPointer) -> Int {
            if let tls { return Int(SSL_write(tls.ssl, buffer.baseAddress, Int32(buffer.count))) }
            return Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
        }

        func read(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
            if let tls {
                let n = Int(SSL_read(tls.ssl, buffer.baseAddress, Int32(buffer.count)))
                // A peer that closes without close_notify ends the body as a plain close would.
                return n > 0 ? n : (SSL_get_error(tls.ssl, Int32(n)) == SSL_ERROR_ZERO_RETURN || errno == 0 ? 0 : -1)
            }
            return recv(fd, buffer.baseAddress, buffer.count, 0)
        }
    }

    /// An OpenSSL client session on a connected socket: the handshake done, the peer verified.
    private final class TLSClientSession {
        let context: OpaquePointer
        let ssl: OpaquePointer

        init(fd: Int32, host: String, trusting certificates: String?, what: String) throws(HTTPClientError) {
            ERR_clear_error()
            guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw HTTPClientError("TLS to \(what): SSL_CTX_new failed") }
            context = ctx
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            // TLS 1.2 or newer, as the server side.
            _ = SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(TLS1_2_VERSION), nil)
            let trusted = certificates.map { SSL_CTX_load_verify_locations(ctx, $0, nil) } ?? SSL_CTX_set_default_verify_paths(ctx)
            guard trusted == 1, let s = SSL_new(ctx) else {
                SSL_CTX_free(ctx)
                throw HTTPClientError("TLS to \(what): cannot load the trusted certificates \(certificates ?? "(system)")")
            }
            ssl = s
            SSL_set_fd(s, fd)
            let isIP = host.contains(":") || host.split(separator: ".").count == 4 && host.split(separator: ".").allSatisfy { UInt8($0) != nil }
            if isIP {
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), host)
            } else {
                SSL_set1_host(s, host)
                // SNI (SSL_set_tlsext_host_name is a macro over this).
                _ = host.withCString { SSL_ctrl(s, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: $0)) }
            }
            guard SSL_connect(s) == 1 else {
                let verify = SSL_get_verify_result(s)
                let reason = verify != X509_V_OK ? String(cString: X509_verify_cert_error_string(verify)) : openSSLErrorString()
                // Fully initialised: deinit frees the session and the context.
                throw HTTPClientError("TLS handshake with \(what) failed: \(reason)")
            }
        }

        deinit {
            SSL_shutdown(ssl)
            SSL_free(ssl)
            SSL_CTX_free(context)
        }
    }

    private static func connect(host: String, port: Int, timeout: Double) throws(HTTPClientError) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var info: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &info)
        guard rc == 0, let first = info else { throw HTTPClientError("resolve \(host): \(String(cString: gai_strerror(rc)))") }
        defer { freeaddrinfo(info) }
        var lastError = "no address"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { continue }
            var ok = Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0
            if !ok, errno == EINPROGRESS {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if poll(&p, 1, Int32(timeout * 1000)) == 1 {
                    var error: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len)
                    ok = error == 0
                    if !ok { lastError = String(cString: strerror(error)) }
                } else {
                    lastError = "timed out after \(timeout) s"
                }
            } else if !ok {
                lastError = String(cString: strerror(errno))
            }
            if ok {
                // Blocking from here on, with per-call timeouts.
                let flags = fcntl(fd, F_GETFL)
                _ = fcntl(fd, F_SETFL, flags & ~Int32(O_NONBLOCK))
                var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                return fd
            }
            close(fd)
        }
        throw HTTPClientError("connect \(host):\(port): \(lastError)")
    }

    private static func send(_ io: ClientIO, _ bytes: [UInt8], what: String) throws(HTTPClientError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { io.write($0) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw HTTPClientError("write to \(what): \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// Reads until the peer closes (we sent `Connection: close`) or the head says the body is complete.
    private static func readResponse(_ io: ClientIO, maxBytes: Int, what: String) throws(HTTPClientError) -> Response {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        var headEnd: Int?
        var length: Int?
        while true {
            if let end = headEnd, let length, data.count - end >= length { break }
            errno = 0
            let n = chunk.withUnsafeMutableBytes { io.read($0) }
            if n < 0, errno == EINTR { continue }
            if n < 0 { throw HTTPClientError("read from \(what): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            data += chunk[..<n]
            guard data.count <= maxBytes + 16_384 else { throw HTTPClientError("response from \(what) is larger than \(maxBytes) bytes") }
            if headEnd == nil, let range = findHeadEnd(data) {
                headEnd = range
                let head = String(decoding: data[..<range], as: UTF8.self).lowercased()
                for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                    length = Int(line.dropFirst(15).trimmingCharacters(in: .whitespaces))
                }
            }
        }
        guard let end = headEnd else { throw HTTPClientError("no complete response head from \(what)") }
        let statusLine = String(decoding: data[..<end], as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...599).contains(status) else {
            throw HTTPClientError("bad status line from \(what): \(statusLine.prefix(80))")
        }
        return Response(status: status, body: Array(data[end...].prefix(maxBytes)))
    }

    /// The index just past the blank line ending the head.
    private static func findHeadEnd(_ data: [UInt8]) -> Int? {
        guard data.count >= 4 else { return nil }
        for i in 0...(data.count - 4) where data[i] == 13 && data[i + 1] == 10 && data[i + 2] == 13 && data[i + 3] == 10 {
            return i + 4
        }
        return nil
    }
}
