import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failure of a socket call, naming the call, the address and errno's text.
public struct HTTPServerError: Error, Sendable, CustomStringConvertible {
    /// What failed, e.g. `bind 127.0.0.1:8080: Address already in use`.
    public let description: String

    init(_ description: String) { self.description = description }

    static func errno(_ what: String) -> HTTPServerError {
        HTTPServerError("\(what): \(String(cString: strerror(Glibc.errno)))")
    }
}

/// Thin wrappers over the POSIX socket calls the server uses.
enum Socket {
    /// A non-blocking, close-on-exec listening socket bound to `host:port` (numeric address) with SO_REUSEADDR.
    static func listen(host: String, port: Int, backlog: Int32) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var info: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &info)
        guard rc == 0, let ai = info else {
            throw HTTPServerError("host \(host) is not a numeric IPv4 or IPv6 address: \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(info) }
        let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HTTPServerError.errno("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
            let error = HTTPServerError.errno("bind \(host):\(port)")
            close(fd)
            throw error
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let error = HTTPServerError.errno("listen \(host):\(port)")
            close(fd)
            throw error
        }
        return fd
    }

    /// The port a socket is bound to.
    static func localPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { return 0 }
        return port(of: storage)
    }

    /// Accepts one connection (non-blocking, close-on-exec, TCP_NODELAY): the descriptor and peer `ip:port`,
    /// or nil with errno set.
    static func accept(_ listener: Int32) -> (Int32, String)? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.accept(listener, $0, &len)
            }
        }
        guard fd >= 0 else { return nil }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return (fd, describe(storage))
    }

    private static func port(of storage: sockaddr_storage) -> Int {
        switch Int32(storage.ss_family) {
        case AF_INET: return address(storage, as: sockaddr_in.self) { Int(UInt16(bigEndian: $0.sin_port)) }
        case AF_INET6: return address(storage, as: sockaddr_in6.self) { Int(UInt16(bigEndian: $0.sin6_port)) }
        default: return 0
        }
    }

    /// `ip:port` (`[ip6]:port`).
    private static func describe(_ storage: sockaddr_storage) -> String {
        switch Int32(storage.ss_family) {
        case AF_INET:
            return address(storage, as: sockaddr_in.self) { sin in
                var addr = sin.sin_addr
                return "\(presentation(AF_INET, &addr)):\(UInt16(bigEndian: sin.sin_port))"
            }
        case AF_INET6:
            return address(storage, as: sockaddr_in6.self) { sin in
                var addr = sin.sin6_addr
                return "[\(presentation(AF_INET6, &addr))]:\(UInt16(bigEndian: sin.sin6_port))"
            }
        default:
            return "unknown"
        }
    }

    /// `storage` read as the address family's own struct (`sockaddr_in`, `sockaddr_in6`).
    private static func address<Address, Result>(
        _ storage: sockaddr_storage, as type: Address.Type, _ body: (Address) -> Result
    ) -> Result {
        var s = storage
        return withUnsafePointer(to: &s) { $0.withMemoryRebound(to: type, capacity: 1) { body($0.pointee) } }
    }

    /// `inet_ntop`'s text for an `in_addr` / `in6_addr` of `family`.
    private static func presentation(_ family: Int32, _ addr: UnsafeRawPointer) -> String {
        var buf = [Int8](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        inet_ntop(family, addr, &buf, socklen_t(buf.count))
        return cString(buf)
    }
}

/// Seconds since boot (monotonic), the clock of all deadlines.
func uptimeSeconds() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) / 1e9
}

/// The text of a NUL-terminated C buffer.
func cString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
