import Tensor
import Wuerstchen

/// A request inside `BatchingGenerationService`: what the engine computes for it and where its events
/// go. Its queue bookkeeping (status, steps, deadline) is `JobQueue`'s.
final class ScheduledJob: @unchecked Sendable {
    /// What a request needs next, with the state it carries there.
    enum Phase {
        case encodePrior
        case prior(PriorJob)
        case encodeDecoder(PriorJob, imageEmbeddings: Tensor)
        case decoder(DecoderJob, imageEmbeddings: Tensor)
        case decode(DecoderJob, imageEmbeddings: Tensor)

        /// The prior job while denoising in the prior.
        var prior: PriorJob? { if case .prior(let p) = self { p } else { nil } }
        /// The finished prior job and its image embeddings, between the stages.
        var betweenStages: (prior: PriorJob, imageEmbeddings: Tensor)? {
            if case .encodeDecoder(let p, let e) = self { (p, e) } else { nil }
        }
        /// The decoder job and the image embeddings while denoising in the decoder.
        var decoder: (job: DecoderJob, imageEmbeddings: Tensor)? {
            if case .decoder(let d, let e) = self { (d, e) } else { nil }
        }
        /// The finished decoder job and the image embeddings, before VQ decoding.
        var finishedDecoder: (job: DecoderJob, imageEmbeddings: Tensor)? {
            if case .decode(let d, let e) = self { (d, e) } else { nil }
        }
    }

    /// Its `JobQueue` serial (submission order).
    let serial: Int
    let request: GenerationRequest
    /// When it was submitted (monotonic nanoseconds).
    let submitted: UInt64
    /// Rows it puts into a prior and a decoder forward pass.
    let priorRows: Int, decoderRows: Int
    /// Only the engine thread writes `phase`, between units; it reads it without the lock while it
    /// computes a unit, so nothing else may touch it.
    var phase = Phase.encodePrior
    private let sink: @Sendable (GenerationEvent) -> Void
    private var ended = false

    init(serial: Int, request: GenerationRequest, submitted: UInt64, events: @escaping @Sendable (GenerationEvent) -> Void) {
        self.serial = serial
        self.request = request
        self.submitted = submitted
        priorRows = Self.rows(request, guidance: request.priorGuidance)
        decoderRows = Self.rows(request, guidance: request.decoderGuidance)
        sink = events
    }

    /// Rows a request puts into one forward pass of a stage: its images, twice when guided.
    static func rows(_ request: GenerationRequest, guidance: Float) -> Int { request.numImages * (guidance > 1 ? 2 : 1) }

    /// Rows it may put into one forward pass.
    static func rows(_ request: GenerationRequest) -> Int {
        max(rows(request, guidance: request.priorGuidance), rows(request, guidance: request.decoderGuidance))
    }

    /// Sends `event` unless a terminal one went out already (called with the service's lock held: the
    /// callbacks do not block, and holding it keeps each job's events in order).
    func emit(_ event: GenerationEvent) {
        guard !ended else { return }
        ended = event.isTerminal
        sink(event)
    }

    /// What the planner sees of it.
    var candidate: BatchPlanner.Candidate {
        switch phase {
        case .encodePrior: BatchPlanner.Candidate(order: serial, need: .encodePrior, rows: priorRows)
        case .prior(let p): BatchPlanner.Candidate(order: serial, need: .priorStep, key: p.batchKey, rows: priorRows)
        case .encodeDecoder: BatchPlanner.Candidate(order: serial, need: .encodeDecoder, rows: decoderRows)
        case .decoder(let d, _): BatchPlanner.Candidate(order: serial, need: .decoderStep, key: d.batchKey, rows: decoderRows)
        case .decode(let d, _):
            BatchPlanner.Candidate(order: serial, need: .decode, key: Array(d.latents.shape.dropFirst()), rows: request.numImages)
        }
    }
}
