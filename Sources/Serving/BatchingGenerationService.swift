import Foundation
import Logging
import Tensor
import Wuerstchen

/// How `BatchingGenerationService` admits and batches requests (`scheduler` in the configuration).
public struct SchedulerPolicy: Sendable, Equatable {
    /// `mode`: `batching`, or `serial` for one request at a time from the FIFO queue (the comparison
    /// mode of the benchmark; `max_active_requests` is then 1).
    public enum Mode: String, Sendable, Equatable, CaseIterable {
        case batching, serial
    }

    /// `mode`.
    public var mode = Mode.batching
    /// `max_batch_rows`: forward-pass rows in flight (a request puts in its images, twice when guided).
    /// Requests are admitted while their rows fit; one larger request runs alone.
    public var maxBatchRows = 16
    /// `max_batch_pixels`: the same bound in image pixels (a request counts its rows times width times
    /// height), since activation memory grows with the image: the default admits 16 rows at 512 x 512 but
    /// only 2 at 1024 x 1024. 0 turns it off. One larger request still runs alone.
    public var maxBatchPixels = 16 * 512 * 512
    /// `max_active_requests`: requests being computed at once in `batching` mode.
    public var maxActiveRequests = 8
    /// `batch_wait_ms`: how long an idle engine waits after a first request for others to share its
    /// first steps (later arrivals join at the next step boundary anyway), in seconds.
    public var batchWait = 0.02
    /// Requests that may wait for admission; more answer 429 with `Retry-After` (the top-level `max_queue`).
    public var maxQueue = 16
    /// `request_timeout_seconds`: deadline of a request from submission (queue wait included), also
    /// the largest `timeout_seconds` a request may ask for.
    public var requestTimeout = 600.0

    /// The defaults.
    public init() {}

    /// Requests computed at once: `maxActiveRequests`, or 1 in `serial` mode.
    public var activeLimit: Int { mode == .serial ? 1 : maxActiveRequests }
}

/// The batching scheduler: step-level continuous batching of the resident pipeline.
///
/// One engine thread computes one unit at a time with every core (`BatchPlanner` picks it): text
/// encoding of newly admitted requests, a denoising step of every admitted request with the same
/// stage and latent shape (each at its own step, guidance rows only for those that use guidance), or
/// VQ decoding. Requests join at a step boundary and leave when they finish; PNG encoding and socket
/// writes happen on the HTTP handlers' threads. Every request keeps its own generator, so an image
/// depends only on its request.
///
/// Around the engine: a bounded FIFO queue (429 with `Retry-After` from the measured throughput),
/// admission by rows, deadlines, cancellation at the next step boundary, and queue positions and
/// depth reported as they change.
public final class BatchingGenerationService: GenerationService, @unchecked Sendable {
    /// What a request needs next, with the state it carries there.
    private enum Phase {
        case queued
        case encodePrior
        case prior(PriorJob)
        case encodeDecoder(PriorJob, Tensor)
        case decoder(DecoderJob, Tensor)
        case decode(DecoderJob, Tensor)
        case finished
    }

    /// One submitted request. Guarded by the service's `condition`.
    private final class Job: @unchecked Sendable {
        let id: String
        let request: GenerationRequest
        let order: Int
        let submitted: UInt64
        let deadline: UInt64
        let timeout: Double
        let stepsTotal: Int
        let priorRows: Int
        let decoderRows: Int
        private let sink: @Sendable (GenerationEvent) -> Void
        var status = GenerationJobStatus.queued
        var phase = Phase.queued
        var stepsRun = 0
        var cancelRequested = false
        var lastPosition = -1
        private var ended = false

        init(id: String, request: GenerationRequest, order: Int, timeout: Double, stepsTotal: Int,
             events: @escaping @Sendable (GenerationEvent) -> Void) {
            self.id = id
            self.request = request
            self.order = order
            submitted = DispatchTime.now().uptimeNanoseconds
            deadline = submitted + UInt64(timeout * 1e9)
            self.timeout = timeout
            self.stepsTotal = stepsTotal
            priorRows = request.numImages * (request.priorGuidance > 1 ? 2 : 1)
            decoderRows = request.numImages * (request.decoderGuidance > 1 ? 2 : 1)
            sink = events
        }

