import CLIP
import Foundation
import SafeTensors
import Tensor

// diffusers pipelines/deprecated/wuerstchen/pipeline_wuerstchen.py, split into steps like the prior.

/// A request's state in the decoder: its image embeddings and text on top of the shared job state.
public final class DecoderJob: DenoisingJob, @unchecked Sendable {
    /// Image embeddings `[n, h, w, 16]`, then zeros for the unconditional rows when guided.
    let effnet: Tensor
    /// Text conditioning `[n, 77, D]`, then the unconditional rows when guided.
    let textCondition: Tensor

    init(request: GenerationRequest, generator: TorchGenerator, effnet: Tensor, textCondition: Tensor, timesteps: [Float], latents: Tensor) {
        self.effnet = effnet
        self.textCondition = textCondition
        super.init(request: request, generator: generator, guidance: request.decoderGuidance, timesteps: timesteps, latents: latents)
    }

    /// Jobs batch together only when their latents and their image embeddings agree in shape.
    public override var batchKey: [Int] { Array(latents.shape.dropFirst()) + Array(effnet.shape.dropFirst()) }
}

/// Stages B and A: image embeddings to pixels (`WuerstchenDecoderPipeline`).
public final class WuerstchenDecoderPipeline: @unchecked Sendable {
    public let tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    public let decoder: WuerstchenDiffNeXt
    public let scheduler: DDPMWuerstchenScheduler
    public let vqgan: PaellaVQModel
    /// `latent_dim_scale` (10.67): decoder latents per prior latent.
    public let latentDimScale: Double

    // Deliberate parallel of WuerstchenPriorPipeline.swift:init and init(folder:): each stage's own components
    // and config values, as diffusers' two pipeline classes.
    /// A pipeline over loaded components.
    public init(
        tokenizer: CLIPTokenizer, textEncoder: CLIPTextModel, decoder: WuerstchenDiffNeXt,
        scheduler: DDPMWuerstchenScheduler = DDPMWuerstchenScheduler(), vqgan: PaellaVQModel, latentDimScale: Double = 10.67
    ) {
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.decoder = decoder
        self.scheduler = scheduler
        self.vqgan = vqgan
        self.latentDimScale = latentDimScale
    }

    /// Loads a `warp-ai/wuerstchen` folder (diffusers or PaddlePaddle layout), GEMM weights in `precision`.
    public convenience init(folder: URL, variant: WeightsVariant = .preferFull, precision: Precision = .fp32) throws {
        let index = try PipelineIndex(folder: folder)
        // Loading frees many weight-sized temporaries (widened fp16, stacked q/k/v, folded effnet
        // mappers): do not cache them.
        let (textEncoder, decoder, vqgan) = try Compute.withBufferCacheDisabled {
            (try CLIPTextModel(folder: index.component("text_encoder"), variant: variant, precision: precision),
             try WuerstchenDiffNeXt(folder: index.component("decoder"), variant: variant, precision: precision),
             try PaellaVQModel(folder: index.component("vqgan"), variant: variant, precision: precision))
        }
        try self.init(
            tokenizer: CLIPTokenizer(directory: index.component("tokenizer")), textEncoder: textEncoder, decoder: decoder,
            scheduler: DDPMWuerstchenScheduler(folder: index.component("scheduler")), vqgan: vqgan,
            latentDimScale: index.number("latent_dim_scale", default: 10.67))
    }

    /// Decoder latent side for a prior latent side: `int(prior * latent_dim_scale)`.
    public func latentSide(prior: Int) -> Int { Int(Double(prior) * latentDimScale) }

    /// Encodes the text and draws the decoder's initial latents for `imageEmbeddings` `[n, h, w, 16]`.
    public func start(_ request: GenerationRequest, imageEmbeddings: Tensor, generator: TorchGenerator) throws -> DecoderJob {
        try start([(request, imageEmbeddings, generator)])[0]
    }

