import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One client connection: a non-blocking socket (optionally TLS) driven by an `HTTPEventLoop` (reads),
/// a Dispatch write source (while the socket is full) and one timer, all serialised on one queue,
/// performing the actions of an `HTTPConnectionStateMachine`.
///
/// Threads: everything but the output queue runs on `queue` (reads through `queue.sync` from the loop's
/// thread). Response writers append to the output
/// queue from handler threads (under `outputLock`) and schedule a flush on `queue`. Quick requests
/// (`HTTPHandler.isQuick`) are handled inline on `queue`: their `finish()` is noted and acted on once
/// the actions in progress are done (no queue hop, no reentrant state-machine call).
/// Lifetime: the server's table and the event loop (until `closeNow`) hold the connection; source handlers
/// hold it weakly; the descriptor is closed once, after it left the epoll set and the write source's cancel
/// handler ran (libdispatch's rule for closing a source's fd).
final class HTTPConnection: @unchecked Sendable {
    /// `afterFlush`: close in stages once the queued output is written; `lingering`: the FIN is sent and
    /// input is read and dropped until the client's own end (see `startLinger`).
    private enum CloseMode { case open, afterFlush, lingering }

    let fd: Int32
    let queue: DispatchQueue
    private let handlerQueue: DispatchQueue
    private let handler: any HTTPHandler
    let limits: HTTPLimits
    let serverName: String
    private var machine: HTTPConnectionStateMachine
    private var tls: TLSSession?
    private var tlsUnavailable = false
    private let onClosed: @Sendable (HTTPConnection) -> Void

    /// Delivers readability on its thread (through `queue.sync`); `loopID` is 0 until registered.
    private let loop: HTTPEventLoop
    /// The server's `Date` header clock.
    let date: HTTPDate
    private var loopID: UInt64 = 0
    private var writeSource: DispatchSourceWrite?
    private var timer: DispatchSourceTimer?
    private var readSuspended = true
    private var writeSuspended = true
    private var sourcesToCancel = 0
    private var closed = false
    private var closeMode = CloseMode.open
    private var lingerDeadline: Double?
    private var writeBlockedSince: Double?
    private var writeWaitsForRead = false
    private var timerDeadline: Double?
    private var draining = false
    /// The client half-closed: the descriptor is never watched for reading again (EOF stays readable).
    private var inputEnded = false
    /// While a request is in flight after a half-close: when to look again whether the client went away
    /// altogether, and the interval after that (see `checkPeer`).
    private var peerCheckAt: Double?
    private var peerCheckInterval = 0.05
    private let readBuffer = UnsafeMutableRawPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    /// The response in progress (weak: a writer released without `finish()` finishes itself in deinit).
    private weak var currentWriter: HTTPResponseWriter?
    /// Nesting depth of `perform` (queue-confined).
    private var performDepth = 0
    /// An inline (quick) handler is running on `queue`.
    private var handlingInline = false
    /// `finish()` was called by an inline handler: its keep-alive, acted on when `perform` unwinds.
    private var inlineFinish: Bool?
    /// Marks `queue` so calls from an inline handler can tell they run on it.
    private static let queueKey = DispatchSpecificKey<ObjectIdentifier>()

    // Output queue, shared with writers on other threads.
    private let outputLock = NSCondition()
    private var chunks: [[UInt8]] = []
    private var chunkOffset = 0
    private var queuedBytes = 0
    private var outputClosed = false
    private var flushScheduled = false

