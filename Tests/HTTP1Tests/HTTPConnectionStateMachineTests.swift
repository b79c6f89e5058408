import Testing
@testable import HTTP1

@Suite("HTTPConnectionStateMachine")
struct HTTPConnectionStateMachineTests {
    func machine(_ configure: (inout HTTPLimits) -> Void = { _ in }) -> HTTPConnectionStateMachine {
        var limits = HTTPLimits()
        configure(&limits)
        return HTTPConnectionStateMachine(limits: limits, remoteAddress: "127.0.0.1:9", now: 0)
    }

    func paths(_ actions: [HTTPConnectionStateMachine.Action]) -> [String] {
        actions.compactMap { if case .dispatch(let r) = $0 { r.path } else { nil } }
    }

    @Test func pipelinedRequestsWaitForThePreviousResponse() {
        var m = machine { $0.maxPipelinedRequests = 2 }
        let a = m.received(crlf("GET /1 HTTP/1.1\nHost: a\n\nGET /2 HTTP/1.1\nHost: a\n\nGET /3 HTTP/1.1\nHost: a\n\nGET /4 HTTP/1.1\nHost: a\n\n"), now: 1)
        // /1 dispatched, /2 and /3 queued, the queue is full: reading pauses, /4 stays unparsed.
        #expect(paths(a) == ["/1"] && a.last == .pauseReading)
        #expect(m.readDeadline == nil)
        let b = m.responseFinished(keepAlive: true, now: 2)
        #expect(paths(b) == ["/2"] && b.contains(.resumeReading))
        #expect(paths(m.responseFinished(keepAlive: true, now: 3)) == ["/3"])
        #expect(paths(m.responseFinished(keepAlive: true, now: 4)) == ["/4"])
        #expect(m.responseFinished(keepAlive: true, now: 5).isEmpty)
        #expect(m.readDeadline == 5 + HTTPLimits().idleTimeout)
        #expect(m.responseFinished(keepAlive: true, now: 6).isEmpty)  // nothing in flight
    }

    @Test func continueIsOwedUntilThePreviousResponseEnds() {
        var m = machine()
        let a = m.received(crlf("GET /1 HTTP/1.1\nHost: a\n\nPOST /2 HTTP/1.1\nHost: a\nExpect: 100-continue\nContent-Length: 2\n\n"), now: 1)
        #expect(paths(a) == ["/1"] && !a.contains { if case .sendContinue = $0 { true } else { false } })
        let b = m.responseFinished(keepAlive: true, now: 2)
        guard case .sendContinue(let head)? = b.first else { Issue.record("no continue: \(b)"); return }
        #expect(head.target == "/2")
        #expect(m.readDeadline == 2 + HTTPLimits().bodyTimeout)
        #expect(paths(m.received(Array("ok".utf8), now: 3)) == ["/2"])
    }

    @Test func errorsAreAnsweredInOrderAndClose() {
        var m = machine()
        let a = m.received(crlf("GET /1 HTTP/1.1\nHost: a\n\nGET / HTTP/1.1\nBad Header: 1\n\n"), now: 1)
        #expect(paths(a) == ["/1"])
        let b = m.responseFinished(keepAlive: true, now: 2)
        guard case .sendError(let e)? = b.first else { Issue.record("no error: \(b)"); return }
        #expect(e.status == 400 && m.isClosed)
        #expect(m.received(crlf("GET / HTTP/1.1\nHost: a\n\n"), now: 3).isEmpty)
    }

    @Test func keepAliveDecisions() {
        var m = machine { $0.maxRequestsPerConnection = 2 }
        let a = m.received(crlf("GET /1 HTTP/1.1\nHost: a\n\n"), now: 0)
        guard case .dispatch(let r1)? = a.first else { return }
        #expect(r1.keepAlive)
        let b = m.responseFinished(keepAlive: true, now: 0) + m.received(crlf("GET /2 HTTP/1.1\nHost: a\n\n"), now: 0)
        guard case .dispatch(let r2)? = b.first else { Issue.record("\(b)"); return }
        #expect(!r2.keepAlive)  // the connection's last request
        #expect(m.responseFinished(keepAlive: false, now: 1) == [.closeAfterFlush])
    }

