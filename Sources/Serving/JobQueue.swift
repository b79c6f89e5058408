import Foundation

/// The batching scheduler's queue as a value type: submission, admission, deadlines, cancellation and
/// the end of requests, each a `mutating` function that returns what the engine must do next (events
/// to send, figures to record), so that every rule is tested without threads or models, as
/// `BatchPlanner` is. Times are nanoseconds of one monotonic clock, passed in by the caller.
///
/// Rules:
/// 1. At most `maxQueue` requests wait; a further one is refused with a Retry-After: the requests
///    ahead of it (waiting and running) times the seconds per request measured over the last 16
///    completions while the engine stayed busy, or `10 s / activeLimit` before two completions;
///    1 s to 1 hour. Once stopping, every submission is refused.
/// 2. At a step boundary (`boundary(now:)`) cancelled and expired requests leave first, queued or running.
/// 3. Then waiting requests are admitted strictly oldest first (a large request is not overtaken by
///    smaller ones behind it) while fewer than `activeLimit` run and their rows and pixels fit the
///    policy's budgets; an idle engine admits the oldest whatever its size.
/// 4. A cancelled request that waits leaves at once; a running one at the next boundary.
/// 5. A waiting request hears its position whenever it changes (0 = next to run).
/// 6. Idle time is not throughput: the completion times are forgotten whenever nothing waits or runs.
struct JobQueue {
    /// One submitted request as the queue sees it.
    struct Entry: Equatable {
        /// Submission order, unique (the ids clients give need not be).
        let serial: Int
        /// The id given at submission.
        let id: String
        /// When it was submitted, and when its deadline passes.
        let submitted: UInt64, deadline: UInt64
        /// The deadline in seconds from submission.
        let timeout: Double
        /// Forward-pass rows (images, twice when guided) and those rows times the image's pixels.
        let rows: Int, pixels: Int
        /// Denoising steps it takes, both stages together, and those done.
        let stepsTotal: Int
        var stepsRun = 0
        var status = GenerationJobStatus.queued
        var cancelRequested = false
        /// The position last reported (-1: none yet).
        var lastPosition = -1

        var summary: GenerationJobSummary {
            GenerationJobSummary(id: id, status: status, stepsRun: stepsRun, stepsTotal: stepsTotal)
        }
    }

    /// Why a request left the queue.
    enum Ending: Equatable {
        /// Its images are done.
        case completed
        /// Its ticket cancelled it.
        case cancelled
        /// Its deadline passed first.
        case expired
        /// Its computation failed with this error.
        case failed(ServingError)

        var status: GenerationJobStatus {
            switch self {
            case .completed: .done
            case .cancelled: .cancelled
            case .expired, .failed: .failed
            }
        }
    }

    /// What the engine must do after a change, in order.
    enum Action: Equatable {
        /// Tell request `serial` its new queue position.
        case position(serial: Int, Int)
        /// Request `serial` runs from now on, after waiting `waited` nanoseconds.
        case admitted(serial: Int, waited: UInt64)
        /// The request left (its entry as it ended).
        case ended(Entry, Ending)
        /// Requests waiting and running now.
        case depth(queued: Int, active: Int)
        /// Nothing waits or runs.
        case idle
    }

    /// Why a submission is refused.
    enum Refusal: Error, Equatable {
        /// The service is shutting down.
        case stopping
        /// `waiting` requests wait already (`maxQueue`); try again in about `retryAfterSeconds`.
        case full(waiting: Int, retryAfterSeconds: Int)
    }

    /// Completion times the throughput estimate looks at.
    static let throughputWindow = 16
    /// Summaries of finished requests kept for `summary(of:)`.
    static let recentLimit = 256
    /// Before any throughput has been measured, `Retry-After` assumes this many seconds per request.
    static let initialSecondsPerRequest = 10.0

    /// The admission and queue bounds.
    let policy: SchedulerPolicy
    /// Waiting requests, oldest first.
    private(set) var pending: [Entry] = []
    /// Admitted requests, oldest first.
    private(set) var active: [Entry] = []
    /// True once `stop()` was called.
    private(set) var isStopping = false
    private var recent: [GenerationJobSummary] = []
    private var nextSerial = 0
    /// Completion times while the engine stayed busy.
    private var completions: [UInt64] = []

    /// An empty queue under `policy`.
    init(policy: SchedulerPolicy) {
        self.policy = policy
    }

    /// Nothing waits and nothing runs.
    var isEmpty: Bool { pending.isEmpty && active.isEmpty }

    /// Whether an idle engine should wait a little before its first unit, for simultaneous arrivals to
    /// share it: batching mode with a `batchWait`, nothing running, and room left for more.
    var mayGather: Bool {
        active.isEmpty && policy.mode == .batching && policy.batchWait > 0 && !isStopping
            && pending.reduce(0) { $0 + $1.rows } < policy.maxBatchRows && pending.count < policy.activeLimit
    }

