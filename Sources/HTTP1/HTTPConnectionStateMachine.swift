/// The protocol logic of one connection as a value type (the swift-nio `HTTPServerPipelineHandler`
/// idea): events in (bytes, end of input, response finished, deadline, drain), actions out. It owns the
/// parser, queues pipelined requests behind the one being answered, and decides keep-alive, 100-continue,
/// error answers and the read deadline. `HTTPConnection` performs the actions on sockets; tests drive it directly.
struct HTTPConnectionStateMachine {
    /// What the connection must do, in order.
    enum Action: Equatable {
        /// Hand the request to the handler (its `keepAlive` is final: the response announces it).
        case dispatch(HTTPRequest)
        /// Ask the handler's `checkExpectation`; answer `100 Continue` if it agrees, else call `expectationRejected`.
        case sendContinue(HTTPRequestHead)
        /// Answer this error with `Connection: close`, then close (lingering, so the client reads it).
        case sendError(HTTPError)
        /// Close once the queued output is written.
        case closeAfterFlush
        /// Close now, dropping queued output.
        case close
        /// The client went away while a response was in progress: cancel it (fire `onClose`).
        case peerClosed
        /// Stop reading (the pipeline queue is full).
        case pauseReading
        /// Read again.
        case resumeReading
    }

    private enum Queued: Equatable {
        case request(HTTPRequest)
        case error(HTTPError)
    }

    let limits: HTTPLimits
    let remoteAddress: String
    private(set) var parser: HTTPParser
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var queue: [Queued] = []
    private(set) var inFlight = false
    private var continueOwed = false
    private(set) var requestsStarted = 0
    private(set) var isDraining = false
    private(set) var readingPaused = false
    /// No more input is parsed (an error is queued, or the connection is closing).
    private var stoppedReading = false
    /// The machine has issued (or will issue, after the queue) its final close.
    private(set) var isClosed = false
    private var connectedAt: Double
    private var headStartedAt: Double?
    private var bodyProgressAt: Double = 0
    private var idleSince: Double

    init(limits: HTTPLimits, remoteAddress: String, now: Double) {
        self.limits = limits
        self.remoteAddress = remoteAddress
        parser = HTTPParser(limits: limits)
        connectedAt = now
        idleSince = now
    }

    /// When the connection must be timed out if nothing changes (uptime seconds), or nil:
    /// a request head must arrive within `headerTimeout` of its first byte (of the accept, for the first
    /// request; this also bounds a TLS handshake); a body may not stall `bodyTimeout` while nothing is
    /// being answered; an idle keep-alive connection lives `idleTimeout`. No read deadline applies while
    /// a response is in progress (the handler may take minutes); the writer has its own stall timeout.
    var readDeadline: Double? {
        if isClosed { return nil }
        if head != nil {
            if inFlight || continueOwed || stoppedReading { return nil }
            return bodyProgressAt + limits.bodyTimeout
        }
        if let started = headStartedAt, !stoppedReading, !readingPaused { return started + limits.headerTimeout }
        if inFlight || !queue.isEmpty { return nil }
        if requestsStarted == 0 { return connectedAt + limits.headerTimeout }
        return idleSince + limits.idleTimeout
    }

    /// Bytes arrived.
    mutating func received(_ bytes: UnsafeRawBufferPointer, now: Double) -> [Action] {
        guard !isClosed, !stoppedReading, !bytes.isEmpty else { return [] }
        if head == nil, headStartedAt == nil { headStartedAt = now }
        if head != nil { bodyProgressAt = now }
        parser.append(bytes)
        return pump(now: now)
    }

    /// Bytes arrived.
    mutating func received(_ bytes: [UInt8], now: Double) -> [Action] {
        bytes.withUnsafeBytes { received($0, now: now) }
    }

    /// The client closed its side or the connection failed: stop, cancelling a response in progress.
    mutating func receivedEOF() -> [Action] {
        guard !isClosed else { return [] }
        isClosed = true
        return inFlight ? [.peerClosed, .close] : [.close]
    }