    init(fd: Int32, remoteAddress: String, tls: TLSContext?, loop: HTTPEventLoop, date: HTTPDate, limits: HTTPLimits,
         serverName: String, handler: any HTTPHandler, onClosed: @escaping @Sendable (HTTPConnection) -> Void) {
        self.fd = fd
        self.loop = loop
        self.date = date
        self.limits = limits
        self.serverName = serverName
        self.handler = handler
        self.onClosed = onClosed
        queue = DispatchQueue(label: "http1.connection")
        // A serial queue per connection (overcommitting in libdispatch): a handler that blocks for
        // minutes holds one thread and never starves other connections' handlers.
        handlerQueue = DispatchQueue(label: "http1.handler")
        machine = HTTPConnectionStateMachine(limits: limits, remoteAddress: remoteAddress, now: uptimeSeconds())
        if let tls {
            self.tls = TLSSession(context: tls, fd: fd)
            // SSL_new failed (out of memory): never fall back to cleartext on the TLS port.
            tlsUnavailable = self.tls == nil
        }
        queue.setSpecific(key: Self.queueKey, value: ObjectIdentifier(self))
    }

    deinit { readBuffer.deallocate() }

    /// True when the caller runs on this connection's queue (an inline handler).
    private var isOnQueue: Bool {
        DispatchQueue.getSpecific(key: Self.queueKey) == ObjectIdentifier(self)
    }

    /// Creates the sources and starts reading.
    func start() {
        queue.async { [self] in
            // Drained (and closed) before it started: a connection accepted just as shutdown began.
            guard !closed else { return }
            if tlsUnavailable {
                closeNow()
                return
            }
            loopID = loop.register(self)
            let write = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
            let timer = DispatchSource.makeTimerSource(queue: queue)
            write.setEventHandler { [weak self] in self?.handleWritable() }
            timer.setEventHandler { [weak self] in self?.handleTimer() }
            sourcesToCancel = 1
            write.setCancelHandler { [self] in sourceCancelled() }
            writeSource = write
            self.timer = timer
            timer.schedule(deadline: .distantFuture)
            timer.resume()
            resumeReading()
            updateTimer()
        }
    }

    // MARK: - Called from other threads

    /// Appends response bytes. `flush` schedules writing them; `wait` blocks the caller while more than
    /// `writeHighWaterMark` bytes are unsent (never pass it on `queue`). Throws once the connection closed.
    func enqueue(_ bytes: [UInt8], flush: Bool, wait: Bool) throws {
        outputLock.lock()
        defer { outputLock.unlock() }
        if outputClosed { throw HTTPWriteError.closed }
        if !bytes.isEmpty {
            chunks.append(bytes)
            queuedBytes += bytes.count
        }
        if flush && !flushScheduled && queuedBytes > 0 {
            flushScheduled = true
            queue.async { [self] in flushOutput() }
        }
        // Never wait on `queue` (an inline handler): only `queue` itself can drain the output.
        guard wait, !isOnQueue else { return }
        while queuedBytes > limits.writeHighWaterMark && !outputClosed {
            _ = outputLock.wait(until: Date(timeIntervalSinceNow: 1))
        }
        if outputClosed { throw HTTPWriteError.closed }
    }

    /// Whether writes fail because the connection closed.
    var isOutputClosed: Bool {
        outputLock.withLock { outputClosed }
    }

    /// Response bytes queued and not yet written to the socket.
    var pendingOutputBytes: Int {
        outputLock.withLock { queuedBytes }
    }

    /// The current response called `finish()`.
    func responseFinished(keepAlive: Bool) {
        if isOnQueue && handlingInline {
            // Finished by a quick handler still running inside `perform`: act once it unwinds.
            inlineFinish = keepAlive
            return
        }
        queue.async { [self] in
            guard !closed else { return }
            flushOutput()
            guard !closed else { return }
            perform(machine.responseFinished(keepAlive: keepAlive, now: uptimeSeconds()))
        }
    }

    /// The current response cannot be completed (writer released mid-body): drop the connection.
    func abort() {
        queue.async { [self] in closeNow() }
    }

    /// Graceful shutdown: close if idle, else after the response in progress.
    func drain() {
        queue.async { [self] in
            draining = true
            currentWriter?.requestConnectionClose()
            perform(machine.drain())
        }
    }

    /// End of the shutdown deadline: drop the connection whatever it is doing.
    func forceClose() {
        queue.async { [self] in closeNow() }
    }