        /// Rows it may put into one forward pass.
        var rows: Int { max(priorRows, decoderRows) }
        /// Rows times image pixels: its share of the activation memory.
        var pixels: Int { rows * request.width * request.height }

        var summary: GenerationJobSummary {
            GenerationJobSummary(id: id, status: status, stepsRun: stepsRun, stepsTotal: stepsTotal)
        }

        /// Sends `event` unless a terminal one went out already (called with the lock held: the
        /// callbacks do not block, and holding it keeps each job's events in order).
        func emit(_ event: GenerationEvent) {
            guard !ended else { return }
            ended = event.isTerminal
            sink(event)
        }
    }

    /// What the engine has computed so far.
    public struct Statistics: Sendable, Equatable {
        /// Denoising forward passes (prior and decoder).
        public var forwardPasses = 0
        /// Denoising steps of requests computed in them (more than `forwardPasses` when batched).
        public var requestSteps = 0
        /// Most requests in one forward pass.
        public var largestBatch = 0
    }

    /// The pipeline's sizes and tokenizer.
    public let model: ServedModel
    /// The policy given at creation.
    public let policy: SchedulerPolicy
    private let pipeline: WuerstchenPipeline
    private let planner: BatchPlanner
    private let metrics: ServingMetrics?
    private let logger: Logger

    /// Guards everything below; the engine waits on it for work.
    private let condition = NSCondition()
    private var pending: [Job] = []
    private var active: [Job] = []
    private var recent: [GenerationJobSummary] = []
    private var nextOrder = 0
    private var stats = Statistics()
    private var stopping = false
    private var idleCompletions: [@Sendable () -> Void] = []
    /// Completion times while the engine stayed busy (for the throughput behind `Retry-After`).
    private var completions: [UInt64] = []
    private static let recentLimit = 256
    private static let throughputWindow = 16
    /// Before any throughput has been measured, `Retry-After` assumes this many seconds per request.
    private static let initialSecondsPerRequest = 10.0

    /// A service over `pipeline` with `policy`; starts its engine thread.
    public init(pipeline: WuerstchenPipeline, policy: SchedulerPolicy = SchedulerPolicy(), metrics: ServingMetrics? = nil,
                logger: Logger = Logger(label: "wuerstchen.scheduler")) {
        precondition(policy.maxQueue >= 1 && policy.maxActiveRequests >= 1 && policy.maxBatchRows >= 1,
                     "scheduler policy needs max_queue, max_active_requests and max_batch_rows >= 1: \(policy)")
        self.pipeline = pipeline
        self.model = ServedModel(pipeline: pipeline)
        self.policy = policy
        self.planner = BatchPlanner(maxRows: policy.maxBatchRows)
        self.metrics = metrics
        self.logger = logger
        let thread = Thread { [self] in engineLoop() }
        thread.name = "wuerstchen.engine"
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Requests waiting for admission.
    public var queueLength: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count
    }