    /// The handler called `finish()` on the current response; `keepAlive` is false when the response
    /// said `Connection: close` or could not be delimited.
    mutating func responseFinished(keepAlive: Bool, now: Double) -> [Action] {
        guard inFlight else { return [] }
        inFlight = false
        idleSince = now
        if !keepAlive {
            isClosed = true
            return [.closeAfterFlush]
        }
        var actions: [Action] = []
        if !queue.isEmpty {
            actions += dispatchNext()
        } else if isDraining && head == nil && headStartedAt == nil {
            isClosed = true
            return [.closeAfterFlush]
        } else if continueOwed, let h = head {
            continueOwed = false
            bodyProgressAt = now
            actions.append(.sendContinue(h))
        }
        if readingPaused && !stoppedReading && queue.count < limits.maxPipelinedRequests {
            readingPaused = false
            actions.append(.resumeReading)
        }
        return actions + pump(now: now)
    }

    /// The handler refused the body announced with `Expect: 100-continue`.
    mutating func expectationRejected(_ error: HTTPError) -> [Action] {
        guard !isClosed else { return [] }
        stoppedReading = true
        isClosed = true
        return [.sendError(error)]
    }

    /// The read deadline may have passed: 408 while a head or body is being received, else a quiet close.
    mutating func deadlinePassed(now: Double) -> [Action] {
        guard let deadline = readDeadline, now >= deadline else { return [] }
        let midRequest = head != nil || headStartedAt != nil
        isClosed = true
        if inFlight { return [.peerClosed, .close] }
        if midRequest {
            let what = head != nil ? "body" : "head"
            return [.sendError(HTTPError(status: 408, code: "request_timeout", message: "the request \(what) took too long to arrive"))]
        }
        return [.close]
    }

    /// Graceful shutdown: close now if idle, else after the request in progress (which is told to close).
    mutating func drain() -> [Action] {
        guard !isClosed else { return [] }
        isDraining = true
        if !inFlight && queue.isEmpty && head == nil && headStartedAt == nil {
            isClosed = true
            return [.close]
        }
        return []
    }

    // MARK: - Private

    private mutating func pump(now: Double) -> [Action] {
        var actions: [Action] = []
        while !stoppedReading, queue.count < limits.maxPipelinedRequests, let event = parser.next() {
            switch event {
            case .head(let h):
                head = h
                body = []
                headStartedAt = nil
                bodyProgressAt = now
                if h.expectsContinue {
                    if !inFlight && queue.isEmpty {
                        actions.append(.sendContinue(h))
                    } else {
                        continueOwed = true
                    }
                }
            case .body(let bytes):
                body += bytes
            case .end(let trailers):
                if let h = head {
                    let request = HTTPRequest(head: h, body: body, trailers: trailers, remoteAddress: remoteAddress)
                    queue.append(.request(request))
                }
                head = nil
                body = []
                continueOwed = false
                headStartedAt = parser.bufferedByteCount > 0 ? now : nil
                if !inFlight { actions += dispatchNext() }
            case .error(let e):
                head = nil
                body = []
                continueOwed = false
                headStartedAt = nil
                stoppedReading = true
                queue.append(.error(e))
                if !inFlight { actions += dispatchNext() }
            }
        }
        if !stoppedReading && !readingPaused && queue.count >= limits.maxPipelinedRequests {
            readingPaused = true
            actions.append(.pauseReading)
        }
        return actions
    }

    private mutating func dispatchNext() -> [Action] {
        guard !queue.isEmpty else { return [] }
        switch queue.removeFirst() {
        case .error(let e):
            isClosed = true
            return [.sendError(e)]
        case .request(var request):
            inFlight = true
            requestsStarted += 1
            request.keepAlive = request.keepAlive && !isDraining && requestsStarted < limits.maxRequestsPerConnection
            if !request.keepAlive {
                // Nothing after this request will be answered.
                stoppedReading = true
                queue.removeAll()
            }
            return [.dispatch(request)]
        }
    }
}