    // MARK: - Reading

    private func handleReadable() {
        guard !closed else { return }
        if let tls, !tls.handshakeDone {
            switch tls.handshake() {
            case .done: break
            case .wantRead: return
            case .wantWrite:
                resumeWriting()
                return
            case .closed:
                closeNow()
                return
            }
        }
        if closeMode == .lingering {
            discardInput()
            return
        }
        // Plain sockets: one read per event (level-triggered, fair between connections). TLS: read until
        // OpenSSL needs the socket again, since decrypted bytes it buffers raise no event.
        repeat {
            let result: TLSSession.IOResult
            var recvEOF = false
            if let tls {
                result = tls.read(readBuffer, 64 * 1024)
            } else {
                let n = recv(fd, readBuffer, 64 * 1024, 0)
                if n > 0 {
                    result = .done(n)
                } else if n == 0 {
                    result = .closed
                    recvEOF = true
                } else {
                    result = errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? .wantRead : .closed
                }
            }
            switch result {
            case .done(let n):
                perform(machine.received(UnsafeRawBufferPointer(start: readBuffer, count: n), now: uptimeSeconds()))
            case .wantRead:
                break
            case .wantWrite:
                writeWaitsForRead = false
                resumeWriting()
            case .closed:
                // Whatever remains to write, input is over: an end of file stays readable (level-triggered)
                // and would spin this loop until the connection closes; a close after it needs no lingering.
                inputEnded = true
                if tls == nil && recvEOF {
                    endOfInput()
                } else {
                    perform(machine.receivedEOF())
                }
                if !closed { pauseReading() }
            }
            if tls == nil || result == .wantRead || result == .wantWrite || result == .closed { break }
        } while !closed && !readSuspended && closeMode == .open
        if writeWaitsForRead {
            writeWaitsForRead = false
            flushOutput()
        }
    }

    /// `recv` returned 0: the client sent FIN. That is what both a client that went away and one that only
    /// closed its sending side (`shutdown(SHUT_WR)`, `nc -N`) look like. With an answer owed and its head
    /// not written yet, a `100 Continue` interim response (which every HTTP/1.1 client must skip, RFC 9110
    /// §15.2) tells them apart: a socket that is closed for reading answers data with a reset (RFC 1122
    /// §4.2.2.13; Linux does so for `close` and `SHUT_RD`), seen by `checkPeer`. An answer that is complete
    /// (`respond` or `finish` called, its `responseFinished` hop maybe still queued, its writer maybe
    /// released) is written out either way. An answer already streaming goes on to its end: its streaming
    /// probe (an SSE comment, `HTTPResponseWriter.setStreamingProbe`) tells a client that went away while
    /// the stream waits (an event stream queued behind other work), else its own next write meets the reset.
    /// Only an HTTP/1.0 answer before its head can carry no probe: that client is taken as gone.
    private func endOfInput() {
        if machine.inFlight {
            if (currentWriter?.sendInterimProbe() ?? .answerComplete) == .unavailable {
                perform(machine.receivedEOF())
                return
            }
            peerCheckInterval = 0.05
            peerCheckAt = uptimeSeconds() + peerCheckInterval
        }
        perform(machine.receivedHalfClose(now: uptimeSeconds()))
    }

    /// After a half-close with a request in flight: a pending socket error means the probe was reset
    /// (the client is gone: cancel); else probe again, backing off, while a probe can be sent (the answer
    /// has not started, or it streams with a streaming probe).
    private func checkPeer(now: Double) {
        peerCheckAt = nil
        guard machine.inFlight, !closed else { return }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error != 0 {
            perform(machine.receivedEOF())
            return
        }
        // A reset answers the first probe within a round trip; later probes (backing off to one per 5 s)
        // catch a client that closes altogether after its half-close. An answer streaming without a probe
        // learns of a reset from its own writes instead.
        peerCheckInterval = min(peerCheckInterval * 2, 5)
        if currentWriter?.sendInterimProbe() == .sent { peerCheckAt = now + peerCheckInterval }
    }

