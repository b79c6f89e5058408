import Testing
@testable import Serving

/// The queue's rules (`JobQueue`), without threads, models or clocks: times are given in seconds.
@Suite struct JobQueueTests {
    typealias Action = JobQueue.Action

    static func policy(activeLimit: Int = 8, maxRows: Int = 16, maxPixels: Int = 0, maxQueue: Int = 16) -> SchedulerPolicy {
        var p = SchedulerPolicy()
        p.maxActiveRequests = activeLimit
        p.maxBatchRows = maxRows
        p.maxBatchPixels = maxPixels
        p.maxQueue = maxQueue
        return p
    }

    static func ns(_ seconds: Double) -> UInt64 { UInt64(seconds * 1e9) }

    /// Submits `id` at `at` seconds; returns its serial.
    @discardableResult
    static func submit(_ q: inout JobQueue, _ id: String, rows: Int = 1, pixels: Int = 1, steps: Int = 10,
                       timeout: Double = 600, at: Double = 0) throws -> Int {
        try q.submit(id: id, rows: rows, pixels: pixels, stepsTotal: steps, timeout: timeout, now: ns(at)).serial
    }

    static func admitted(_ actions: [Action]) -> [Int] {
        actions.compactMap { if case .admitted(let s, _) = $0 { s } else { nil } }
    }

    static func ended(_ actions: [Action]) -> [(Int, JobQueue.Ending)] {
        actions.compactMap { if case .ended(let e, let why) = $0 { (e.serial, why) } else { nil } }
    }

    static func positions(_ actions: [Action]) -> [Int: Int] {
        Dictionary(uniqueKeysWithValues: actions.compactMap { if case .position(let s, let p) = $0 { (s, p) } else { nil } })
    }

    /// Strictly oldest first while rows fit; a request that does not fit holds back the smaller ones
    /// behind it; an idle engine takes an oversized one alone.
    @Test func admitsInOrderWhileRowsFit() throws {
        var q = JobQueue(policy: Self.policy(maxRows: 4))
        let a = try Self.submit(&q, "a", rows: 2), b = try Self.submit(&q, "b", rows: 4), _ = try Self.submit(&q, "c", rows: 1)
        #expect(Self.admitted(q.boundary(now: Self.ns(1))) == [a], "b does not fit beside a, and c may not overtake it")
        #expect(q.pending.map(\.id) == ["b", "c"])
        _ = q.completed([a], now: Self.ns(2))
        #expect(Self.admitted(q.boundary(now: Self.ns(2))) == [b], "b fills the rows alone; c waits")
        var big = JobQueue(policy: Self.policy(maxRows: 4))
        let huge = try Self.submit(&big, "huge", rows: 9)
        #expect(Self.admitted(big.boundary(now: 0)) == [huge], "an idle engine runs a larger request alone")
    }

    @Test func admitsWithinThePixelBudgetAndTheActiveLimit() throws {
        var q = JobQueue(policy: Self.policy(maxPixels: 100))
        for i in 0..<3 { try Self.submit(&q, "p\(i)", rows: 2, pixels: 50) }
        #expect(Self.admitted(q.boundary(now: 0)) == [0, 1], "two fill 100 pixels although rows and slots are left")
        var serial = JobQueue(policy: { var p = Self.policy(); p.mode = .serial; return p }())
        for i in 0..<3 { try Self.submit(&serial, "s\(i)") }
        #expect(Self.admitted(serial.boundary(now: 0)) == [0], "serial mode runs one at a time")
        #expect(serial.active.map(\.status) == [.running] && serial.pending.map(\.status) == [.queued, .queued])
    }

    /// Every waiting request hears its position when it changes, and only then.
    @Test func positionsAreReportedWhenTheyChange() throws {
        var q = JobQueue(policy: Self.policy(activeLimit: 1))
        let first = try q.submit(id: "a", rows: 1, pixels: 1, stepsTotal: 1, timeout: 60, now: 0)
        #expect(Self.positions(first.actions) == [first.serial: 0])
        let b = try Self.submit(&q, "b"), c = try Self.submit(&q, "c")
        let admitted = q.boundary(now: Self.ns(1))
        #expect(Self.admitted(admitted) == [first.serial])
        #expect(Self.positions(admitted) == [b: 0, c: 1])
        #expect(admitted.last == .depth(queued: 2, active: 1))
        #expect(Self.positions(q.boundary(now: Self.ns(2))).isEmpty, "nothing moved")
        let cancelled = q.cancel(b)
        #expect(Self.ended(cancelled).map(\.0) == [b] && Self.positions(cancelled) == [c: 0])
    }