    /// Requests being computed.
    public var activeCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return active.count
    }

    /// What the engine has computed so far.
    public var statistics: Statistics {
        condition.lock()
        defer { condition.unlock() }
        return stats
    }

    /// The job `id` if queued, running or among the last 256 finished.
    public func summary(of id: String) -> GenerationJobSummary? {
        condition.lock()
        defer { condition.unlock() }
        if let job = active.first(where: { $0.id == id }) ?? pending.first(where: { $0.id == id }) { return job.summary }
        return recent.last { $0.id == id }
    }

    /// Queues `request` with a deadline `timeout` seconds from now (the policy's `requestTimeout`
    /// when nil, never more); 429 when `maxQueue` requests already wait, 503 once shutting down.
    public func submit(_ request: GenerationRequest, id: String, timeout: Double?,
                       events: @escaping @Sendable (GenerationEvent) -> Void) throws -> GenerationTicket {
        do {
            // The HTTP layer validates with its own limits; this guards the engine from any caller.
            try request.validate(sizes: model.sizeRules, maxImages: policy.maxBatchRows, maxSteps: 100_000)
            // Admission would run it alone whatever its size: its activations alone would pass the budget.
            try ImageRequests.checkMemory(request, maxBatchPixels: policy.maxBatchPixels)
        } catch let error as GenerationError {
            throw ServingError.from(error)
        }
        let steps = (request.priorSteps ?? pipeline.prior.timesteps(for: request).count - 1) + request.decoderSteps
        let limit = min(timeout ?? policy.requestTimeout, policy.requestTimeout)
        condition.lock()
        defer { condition.unlock() }
        if stopping {
            throw ServingError(status: 503, message: "the server is shutting down", type: "server_error", code: "draining", retryAfterSeconds: 1)
        }
        if pending.count >= policy.maxQueue {
            let wait = retryAfterLocked()
            metrics?.queueFull.increment()
            throw ServingError(
                status: 429, message: "the queue is full (\(pending.count) requests waiting, at most \(policy.maxQueue)); retry in about \(wait) s",
                type: "rate_limit_error", code: "queue_full", retryAfterSeconds: wait)
        }
        let job = Job(id: id, request: request, order: nextOrder, timeout: limit, stepsTotal: steps, events: events)
        nextOrder += 1
        pending.append(job)
        publishQueueLocked()
        condition.broadcast()
        return GenerationTicket(id: id) { [weak self] in self?.cancel(job) }
    }

    /// Refuses new requests; `completion` runs once the queue is empty and nothing runs (the engine then ends).
    public func shutdown(completion: @escaping @Sendable () -> Void) {
        condition.lock()
        stopping = true
        let idle = active.isEmpty && pending.isEmpty
        if !idle { idleCompletions.append(completion) }
        condition.broadcast()
        condition.unlock()
        if idle { completion() }
    }

    // MARK: - Queue bookkeeping (lock held)

    /// Seconds until the work ahead of a new request is done, from the measured completion rate.
    private func retryAfterLocked() -> Int {
        let ahead = Double(pending.count + active.count)
        var perRequest = Self.initialSecondsPerRequest / Double(policy.activeLimit)
        if completions.count >= 2 {
            perRequest = Double(completions.last! - completions.first!) / 1e9 / Double(completions.count - 1)
        }
        return min(3600, max(1, Int((ahead * perRequest).rounded(.up))))
    }

    /// Sends `queued(position)` to every waiting job whose position changed; updates the gauge.
    private func publishQueueLocked() {
        for (position, job) in pending.enumerated() where job.lastPosition != position {
            job.lastPosition = position
            job.emit(.queued(position: position))
        }
        metrics?.queueDepth.set(pending.count)
        metrics?.activeRequests.set(active.count)
    }

    private func remember(_ job: Job) {
        recent.append(job.summary)
        if recent.count > Self.recentLimit { recent.removeFirst(recent.count - Self.recentLimit) }
    }

    /// Ends `job` with `event` (terminal) and `status`; it must already be out of `pending`/`active`.
    private func endLocked(_ job: Job, _ status: GenerationJobStatus, _ event: GenerationEvent) {
        job.status = status
        job.phase = .finished
        remember(job)
        job.emit(event)
        switch status {
        case .cancelled:
            metrics?.cancelled.increment()
            logger.info("generation cancelled", metadata: ["request_id": "\(job.id)", "steps_run": "\(job.stepsRun)"])
        case .failed:
            if case .failed(let e) = event {
                if e.code == "deadline_exceeded" { metrics?.deadlineExceeded.increment() }
                logger.error("generation failed", metadata: ["request_id": "\(job.id)", "error": "\(e.message)"])
            }
        default: break
        }
    }

    private func cancel(_ job: Job) {
        condition.lock()
        defer { condition.unlock() }
        guard job.status == .queued || job.status == .running, !job.cancelRequested else { return }
        job.cancelRequested = true
        // A running job leaves at the next step boundary; a queued one leaves now.
        guard job.status == .queued, let index = pending.firstIndex(where: { $0 === job }) else { return }
        pending.remove(at: index)
        endLocked(job, .cancelled, .failed(.cancelled))
        publishQueueLocked()
        finishIfIdleLocked()
    }

    private func finishIfIdleLocked() {
        guard active.isEmpty, pending.isEmpty, !idleCompletions.isEmpty else { return }
        let waiting = idleCompletions
        idleCompletions = []
        // Outside the lock: completions may call back into the service.
        DispatchQueue.global().async { for c in waiting { c() } }
    }

    /// Drops cancelled and expired jobs, then admits waiting ones oldest first while their rows and
    /// pixels fit (strictly in order: a large request is not overtaken by smaller ones behind it).
    private func admitLocked(now: UInt64) {
        for job in pending + active where job.cancelRequested || now >= job.deadline {
            pending.removeAll { $0 === job }
            active.removeAll { $0 === job }
            if job.cancelRequested {
                endLocked(job, .cancelled, .failed(.cancelled))
            } else {
                endLocked(job, .failed, .failed(ServingError(
                    status: 504, message: "the request did not finish within its deadline of \(Self.seconds(job.timeout)) s "
                        + "(\(job.stepsRun) of \(job.stepsTotal) steps done)", type: "server_error", code: "deadline_exceeded")))
            }
        }
        var rows = active.reduce(0) { $0 + $1.rows }, pixels = active.reduce(0) { $0 + $1.pixels }
        while let next = pending.first, active.count < policy.activeLimit,
              active.isEmpty || (rows + next.rows <= policy.maxBatchRows
                  && (policy.maxBatchPixels == 0 || pixels + next.pixels <= policy.maxBatchPixels)) {
            pending.removeFirst()
            pixels += next.pixels
            next.status = .running
            next.phase = .encodePrior
            active.append(next)
            rows += next.rows
            metrics?.queueWait.recordNanoseconds(Int64(now - next.submitted))
        }
        publishQueueLocked()
        finishIfIdleLocked()
    }

    private static func seconds(_ s: Double) -> String {
        s == s.rounded() ? String(Int(s)) : String(format: "%.1f", s)
    }

    // MARK: - The engine

    private func engineLoop() {
        while true {
            condition.lock()
            while pending.isEmpty && active.isEmpty {
                if stopping {
                    condition.unlock()
                    return
                }
                completions = []  // idle time is not throughput
                condition.wait()
            }
            if active.isEmpty && policy.batchWait > 0 && policy.mode == .batching {
                // Idle engine: give simultaneous arrivals a moment to share the first steps.
                let until = Date(timeIntervalSinceNow: policy.batchWait)
                while pending.reduce(0, { $0 + $1.rows }) < policy.maxBatchRows, pending.count < policy.activeLimit, !stopping,
                      condition.wait(until: until) {}
            }
            admitLocked(now: DispatchTime.now().uptimeNanoseconds)
            let candidates = active.map(candidate)
            guard let unit = planner.next(candidates) else {
                condition.unlock()
                continue
            }
            let jobs = unit.members.map { active[$0] }
            condition.unlock()
            run(unit.need, jobs)
        }
    }

    private func candidate(_ job: Job) -> BatchPlanner.Candidate {
        switch job.phase {
        case .prior(let p): BatchPlanner.Candidate(order: job.order, need: .priorStep, key: p.batchKey, rows: job.priorRows)
        case .decoder(let d, _): BatchPlanner.Candidate(order: job.order, need: .decoderStep, key: d.batchKey, rows: job.decoderRows)
        case .encodeDecoder: BatchPlanner.Candidate(order: job.order, need: .encodeDecoder, rows: job.decoderRows)
        case .decode(let d, _):
            BatchPlanner.Candidate(order: job.order, need: .decode, key: Array(d.latents.shape.dropFirst()), rows: job.request.numImages)
        case .encodePrior, .queued, .finished: BatchPlanner.Candidate(order: job.order, need: .encodePrior, rows: job.priorRows)
        }
    }

    /// Computes one unit (lock not held), then records its outcome.
    private func run(_ need: BatchPlanner.Need, _ jobs: [Job]) {
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            switch need {
            case .encodePrior:
                let started = try pipeline.prior.start(jobs.map { ($0.request, TorchGenerator(seed: $0.request.seed)) })
                update(jobs) { job, i in job.phase = .prior(started[i]) }
            case .priorStep:
                let steps = jobs.map { job -> PriorJob in if case .prior(let p) = job.phase { return p }; fatalError("not in the prior") }
                pipeline.prior.step(steps)
                metrics?.priorStep.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
                metrics?.batchSize.record(jobs.count)
                update(jobs, step: true) { job, i in
                    let p = steps[i]
                    job.stepsRun += 1
                    job.emit(.progress(stage: .prior, step: p.stepIndex, total: p.stepCount))
                    if p.isFinished { job.phase = .encodeDecoder(p, pipeline.prior.imageEmbeddings(p)) }
                }
            case .encodeDecoder:
                let inputs = jobs.map { job -> (PriorJob, Tensor) in
                    if case .encodeDecoder(let p, let e) = job.phase { return (p, e) }; fatalError("not between the stages")
                }
                let started = try pipeline.decoder.start(jobs.indices.map { (jobs[$0].request, inputs[$0].1, inputs[$0].0.generator) })
                update(jobs) { job, i in job.phase = .decoder(started[i], inputs[i].1) }
            case .decoderStep:
                let steps = jobs.map { job -> (DecoderJob, Tensor) in if case .decoder(let d, let e) = job.phase { return (d, e) }; fatalError("not in the decoder") }
                pipeline.decoder.step(steps.map(\.0))
                metrics?.decoderStep.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
                metrics?.batchSize.record(jobs.count)
                update(jobs, step: true) { job, i in
                    let d = steps[i].0
                    job.stepsRun += 1
                    job.emit(.progress(stage: .decoder, step: d.stepIndex, total: d.stepCount))
                    if d.isFinished { job.phase = .decode(d, steps[i].1) }
                }
            case .decode:
                let inputs = jobs.map { job -> (DecoderJob, Tensor) in if case .decode(let d, let e) = job.phase { return (d, e) }; fatalError("not finished") }
                let images = try pipeline.decoder.images(inputs.map(\.0))
                complete(jobs) { i in GenerationOutput(imageEmbeddings: inputs[i].1, images: images[i]) }
            }
        } catch {
            let serving = (error as? GenerationError).map { ServingError.from($0) }
                ?? ServingError(status: 500, message: "generation failed: \(error)", type: "server_error", code: "generation_failed")
            condition.lock()
            for job in jobs {
                active.removeAll { $0 === job }
                endLocked(job, .failed, .failed(serving))
            }
            publishQueueLocked()
            finishIfIdleLocked()
            condition.unlock()
        }
    }

    /// Applies `change` to each job (with its index) under the lock; counts a forward pass if `step`.
    private func update(_ jobs: [Job], step: Bool = false, _ change: (Job, Int) -> Void) {
        condition.lock()
        if step {
            stats.forwardPasses += 1
            stats.requestSteps += jobs.count
            stats.largestBatch = max(stats.largestBatch, jobs.count)
        }
        for (i, job) in jobs.enumerated() { change(job, i) }
        condition.unlock()
    }

    /// Hands finished jobs their outputs.
    private func complete(_ jobs: [Job], output: (Int) -> GenerationOutput) {
        let now = DispatchTime.now().uptimeNanoseconds
        condition.lock()
        defer { condition.unlock() }
        for (i, job) in jobs.enumerated() {
            active.removeAll { $0 === job }
            let result = output(i)
            metrics?.generationDuration.recordNanoseconds(Int64(now - job.submitted))
            metrics?.imagesGenerated.increment(by: Int64(result.images.dim(0)))
            completions.append(now)
            endLocked(job, .done, .completed(result))
        }
        if completions.count > Self.throughputWindow { completions.removeFirst(completions.count - Self.throughputWindow) }
        publishQueueLocked()
        finishIfIdleLocked()
    }
}