    /// While lingering: read and drop input until EOF or the linger deadline.
    private func discardInput() {
        for _ in 0..<16 {
            if let tls {
                switch tls.read(readBuffer, 64 * 1024) {
                case .done: continue
                case .wantRead, .wantWrite: return
                case .closed:
                    closeNow()
                    return
                }
            }
            let n = recv(fd, readBuffer, 64 * 1024, 0)
            if n > 0 { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return }
            closeNow()
            return
        }
    }

    /// The event loop saw the socket readable (on the loop's thread).
    func readableFromLoop() {
        queue.sync {
            // An event may race with a pause: reading stays paused.
            guard !readSuspended else { return }
            handleReadable()
        }
    }

    private func pauseReading() {
        guard !readSuspended, loopID != 0 else { return }
        readSuspended = true
        let error = loop.unwatch(fd: fd)
        // ENOENT (the descriptor is not in the set) is what pausing wants. Anything else (EBADF: the loop
        // stopped) may leave the level-triggered readiness reported to a connection that ignores it, a
        // spinning loop thread: close, which takes the descriptor out of the set.
        if error != 0 && error != ENOENT { closeNow() }
    }

    private func resumeReading() {
        guard readSuspended, loopID != 0, !closed, !inputEnded else { return }
        let error = loop.watch(loopID, fd: fd)
        guard error == 0 else {
            // ENOMEM, ENOSPC (past `fs.epoll.max_user_watches`) or a stopped loop: unwatched, the
            // connection would never be read again and wait for its idle timeout. Close it now: the
            // client sees the close at once (HTTP1 has no logger; a failed start of the set itself
            // throws from `HTTPServer.start`).
            closeNow()
            return
        }
        readSuspended = false
        if tls != nil {
            // Bytes OpenSSL already decrypted raise no socket event.
            queue.async { [weak self] in self?.handleReadable() }
        }
    }

    // MARK: - Writing

    private func handleWritable() {
        guard !closed else { return }
        if let tls, !tls.handshakeDone {
            suspendWriting()
            handleReadable()
            return
        }
        flushOutput()
    }

    private func resumeWriting() {
        guard writeSuspended, let writeSource, !closed else { return }
        writeSuspended = false
        writeSource.resume()
    }

    private func suspendWriting() {
        guard !writeSuspended, let writeSource else { return }
        writeSuspended = true
        writeSource.suspend()
    }

    /// Writes queued output until the socket would block, then waits for writability.
    private func flushOutput() {
        outputLock.lock()
        flushScheduled = false
        outputLock.unlock()
        guard !closed, tls?.handshakeDone ?? true else { return }
        while true {
            outputLock.lock()
            if chunks.isEmpty {
                outputLock.unlock()
                break
            }
            // Coalesce up to 64 KB (one syscall for a small head + body); a TLS retry repeats its length.
            let limit = tls.map { $0.pendingWriteLength > 0 ? $0.pendingWriteLength : 16 * 1024 } ?? 64 * 1024
            var batch: [UInt8] = []
            batch.reserveCapacity(min(queuedBytes, limit))
            var offset = chunkOffset
            for chunk in chunks {
                let take = min(chunk.count - offset, limit - batch.count)
                batch.append(contentsOf: chunk[offset..<(offset + take)])
                offset = 0
                if batch.count == limit { break }
            }
            outputLock.unlock()

            let result = batch.withUnsafeBytes { sendBytes($0) }
            switch result {
            case .done(let n):
                consumeOutput(n)
                writeBlockedSince = nil
            case .wantWrite, .wantRead:
                tls?.pendingWriteLength = batch.count
                if writeBlockedSince == nil { writeBlockedSince = uptimeSeconds() }
                if result == .wantRead { writeWaitsForRead = true } else { resumeWriting() }
                if closeMode == .open { reportOutputLevel() }
                updateTimer()
                return
            case .closed:
                perform(machine.receivedEOF())
                closeNow()
                return
            }
        }
        suspendWriting()
        writeBlockedSince = nil
        switch closeMode {
        case .afterFlush, .lingering: startLinger()
        case .open:
            reportOutputLevel()
            updateTimer()
        }
    }