    @Test func deadlines() {
        var m = machine { $0.headerTimeout = 10; $0.idleTimeout = 60; $0.bodyTimeout = 30 }
        #expect(m.readDeadline == 10)  // first request: header timeout from accept
        _ = m.received(Array("GET / HT".utf8), now: 5)
        #expect(m.readDeadline == 15)  // from the first byte, not reset by more bytes
        _ = m.received(Array("TP/1.1\r\n".utf8), now: 14)
        #expect(m.readDeadline == 15)
        #expect(m.deadlinePassed(now: 14.9).isEmpty)
        let t = m.deadlinePassed(now: 15)
        guard case .sendError(let e)? = t.first else { Issue.record("\(t)"); return }
        #expect(e.status == 408)

        var idle = machine { $0.idleTimeout = 60 }
        _ = idle.received(crlf("GET / HTTP/1.1\nHost: a\n\n"), now: 1)
        _ = idle.responseFinished(keepAlive: true, now: 2)
        #expect(idle.readDeadline == 62)
        #expect(idle.deadlinePassed(now: 62) == [.close])

        var body = machine { $0.bodyTimeout = 30 }
        _ = body.received(crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 9\n\nab"), now: 1)
        #expect(body.readDeadline == 31)
        _ = body.received(Array("cd".utf8), now: 20)
        #expect(body.readDeadline == 50)  // body deadline is per progress
    }

    @Test func eofAndDrain() {
        var m = machine()
        _ = m.received(crlf("GET / HTTP/1.1\nHost: a\n\n"), now: 0)
        #expect(m.receivedEOF() == [.peerClosed, .close])
        var idle = machine()
        #expect(idle.drain() == [.close])
        var busy = machine()
        _ = busy.received(crlf("GET /1 HTTP/1.1\nHost: a\n\nGET /2 HTTP/1.1\nHost: a\n\n"), now: 0)
        #expect(busy.drain().isEmpty)
        let next = busy.responseFinished(keepAlive: true, now: 1)
        guard case .dispatch(let r)? = next.first else { Issue.record("\(next)"); return }
        #expect(!r.keepAlive)  // draining: the queued request is the last
    }
}

/// Issue 12: the header clock, the idle clock, half-closes and unsent output (items 2, 3, 4).
@Suite("HTTPConnectionStateMachine hardening")
struct HTTPConnectionStateMachineHardeningTests {
    let base = HTTPConnectionStateMachineTests()

    /// A client's CRLF after a body is not a next request: no header timeout while the answer is computed.
    @Test func strayCRLFAfterABodyStartsNoHeaderClock() {
        var m = base.machine { $0.headerTimeout = 2; $0.idleTimeout = 60 }
        let a = m.received(crlf("POST /gen HTTP/1.1\nHost: a\nContent-Length: 2\n\nok\n"), now: 1)
        #expect(base.paths(a) == ["/gen"])
        #expect(m.readDeadline == nil)
        #expect(m.deadlinePassed(now: 100).isEmpty)  // a generation of minutes is never timed out
        #expect(m.responseFinished(keepAlive: true, now: 100).isEmpty)
        #expect(m.readDeadline == 160)  // idle, not a head in progress
    }

    /// A head pipelined behind a long request gets its header timeout from when it is our turn to read it.
    @Test func headerTimeoutNeverFiresWhileARequestIsInFlight() {
        var m = base.machine { $0.headerTimeout = 2 }
        let a = m.received(crlf("GET /1 HTTP/1.1\nHost: a\n\nGET /2 HT"), now: 1)
        #expect(base.paths(a) == ["/1"])
        #expect(m.readDeadline == nil)
        #expect(m.deadlinePassed(now: 50).isEmpty)
        _ = m.responseFinished(keepAlive: true, now: 50)
        #expect(m.readDeadline == 52)
    }

    /// A head or body begun behind an answer still being written gets its clock once that answer is out
    /// (a client may read the whole answer before it sends the rest; the writer has its own stall timeout).
    @Test func readClocksWaitForTheAnswerBeforeThem() {
        var m = base.machine { $0.headerTimeout = 2 }
        _ = m.received(crlf("GET /big HTTP/1.1\nHost: a\n\nGET /2 HT"), now: 0)
        _ = m.outputLevel(100, now: 1)  // under the high-water mark: reading goes on
        _ = m.responseFinished(keepAlive: true, now: 1)
        #expect(m.readDeadline == nil)
        #expect(m.deadlinePassed(now: 50).isEmpty)
        _ = m.outputLevel(0, now: 50)
        #expect(m.readDeadline == 52)

        var b = base.machine { $0.bodyTimeout = 30 }
        _ = b.received(crlf("GET /big HTTP/1.1\nHost: a\n\nPOST /2 HTTP/1.1\nHost: a\nContent-Length: 5\n\nab"), now: 0)
        _ = b.outputLevel(100, now: 1)
        _ = b.responseFinished(keepAlive: true, now: 1)
        #expect(b.readDeadline == nil)
        _ = b.outputLevel(0, now: 50)
        #expect(b.readDeadline == 80)
    }

