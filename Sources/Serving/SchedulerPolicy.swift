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
    /// `idle_release_ms`: how long the engine stays idle (nothing queued or running) before it gives the
    /// memory it keeps for reuse back to the system (`Compute.releaseIdleMemory`: the buffer cache's blocks
    /// and malloc's free pages), in seconds; 0 never does. Once per idle period. The next request pays its
    /// first step's page faults.
    public var idleRelease = 2.0
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