    /// Starts several requests with one text-encoder forward for all their prompts; each draws its
    /// latents from its own generator.
    public func start(
        _ items: [(request: GenerationRequest, imageEmbeddings: Tensor, generator: TorchGenerator)]
    ) throws -> [DecoderJob] {
        var texts: [String] = [], spans: [Range<Int>] = []
        for item in items {
            let own = item.request.decoderGuidance > 1 ? [item.request.prompt, item.request.negativePrompt] : [item.request.prompt]
            spans.append(texts.count..<(texts.count + own.count))
            texts += own
        }
        let tokens = texts.map { tokenizer.encode($0) }
        let hidden = try textEncoder(ids: tokens.map(\.ids), attentionMask: tokens.map(\.attentionMask))  // [texts, 77, D]
        return items.enumerated().map { i, item in
            let (request, imageEmbeddings) = (item.request, item.imageEmbeddings)
            let guided = request.decoderGuidance > 1
            let n = imageEmbeddings.dim(0)
            let condition = hidden.rowsView(spans[i]).repeatingRows(n)
            // effnet = cat([image_embeddings, zeros_like(image_embeddings)]) under guidance.
            let effnet = guided ? Tensor.stacked([imageEmbeddings, Tensor(zeros: imageEmbeddings.shape)]) : imageEmbeddings
            let h = latentSide(prior: imageEmbeddings.dim(1)), w = latentSide(prior: imageEmbeddings.dim(2))
            let latents = DDPMWuerstchenScheduler.stepNoise(item.generator, shape: [n, h, w, decoder.config.cIn])
            let job = DecoderJob(request: request, generator: item.generator, effnet: effnet, textCondition: condition,
                                 timesteps: DDPMWuerstchenScheduler.timesteps(steps: request.decoderSteps), latents: latents)
            job.previewSteps = DenoisingJob.previewSteps(count: request.previewCount, steps: job.stepCount)
            return job
        }
    }

    /// One denoising step for every job (all with the same `batchKey`) in one forward pass.
    public func step(_ jobs: [DecoderJob]) {
        precondition(!jobs.isEmpty && jobs.allSatisfy { !$0.isFinished && $0.batchKey == jobs[0].batchKey },
                     "decoder step needs unfinished jobs of one latent shape")
        let predicted = decoder(.stacked(jobs.flatMap(\.inputs)), r: jobs.flatMap(\.ratios),
                                effnet: .stacked(jobs.map(\.effnet)), clip: .stacked(jobs.map(\.textCondition)))
        var row = 0
        for job in jobs { row = job.advance(predicted, from: row, scheduler: scheduler) }
    }

    /// Pixels of decoder latents, final or predicted (`DenoisingJob.preview`):
    /// `vqgan.decode(latents * scale_factor).clamp(0, 1)`. latents: [n, h, w, c] -> [n, H*4, W*4, 3]
    public func pixels(_ latents: Tensor) throws -> Tensor {
        try vqgan.decodePipelineLatents(latents).clamped(0, 1)
    }

    /// Pixels of a finished job: `vqgan.decode(latents * scale_factor).clamp(0, 1)`. -> [n, H*4, W*4, 3]
    public func images(_ job: DecoderJob) throws -> Tensor {
        try images([job])[0]
    }

    /// Pixels of finished jobs whose latents have one shape, decoded in one VQ forward.
    public func images(_ jobs: [DecoderJob]) throws -> [Tensor] {
        precondition(!jobs.isEmpty && jobs.allSatisfy { $0.isFinished && $0.latents.shape.dropFirst() == jobs[0].latents.shape.dropFirst() },
                     "images of unfinished jobs or of latents of different shapes")
        let pixels = try pixels(.stacked(jobs.map(\.latents)))
        guard jobs.count > 1 else { return [pixels] }
        var row = 0
        return jobs.map { job in
            defer { row += job.latents.dim(0) }
            return pixels.rows(row..<(row + job.latents.dim(0)))
        }
    }
}
