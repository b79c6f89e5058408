import CLIP
import Foundation
import SafeTensors
import Tensor

/// Where a request is, reported after every denoising step.
public struct GenerationProgress: Sendable, Equatable {
    /// Which stage ran the step.
    public enum Stage: String, Sendable { case prior, decoder }
    /// Index of the request in the batch given to `generate`.
    public let request: Int
    public let stage: Stage
    /// Steps done in this stage (1...total).
    public let step: Int
    /// Steps in this stage.
    public let total: Int
}

/// A unit of work `generate` has just finished, so that a caller can time the stages (`wuerstchen bench`).
public enum GenerationUnit: Sendable, Equatable {
    /// One request's prompts through the prior's text encoder.
    case priorText
    /// One batched denoising step of the prior.
    case priorStep
    /// One request's image embeddings taken from its finished prior latents.
    case priorEmbeddings
    /// One request's prompts through the decoder's text encoder.
    case decoderText
    /// One batched denoising step of the decoder.
    case decoderStep
    /// One request's latents through the VQ-GAN decoder into pixels.
    case vqDecode
}

/// What one request produced.
public struct GenerationOutput: @unchecked Sendable {
    /// The prior's image embeddings `[n, h, w, 16]` (NHWC; diffusers' `image_embeddings` permuted).
    public let imageEmbeddings: Tensor
    /// Pixels in [0, 1], `[n, H, W, 3]`.
    public let images: Tensor

    /// An output from its parts.
    public init(imageEmbeddings: Tensor, images: Tensor) {
        self.imageEmbeddings = imageEmbeddings
        self.images = images
    }
}

/// The text-to-image pipeline: Stage C (prior), then Stages B and A (decoder), with the models resident.
///
/// Requests run together: jobs whose latents have the same shape share each forward pass, every
/// request with its own `TorchGenerator` seeded from its `seed`, so an image depends only on its request.
public final class WuerstchenPipeline: @unchecked Sendable {
    public let prior: WuerstchenPriorPipeline
    public let decoder: WuerstchenDecoderPipeline

    public init(prior: WuerstchenPriorPipeline, decoder: WuerstchenDecoderPipeline) {
        self.prior = prior
        self.decoder = decoder
    }

    /// Loads `warp-ai/wuerstchen-prior` and `warp-ai/wuerstchen` folders (diffusers or Paddle layout), GEMM
    /// weights in `precision` (pass a `Precision.resolved()` one: bf16 runs emulated, slowly, without AVX512-BF16).
    public convenience init(
        priorFolder: URL, decoderFolder: URL, variant: WeightsVariant = .preferFull, precision: Precision = .fp32
    ) throws {
        try self.init(prior: WuerstchenPriorPipeline(folder: priorFolder, variant: variant, precision: precision),
                      decoder: WuerstchenDecoderPipeline(folder: decoderFolder, variant: variant, precision: precision))
    }

    /// The sizes both stages can take.
    public var sizeRules: SizeRules {
        SizeRules(resolutionMultiple: prior.resolutionMultiple, latentDimScale: decoder.latentDimScale,
                  decoderLatentMultiple: decoder.decoder.config.latentMultiple)
    }

    /// Runs `requests` to images. `progress` is called after every step of every request; returning
    /// false cancels that request (no further steps are computed for it; its result is a
    /// `GenerationError` with field nil and message "cancelled"). `unitFinished` is told of every unit of
    /// work as it ends, before the progress of a step is reported.
    /// Throws before any work when a request is invalid (the error names the field; at most `maxImages` each).
    public func generate(
        _ requests: [GenerationRequest], maxImages: Int = 8, progress: ((GenerationProgress) -> Bool)? = nil,
        unitFinished: ((GenerationUnit) -> Void)? = nil
    ) throws -> [Result<GenerationOutput, GenerationError>] {
        let rules = sizeRules
        for r in requests { try r.validate(sizes: rules, maxImages: maxImages) }
        var results = [Result<GenerationOutput, GenerationError>?](repeating: nil, count: requests.count)
        let cancelled = GenerationError(field: nil, message: "cancelled")

        // Stage C for all requests, then Stages B and A for those still wanted.
        var embeddings: [Int: (PriorJob, Tensor)] = [:]
        let priorJobs = try requests.enumerated().map { i, r in
            let job = try prior.start(r, generator: TorchGenerator(seed: r.seed))
            unitFinished?(.priorText)
            return (i, job)
        }
        run(priorJobs, .prior, step: prior.step, stepped: { unitFinished?(.priorStep) }, progress: progress, results: &results) { i, job in
            embeddings[i] = (job, prior.imageEmbeddings(job))
            unitFinished?(.priorEmbeddings)
            return nil
        }
        let decoderJobs = try embeddings.keys.sorted().map { i in
            let job = try decoder.start(requests[i], imageEmbeddings: embeddings[i]!.1, generator: embeddings[i]!.0.generator)
            unitFinished?(.decoderText)
            return (i, job)
        }
        try run(decoderJobs, .decoder, step: decoder.step, stepped: { unitFinished?(.decoderStep) }, progress: progress, results: &results) { i, job in
            let images = try decoder.images(job)
            unitFinished?(.vqDecode)
            return GenerationOutput(imageEmbeddings: embeddings[i]!.1, images: images)
        }
        return results.map { $0 ?? .failure(cancelled) }
    }

    /// Steps `jobs` to completion, each step batching the jobs of equal `batchKey` (`stepped` after each);
    /// reports progress, drops a job whose progress callback returns false (its result becomes "cancelled"),
    /// and hands each finished job to `finished`, whose output (if any) becomes the job's result.
    private func run<J: DenoisingJob>(
        _ jobs: [(Int, J)], _ stage: GenerationProgress.Stage, step: ([J]) -> Void, stepped: () -> Void,
        progress: ((GenerationProgress) -> Bool)?, results: inout [Result<GenerationOutput, GenerationError>?],
        finished: (Int, J) throws -> GenerationOutput?
    ) rethrows {
        var jobs = jobs
        while !jobs.isEmpty {
            for group in groups(jobs, key: { $0.batchKey }) {
                step(group.map(\.1))
                stepped()
                for (i, job) in group where progress?(GenerationProgress(request: i, stage: stage, step: job.stepIndex, total: job.stepCount)) == false {
                    results[i] = .failure(GenerationError(field: nil, message: "cancelled"))
                }
            }
            for (i, job) in jobs where job.isFinished && results[i] == nil {
                if let output = try finished(i, job) { results[i] = .success(output) }
            }
            jobs.removeAll { $0.1.isFinished || results[$0.0] != nil }
        }
    }

    /// Jobs split by `key`, in order of first appearance.
    private func groups<J>(_ jobs: [(Int, J)], key: (J) -> [Int]) -> [[(Int, J)]] {
        var order: [[Int]] = [], byKey: [[Int]: [(Int, J)]] = [:]
        for item in jobs {
            let k = key(item.1)
            if byKey[k] == nil { order.append(k) }
            byKey[k, default: []].append(item)
        }
        return order.map { byKey[$0]! }
    }
}
