import Foundation
import Logging
import Wuerstchen

/// A `GenerationService` that runs one request at a time on a worker thread of its own, from a
/// bounded FIFO queue (the batching scheduler replaces it). A full queue answers 429 with a
/// `Retry-After` estimated from the measured average generation time.
public final class SerialGenerationService: GenerationService, @unchecked Sendable {
    /// One submitted request.
    /// Mutable state guarded by the service's `condition`.
    private final class Job: @unchecked Sendable {
        let id: String
        let request: GenerationRequest
        let events: @Sendable (GenerationEvent) -> Void
        let submitted = Date()
        let stepsTotal: Int
        var status = GenerationJobStatus.queued
        var stepsRun = 0
        var cancelRequested = false

        init(id: String, request: GenerationRequest, stepsTotal: Int, events: @escaping @Sendable (GenerationEvent) -> Void) {
            self.id = id
            self.request = request
            self.stepsTotal = stepsTotal
            self.events = events
        }

        var summary: GenerationJobSummary {
            GenerationJobSummary(id: id, status: status, stepsRun: stepsRun, stepsTotal: stepsTotal)
        }
    }

    /// The pipeline's sizes and tokenizer.
    public let model: ServedModel
    private let pipeline: WuerstchenPipeline
    private let maxQueue: Int
    private let metrics: ServingMetrics?
    private let logger: Logger

    /// Guards everything below; the worker waits on it for work.
    private let condition = NSCondition()
    private var pending: [Job] = []
    private var running: Job?
    private var recent: [GenerationJobSummary] = []
    private var averageSeconds: Double?
    private var stopping = false
    private var idleCompletions: [@Sendable () -> Void] = []
    private static let recentLimit = 256
    /// Before any request has been measured, `Retry-After` assumes this many seconds per request.
    private static let initialEstimate = 10.0

    /// A service over `pipeline` holding at most `maxQueue` waiting requests (at least 1); starts its worker.
    public init(pipeline: WuerstchenPipeline, maxQueue: Int, metrics: ServingMetrics? = nil,
                logger: Logger = Logger(label: "wuerstchen.generation")) {
        precondition(maxQueue >= 1, "maxQueue \(maxQueue): must be at least 1")
        self.pipeline = pipeline
        self.model = ServedModel(pipeline: pipeline)
        self.maxQueue = maxQueue
        self.metrics = metrics
        self.logger = logger
        let thread = Thread { [self] in workLoop() }
        thread.name = "wuerstchen.generation"
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Requests waiting behind the running one.
    public var queueLength: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count
    }

    /// The job `id` if queued, running or among the last 256 finished.
    public func summary(of id: String) -> GenerationJobSummary? {
        condition.lock()
        defer { condition.unlock() }
        if let running, running.id == id { return running.summary }
        if let job = pending.first(where: { $0.id == id }) { return job.summary }
        return recent.last { $0.id == id }
    }

    /// Queues `request`; 429 when `maxQueue` requests already wait, 503 once shutting down.
    public func submit(_ request: GenerationRequest, id: String, events: @escaping @Sendable (GenerationEvent) -> Void) throws -> GenerationTicket {
        let steps = (request.priorSteps ?? pipeline.prior.timesteps(for: request).count - 1) + request.decoderSteps
        let job = Job(id: id, request: request, stepsTotal: steps, events: events)
        condition.lock()
        if stopping {
            condition.unlock()
            throw ServingError(status: 503, message: "the server is shutting down", type: "server_error", code: "draining", retryAfterSeconds: 1)
        }
        if pending.count >= maxQueue {
            let wait = retryAfterLocked()
            let queued = pending.count
            condition.unlock()
            metrics?.queueFull.increment()
            throw ServingError(
                status: 429, message: "the queue is full (\(queued) requests waiting, at most \(maxQueue)); retry in about \(wait) s",
                type: "rate_limit_error", code: "queue_full", retryAfterSeconds: wait)
        }
        pending.append(job)
        let position = pending.count - 1
        metrics?.queueDepth.set(pending.count)
        condition.signal()
        condition.unlock()
        events(.queued(position: position))
        return GenerationTicket(id: id) { [weak self] in self?.cancel(job) }
    }

    /// Refuses new requests; `completion` runs once the queue is empty and nothing runs (the worker then ends).
    public func shutdown(completion: @escaping @Sendable () -> Void) {
        condition.lock()
        stopping = true
        let idle = running == nil && pending.isEmpty
        if !idle { idleCompletions.append(completion) }
        condition.broadcast()
        condition.unlock()
        if idle { completion() }
    }

