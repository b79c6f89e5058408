import Wuerstchen

/// What the batching scheduler reports, through its one metrics hook (`ServingMetrics.record`).
enum SchedulerMeasurement: Sendable, Equatable {
    /// Requests waiting and running now.
    case depth(queued: Int, active: Int)
    /// A request waited this long before admission.
    case queueWait(nanoseconds: UInt64)
    /// A request was refused because the queue was full.
    case queueFull
    /// One forward pass of `stage` for `batch` requests took this long.
    case step(GenerationProgress.Stage, nanoseconds: UInt64, batch: Int)
    /// A request finished with `images` images, this long after submission.
    case completed(nanoseconds: UInt64, images: Int)
    /// A request was cancelled.
    case cancelled
    /// A request passed its deadline.
    case expired
    /// The idle engine gave memory back (`SchedulerPolicy.idleRelease`), this many bytes of it cached buffers.
    case idleMemoryReleased(bytes: Int)
}

extension ServingMetrics {
    /// Records one scheduler figure in its metric.
    func record(_ measurement: SchedulerMeasurement) {
        switch measurement {
        case .depth(let queued, let active):
            queueDepth.set(queued)
            activeRequests.set(active)
        case .queueWait(let ns): queueWait.recordNanoseconds(Int64(ns))
        case .queueFull: queueFull.increment()
        case .step(let stage, let ns, let batch):
            (stage == .prior ? priorStep : decoderStep).recordNanoseconds(Int64(ns))
            batchSize.record(batch)
        case .completed(let ns, let images):
            generationDuration.recordNanoseconds(Int64(ns))
            imagesGenerated.increment(by: Int64(images))
        case .cancelled: cancelled.increment()
        case .expired: deadlineExceeded.increment()
        case .idleMemoryReleased: idleMemoryReleases.increment()
        }
    }
}
