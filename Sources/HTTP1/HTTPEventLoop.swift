import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A thread waiting in `epoll_wait` for readable client sockets (one loop per CPU, connections assigned
/// round robin), the event loops of nginx and swift-nio: a readable connection is served on the loop's
/// own thread through `queue.sync` on the connection's queue (which runs the block right there when the
/// queue is idle), so reading, parsing, a quick handler and the answer's `send` cost no thread hand-off.
/// A libdispatch read source instead wakes its manager thread, which wakes a worker: two context switches
/// per request, about half the CPU time of a health check.
///
/// Level-triggered; pausing a connection removes its descriptor (an idle `EPOLLHUP` is reported even with
/// no events asked for). Connections are looked up by a registration id, never by descriptor, so an event
/// that raced with a close can never reach the connection that reused the number.
final class HTTPEventLoop: @unchecked Sendable {
    /// The loops, started on first use.
    static let shared: [HTTPEventLoop] = (0..<max(1, ProcessInfo.processInfo.activeProcessorCount)).map { HTTPEventLoop(index: $0) }
    private static let assignLock = NSLock()
    nonisolated(unsafe) private static var assigned = 0

    /// The loop for a new connection (round robin).
    static func next() -> HTTPEventLoop {
        assignLock.lock()
        defer { assignLock.unlock() }
        assigned &+= 1
        return shared[assigned % shared.count]
    }

    /// Set on each loop thread (for tests: whether code runs on a loop thread).
    private static let threadKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "HTTPEventLoop: pthread_key_create failed")
        return key
    }()

    /// True on an event loop's thread (quick handlers run there).
    static var isLoopThread: Bool { pthread_getspecific(threadKey) != nil }

    private let epfd: Int32
    private let lock = NSLock()
    private var connections: [UInt64: HTTPConnection] = [:]
    private var nextID: UInt64 = 0

    private init(index: Int) {
        epfd = Epoll.create(Int32(O_CLOEXEC))
        precondition(epfd >= 0, "HTTPEventLoop: epoll_create1 failed, errno \(errno)")
        let thread = Thread { [self] in
            // Named from inside: the kernel name (top, perf) is set only for the current thread.
            Thread.current.name = "http1.loop\(index)"
            pthread_setspecific(HTTPEventLoop.threadKey, UnsafeRawPointer(bitPattern: 1))
            run()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Adds `connection` (not yet watched: call `watch`) and returns its id.
    func register(_ connection: HTTPConnection) -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        nextID += 1
        connections[nextID] = connection
        return nextID
    }

    /// Starts (`true`) or stops delivering readability of `fd` for connection `id`.
    func watch(_ id: UInt64, fd: Int32, _ on: Bool) {
        var event = Epoll.Event(events: Epoll.readable, data: id)
        _ = withUnsafeMutablePointer(to: &event) { Epoll.ctl(epfd, on ? Epoll.add : Epoll.delete, fd, UnsafeMutableRawPointer($0)) }
    }

    /// Forgets connection `id` (its descriptor must no longer be watched).
    func deregister(_ id: UInt64) {
        lock.lock()
        let connection = connections.removeValue(forKey: id)
        lock.unlock()
        _ = connection  // released outside the lock
    }

    private func run() {
        let capacity = 64
        let events = UnsafeMutablePointer<Epoll.Event>.allocate(capacity: capacity)
        while true {
            let n = Epoll.wait(epfd, UnsafeMutableRawPointer(events), Int32(capacity), -1)
            if n < 0 {
                if errno == EINTR { continue }
                fatalError("HTTPEventLoop: epoll_wait failed, errno \(errno)")
            }
            for i in 0..<Int(n) {
                let id = events[i].data
                lock.lock()
                let connection = connections[id]
                lock.unlock()
                connection?.readableFromLoop()
            }
        }
    }
}

/// `<sys/epoll.h>`, which the Glibc module does not export: the three calls through `dlsym` with their C
/// signatures, and the kernel's `struct epoll_event` (packed on x86-64: 12 bytes, `data` at offset 4).
enum Epoll {
    #if arch(x86_64)
    /// `struct epoll_event` (`__attribute__((packed))` on x86-64).
    struct Event {
        private var words: (UInt32, UInt32, UInt32)
        init(events: UInt32, data: UInt64) { words = (events, UInt32(truncatingIfNeeded: data), UInt32(truncatingIfNeeded: data >> 32)) }
        /// The registration's user data.
        var data: UInt64 { UInt64(words.1) | UInt64(words.2) << 32 }
    }
    #else
    /// `struct epoll_event` (naturally aligned: 16 bytes).
    struct Event {
        private var events: UInt32
        private var pad: UInt32 = 0
        /// The registration's user data.
        var data: UInt64
        init(events: UInt32, data: UInt64) {
            self.events = events
            self.data = data
        }
    }
    #endif

    static let add: Int32 = 1  // EPOLL_CTL_ADD
    static let delete: Int32 = 2  // EPOLL_CTL_DEL
    static let readable: UInt32 = 0x001 | 0x2000  // EPOLLIN | EPOLLRDHUP

    private static func symbol<T>(_ name: String, as type: T.Type) -> T {
        guard let p = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else {  // RTLD_DEFAULT
            fatalError("HTTPEventLoop: \(name) not found in libc")
        }
        return unsafeBitCast(p, to: type)
    }

    /// `epoll_create1(flags)`.
    static let create = symbol("epoll_create1", as: (@convention(c) (Int32) -> Int32).self)
    /// `epoll_ctl(epfd, op, fd, event)`.
    static let ctl = symbol("epoll_ctl", as: (@convention(c) (Int32, Int32, Int32, UnsafeMutableRawPointer?) -> Int32).self)
    /// `epoll_wait(epfd, events, maxevents, timeout)`.
    static let wait = symbol("epoll_wait", as: (@convention(c) (Int32, UnsafeMutableRawPointer?, Int32, Int32) -> Int32).self)
}
