import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A hand-rolled HTTP/1.1 server on POSIX sockets and Dispatch (see ARCHITECTURE.md): accepts
/// connections, enforces `HTTPLimits`, and hands each complete request to the `HTTPHandler`.
/// It owns everything it runs on: `configuration.eventLoops` event loops (threads and epoll sets, made
/// by `start()`, assigned round robin, stopped once `shutdown` has closed every connection) and the
/// `Date` header's clock. Dropped without `shutdown`, it closes its connections and stops its loops.
///
/// ```swift
/// let server = HTTPServer(configuration: .init(host: "127.0.0.1", port: 8080), handler: MyRoutes())
/// try server.start()
/// // on SIGTERM:
/// server.shutdown(deadline: 30) { exit(0) }
/// ```
public final class HTTPServer: @unchecked Sendable {
    /// The configuration given at creation.
    public let configuration: HTTPServerConfiguration
    private let handler: any HTTPHandler
    private let acceptQueue = DispatchQueue(label: "http1.accept")
    private let lock = NSLock()
    private var listenFD: Int32 = -1
    private var acceptSource: DispatchSourceRead?
    private var acceptSuspended = false
    private var tlsContext: TLSContext?
    private var boundPort = 0
    private var connections: [ObjectIdentifier: HTTPConnection] = [:]
    /// Made by `start()`; kept after they stopped (stopping is idempotent, waiting too).
    private var loops: [HTTPEventLoop] = []
    /// Round robin over `loops` (accept queue only).
    private var nextLoop = 0
    /// The `Date` header, formatted once per second for all of this server's connections.
    private let date = HTTPDate()
    private var draining = false
    private var shutdownCompletions: [@Sendable () -> Void] = []

    /// A server that will answer requests with `handler` once started.
    public init(configuration: HTTPServerConfiguration, handler: some HTTPHandler) {
        self.configuration = configuration
        self.handler = handler
    }

    deinit {
        // Stop accepting if `shutdown` was never called (closes the listening socket).
        if let source = acceptSource {
            source.cancel()
            if acceptSuspended { source.resume() }
        }
        // Nothing else would close them or end the loops' threads (connections hold the server weakly).
        for connection in connections.values { connection.forceClose() }
        for loop in loops { loop.stop() }
    }

    /// The bound port (the actual one when 0 was configured); 0 before `start()`.
    public var port: Int {
        lock.withLock { boundPort }
    }

    /// Open client connections.
    public var connectionCount: Int {
        lock.withLock { connections.count }
    }

    /// The event loops made by `start()` (for tests: their descriptors).
    var eventLoops: [HTTPEventLoop] {
        lock.withLock { loops }
    }

    /// True after `shutdown` was called: no new connections, open ones close after their current request.
    public var isDraining: Bool {
        lock.withLock { draining }
    }

