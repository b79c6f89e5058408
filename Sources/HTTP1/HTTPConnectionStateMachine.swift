/// The protocol logic of one connection as a value type (the swift-nio `HTTPServerPipelineHandler`
/// idea): events in (bytes, end of input, response finished, deadline, drain), actions out. It owns the
/// parser, queues pipelined requests behind the one being answered, and decides keep-alive, 100-continue,
/// error answers and the read deadline. `HTTPConnection` performs the actions on sockets; tests drive it directly.
///
/// It is also told how many response bytes wait unsent (`outputLevel`): above `writeHighWaterMark` no
/// further request is parsed or dispatched (pipelined requests answered by nobody reading would otherwise
/// pile up answers in memory), and the idle clock starts only once the last answer is out.
struct HTTPConnectionStateMachine {
    /// What the connection must do, in order.
    enum Action: Equatable {
        /// Hand the request to the handler (its `keepAlive` is final: the response announces it).
        case dispatch(HTTPRequest)
        /// Ask the handler's `checkExpectation`; answer `100 Continue` if it agrees, else call `expectationRejected`.
        case sendContinue(HTTPRequestHead)
        /// Answer this error with `Connection: close`, then close (lingering, so the client reads it).
        case sendError(HTTPError)
        /// Close once the queued output is written (in stages: FIN, then lingering, see `HTTPConnection`).
        case closeAfterFlush
        /// Close now, dropping queued output.
        case close
        /// The client went away while a response was in progress: cancel it (fire `onClose`).
        case peerClosed
        /// Stop reading (the pipeline queue is full).
        case pauseReading
        /// Read again.
        case resumeReading
        /// The client closed its sending side (`shutdown(SHUT_WR)`): stop reading for good, keep answering.
        case endOfInput
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
    /// When the head of the request whose body is arriving ended (or its 100 Continue went out).
    private var bodyStartedAt: Double = 0
    private var idleSince: Double
    /// Response bytes queued and not yet written to the socket (from `outputLevel`).
    private(set) var pendingOutput = 0
    /// The client half-closed: nothing more will arrive; answer what was received, then close.
    private(set) var inputEnded = false

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
    /// being answered; an idle keep-alive connection lives `idleTimeout` from when its last answer was
    /// written out. No read deadline applies while a request is in flight or waits to be answered (the
    /// handler may take minutes), nor while answer bytes are unsent (the writer has its own stall timeout):
    /// a head or body the client sent meanwhile gets its timeouts afresh once the answers before it are out.
    var readDeadline: Double? {
        if isClosed || inFlight || stoppedReading || inputEnded || !queue.isEmpty || pendingOutput > 0 { return nil }
        if head != nil {
            return continueOwed ? nil : min(bodyProgressAt + limits.bodyTimeout, bodyStartedAt + limits.bodyDeadline)
        }
        if let started = headStartedAt { return readingPaused ? nil : started + limits.headerTimeout }
        if requestsStarted == 0 { return connectedAt + limits.headerTimeout }
        return idleSince + limits.idleTimeout
    }

    /// Whether unsent output holds back parsing and dispatching.
    var outputAboveHighWater: Bool { pendingOutput > limits.writeHighWaterMark }

    /// Bytes arrived.
    mutating func received(_ bytes: UnsafeRawBufferPointer, now: Double) -> [Action] {
        guard !isClosed, !stoppedReading, !inputEnded, !bytes.isEmpty else { return [] }
        if head != nil { bodyProgressAt = now }
        parser.append(bytes)
        return pump(now: now)
    }

    /// Bytes arrived.
    mutating func received(_ bytes: [UInt8], now: Double) -> [Action] {
        bytes.withUnsafeBytes { received($0, now: now) }
    }

    /// The client closed its side or the connection failed: stop, cancelling a response in progress.
    /// An answer already finished is still written out (a reset peer fails that write and closes).
    mutating func receivedEOF() -> [Action] {
        guard !isClosed else { return [] }
        isClosed = true
        if inFlight { return [.peerClosed, .close] }
        return pendingOutput > 0 ? [.closeAfterFlush] : [.close]
    }