    /// A waiting request leaves at once; a running one at the next boundary, with its steps so far.
    @Test func cancellationOfWaitingAndRunningRequests() throws {
        var q = JobQueue(policy: Self.policy(activeLimit: 1))
        let running = try Self.submit(&q, "run"), waiting = try Self.submit(&q, "wait")
        _ = q.boundary(now: 0)
        q.stepped([running])
        #expect(Self.ended(q.cancel(running)).isEmpty, "a running request finishes its unit first")
        #expect(Self.ended(q.cancel(waiting)).map(\.0) == [waiting])
        let boundary = q.boundary(now: Self.ns(1))
        #expect(Self.ended(boundary).map(\.0) == [running] && Self.ended(boundary).map(\.1) == [.cancelled])
        #expect(boundary.last == .idle)
        #expect(q.summary(of: "run") == GenerationJobSummary(id: "run", status: .cancelled, stepsRun: 1, stepsTotal: 10))
        #expect(q.cancel(running).isEmpty, "cancelling an ended request does nothing")
    }

    /// Deadlines pass for waiting and running requests alike, at the boundary, typed as `expired`.
    @Test func expiredRequestsLeaveAtTheBoundary() throws {
        var q = JobQueue(policy: Self.policy(activeLimit: 1))
        let late = try Self.submit(&q, "late", timeout: 0.5), queuedLate = try Self.submit(&q, "queued-late", timeout: 0.2)
        let fine = try Self.submit(&q, "fine")
        _ = q.boundary(now: Self.ns(0.1))
        q.stepped([late])
        let boundary = q.boundary(now: Self.ns(0.6))
        #expect(Self.ended(boundary).map(\.0) == [queuedLate, late] && Self.ended(boundary).allSatisfy { $0.1 == .expired })
        #expect(Self.admitted(boundary) == [fine])
        guard case .ended(let entry, _)? = boundary.first(where: { if case .ended(let e, _) = $0 { e.serial == late } else { false } }) else {
            Issue.record("late did not end")
            return
        }
        #expect(entry.timeout == 0.5 && entry.stepsRun == 1 && entry.stepsTotal == 10 && entry.status == .failed)
        #expect(q.summary(of: "queued-late")?.stepsRun == 0)
    }

    /// A full queue refuses with a Retry-After: first from the assumed 10 s per request over the
    /// active limit, then from the measured completion rate; a stopping queue refuses everything.
    @Test func fullQueueRetryAfterAndStopping() throws {
        var q = JobQueue(policy: Self.policy(activeLimit: 1, maxQueue: 2))
        try Self.submit(&q, "r0")
        _ = q.boundary(now: 0)  // r0 runs, r1 and r2 wait
        for i in 1..<3 { try Self.submit(&q, "r\(i)") }
        #expect(throws: JobQueue.Refusal.full(waiting: 2, retryAfterSeconds: 30)) { try Self.submit(&q, "r3") }
        // Completions 2 s apart: 2 s per request, 4 requests ahead.
        for (i, t) in [2.0, 4.0, 6.0].enumerated() {
            _ = q.completed([i], now: Self.ns(t))
            _ = q.boundary(now: Self.ns(t))
            try Self.submit(&q, "more\(i)", at: t)
        }
        #expect(q.retryAfterSeconds() == 6, "3 ahead at 2 s each")
        q.stop()
        #expect(throws: JobQueue.Refusal.stopping) { try Self.submit(&q, "late") }
    }

    /// Idle time is not throughput: once nothing waits or runs, the estimate starts over.
    @Test func idleTimeIsNotThroughput() throws {
        var q = JobQueue(policy: Self.policy(activeLimit: 1))
        for i in 0..<2 { try Self.submit(&q, "r\(i)") }
        _ = q.boundary(now: 0)
        _ = q.completed([0], now: Self.ns(1))
        _ = q.boundary(now: Self.ns(1))
        #expect(q.completed([1], now: Self.ns(1.5)).last == .idle)
        try Self.submit(&q, "after", at: 1000)
        #expect(q.retryAfterSeconds() == 10, "one ahead at the assumed 10 s, not at 0.5 s")
    }

    /// Failures end the named running requests; finished requests are remembered, the last 256.
    @Test func failuresAndTheRecentList() throws {
        var q = JobQueue(policy: Self.policy())
        let error = ServingError(status: 500, message: "boom", type: "server_error", code: "generation_failed")
        let a = try Self.submit(&q, "a")
        _ = q.boundary(now: 0)
        #expect(Self.ended(q.failed([a], error)).map(\.1) == [.failed(error)])
        #expect(q.summary(of: "a")?.status == .failed)
        for i in 0..<JobQueue.recentLimit {
            let s = try Self.submit(&q, "n\(i)")
            _ = q.boundary(now: 0)
            _ = q.completed([s], now: 0)
        }
        #expect(q.summary(of: "a") == nil && q.summary(of: "n0")?.status == .done)
    }
}
