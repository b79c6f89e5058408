import Foundation
import Logging
import Tensor
import Wuerstchen

/// The batching scheduler: step-level continuous batching of the resident pipeline.
///
/// One engine thread computes one unit at a time with every core (`BatchPlanner` picks it): text
/// encoding of newly admitted requests, a denoising step of every admitted request with the same
/// stage and latent shape (each at its own step, guidance rows only for those that use guidance), or
/// VQ decoding. Requests join at a step boundary and leave when they finish; PNG encoding and socket
/// writes happen on the HTTP handlers' threads. Every request keeps its own generator, so an image
/// depends only on its request.
///
/// The pieces: `JobQueue` (the bounded FIFO queue, admission by rows and pixels, deadlines,
/// cancellation, the Retry-After estimate) decides; this class owns the lock and the engine thread,
/// computes units and carries out the queue's actions (events, log lines, and figures through the one
/// metrics hook, `SchedulerMeasurement`).
public final class BatchingGenerationService: GenerationService, @unchecked Sendable {
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
    private let measure: @Sendable (SchedulerMeasurement) -> Void
    private let logger: Logger
    /// Gives the memory kept for reuse back to the system, returning the cached bytes freed (`policy.idleRelease`).
    private let releaseIdleMemory: @Sendable () -> Int

    /// Guards everything below; the engine waits on it for work.
    private let condition = NSCondition()
    private var queue: JobQueue
    /// Every request the queue holds, by serial.
    private var jobs: [Int: ScheduledJob] = [:]
    private var stats = Statistics()
    private var idleCompletions: [@Sendable () -> Void] = []

    /// A service over `pipeline` with `policy`, recording into `metrics`; starts its engine thread.
    public convenience init(pipeline: WuerstchenPipeline, policy: SchedulerPolicy = SchedulerPolicy(), metrics: ServingMetrics? = nil,
                            logger: Logger = Logger(label: "wuerstchen.scheduler")) {
        self.init(pipeline: pipeline, policy: policy, logger: logger) { metrics?.record($0) }
    }

    /// A service over `pipeline` with `policy`, reporting its figures to `measure`; starts its engine thread.
    /// `releaseIdleMemory` is what the idle engine calls after `policy.idleRelease`.
    init(pipeline: WuerstchenPipeline, policy: SchedulerPolicy, logger: Logger,
         releaseIdleMemory: @escaping @Sendable () -> Int = { Compute.releaseIdleMemory() },
         measure: @escaping @Sendable (SchedulerMeasurement) -> Void) {
        precondition(policy.maxQueue >= 1 && policy.maxActiveRequests >= 1 && policy.maxBatchRows >= 1,
                     "scheduler policy needs max_queue, max_active_requests and max_batch_rows >= 1: \(policy)")
        self.pipeline = pipeline
        self.model = ServedModel(pipeline: pipeline)
        self.policy = policy
        self.planner = BatchPlanner(maxRows: policy.maxBatchRows)
        self.queue = JobQueue(policy: policy)
        self.measure = measure
        self.logger = logger
        self.releaseIdleMemory = releaseIdleMemory
        let thread = Thread { [self] in engineLoop() }
        thread.name = "wuerstchen.engine"
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Requests waiting for admission.
    public var queueLength: Int { locked { queue.pending.count } }

    /// Requests being computed.
    public var activeCount: Int { locked { queue.active.count } }

    /// What the engine has computed so far.
    public var statistics: Statistics { locked { stats } }

    /// The job `id` if queued, running or among the last 256 finished.
    public func summary(of id: String) -> GenerationJobSummary? { locked { queue.summary(of: id) } }

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
        let rows = ScheduledJob.rows(request), now = Self.now()
        condition.lock()
        defer { condition.unlock() }
        let serial: Int, actions: [JobQueue.Action]
        do {
            (serial, actions) = try queue.submit(id: id, rows: rows, pixels: rows * request.width * request.height,
                                                 stepsTotal: steps, timeout: limit, now: now)
        } catch .stopping {
            throw ServingError.draining
        } catch .full(let waiting, let wait) {
            measure(.queueFull)
            throw ServingError.queueFull(waiting: waiting, maxQueue: policy.maxQueue, retryAfterSeconds: wait)
        }
        jobs[serial] = ScheduledJob(serial: serial, request: request, submitted: now, events: events)
        apply(actions)
        condition.broadcast()
        return GenerationTicket(id: id) { [weak self] in self?.cancel(serial) }
    }