    /// Validates the configuration, loads the TLS certificate (if configured), binds, listens, starts the
    /// event loops and starts accepting. Call it once.
    /// Ignores SIGPIPE for the process (writes to closed sockets must fail with EPIPE, not kill it).
    public func start() throws {
        try configuration.validate()
        signal(SIGPIPE, SIG_IGN)
        let tls = try configuration.tls.map { try TLSContext($0) }
        let fd = try Socket.listen(host: configuration.host, port: configuration.port, backlog: Int32(clamping: configuration.backlog))
        var started: [HTTPEventLoop] = []
        do {
            for index in 0..<configuration.eventLoops { started.append(try HTTPEventLoop(index: index)) }
        } catch {
            for loop in started { loop.stop() }
            close(fd)
            throw error
        }
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: acceptQueue)
        lock.lock()
        loops = started
        listenFD = fd
        tlsContext = tls
        boundPort = Socket.localPort(fd)
        acceptSource = source
        lock.unlock()
        source.setEventHandler { [weak self] in self?.acceptConnections() }
        source.setCancelHandler { close(fd) }
        source.resume()
    }

    /// Graceful shutdown: stops accepting at once, closes idle connections, lets requests in progress
    /// finish for up to `deadline` seconds, then drops what remains. `completion` runs (on an arbitrary
    /// thread) once every connection is closed and the event loops' threads have exited.
    public func shutdown(deadline: Double, completion: @escaping @Sendable () -> Void = {}) {
        lock.lock()
        let first = !draining
        draining = true
        shutdownCompletions.append(completion)
        let open = Array(connections.values)
        lock.unlock()
        if first {
            acceptQueue.async { [self] in
                lock.lock()
                let source = acceptSource
                acceptSource = nil
                lock.unlock()
                if let source {
                    source.cancel()
                    if acceptSuspended { source.resume() }
                }
            }
            for connection in open { connection.drain() }
            acceptQueue.asyncAfter(deadline: .now() + max(deadline, 0)) { [self] in
                lock.lock()
                let rest = Array(connections.values)
                lock.unlock()
                for connection in rest { connection.forceClose() }
            }
        }
        completeShutdownIfDone()
    }

    // MARK: - Accepting

    private func acceptConnections() {
        for _ in 0..<64 {
            guard let (fd, peer) = Socket.accept(listenFD) else {
                switch errno {
                case EINTR, ECONNABORTED: continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors: stop accepting briefly instead of spinning on a readable socket.
                    pauseAccepting(seconds: 0.1)
                    return
                default: return
                }
            }
            // Checked and added under one lock: `shutdown` either sees this connection (and drains it)
            // or this sees `draining` (and refuses it); never neither.
            lock.lock()
            let refuse = draining ? 0 : (connections.count >= configuration.limits.maxConnections ? 503 : nil)
            var accepted: HTTPConnection?
            if refuse == nil {
                let loop = loops[nextLoop]
                nextLoop = (nextLoop + 1) % loops.count
                let connection = HTTPConnection(
                    fd: fd, remoteAddress: peer, tls: tlsContext, loop: loop, date: date,
                    limits: configuration.limits, serverName: configuration.serverName, handler: handler,
                    onClosed: { [weak self] connection in self?.connectionClosed(connection) })
                connections[ObjectIdentifier(connection)] = connection
                accepted = connection
            }
            lock.unlock()
            guard let connection = accepted else {
                reject(fd, status: refuse ?? 0)
                continue
            }
            connection.start()
        }
    }

    private func pauseAccepting(seconds: Double) {
        guard let source = acceptSource, !acceptSuspended else { return }
        acceptSuspended = true
        source.suspend()
        acceptQueue.asyncAfter(deadline: .now() + seconds) { [self] in
            guard acceptSuspended, let source = acceptSource else { return }
            acceptSuspended = false
            source.resume()
        }
    }

    /// Over `maxConnections`: a fixed 503 (plain HTTP only; a TLS client just sees the close).
    private func reject(_ fd: Int32, status: Int) {
        if status == 503 && tlsContext == nil {
            let error = HTTPError(status: 503, code: "too_many_connections", message: "the server is at its connection limit; retry later")
            let body = error.jsonBody
            let head = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n"
                + "Retry-After: 1\r\nConnection: close\r\n\r\n"
            let bytes = Array(head.utf8) + body
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            Glibc.shutdown(fd, Int32(SHUT_WR))
        }
        close(fd)
    }

    private func connectionClosed(_ connection: HTTPConnection) {
        lock.lock()
        connections.removeValue(forKey: ObjectIdentifier(connection))
        lock.unlock()
        completeShutdownIfDone()
    }

    private func completeShutdownIfDone() {
        lock.lock()
        guard draining, connections.isEmpty, !shutdownCompletions.isEmpty else {
            lock.unlock()
            return
        }
        let completions = shutdownCompletions
        shutdownCompletions = []
        let loops = self.loops
        lock.unlock()
        // Every connection has left its loop: stop them, and finish once their threads are gone. Never
        // waited for here: this may run on a loop thread (a connection closed while read inline) or on a
        // connection's queue, which a loop may be waiting on in `queue.sync`.
        for loop in loops { loop.stop() }
        DispatchQueue.global().async {
            for loop in loops { loop.waitUntilStopped() }
            for completion in completions { completion() }
        }
    }
}
