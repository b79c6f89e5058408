import Foundation
import JSON

/// Where a job of `POST /v1/jobs` is (`GET /v1/jobs/{id}` `status`; stable-diffusion.cpp's server and
/// Cog use the same states).
public enum JobStatus: String, Sendable, CaseIterable {
    /// Waiting for the scheduler to admit it.
    case queued
    /// Being computed (its first step is done or under way).
    case running
    /// Finished with images, which `GET /v1/jobs/{id}/images/{i}` serves.
    case succeeded
    /// Finished with an error (`error` says which).
    case failed
    /// Stopped by `DELETE /v1/jobs/{id}` or `POST /v1/jobs/{id}/cancel`, or by the server draining.
    case cancelled
    /// Its deadline (`timeout_seconds`, at most `scheduler.request_timeout_seconds`) passed before it finished.
    case expired

    /// True once nothing more happens to the job.
    public var isFinished: Bool { self != .queued && self != .running }
}

/// The last step a job reported.
struct JobProgress: Equatable, Sendable {
    /// `prior` or `decoder`.
    var stage: String
    var step: Int
    var total: Int
}

/// One event of a job's log, as `GET /v1/jobs/{id}/events` sends it: `id` counts from 1 per job (the
/// SSE `id:` line that `Last-Event-ID` names).
struct JobEvent: Equatable, Sendable {
    let id: Int
    /// `queued`, `progress`, or the final status (`succeeded`, `failed`, `cancelled`, `expired`).
    let name: String
    let data: JSONValue

    /// The SSE block (`id:`, `event:`, `data:`, blank line).
    var serialized: String { EventStream.block(event: name, data: data, id: id) }
}

/// What the store keeps of one job. Every field is set through `JobStore`'s functions.
struct JobRecord: Equatable, Sendable {
    /// 128 random bits, 32 hex digits.
    let id: String
    /// The index of the API key that created it (nil with keys off): only that key sees it.
    let owner: Int?
    /// Unix seconds of creation (`created`).
    let created: Int
    /// The request's seed and image count, for the status document.
    let seed: UInt64
    let numImages: Int
    /// Where to POST the final status, if anywhere (`callback_url`).
    let callbackURL: String?
    var status = JobStatus.queued
    /// Requests ahead of it while queued.
    var queuePosition: Int? = 0
    var progress: JobProgress?
    /// The encoded image files once succeeded, and their media type.
    var images: [[UInt8]] = []
    var mediaType = "image/png"
    /// Why it failed, was cancelled or expired.
    var error: ServingError?
    /// Unix seconds it finished, and the store clock's reading then (TTL counts from it).
    var finishedAt: Int?
    var finishedClock: Double?
    var events: [JobEvent] = []

    /// Memory the record holds: its images plus its event log's text plus a fixed 512 for the rest.
    var bytes: Int { images.reduce(0) { $0 + $1.count } + events.reduce(0) { $0 + $1.serialized.utf8.count } + 512 }
}

/// The jobs of `POST /v1/jobs`: their states, event logs and results in memory, never on disk. A value
/// type whose `mutating` functions return what the caller must do (`JobManager` carries that out under
/// its lock), so every rule is tested without threads (`JobStoreTests`).
///
/// Rules:
/// 1. A job is `queued`, then `running` from its first progress event, then exactly one of `succeeded`,
///    `failed`, `cancelled` or `expired`; events after that are ignored (a cancel wins a race with the
///    engine's last step: the job answers `cancelled` at once and its late images are dropped).
/// 2. Finished jobs are kept `ttl` seconds after finishing, then evicted; unfinished ones are never
///    evicted (the scheduler's queue bounds them).
/// 3. When the records together hold more than `maxBytes`, finished jobs are evicted oldest finished
///    first until they fit (a job whose own images pass `maxBytes` is evicted as it finishes).
/// 4. An evicted id answers `evicted` (410) to its owner; the last `maxTombstones` evicted ids are
///    remembered, older ones answer `unknown` (404) like ids never issued.
/// 5. With API keys on, a job is found only with the key that created it; to any other key it is
///    `unknown`, exactly as an id never issued (404, not 403: ids cannot be probed).
struct JobStore {
    /// How long and how much the store keeps.
    struct Limits: Equatable, Sendable {
        /// `jobs.ttl_seconds`: how long a finished job stays readable.
        var ttl: Double = 3600
        /// `jobs.max_bytes`: memory for all jobs' images and event logs.
        var maxBytes: Int = 256 << 20
        /// Evicted ids remembered for 410 answers.
        var maxTombstones: Int = 10_000
    }