    /// Refuses new requests; `completion` runs once the queue is empty and nothing runs (the engine then ends).
    public func shutdown(completion: @escaping @Sendable () -> Void) {
        condition.lock()
        queue.stop()
        let idle = queue.isEmpty
        if !idle { idleCompletions.append(completion) }
        condition.broadcast()
        condition.unlock()
        if idle { completion() }
    }

    // MARK: - Carrying out the queue's decisions (lock held)

    private func locked<T>(_ body: () -> T) -> T {
        condition.withLock { body() }
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    private func cancel(_ serial: Int) {
        condition.lock()
        apply(queue.cancel(serial))
        condition.unlock()
    }

    /// Sends the events, records the figures and writes the log lines of `actions`.
    private func apply(_ actions: [JobQueue.Action]) {
        for action in actions {
            switch action {
            case .position(let serial, let position): jobs[serial]?.emit(.queued(position: position))
            case .admitted(_, let waited): measure(.queueWait(nanoseconds: waited))
            case .depth(let queued, let active): measure(.depth(queued: queued, active: active))
            case .idle: runIdleCompletions()
            case .ended(let entry, let ending):
                guard let job = jobs.removeValue(forKey: entry.serial) else { continue }
                switch ending {
                case .completed:
                    break  // `complete` sent the images
                case .cancelled:
                    job.emit(.failed(.cancelled))
                    measure(.cancelled)
                    logger.info("generation cancelled", metadata: ["request_id": "\(entry.id)", "steps_run": "\(entry.stepsRun)"])
                case .expired:
                    measure(.expired)
                    fail(job, id: entry.id, .deadlineExceeded(timeout: entry.timeout, stepsRun: entry.stepsRun, stepsTotal: entry.stepsTotal))
                case .failed(let error):
                    fail(job, id: entry.id, error)
                }
            }
        }
    }

    private func fail(_ job: ScheduledJob, id: String, _ error: ServingError) {
        job.emit(.failed(error))
        logger.error("generation failed", metadata: ["request_id": "\(id)", "error": "\(error.message)"])
    }

    private func runIdleCompletions() {
        guard !idleCompletions.isEmpty else { return }
        let waiting = idleCompletions
        idleCompletions = []
        // Outside the lock: completions may call back into the service.
        DispatchQueue.global().async { for c in waiting { c() } }
    }

    // MARK: - The engine

    private func engineLoop() {
        // Whether the engine has computed since it last gave memory back (or started).
        var workedSinceRelease = false
        while true {
            condition.lock()
            while queue.isEmpty {
                if queue.isStopping {
                    condition.unlock()
                    return
                }
                guard workedSinceRelease, policy.idleRelease > 0 else {
                    condition.wait()
                    continue
                }
                // A wake-up before the deadline (a submission, shutdown, or spurious) looks at the queue again
                // and, if it is still empty, waits a whole `idleRelease` once more.
                if condition.wait(until: Date(timeIntervalSinceNow: policy.idleRelease)) || !queue.isEmpty || queue.isStopping {
                    continue
                }
                workedSinceRelease = false
                condition.unlock()
                let bytes = releaseIdleMemory()
                measure(.idleMemoryReleased(bytes: bytes))
                logger.debug("idle: gave memory back", metadata: ["buffer_cache_bytes": "\(bytes)"])
                condition.lock()
            }
            workedSinceRelease = true
            if queue.mayGather {
                // Idle engine: give simultaneous arrivals a moment to share the first steps.
                let until = Date(timeIntervalSinceNow: policy.batchWait)
                while queue.mayGather, condition.wait(until: until) {}
            }
            apply(queue.boundary(now: Self.now()))
            let admitted = queue.active.compactMap { jobs[$0.serial] }
            guard let unit = planner.next(admitted.map(\.candidate)) else {
                condition.unlock()
                continue
            }
            let members = unit.members.map { admitted[$0] }
            condition.unlock()
            run(unit.need, members)
        }
    }

    /// The members' states in their phase: the planner groups a unit by need, which the phase decides,
    /// so every member has one.
    private func states<T>(_ jobs: [ScheduledJob], _ state: (ScheduledJob.Phase) -> T?) -> [T] {
        let values = jobs.compactMap { state($0.phase) }
        precondition(values.count == jobs.count, "a unit's members are not all in the phase of its need")
        return values
    }

    /// Computes one unit (lock not held), then records its outcome.
    private func run(_ need: BatchPlanner.Need, _ jobs: [ScheduledJob]) {
        let started = Self.now()
        do {
            switch need {
            case .encodePrior:
                let priorJobs = try pipeline.prior.start(jobs.map { ($0.request, TorchGenerator(seed: $0.request.seed)) })
                update(jobs) { job, i in job.phase = .prior(priorJobs[i]) }
            case .priorStep:
                let steps = states(jobs, \.prior)
                pipeline.prior.step(steps)
                update(jobs, step: (.prior, Self.now() - started)) { job, i in
                    let p = steps[i]
                    job.emit(.progress(stage: .prior, step: p.stepIndex, total: p.stepCount))
                    if p.isFinished { job.phase = .encodeDecoder(p, imageEmbeddings: pipeline.prior.imageEmbeddings(p)) }
                }
            case .encodeDecoder:
                let inputs = states(jobs, \.betweenStages)
                let decoderJobs = try pipeline.decoder.start(jobs.indices.map {
                    (jobs[$0].request, inputs[$0].imageEmbeddings, inputs[$0].prior.generator)
                })
                update(jobs) { job, i in job.phase = .decoder(decoderJobs[i], imageEmbeddings: inputs[i].imageEmbeddings) }
            case .decoderStep:
                let steps = states(jobs, \.decoder)
                pipeline.decoder.step(steps.map(\.job))
                let previews = previewImages(steps.map(\.job))
                update(jobs, step: (.decoder, Self.now() - started)) { job, i in
                    let d = steps[i].job
                    job.emit(.progress(stage: .decoder, step: d.stepIndex, total: d.stepCount))
                    if let preview = previews[i] { job.emit(.preview(index: preview.index, images: preview.images)) }
                    if d.isFinished { job.phase = .decode(d, imageEmbeddings: steps[i].imageEmbeddings) }
                }
            case .decode:
                let inputs = states(jobs, \.finishedDecoder)
                let images = try pipeline.decoder.images(inputs.map(\.job))
                complete(jobs) { i in GenerationOutput(imageEmbeddings: inputs[i].imageEmbeddings, images: images[i]) }
            }
        } catch {
            let serving = (error as? GenerationError).map { ServingError.from($0) }
                ?? ServingError(status: 500, message: "generation failed: \(error)", type: "server_error", code: "generation_failed")
            condition.lock()
            apply(queue.failed(jobs.map(\.serial), serving))
            condition.unlock()
        }
    }

    /// The previews the last decoder step made, VQ-decoded, for the jobs whose request asked for one at
    /// that step (only their rows are decoded). A preview that fails to decode is left out: previews are
    /// best effort, the images still come.
    private func previewImages(_ jobs: [DecoderJob]) -> [(index: Int, images: Tensor)?] {
        jobs.map { job in
            guard let latents = job.takePreview(), let index = job.previewSteps.firstIndex(of: job.stepIndex) else { return nil }
            do { return (index, try pipeline.decoder.pixels(latents)) } catch {
                logger.warning("preview failed", metadata: ["step": "\(job.stepIndex)", "error": "\(error)"])
                return nil
            }
        }
    }

    /// Applies `change` to each job (with its index) under the lock; after a forward pass (`step`: its
    /// stage and duration) counts it and each job's step.
    private func update(_ jobs: [ScheduledJob], step: (stage: GenerationProgress.Stage, nanoseconds: UInt64)? = nil,
                        _ change: (ScheduledJob, Int) -> Void) {
        condition.lock()
        defer { condition.unlock() }
        if let step {
            measure(.step(step.stage, nanoseconds: step.nanoseconds, batch: jobs.count))
            stats.forwardPasses += 1
            stats.requestSteps += jobs.count
            stats.largestBatch = max(stats.largestBatch, jobs.count)
            queue.stepped(jobs.map(\.serial))
        }
        for (i, job) in jobs.enumerated() { change(job, i) }
    }

    /// Hands finished jobs their outputs.
    private func complete(_ jobs: [ScheduledJob], output: (Int) -> GenerationOutput) {
        let now = Self.now()
        condition.lock()
        defer { condition.unlock() }
        for (i, job) in jobs.enumerated() {
            let result = output(i)
            measure(.completed(nanoseconds: now - job.submitted, images: result.images.dim(0)))
            job.emit(.completed(result))
        }
        apply(queue.completed(jobs.map(\.serial), now: now))
    }
}