    /// Seconds until a request queued now would start: average duration times the work ahead.
    private func retryAfterLocked() -> Int {
        let per = averageSeconds ?? Self.initialEstimate
        return max(1, Int((per * Double(pending.count + (running == nil ? 0 : 1))).rounded(.up)))
    }

    private func cancel(_ job: Job) {
        condition.lock()
        guard job.status == .queued || job.status == .running, !job.cancelRequested else {
            condition.unlock()
            return
        }
        job.cancelRequested = true
        guard job.status == .queued, let index = pending.firstIndex(where: { $0 === job }) else {
            // Running: the progress callback stops it at the next step.
            condition.unlock()
            return
        }
        pending.remove(at: index)
        job.status = .cancelled
        remember(job)
        let moved = Array(pending[index...].enumerated().map { ($0.element, index + $0.offset) })
        metrics?.queueDepth.set(pending.count)
        let completions = takeIdleCompletionsLocked()
        condition.unlock()
        metrics?.cancelled.increment()
        job.events(.failed(.cancelled))
        for (other, position) in moved { other.events(.queued(position: position)) }
        for c in completions { c() }
    }

    private func remember(_ job: Job) {
        recent.append(job.summary)
        if recent.count > Self.recentLimit { recent.removeFirst(recent.count - Self.recentLimit) }
    }

    private func takeIdleCompletionsLocked() -> [@Sendable () -> Void] {
        guard running == nil, pending.isEmpty, !idleCompletions.isEmpty else { return [] }
        defer { idleCompletions = [] }
        return idleCompletions
    }

    private func workLoop() {
        while true {
            condition.lock()
            while pending.isEmpty {
                if stopping {
                    // Shut down and idle: the thread ends (and releases the service).
                    condition.unlock()
                    return
                }
                condition.wait()
            }
            let job = pending.removeFirst()
            job.status = .running
            running = job
            let rest = pending
            metrics?.queueDepth.set(pending.count)
            condition.unlock()
            for (position, other) in rest.enumerated() { other.events(.queued(position: position)) }
            metrics?.queueWait.recordSeconds(Date().timeIntervalSince(job.submitted))
            run(job)
        }
    }

    private func run(_ job: Job) {
        let started = Date()
        var last = started
        metrics?.batchSize.record(1)
        var outcome: GenerationEvent
        do {
            let results = try pipeline.generate([job.request]) { [self] p in
                let now = Date()
                (p.stage == .prior ? metrics?.priorStep : metrics?.decoderStep)?.recordSeconds(now.timeIntervalSince(last))
                last = now
                condition.lock()
                job.stepsRun += 1
                let keepGoing = !job.cancelRequested
                condition.unlock()
                job.events(.progress(stage: p.stage, step: p.step, total: p.total))
                return keepGoing
            }
            switch results[0] {
            case .success(let output): outcome = .completed(output)
            case .failure(let error) where error.field == nil && error.message == "cancelled": outcome = .failed(.cancelled)
            case .failure(let error): outcome = .failed(ServingError(status: 500, message: error.message, type: "server_error", code: "generation_failed"))
            }
        } catch let error as GenerationError {
            outcome = .failed(.from(error))
        } catch {
            outcome = .failed(ServingError(status: 500, message: "generation failed: \(error)", type: "server_error", code: "generation_failed"))
        }
        let seconds = Date().timeIntervalSince(started)
        condition.lock()
        switch outcome {
        case .completed:
            job.status = .done
            averageSeconds = averageSeconds.map { 0.7 * $0 + 0.3 * seconds } ?? seconds
        case .failed(let e) where e.code == "cancelled": job.status = .cancelled
        default: job.status = .failed
        }
        running = nil
        remember(job)
        let completions = takeIdleCompletionsLocked()
        condition.unlock()
        switch outcome {
        case .completed(let output):
            metrics?.generationDuration.recordSeconds(seconds)
            metrics?.imagesGenerated.increment(by: Int64(output.images.dim(0)))
        case .failed(let e) where e.code == "cancelled":
            metrics?.cancelled.increment()
            logger.info("generation cancelled", metadata: ["request_id": "\(job.id)", "steps_run": "\(job.stepsRun)"])
        case .failed(let e):
            logger.error("generation failed", metadata: ["request_id": "\(job.id)", "error": "\(e.message)"])
        default: break
        }
        job.events(outcome)
        for c in completions { c() }
    }
}
