import Foundation
import Logging
import Wuerstchen

/// The jobs of `POST /v1/jobs` at run time: a `JobStore` behind a lock, the scheduler tickets of the
/// unfinished jobs, the encoding of finished images (off the engine thread), the event streams' wake-ups,
/// the `/metrics` job gauges and the callbacks. Jobs belong to no connection: a client that goes away
/// cancels nothing; only `cancel` (or draining, for queued jobs) does.
///
/// Lock order: the service's lock may be held while the service calls the event closure, which takes
/// this lock; so this lock is never held while calling into the service or a ticket.
final class JobManager: @unchecked Sendable {
    private let condition = NSCondition()
    private var store: JobStore
    private var tickets: [String: GenerationTicket] = [:]
    private let metrics: ServingMetrics
    private let logger: Logger
    private let callbacks: CallbackSender?
    /// Seconds on a monotonic clock (TTL); tests may move it.
    private let clock: @Sendable () -> Double
    /// Image encodings under way (a drain waits for them).
    private let encoding = DispatchGroup()

    /// A manager keeping jobs within `limits`, counting into `metrics`, POSTing finished jobs with a
    /// `callback_url` through `callbacks`.
    init(limits: JobStore.Limits, metrics: ServingMetrics, logger: Logger, callbacks: CallbackSender? = nil,
         clock: @escaping @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }) {
        store = JobStore(limits: limits)
        self.metrics = metrics
        self.logger = logger
        self.callbacks = callbacks
        self.clock = clock
        updateGauges()
    }

    /// The store's limits.
    var limits: JobStore.Limits { store.limits }

    private static func unixNow() -> Int { Int(Date().timeIntervalSince1970) }

    /// Queues `job` on `service` as a new job of `owner`; its images are encoded by `encode` into files
    /// of `mediaType`. Returns the record as it stands after submission (with its queue position);
    /// throws the service's `ServingError` (429 queue full, 503 draining) and keeps nothing then.
    func submit(_ job: ImageJob, owner: Int?, callbackURL: String?, service: any GenerationService, mediaType: String,
                encode: @escaping @Sendable (GenerationOutput) throws -> [[UInt8]]) throws -> JobRecord {
        let id = JobStore.newID()
        condition.lock()
        store.create(id: id, owner: owner, created: Self.unixNow(), seed: job.generation.seed, numImages: job.generation.numImages,
                     callbackURL: callbackURL)
        condition.unlock()
        let ticket: GenerationTicket
        do {
            ticket = try service.submit(job.generation, id: "job-\(id)", timeout: job.timeout) { [weak self] event in
                self?.handle(id, event, mediaType: mediaType, encode: encode)
            }
        } catch {
            condition.lock()
            store.discard(id)
            condition.unlock()
            throw error
        }
        condition.lock()
        defer { condition.unlock() }
        // The job may have finished (and even been evicted) already; only an unfinished one needs its ticket.
        if case .found(let r) = store.lookup(id, owner: owner), !r.status.isFinished { tickets[id] = ticket }
        updateGauges()
        if case .found(let r) = store.lookup(id, owner: owner) { return r }
        return JobRecord(id: id, owner: owner, created: Self.unixNow(), seed: job.generation.seed, numImages: job.generation.numImages,
                         callbackURL: callbackURL)
    }

    /// The job `id` as `owner` sees it (TTL applied first).
    func lookup(_ id: String, owner: Int?) -> JobStore.Lookup {
        condition.lock()
        defer { condition.unlock() }
        carryOut(store.sweep(now: clock()))
        return store.lookup(id, owner: owner)
    }

    /// Cancels `id` for `owner`: a queued or running job is `cancelled` at once (a running one computes
    /// no further step). Returns the job after the change.
    func cancel(_ id: String, owner: Int?) -> JobStore.Lookup {
        condition.lock()
        carryOut(store.sweep(now: clock()))
        let (lookup, actions) = store.cancel(id, owner: owner, now: clock(), unix: Self.unixNow())
        let cancel = carryOut(actions)
        condition.unlock()
        for ticket in cancel { ticket.cancel() }
        return lookup
    }

    /// The events of `id` after `lastEventID`, waiting up to `timeout` seconds for one when there is none
    /// yet and the job has not finished (`finished`: no event will follow); nil when the job is no longer
    /// there for `owner` (evicted).
    func events(_ id: String, owner: Int?, after lastEventID: Int?, timeout: Double) -> (events: [JobEvent], finished: Bool)? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while true {
            guard case .found(let record) = store.lookup(id, owner: owner) else { return nil }
            let events = store.events(id, after: lastEventID)
            if !events.isEmpty || record.status.isFinished || !condition.wait(until: deadline) { return (events, record.status.isFinished) }
        }
    }

    /// Shutdown: cancels every queued job (status `cancelled`, error code `draining`); running jobs finish.
    func drain() {
        condition.lock()
        let cancel = carryOut(store.drain(now: clock(), unix: Self.unixNow()))
        condition.unlock()
        for ticket in cancel { ticket.cancel() }
    }

    /// Runs `completion` once the images being encoded are stored and the callbacks under way are
    /// delivered or given up, or after `timeout` seconds (the end of a drain, after the scheduler is idle).
    func finishPending(within timeout: Double, completion: @escaping @Sendable () -> Void) {
        let deadline = DispatchTime.now() + timeout
        DispatchQueue.global().async { [self] in
            _ = encoding.wait(timeout: deadline)
            callbacks?.waitUntilSent(deadline: deadline)
            completion()
        }
    }

    /// Applies TTL eviction and sets the `/metrics` gauges (before a scrape).
    func refreshMetrics() {
        condition.lock()
        carryOut(store.sweep(now: clock()))
        updateGauges()
        condition.unlock()
    }

    // MARK: - Events from the scheduler (its threads; must not block)

    private func handle(_ id: String, _ event: GenerationEvent, mediaType: String,
                        encode: @escaping @Sendable (GenerationOutput) throws -> [[UInt8]]) {
        switch event {
        case .queued(let position):
            change { $0.queued(id, position: position); return [] }
        case .progress(let stage, let step, let total):
            change { $0.progress(id, stage: stage.rawValue, step: step, total: total); return [] }
        case .preview:
            break  // jobs ask for no previews
        case .failed(let error):
            change { [clock] in $0.ended(id, error: error, now: clock(), unix: Self.unixNow()) }
        case .completed(let output):
            // Encoding takes a while: off the engine thread, the job stays `running` meanwhile.
            encoding.enter()
            DispatchQueue.global().async { [self] in
                defer { encoding.leave() }
                do {
                    let files = try encode(output)
                    change { [clock] in $0.succeeded(id, images: files, mediaType: mediaType, now: clock(), unix: Self.unixNow()) }
                } catch {
                    let failure = ServingError(status: 500, message: "encoding the images failed", type: "server_error", code: "encoding_failed")
                    logger.error("job image encoding failed", metadata: ["job_id": "\(id)", "error": "\(error)"])
                    change { [clock] in $0.ended(id, error: failure, now: clock(), unix: Self.unixNow()) }
                }
            }
        }
    }

    private func change(_ body: (inout JobStore) -> [JobStore.Action]) {
        condition.lock()
        let cancel = carryOut(body(&store))
        condition.unlock()
        for ticket in cancel { ticket.cancel() }
    }

    /// Carries out `actions` (lock held); returns the tickets to cancel once the lock is released.
    @discardableResult
    private func carryOut(_ actions: [JobStore.Action]) -> [GenerationTicket] {
        var cancel: [GenerationTicket] = []
        for action in actions {
            switch action {
            case .cancelTicket(let id):
                if let ticket = tickets.removeValue(forKey: id) { cancel.append(ticket) }
            case .finished(let record):
                tickets.removeValue(forKey: record.id)
                logger.info("job finished", metadata: ["job_id": "\(record.id)", "status": "\(record.status.rawValue)"])
                if let url = record.callbackURL, let callbacks {
                    callbacks.send(record.document(ttl: store.limits.ttl), to: url, jobID: record.id)
                }
            case .evicted:
                metrics.jobsEvicted.increment()
            }
        }
        updateGauges()
        condition.broadcast()
        return cancel
    }

    private func updateGauges() {
        for (status, count) in store.counts { metrics.jobs[status]?.set(Double(count)) }
    }
}
