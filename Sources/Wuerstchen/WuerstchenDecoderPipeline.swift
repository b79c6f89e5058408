import CLIP
import Foundation
import SafeTensors
import Tensor

// diffusers pipelines/deprecated/wuerstchen/pipeline_wuerstchen.py, split into steps like the prior.

/// A request's state in the decoder: its image embeddings, conditioning, latents and schedule position.
public final class DecoderJob: @unchecked Sendable {
    /// The request.
    public let request: GenerationRequest
    /// The request's generator, continuing where the prior left it.
    public let generator: TorchGenerator
    /// Whether classifier-free guidance runs (`decoder_guidance > 1`).
    public let guided: Bool
    /// Image embeddings `[n, h, w, 16]`, then zeros for the unconditional rows when guided.
    let effnet: Tensor
    /// Text conditioning `[n, 77, D]`, then the unconditional rows when guided.
    let textCondition: Tensor
    /// `linspace(1, 0, steps + 1)`.
    public let timesteps: [Float]
    /// Current latents `[n, H, W, 4]`.
    public internal(set) var latents: Tensor
    /// Steps done.
    public internal(set) var stepIndex = 0

    init(request: GenerationRequest, generator: TorchGenerator, guided: Bool, effnet: Tensor, textCondition: Tensor, timesteps: [Float], latents: Tensor) {
        self.request = request
        self.generator = generator
        self.guided = guided
        self.effnet = effnet
        self.textCondition = textCondition
        self.timesteps = timesteps
        self.latents = latents
    }

    /// Steps in the schedule.
    public var stepCount: Int { timesteps.count - 1 }
    /// Whether every step has run.
    public var isFinished: Bool { stepIndex >= stepCount }
    /// Shape of the latents and of the image embeddings: jobs batch together only when both agree.
    public var batchKey: [Int] { Array(latents.shape.dropFirst()) + Array(effnet.shape.dropFirst()) }
    /// Rows this job puts into a forward pass.
    public var rows: Int { latents.dim(0) * (guided ? 2 : 1) }
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

    /// Loads a `warp-ai/wuerstchen` folder (diffusers or PaddlePaddle layout).
    public convenience init(folder: URL, variant: WeightsVariant = .preferFull) throws {
        let index = try PipelineIndex(folder: folder)
        // Loading frees many weight-sized temporaries (widened fp16, stacked q/k/v, folded effnet
        // mappers): do not cache them.
        let (textEncoder, decoder, vqgan) = try Compute.withBufferCacheDisabled {
            (try CLIPTextModel(folder: index.component("text_encoder"), variant: variant),
             try WuerstchenDiffNeXt(folder: index.component("decoder"), variant: variant),
             try PaellaVQModel(folder: index.component("vqgan"), variant: variant))
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
        let guided = request.decoderGuidance > 1
        let n = imageEmbeddings.dim(0)
        let texts = guided ? [request.prompt, request.negativePrompt] : [request.prompt]
        let tokens = texts.map { tokenizer.encode($0) }
        let hidden = try textEncoder(ids: tokens.map(\.ids), attentionMask: tokens.map(\.attentionMask))
        let condition = repeatRows(hidden, times: n)
        // effnet = cat([image_embeddings, zeros_like(image_embeddings)]) under guidance.
        let effnet = guided ? batch([imageEmbeddings, Tensor(zeros: imageEmbeddings.shape)]) : imageEmbeddings
        let h = latentSide(prior: imageEmbeddings.dim(1)), w = latentSide(prior: imageEmbeddings.dim(2))
        let latents = DDPMWuerstchenScheduler.stepNoise(generator, shape: [n, h, w, decoder.config.cIn])
        return DecoderJob(request: request, generator: generator, guided: guided, effnet: effnet, textCondition: condition,
                          timesteps: DDPMWuerstchenScheduler.timesteps(steps: request.decoderSteps), latents: latents)
    }

    /// One denoising step for every job (all with the same `batchKey`) in one forward pass.
    public func step(_ jobs: [DecoderJob]) {
        precondition(!jobs.isEmpty && jobs.allSatisfy { !$0.isFinished && $0.batchKey == jobs[0].batchKey },
                     "decoder step needs unfinished jobs of one latent shape")
        var inputs: [Tensor] = [], effnets: [Tensor] = [], conditions: [Tensor] = [], r: [Float] = []
        for job in jobs {
            inputs.append(job.latents)
            if job.guided { inputs.append(job.latents) }
            effnets.append(job.effnet)
            conditions.append(job.textCondition)
            r += [Float](repeating: job.timesteps[job.stepIndex], count: job.rows)
        }
        let predicted = decoder(batch(inputs), r: r, effnet: batch(effnets), clip: batch(conditions))
        var row = 0
        for job in jobs {
            let n = job.latents.dim(0)
            var noisePrediction = slice(predicted, rows: row..<(row + n))
            if job.guided {
                noisePrediction = Tensor.lerp(slice(predicted, rows: (row + n)..<(row + 2 * n)), noisePrediction, weight: job.request.decoderGuidance)
            }
            row += job.rows
            let t = job.timesteps[job.stepIndex]
            let previous = DDPMWuerstchenScheduler.previousTimestep(t, in: job.timesteps)
            let noise = DDPMWuerstchenScheduler.stepNoise(job.generator, shape: job.latents.shape)
            job.latents = scheduler.step(
                modelOutput: noisePrediction, timesteps: [Float](repeating: t, count: n),
                previous: [Float](repeating: previous, count: n), sample: job.latents, noise: noise)
            job.stepIndex += 1
        }
    }

    /// Pixels of a finished job: `vqgan.decode(latents * scale_factor).clamp(0, 1)`. -> [n, H*4, W*4, 3]
    public func images(_ job: DecoderJob) throws -> Tensor {
        precondition(job.isFinished, "images of an unfinished decoder job")
        return try vqgan.decodePipelineLatents(job.latents).clamped(0, 1)
    }
}
