import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The IMF-fixdate for the `Date` header (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7),
/// formatted at most once per second and shared by the connections of one `HTTPServer` (which owns it).
final class HTTPDate: @unchecked Sendable {
    private let lock = NSLock()
    private var second = -1
    private var cached = ""

    /// The current date, formatted.
    func now() -> String {
        var t = time(nil)
        lock.lock()
        defer { lock.unlock() }
        if Int(t) != second {
            var tm = tm()
            gmtime_r(&t, &tm)
            var buf = [Int8](repeating: 0, count: 64)
            let n = strftime(&buf, buf.count, "%a, %d %b %Y %H:%M:%S GMT", &tm)
            cached = String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            second = Int(t)
        }
        return cached
    }
}