    /// Tells the state machine how much output waits (it holds parsing above the high-water mark and
    /// starts the idle clock at zero).
    private func reportOutputLevel() {
        guard !closed else { return }
        let actions = machine.outputLevel(pendingOutputBytes, now: uptimeSeconds())
        if !actions.isEmpty { perform(actions) }
    }

    private func sendBytes(_ bytes: UnsafeRawBufferPointer) -> TLSSession.IOResult {
        guard let base = bytes.baseAddress else { return .done(0) }
        if let tls {
            let r = tls.write(base, bytes.count)
            if case .done = r { tls.pendingWriteLength = 0 }
            return r
        }
        while true {
            let n = send(fd, base, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return .done(n) }
            if errno == EINTR { continue }
            return errno == EAGAIN || errno == EWOULDBLOCK ? .wantWrite : .closed
        }
    }

    private func consumeOutput(_ count: Int) {
        outputLock.lock()
        var n = count
        queuedBytes -= count
        while n > 0, let first = chunks.first {
            let available = first.count - chunkOffset
            if n >= available {
                chunks.removeFirst()
                chunkOffset = 0
                n -= available
            } else {
                chunkOffset += n
                n = 0
            }
        }
        outputLock.broadcast()
        outputLock.unlock()
    }

    /// Bytes queued on the connection's own queue (100 Continue, error answers).
    private func enqueueLocal(_ bytes: [UInt8]) {
        try? enqueue(bytes, flush: false, wait: false)
        flushOutput()
    }

    // MARK: - Actions

    private func perform(_ actions: [HTTPConnectionStateMachine.Action]) {
        performDepth += 1
        performActions(actions)
        performDepth -= 1
        // A quick response finished inline: flush it and move on (a pipelined quick request is handled
        // by the next iteration, not by recursion).
        while performDepth == 0, let keepAlive = inlineFinish {
            inlineFinish = nil
            guard !closed else { break }
            flushOutput()
            guard !closed else { break }
            performDepth = 1
            performActions(machine.responseFinished(keepAlive: keepAlive, now: uptimeSeconds()))
            performDepth = 0
        }
        updateTimer()
    }