    /// The request `id` if it waits, runs, or is among the last `recentLimit` finished.
    func summary(of id: String) -> GenerationJobSummary? {
        (active.first { $0.id == id } ?? pending.first { $0.id == id })?.summary ?? recent.last { $0.id == id }
    }

    /// Queues a request with a deadline `timeout` seconds after `now` (rule 1); returns its serial.
    mutating func submit(id: String, rows: Int, pixels: Int, stepsTotal: Int, timeout: Double, now: UInt64)
        throws(Refusal) -> (serial: Int, actions: [Action])
    {
        if isStopping { throw .stopping }
        guard pending.count < policy.maxQueue else {
            throw .full(waiting: pending.count, retryAfterSeconds: retryAfterSeconds())
        }
        let entry = Entry(serial: nextSerial, id: id, submitted: now, deadline: now + UInt64(timeout * 1e9), timeout: timeout,
                          rows: rows, pixels: pixels, stepsTotal: stepsTotal)
        nextSerial += 1
        pending.append(entry)
        return (entry.serial, publish())
    }

    /// Cancels request `serial`: a waiting one ends now, a running one at the next boundary (rule 4);
    /// nothing once it has ended.
    mutating func cancel(_ serial: Int) -> [Action] {
        if let i = pending.firstIndex(where: { $0.serial == serial }) {
            return [end(pending.remove(at: i), .cancelled)] + publish()
        }
        if let i = active.firstIndex(where: { $0.serial == serial }) { active[i].cancelRequested = true }
        return []
    }

    /// The step boundary: ends cancelled and expired requests, then admits (rules 2 and 3).
    mutating func boundary(now: UInt64) -> [Action] {
        var actions: [Action] = []
        for entry in pending + active where entry.cancelRequested || now >= entry.deadline {
            pending.removeAll { $0.serial == entry.serial }
            active.removeAll { $0.serial == entry.serial }
            actions.append(end(entry, entry.cancelRequested ? .cancelled : .expired))
        }
        var rows = active.reduce(0) { $0 + $1.rows }, pixels = active.reduce(0) { $0 + $1.pixels }
        while var next = pending.first, active.count < policy.activeLimit,
              active.isEmpty || (rows + next.rows <= policy.maxBatchRows
                  && (policy.maxBatchPixels == 0 || pixels + next.pixels <= policy.maxBatchPixels)) {
            pending.removeFirst()
            next.status = .running
            active.append(next)
            rows += next.rows
            pixels += next.pixels
            actions.append(.admitted(serial: next.serial, waited: max(now, next.submitted) - next.submitted))
        }
        return actions + publish()
    }

    /// One denoising step done for each of `serials` (running requests).
    mutating func stepped(_ serials: [Int]) {
        for i in active.indices where serials.contains(active[i].serial) { active[i].stepsRun += 1 }
    }

    /// Running requests `serials` finished with their images at `now`.
    mutating func completed(_ serials: [Int], now: UInt64) -> [Action] {
        let actions = finish(serials, .completed)
        completions += [UInt64](repeating: now, count: actions.count)
        if completions.count > Self.throughputWindow { completions.removeFirst(completions.count - Self.throughputWindow) }
        return actions + publish()
    }

    /// Running requests `serials` failed with `error`.
    mutating func failed(_ serials: [Int], _ error: ServingError) -> [Action] {
        finish(serials, .failed(error)) + publish()
    }

    /// Refuses further submissions; what waits or runs still finishes.
    mutating func stop() { isStopping = true }

    /// Seconds until the work ahead of a new request is done (rule 1).
    func retryAfterSeconds() -> Int {
        let ahead = Double(pending.count + active.count)
        var perRequest = Self.initialSecondsPerRequest / Double(policy.activeLimit)
        if completions.count >= 2 {
            perRequest = Double(completions.last! - completions.first!) / 1e9 / Double(completions.count - 1)
        }
        return min(3600, max(1, Int((ahead * perRequest).rounded(.up))))
    }

    private mutating func finish(_ serials: [Int], _ ending: Ending) -> [Action] {
        serials.compactMap { serial in
            active.firstIndex { $0.serial == serial }.map { end(active.remove(at: $0), ending) }
        }
    }

    private mutating func end(_ entry: Entry, _ ending: Ending) -> Action {
        var entry = entry
        entry.status = ending.status
        recent.append(entry.summary)
        if recent.count > Self.recentLimit { recent.removeFirst(recent.count - Self.recentLimit) }
        return .ended(entry, ending)
    }

    /// Positions that changed (rule 5), the depth, and idleness (rule 6).
    private mutating func publish() -> [Action] {
        var actions: [Action] = []
        for i in pending.indices where pending[i].lastPosition != i {
            pending[i].lastPosition = i
            actions.append(.position(serial: pending[i].serial, i))
        }
        actions.append(.depth(queued: pending.count, active: active.count))
        if isEmpty {
            completions = []
            actions.append(.idle)
        }
        return actions
    }
}