    /// What a look-up finds.
    enum Lookup: Equatable {
        case found(JobRecord)
        /// Evicted (TTL or memory): 410.
        case evicted
        /// Never issued, forgotten, or another key's: 404.
        case unknown
    }

    /// What the caller must do after a change.
    enum Action: Equatable {
        /// Cancel the job's scheduler ticket.
        case cancelTicket(id: String)
        /// The job finished: wake its event streams, send its callback, forget its ticket.
        case finished(JobRecord)
        /// The job was evicted (count it).
        case evicted(id: String)
    }

    let limits: Limits
    private(set) var records: [String: JobRecord] = [:]
    /// Finished ids, oldest finished first (the eviction order).
    private var finishedOrder: [String] = []
    /// Evicted ids with their owners, and their order.
    private var tombstones: [String: Int?] = [:]
    private var tombstoneOrder: [String] = []
    /// Bytes all records hold.
    private(set) var totalBytes = 0

    init(limits: Limits = Limits()) { self.limits = limits }

    /// Records by status (every status present, 0 when none).
    var counts: [JobStatus: Int] {
        var counts = Dictionary(uniqueKeysWithValues: JobStatus.allCases.map { ($0, 0) })
        for record in records.values { counts[record.status, default: 0] += 1 }
        return counts
    }

