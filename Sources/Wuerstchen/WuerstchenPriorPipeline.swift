import CLIP
import Foundation
import SafeTensors
import Tensor

// diffusers pipelines/deprecated/wuerstchen/pipeline_wuerstchen_prior.py, split into steps so that
// requests at different steps can share one forward pass (each row carries its own r).

/// A request's state in the prior: its text keys/values on top of the shared job state.
public final class PriorJob: DenoisingJob, @unchecked Sendable {
    /// The prior's keys and values of the text (`[n, 77, D]` rows, then the unconditional rows when
    /// guided), computed once: they do not change from step to step.
    let conditioning: WuerstchenPrior.Conditioning

    init(request: GenerationRequest, generator: TorchGenerator, conditioning: WuerstchenPrior.Conditioning, timesteps: [Float], latents: Tensor) {
        self.conditioning = conditioning
        super.init(request: request, generator: generator, guidance: request.priorGuidance, timesteps: timesteps, latents: latents)
    }
}

/// Stage C: text to image embeddings (`WuerstchenPriorPipeline`).
public final class WuerstchenPriorPipeline: @unchecked Sendable {
    public let tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    public let prior: WuerstchenPrior
    public let scheduler: DDPMWuerstchenScheduler
    /// `latent_mean` (42.0): the output is `latents * latent_mean - latent_std`, as diffusers writes it.
    public let latentMean: Float
    /// `latent_std` (1.0).
    public let latentStd: Float
    /// `resolution_multiple` (42.67): pixels per prior latent.
    public let resolutionMultiple: Double

    // Deliberate parallel of WuerstchenDecoderPipeline.swift:init and init(folder:): each stage's own components
    // and config values, as diffusers' two pipeline classes.
    /// A pipeline over loaded components.
    public init(
        tokenizer: CLIPTokenizer, textEncoder: CLIPTextModel, prior: WuerstchenPrior,
        scheduler: DDPMWuerstchenScheduler = DDPMWuerstchenScheduler(),
        latentMean: Float = 42.0, latentStd: Float = 1.0, resolutionMultiple: Double = 42.67
    ) {
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.prior = prior
        self.scheduler = scheduler
        self.latentMean = latentMean
        self.latentStd = latentStd
        self.resolutionMultiple = resolutionMultiple
    }

    /// Loads a `warp-ai/wuerstchen-prior` folder (diffusers or PaddlePaddle layout), GEMM weights in `precision`.
    public convenience init(folder: URL, variant: WeightsVariant = .preferFull, precision: Precision = .fp32) throws {
        let index = try PipelineIndex(folder: folder)
        // Loading frees many weight-sized temporaries (widened fp16, stacked q/k/v): do not cache them.
        let (textEncoder, prior) = try Compute.withBufferCacheDisabled {
            (try CLIPTextModel(folder: index.component("text_encoder"), variant: variant, precision: precision),
             try WuerstchenPrior(folder: index.component("prior"), variant: variant, precision: precision))
        }
        try self.init(
            tokenizer: CLIPTokenizer(directory: index.component("tokenizer")), textEncoder: textEncoder, prior: prior,
            scheduler: DDPMWuerstchenScheduler(folder: index.component("scheduler")),
            latentMean: Float(index.number("latent_mean", default: 42.0)),
            latentStd: Float(index.number("latent_std", default: 1.0)),
            resolutionMultiple: index.number("resolution_multiple", default: 42.67))
    }

    /// Prior latent size for an image of `height` x `width` pixels: `ceil(px / resolution_multiple)`.
    public func latentSize(height: Int, width: Int) -> (height: Int, width: Int) {
        (Int((Double(height) / resolutionMultiple).rounded(.up)), Int((Double(width) / resolutionMultiple).rounded(.up)))
    }

    /// The schedule of a request: `DEFAULT_STAGE_C_TIMESTEPS`, or `linspace(1, 0, steps + 1)`.
    public func timesteps(for request: GenerationRequest) -> [Float] {
        request.priorSteps.map { DDPMWuerstchenScheduler.timesteps(steps: $0) } ?? DDPMWuerstchenScheduler.defaultStageCTimesteps
    }

    /// Encodes the text and draws the initial latents (`encode_prompt` + `prepare_latents`).
    public func start(_ request: GenerationRequest, generator: TorchGenerator) throws -> PriorJob {
        try start([(request, generator)])[0]
    }

    /// Starts several requests with one text-encoder forward for all their prompts (the batching
    /// scheduler's text-encoding stage); each request draws its latents from its own generator.
    public func start(_ items: [(request: GenerationRequest, generator: TorchGenerator)]) throws -> [PriorJob] {
        var texts: [String] = [], spans: [Range<Int>] = []
        for (request, _) in items {
            let own = request.priorGuidance > 1 ? [request.prompt, request.negativePrompt] : [request.prompt]
            spans.append(texts.count..<(texts.count + own.count))
            texts += own
        }
        let hidden = try encode(texts)  // [texts, 77, D]
        return items.enumerated().map { i, item in
            let request = item.request
            // prompt_embeds.repeat_interleave(n) and negative_prompt_embeds.repeat(1, n, 1): n copies each.
            let condition = hidden.rowsView(spans[i]).repeatingRows(request.numImages)
            let (h, w) = latentSize(height: request.height, width: request.width)
            // randn_tensor((n, c_in, h, w)) in NCHW order, times init_noise_sigma (1.0).
            let latents = DDPMWuerstchenScheduler.stepNoise(item.generator, shape: [request.numImages, h, w, prior.config.cIn])
            return PriorJob(request: request, generator: item.generator, conditioning: prior.condition(clip: condition),
                            timesteps: timesteps(for: request), latents: latents)
        }
    }

    /// last_hidden_state of each text: [texts.count, 77, D]
    func encode(_ texts: [String]) throws -> Tensor {
        let tokens = texts.map { tokenizer.encode($0) }
        return try textEncoder(ids: tokens.map(\.ids), attentionMask: tokens.map(\.attentionMask))
    }

    /// One denoising step for every job (all with the same `batchKey`) in one forward pass.
    public func step(_ jobs: [PriorJob]) {
        precondition(!jobs.isEmpty && jobs.allSatisfy { !$0.isFinished && $0.batchKey == jobs[0].batchKey },
                     "prior step needs unfinished jobs of one latent shape")
        let conditioning = WuerstchenPrior.Conditioning.batched(jobs.map(\.conditioning))
        let predicted = prior(.stacked(jobs.flatMap(\.inputs)), r: jobs.flatMap(\.ratios), conditioning: conditioning)
        var row = 0
        for job in jobs { row = job.advance(predicted, from: row, scheduler: scheduler) }
    }

    /// The image embeddings of a finished job: `latents * latent_mean - latent_std` (sic, as diffusers).
    /// -> [n, h, w, 16]
    public func imageEmbeddings(_ job: PriorJob) -> Tensor {
        precondition(job.isFinished, "imageEmbeddings of an unfinished prior job")
        return job.latents.mul(latentMean).add(-latentStd)
    }
}