    private func performActions(_ actions: [HTTPConnectionStateMachine.Action]) {
        for action in actions {
            if closed { return }
            switch action {
            case .dispatch(let request):
                let writer = HTTPResponseWriter(connection: self, request: request)
                currentWriter = writer
                if draining { writer.requestConnectionClose() }
                let handler = self.handler
                if handler.isQuick(request) {
                    handlingInline = true
                    handler.handle(request, writer)
                    handlingInline = false
                } else {
                    handlerQueue.async { handler.handle(request, writer) }
                }
            case .sendContinue(let head):
                if let error = handler.checkExpectation(head) {
                    performActions(machine.expectationRejected(error))
                } else {
                    enqueueLocal(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
                }
            case .sendError(let error):
                if let tls, !tls.handshakeDone {
                    closeNow()
                    return
                }
                closeMode = .lingering
                enqueueLocal(errorResponse(error))
            case .closeAfterFlush:
                closeMode = .afterFlush
                flushOutput()
            case .close:
                closeNow()
            case .peerClosed:
                closeOutput()
            case .pauseReading:
                pauseReading()
            case .resumeReading:
                resumeReading()
            case .endOfInput:
                pauseReading()
                inputEnded = true
            }
        }
    }

    private func errorResponse(_ error: HTTPError) -> [UInt8] {
        let body = error.jsonBody
        let head = "HTTP/1.1 \(error.status) \(HTTPStatus.reason(error.status))\r\n"
            + "Date: \(date.now())\r\nServer: \(serverName)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + body
    }

    // MARK: - Timeouts

    private func updateTimer() {
        guard !closed, let timer else { return }
        var deadline = closeMode == .open ? machine.readDeadline : nil
        if let since = writeBlockedSince { deadline = min(deadline ?? .infinity, since + limits.writeTimeout) }
        if let linger = lingerDeadline { deadline = min(deadline ?? .infinity, linger) }
        if let check = peerCheckAt { deadline = min(deadline ?? .infinity, check) }
        // Re-arm only for an earlier deadline: a timer firing early re-checks and re-arms (saves a
        // reschedule per request, as the idle deadline moves with every response).
        // A stale earlier timer is left armed too: when it fires, nothing has expired and it re-arms.
        guard let deadline else { return }
        if let current = timerDeadline, deadline >= current { return }
        timerDeadline = deadline
        timer.schedule(deadline: DispatchTime(uptimeNanoseconds: UInt64(max(deadline, 0) * 1e9)), leeway: .milliseconds(10))
    }

    private func handleTimer() {
        guard !closed else { return }
        timerDeadline = nil
        let now = uptimeSeconds()
        if let linger = lingerDeadline, now >= linger {
            closeNow()
            return
        }
        if let since = writeBlockedSince, now >= since + limits.writeTimeout {
            // The client stopped reading: cancel the response in progress.
            closeNow()
            return
        }
        if let check = peerCheckAt, now >= check {
            checkPeer(now: now)
            if closed { return }
        }
        if closeMode == .open {
            perform(machine.deadlinePassed(now: now))
        }
        updateTimer()
    }

    // MARK: - Closing

    /// The close in stages of RFC 9112 §9.6, after every answer (or error) byte was handed to the kernel:
    /// send the FIN, then read and drop input until the client's FIN or `lingerTimeout`. Closing at once
    /// with input unread, or input arriving after the close (a request the client pipelined before it saw
    /// `Connection: close`), makes the kernel reset the connection and drop the answer bytes it still holds.
    private func startLinger() {
        closeMode = .lingering
        guard lingerDeadline == nil else { return }
        // The client already ended its input: nothing left to drain before closing.
        if inputEnded {
            closeNow()
            return
        }
        tls?.shutdown()
        shutdown(fd, Int32(SHUT_WR))
        lingerDeadline = uptimeSeconds() + limits.lingerTimeout
        resumeReading()
        updateTimer()
    }

    /// Fails pending and future writes, wakes blocked writers and fires the response's `onClose`.
    private func closeOutput() {
        outputLock.lock()
        outputClosed = true
        chunks = []
        chunkOffset = 0
        queuedBytes = 0
        outputLock.broadcast()
        outputLock.unlock()
        currentWriter?.connectionClosed()
    }

    private func closeNow() {
        guard !closed else { return }
        closed = true
        closeOutput()
        if closeMode != .lingering { tls?.shutdown() }
        timer?.cancel()
        // Stop watching (the descriptor stays open until the write source's cancel handler ran).
        if loopID != 0 {
            // Result ignored: the descriptor leaves the set when it is closed anyway, and until then
            // the id is deregistered, so a stray event reaches nobody.
            if !readSuspended { _ = loop.unwatch(fd: fd) }
            loop.deregister(loopID)
        }
        readSuspended = true
        // The write source must be resumed for its cancel handler to run.
        if let writeSource {
            writeSource.cancel()
            if writeSuspended { writeSource.resume() }
        }
        writeSuspended = false
        if writeSource == nil { finishClose() }
    }

    private func sourceCancelled() {
        sourcesToCancel -= 1
        if sourcesToCancel == 0 { finishClose() }
    }

    private func finishClose() {
        close(fd)
        writeSource = nil
        timer = nil
        tls = nil
        onClosed(self)
    }
}
