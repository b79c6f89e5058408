import CEpoll
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A thread waiting in `epoll_wait` for readable client sockets (an `HTTPServer` owns
/// `HTTPServerConfiguration.eventLoops` of them and assigns its connections round robin), the event loops
/// of nginx and swift-nio: a readable connection is served on the loop's own thread through `queue.sync`
/// on the connection's queue (which runs the block right there when the queue is idle), so reading,
/// parsing, a quick handler and the answer's `send` cost no thread hand-off. A libdispatch read source
/// instead wakes its manager thread, which wakes a worker: two context switches per request, about half
/// the CPU time of a health check.
///
/// Level-triggered; pausing a connection removes its descriptor (an idle `EPOLLHUP` is reported even with
/// no events asked for). Connections are looked up by a registration id, never by descriptor, so an event
/// that raced with a close can never reach the connection that reused the number. `stop()` wakes the
/// thread through an eventfd; the thread closes both descriptors as it exits, under the lock, so a late
/// `watch` finds the loop stopped instead of a descriptor number that may have been reused.
/// epoll itself goes through the `CEpoll` C module (the packed `struct epoll_event` stays in C).
final class HTTPEventLoop: @unchecked Sendable {
    /// Set on each loop thread (for tests: whether code runs on a loop thread). A process-wide key, but
    /// immutable once made: which loop a thread belongs to is not global state, only that it is one.
    private static let threadKey: pthread_key_t = {
        var key = pthread_key_t()
        // Not inside `precondition`: release builds are -Ounchecked, which drops its condition, call included
        // (the key stayed 0, another library's key).
        let rc = pthread_key_create(&key, nil)
        if rc != 0 { fatalError("HTTPEventLoop: pthread_key_create failed: \(rc)") }
        return key
    }()

    /// True on an event loop's thread (quick handlers run there).
    static var isLoopThread: Bool { pthread_getspecific(threadKey) != nil }

    private let index: Int
    /// The epoll set (closed once the loop stopped).
    let epfd: Int32
    /// The eventfd that `stop()` signals (closed once the loop stopped).
    let wakeupFD: Int32
    /// The wake-up's registration id: random with the top bit set (connections get 1, 2, ...), which
    /// also tells this set apart in `/proc/self/fdinfo` from one that reuses its number.
    let wakeupID = UInt64.random(in: (1 << 63)...UInt64.max)
    private let lock = NSLock()
    private var connections: [UInt64: HTTPConnection] = [:]
    private var nextID: UInt64 = 0
    /// `stop()` was called (the wake-up is signalled once).
    private var stopRequested = false
    /// The thread exited and closed `epfd` and `wakeupFD`.
    private var stopped = false
    private let exited = DispatchSemaphore(value: 0)

    /// Creates the epoll set and starts the loop's thread (`http1.loop<index>`); throws when the kernel
    /// refuses a descriptor (EMFILE, ENFILE, ENOMEM).
    init(index: Int) throws {
        self.index = index
        let ep = cepoll_create()
        guard ep >= 0 else { throw Self.failure("epoll_create1", index: index, errno: -ep) }
        let wakeup = cepoll_wakeup_create()
        guard wakeup >= 0 else {
            close(ep)
            throw Self.failure("eventfd", index: index, errno: -wakeup)
        }
        let added = cepoll_add_readable(ep, wakeup, wakeupID)
        guard added == 0 else {
            close(wakeup)
            close(ep)
            throw Self.failure("epoll_ctl(ADD) of its wake-up eventfd", index: index, errno: -added)
        }
        epfd = ep
        wakeupFD = wakeup
        let thread = Thread { [self] in
            // Named from inside: the kernel name (top, perf) is set only for the current thread.
            Thread.current.name = "http1.loop\(index)"
            pthread_setspecific(HTTPEventLoop.threadKey, UnsafeRawPointer(bitPattern: 1))
            run()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    private static func failure(_ call: String, index: Int, errno code: Int32) -> HTTPServerError {
        HTTPServerError("event loop \(index): \(call) failed: \(String(cString: strerror(code)))")
    }

    /// Adds `connection` (not yet watched: call `watch`) and returns its id.
    func register(_ connection: HTTPConnection) -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        nextID += 1
        connections[nextID] = connection
        return nextID
    }

    /// Starts delivering readability of `fd` to connection `id`: 0, or the errno of `epoll_ctl`
    /// (ENOMEM, ENOSPC past `fs.epoll.max_user_watches`; EBADF once the loop stopped).
    func watch(_ id: UInt64, fd: Int32) -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return EBADF }
        return -cepoll_add_readable(epfd, fd, id)
    }

    /// Stops delivering readability of `fd`: 0, or the errno of `epoll_ctl` (ENOENT: `fd` was not
    /// watched; EBADF once the loop stopped).
    func unwatch(fd: Int32) -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return EBADF }
        return -cepoll_delete(epfd, fd)
    }

    /// Forgets connection `id` (its descriptor must no longer be watched).
    func deregister(_ id: UInt64) {
        lock.lock()
        let connection = connections.removeValue(forKey: id)
        lock.unlock()
        _ = connection  // released outside the lock
    }

    /// Asks the thread to exit (returns at once; see `waitUntilStopped`). Idempotent.
    func stop() {
        lock.lock()
        defer { lock.unlock() }
        guard !stopRequested, !stopped else { return }
        stopRequested = true
        let rc = cepoll_wakeup_signal(wakeupFD)
        // Only EBADF or EINVAL, both meaning `wakeupFD` is not the eventfd made in `init`: a bug.
        precondition(rc == 0, "HTTPEventLoop \(index): eventfd write failed: \(String(cString: strerror(-rc)))")
    }

    /// Blocks until the thread left its loop and closed its descriptors (after `stop()`). Never call it
    /// on a loop thread, or on a connection's queue (the loop may be waiting in `queue.sync` on it).
    func waitUntilStopped() {
        exited.wait()
        exited.signal()  // for any other waiter
    }

    private func run() {
        let capacity: Int32 = 64
        let ids = UnsafeMutablePointer<UInt64>.allocate(capacity: Int(capacity))
        defer { ids.deallocate() }
        events: while true {
            let n = cepoll_wait(epfd, ids, capacity, -1)  // EINTR is retried inside
            // EBADF, EFAULT, EINVAL: the set or the buffer is not the one made here, a bug that retrying
            // would turn into a spinning thread while no connection of this loop is served.
            precondition(n >= 0, "HTTPEventLoop \(index): epoll_wait failed: \(String(cString: strerror(-n)))")
            for i in 0..<Int(n) {
                let id = ids[i]
                if id == wakeupID { break events }
                lock.lock()
                let connection = connections[id]
                lock.unlock()
                connection?.readableFromLoop()
            }
        }
        lock.lock()
        stopped = true
        close(epfd)
        close(wakeupFD)
        // Empty after a graceful shutdown; else the server is closing them (see `HTTPServer.deinit`).
        let rest = connections
        connections = [:]
        lock.unlock()
        _ = rest  // released outside the lock
        exited.signal()
    }
}