    /// A new id: 128 bits from the system's secure generator, as 32 hex digits.
    static func newID() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<2).map { _ in String(rng.next() as UInt64, radix: 16).leftPadded(to: 16) }.joined()
    }

    // MARK: - Look-ups

    /// The job `id` as `owner` may see it.
    func lookup(_ id: String, owner: Int?) -> Lookup {
        if let record = records[id] { return record.owner == owner ? .found(record) : .unknown }
        if let evictedOwner = tombstones[id], evictedOwner == owner { return .evicted }
        return .unknown
    }

    /// `id`'s events after `lastEventID` (all with nil).
    func events(_ id: String, after lastEventID: Int?) -> [JobEvent] {
        guard let record = records[id] else { return [] }
        guard let last = lastEventID else { return record.events }
        return record.events.filter { $0.id > last }
    }

    // MARK: - Changes

    /// Records a new queued job.
    mutating func create(id: String, owner: Int?, created: Int, seed: UInt64, numImages: Int, callbackURL: String?) {
        precondition(records[id] == nil && tombstones[id] == nil, "job id \(id) issued twice")
        let record = JobRecord(id: id, owner: owner, created: created, seed: seed, numImages: numImages, callbackURL: callbackURL)
        records[id] = record
        totalBytes += record.bytes
    }

    /// Forgets a job the scheduler refused (it was never answered with 202).
    mutating func discard(_ id: String) {
        guard let record = records.removeValue(forKey: id) else { return }
        totalBytes -= record.bytes
    }

    /// The scheduler moved the job in its queue.
    mutating func queued(_ id: String, position: Int) {
        change(id) { r in
            guard r.status == .queued else { return }
            r.queuePosition = position
            r.events.append(JobEvent(id: r.events.count + 1, name: "queued", data: .object([("position", .int(position))])))
        }
    }

    /// One step of `stage` done: the job runs.
    mutating func progress(_ id: String, stage: String, step: Int, total: Int) {
        change(id) { r in
            guard !r.status.isFinished else { return }
            r.status = .running
            r.queuePosition = nil
            r.progress = JobProgress(stage: stage, step: step, total: total)
            r.events.append(JobEvent(id: r.events.count + 1, name: "progress", data: .object([
                ("stage", .string(stage)), ("step", .int(step)), ("total", .int(total))])))
        }
    }

    /// The job's images, encoded (`mediaType`), at store clock `now` / unix `unix`.
    mutating func succeeded(_ id: String, images: [[UInt8]], mediaType: String, now: Double, unix: Int) -> [Action] {
        finish(id, as: .succeeded, now: now, unix: unix) { r in
            r.images = images
            r.mediaType = mediaType
        }
    }

    /// The job ended without images: `error`'s code decides whether it failed, was cancelled or expired.
    mutating func ended(_ id: String, error: ServingError, now: Double, unix: Int) -> [Action] {
        let status: JobStatus = switch error.code ?? "" {
        case "cancelled", "draining": .cancelled
        case "deadline_exceeded": .expired
        default: .failed
        }
        return finish(id, as: status, now: now, unix: unix) { $0.error = error }
    }

    /// A client cancels `id` (as `owner`): a queued or running job is `cancelled` at once and its ticket
    /// must be cancelled; a finished one is left as it is. Returns the look-up after the change.
    mutating func cancel(_ id: String, owner: Int?, now: Double, unix: Int) -> (Lookup, [Action]) {
        guard case .found(let record) = lookup(id, owner: owner) else { return (lookup(id, owner: owner), []) }
        guard !record.status.isFinished else { return (.found(record), []) }
        let error = ServingError(status: 409, message: "the job was cancelled", type: "invalid_request_error", code: "cancelled")
        var actions = [Action.cancelTicket(id: id)]
        actions += finish(id, as: .cancelled, now: now, unix: unix) { $0.error = error }
        return (lookup(id, owner: owner), actions)
    }

    /// Shutdown: every queued job is cancelled (its results could not outlive the process anyway);
    /// running ones finish.
    mutating func drain(now: Double, unix: Int) -> [Action] {
        let queued = records.values.filter { $0.status == .queued }.map(\.id).sorted()
        let error = ServingError.draining
        var actions: [Action] = []
        for id in queued {
            actions.append(.cancelTicket(id: id))
            actions += finish(id, as: .cancelled, now: now, unix: unix) { $0.error = error }
        }
        return actions
    }

    /// Evicts the finished jobs older than the TTL at store clock `now`.
    mutating func sweep(now: Double) -> [Action] {
        var actions: [Action] = []
        while let oldest = finishedOrder.first, let clock = records[oldest]?.finishedClock, now - clock >= limits.ttl {
            actions.append(evict(oldest))
        }
        return actions
    }

    // MARK: - Helpers

    private mutating func change(_ id: String, _ body: (inout JobRecord) -> Void) {
        guard var record = records[id] else { return }
        totalBytes -= record.bytes
        body(&record)
        totalBytes += record.bytes
        records[id] = record
    }

    private mutating func finish(_ id: String, as status: JobStatus, now: Double, unix: Int,
                                 _ body: (inout JobRecord) -> Void) -> [Action] {
        guard let current = records[id], !current.status.isFinished else { return [] }
        change(id) { r in
            body(&r)
            r.status = status
            r.queuePosition = nil
            r.finishedAt = unix
            r.finishedClock = now
        }
        // The final event carries the status document, so a stream needs no extra poll.
        let ttl = limits.ttl
        change(id) { r in r.events.append(JobEvent(id: r.events.count + 1, name: status.rawValue, data: r.document(ttl: ttl))) }
        finishedOrder.append(id)
        var actions = [Action.finished(records[id]!)]
        while totalBytes > limits.maxBytes, let oldest = finishedOrder.first {
            actions.append(evict(oldest))
        }
        return actions
    }

    private mutating func evict(_ id: String) -> Action {
        finishedOrder.removeAll { $0 == id }
        if let record = records.removeValue(forKey: id) {
            totalBytes -= record.bytes
            tombstones[id] = record.owner
            tombstoneOrder.append(id)
            if tombstoneOrder.count > limits.maxTombstones {
                tombstones.removeValue(forKey: tombstoneOrder.removeFirst())
            }
        }
        return .evicted(id: id)
    }
}

extension JobRecord {
    /// The status document (`GET /v1/jobs/{id}`, the final SSE event, the callback body):
    /// `{id, object, status, created, seed, num_images, queue_position (null unless queued), progress?,
    /// images? and media_type? (when succeeded), error?, finished_at?, expires_at?}`.
    func document(ttl: Double) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("id", .string(id)), ("object", .string("job")), ("status", .string(status.rawValue)),
            ("created", .int(created)), ("seed", .int(seed)), ("num_images", .int(numImages)),
        ]
        members.append(("queue_position", status == .queued ? .int(queuePosition ?? 0) : .null))
        if let p = progress {
            members.append(("progress", .object([("stage", .string(p.stage)), ("step", .int(p.step)), ("total", .int(p.total))])))
        }
        if status == .succeeded {
            members.append(("images", .array((0..<images.count).map { .string("/v1/jobs/\(id)/images/\($0)") })))
            members.append(("media_type", .string(mediaType)))
        }
        if let error { members.append(("error", error.json["error"] ?? .null)) }
        if let finishedAt {
            members.append(("finished_at", .int(finishedAt)))
            members.append(("expires_at", .int(finishedAt + Int(ttl.rounded(.up)))))
        }
        return .object(members)
    }
}
