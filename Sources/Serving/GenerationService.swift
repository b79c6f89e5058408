import Foundation
import Tensor
import Wuerstchen

/// What happens to a submitted request, in order: `queued` (again whenever the queue moves), then
/// `progress` after every denoising step (with `preview` after some decoder steps when asked for), then
/// exactly one of `completed` or `failed`.
public enum GenerationEvent: Sendable {
    /// Waiting: `position` requests are ahead of it (0 = next to run).
    case queued(position: Int)
    /// One step of `stage` done (`step` of `total`).
    case progress(stage: GenerationProgress.Stage, step: Int, total: Int)
    /// Preview `index` (0-based) of a request that asked for some (`GenerationRequest.previewCount`): its
    /// predicted clean images after a decoder step, `[n, H, W, 3]` in [0, 1]; follows that step's `progress`.
    case preview(index: Int, images: Tensor)
    /// The images, `[n, H, W, 3]` in [0, 1].
    case completed(GenerationOutput)
    /// The request failed or was cancelled (`ServingError.cancelled`, code `cancelled`).
    case failed(ServingError)

    /// True for `completed` and `failed`: no event follows.
    public var isTerminal: Bool {
        switch self {
        case .completed, .failed: true
        default: false
        }
    }
}

/// Where a job is (llama.cpp server's task states).
public enum GenerationJobStatus: String, Sendable, Equatable {
    /// Waiting in the queue.
    case queued
    /// Being computed.
    case running
    /// Finished with images.
    case done
    /// Finished with an error.
    case failed
    /// Stopped by its ticket (client gone) before finishing.
    case cancelled
}

/// What a service remembers about a job (recent jobs are kept for inspection and tests).
public struct GenerationJobSummary: Sendable, Equatable {
    /// The id given at submission (the HTTP request id).
    public var id: String
    /// Where it is.
    public var status: GenerationJobStatus
    /// Denoising steps computed for it, both stages together.
    public var stepsRun: Int
    /// Steps it would take to finish.
    public var stepsTotal: Int
}

/// A handle on a submitted request.
public final class GenerationTicket: Sendable {
    /// The id given at submission.
    public let id: String
    private let onCancel: @Sendable () -> Void

    /// A ticket whose `cancel` calls `onCancel`.
    public init(id: String, onCancel: @escaping @Sendable () -> Void) {
        self.id = id
        self.onCancel = onCancel
    }

    /// Stops the request: a queued one leaves the queue, a running one computes no further step;
    /// either then reports `failed(.cancelled)`. Does nothing once it has finished. Never blocks.
    public func cancel() { onCancel() }
}

/// Turns requests into images: the seam between the HTTP layer and the scheduler.
public protocol GenerationService: AnyObject, Sendable {
    /// The sizes the model takes and its tokenizer limits.
    var model: ServedModel { get }

    /// Queues `request` under `id`, to finish within `timeout` seconds of now (the service's default
    /// when nil; it may lower a larger one) or fail with 504 `deadline_exceeded`. `events` is called
    /// from the service's threads, in order, and must not block. Throws `ServingError` 429 (with
    /// `retryAfterSeconds`) when the queue is full, 503 when the service is stopping.
    func submit(_ request: GenerationRequest, id: String, timeout: Double?,
                events: @escaping @Sendable (GenerationEvent) -> Void) throws -> GenerationTicket

    /// Requests waiting for admission (not counting the running ones).
    var queueLength: Int { get }

    /// The job `id` if it is queued, running or among the recent ones.
    func summary(of id: String) -> GenerationJobSummary?

    /// Stops taking requests; queued and running ones still finish. `completion` runs once idle.
    func shutdown(completion: @escaping @Sendable () -> Void)
}

/// What the API needs to know about the resident model.
public struct ServedModel: Sendable {
    /// Valid image sizes.
    public var sizeRules: SizeRules
    /// Counts the CLIP tokens of a prompt (BOS and EOS included), to report truncation.
    public var tokenCount: @Sendable (String) -> Int
    /// Tokens CLIP reads (77); longer prompts are truncated.
    public var maxTokens: Int

    /// A description of `pipeline`.
    public init(pipeline: WuerstchenPipeline) {
        sizeRules = pipeline.sizeRules
        let tokenizer = pipeline.prior.tokenizer
        tokenCount = { tokenizer.tokenIDs($0).count + 2 }
        maxTokens = tokenizer.maxLength
    }

    /// A description from its parts (for tests and other services).
    public init(sizeRules: SizeRules, maxTokens: Int = 77, tokenCount: @escaping @Sendable (String) -> Int) {
        self.sizeRules = sizeRules
        self.maxTokens = maxTokens
        self.tokenCount = tokenCount
    }
}