    /// The client closed only its sending side (`nc -N`, `curl` uploads, `shutdown(SHUT_WR)`) and still
    /// reads: the request in progress and the complete ones received are answered, then the connection
    /// closes. (The connection tells this apart from a client that went away, see `HTTPConnection`.)
    mutating func receivedHalfClose(now: Double) -> [Action] {
        guard !isClosed, !inputEnded else { return [] }
        inputEnded = true
        var actions: [Action] = [.endOfInput]
        // Requests already buffered but not parsed yet (the queue was full) are answered too.
        actions += pump(now: now)
        if !inFlight && queue.isEmpty {
            isClosed = true
            actions.append(pendingOutput > 0 ? .closeAfterFlush : .close)
        }
        return actions
    }

    /// The connection's unsent response bytes changed (`bytes` now queued). Crossing back under the
    /// high-water mark lets parsing and dispatching go on; reaching zero starts the idle clock, and the
    /// clocks of a head or body the client sent meanwhile (it may read a whole answer before it sends more).
    mutating func outputLevel(_ bytes: Int, now: Double) -> [Action] {
        let wasAbove = outputAboveHighWater
        if bytes == 0 && pendingOutput > 0 {
            if !inFlight { idleSince = now }
            if headStartedAt != nil { headStartedAt = now }
            if head != nil {
                bodyProgressAt = now
                bodyStartedAt = now
            }
        }
        pendingOutput = bytes
        guard !isClosed, wasAbove, !outputAboveHighWater else { return [] }
        var actions: [Action] = []
        if !inFlight && !queue.isEmpty { actions += dispatchNext() }
        if readingPaused && !stoppedReading && !inputEnded && queue.count < limits.maxPipelinedRequests {
            readingPaused = false
            actions.append(.resumeReading)
        }
        actions += pump(now: now)
        actions += closeIfInputDone()
        return actions
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
        // A head (or body) that arrived while we were busy gets its timeouts from now.
        if headStartedAt != nil { headStartedAt = now }
        if head != nil {
            bodyProgressAt = now
            bodyStartedAt = now
        }
        var actions: [Action] = []
        if !queue.isEmpty {
            if !outputAboveHighWater { actions += dispatchNext() }
        } else if isDraining && head == nil && headStartedAt == nil {
            isClosed = true
            return [.closeAfterFlush]
        } else if continueOwed, let h = head {
            continueOwed = false
            bodyProgressAt = now
            bodyStartedAt = now
            actions.append(.sendContinue(h))
        }
        if readingPaused && !stoppedReading && !inputEnded && !outputAboveHighWater && queue.count < limits.maxPipelinedRequests {
            readingPaused = false
            actions.append(.resumeReading)
        }
        actions += pump(now: now)
        actions += closeIfInputDone()
        return actions
    }

    /// After a half-close: close once everything received has been answered.
    private mutating func closeIfInputDone() -> [Action] {
        guard inputEnded, !isClosed, !inFlight, queue.isEmpty else { return [] }
        isClosed = true
        return [.closeAfterFlush]
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
            // An answer still being written (a slow download) is finished first.
            return [pendingOutput > 0 ? .closeAfterFlush : .close]
        }
        return []
    }

    // MARK: - Private

    private mutating func pump(now: Double) -> [Action] {
        var actions: [Action] = []
        while !stoppedReading, !outputAboveHighWater, queue.count < limits.maxPipelinedRequests, let event = parser.next() {
            switch event {
            case .head(let h):
                head = h
                body = []
                headStartedAt = nil
                bodyProgressAt = now
                bodyStartedAt = now
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
                if !inFlight { actions += dispatchNext() }
            case .error(let e):
                // Deliberate parallel of the `.head` and `.end` cases' resets: each case says which clocks it stops.
                head = nil
                body = []
                continueOwed = false
                headStartedAt = nil
                stoppedReading = true
                queue.append(.error(e))
                if !inFlight { actions += dispatchNext() }
            }
        }
        // The header clock runs only once a byte of a next request line is here: empty lines between
        // requests (a client's CRLF after a body) are not a request (RFC 9112 §2.2).
        if head == nil && !stoppedReading && parser.hasPartialRequest {
            if headStartedAt == nil { headStartedAt = now }
        } else {
            headStartedAt = nil
        }
        if !stoppedReading && !readingPaused && !inputEnded
            && (queue.count >= limits.maxPipelinedRequests || outputAboveHighWater) {
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