    /// The idle clock starts when the last answer byte left, not when the handler finished.
    @Test func idleClockStartsWhenTheAnswerIsWritten() {
        var m = base.machine { $0.idleTimeout = 60 }
        _ = m.received(crlf("GET /big HTTP/1.1\nHost: a\n\n"), now: 0)
        _ = m.outputLevel(100_000, now: 1)
        _ = m.responseFinished(keepAlive: true, now: 1)
        #expect(m.readDeadline == nil)  // a slow reader is still receiving (the write timeout covers a stall)
        #expect(m.deadlinePassed(now: 200).isEmpty)
        _ = m.outputLevel(0, now: 200)
        #expect(m.readDeadline == 260)
    }

    /// Drain closes an idle connection only after the answer still being written.
    @Test func drainFinishesAnAnswerStillBeingWritten() {
        var m = base.machine()
        _ = m.received(crlf("GET /big HTTP/1.1\nHost: a\n\n"), now: 0)
        _ = m.outputLevel(1_000_000, now: 1)
        _ = m.responseFinished(keepAlive: true, now: 1)
        #expect(m.drain() == [.closeAfterFlush])
        var eof = base.machine()
        _ = eof.received(crlf("GET /big HTTP/1.1\nHost: a\n\n"), now: 0)
        _ = eof.outputLevel(10, now: 1)
        _ = eof.responseFinished(keepAlive: true, now: 1)
        #expect(eof.receivedEOF() == [.closeAfterFlush])
    }

    /// After a half-close every complete request received is answered, then the connection closes.
    @Test func halfCloseAnswersWhatWasReceived() {
        var m = base.machine { $0.maxPipelinedRequests = 1 }
        let a = m.received(crlf("GET /1 HTTP/1.1\nHost: a\n\nGET /2 HTTP/1.1\nHost: a\n\nGET /3 HTTP/1.1\nHost: a\n\n"), now: 0)
        #expect(base.paths(a) == ["/1"])
        let h = m.receivedHalfClose(now: 1)
        #expect(h.first == .endOfInput && !m.isClosed)
        #expect(m.readDeadline == nil)
        #expect(m.received(crlf("GET /4 HTTP/1.1\nHost: a\n\n"), now: 1).isEmpty)
        #expect(base.paths(m.responseFinished(keepAlive: true, now: 2)) == ["/2"])
        #expect(base.paths(m.responseFinished(keepAlive: true, now: 3)) == ["/3"])
        #expect(m.responseFinished(keepAlive: true, now: 4) == [.closeAfterFlush])
        var idle = base.machine()
        _ = idle.received(crlf("GET /1 HTTP/1.1\nHost: a\n\n"), now: 0)
        _ = idle.responseFinished(keepAlive: true, now: 1)
        #expect(idle.receivedHalfClose(now: 2) == [.endOfInput, .close])
    }

    /// Unsent output above the high-water mark stops parsing and dispatching until it drains.
    @Test func unsentOutputAboveTheHighWaterMarkHoldsTheNextRequest() {
        var m = base.machine { $0.writeHighWaterMark = 1000 }
        #expect(base.paths(m.received(crlf("GET /1 HTTP/1.1\nHost: a\n\n"), now: 0)) == ["/1"])
        #expect(m.outputLevel(5000, now: 0).isEmpty)
        // Pipelined requests behind an answer nobody reads: not parsed, reading paused.
        let a = m.received(crlf("GET /2 HTTP/1.1\nHost: a\n\nGET /3 HTTP/1.1\nHost: a\n\n"), now: 1)
        #expect(a == [.pauseReading])
        #expect(m.responseFinished(keepAlive: true, now: 2).isEmpty)
        #expect(m.readDeadline == nil)
        #expect(m.outputLevel(1001, now: 3).isEmpty)
        let b = m.outputLevel(1000, now: 4)
        #expect(base.paths(b) == ["/2"] && b.contains(.resumeReading))
        // Finished while over the mark again: /3 waits for the socket.
        _ = m.outputLevel(4000, now: 5)
        #expect(base.paths(m.responseFinished(keepAlive: true, now: 5)).isEmpty)
        #expect(base.paths(m.outputLevel(0, now: 6)) == ["/3"])
    }
}

extension HTTPConnectionStateMachineHardeningTests {
    /// A body trickling in (a byte per `bodyTimeout`) ends with 408 at `bodyDeadline` after its head.
    @Test func trickledBodyHitsTheBodyDeadline() {
        var m = base.machine { $0.bodyTimeout = 30; $0.bodyDeadline = 100 }
        _ = m.received(crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 1000\n\n"), now: 0)
        var now = 0.0
        while now < 90 {
            now += 25
            _ = m.received(Array("x".utf8), now: now)
        }
        #expect(m.readDeadline == 100)
        guard case .sendError(let e)? = m.deadlinePassed(now: 100).first else { Issue.record("no 408"); return }
        #expect(e.status == 408)
    }
}
