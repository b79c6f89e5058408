import Tensor

/// What a request's prior job and decoder job share: its generator, schedule and latents, and the
/// guidance and scheduler step that follow each forward pass (pipeline_wuerstchen*.py's loop body).
public class DenoisingJob: @unchecked Sendable {
    /// The request.
    public let request: GenerationRequest
    /// The request's generator: both stages draw from it in diffusers' order.
    public let generator: TorchGenerator
    /// Whether classifier-free guidance runs (this stage's guidance > 1).
    public let guided: Bool
    /// This stage's guidance scale.
    let guidance: Float
    /// The schedule (the loop runs over all but the last value).
    public let timesteps: [Float]
    /// Current latents `[n, h, w, c]`.
    public internal(set) var latents: Tensor
    /// Steps done.
    public internal(set) var stepIndex = 0

    init(request: GenerationRequest, generator: TorchGenerator, guidance: Float, timesteps: [Float], latents: Tensor) {
        self.request = request
        self.generator = generator
        self.guidance = guidance
        guided = guidance > 1
        self.timesteps = timesteps
        self.latents = latents
    }

    /// Steps in the schedule (`len(timesteps[:-1])`).
    public var stepCount: Int { timesteps.count - 1 }
    /// Whether every step has run.
    public var isFinished: Bool { stepIndex >= stepCount }
    /// Rows this job puts into a forward pass: its latents, and again for the unconditional branch.
    public var rows: Int { latents.dim(0) * (guided ? 2 : 1) }
    /// Jobs share a forward pass only when their keys are equal (overridden by each stage).
    public var batchKey: [Int] { Array(latents.shape.dropFirst()) }

    /// The model inputs of this job: `torch.cat([latents] * 2)` when guided.
    var inputs: [Tensor] { guided ? [latents, latents] : [latents] }
    /// The noise level of every input row (`ratio` in the pipelines).
    var ratios: [Float] { [Float](repeating: timesteps[stepIndex], count: rows) }

    /// Takes this job's rows of `predicted` (from `row` on), applies guidance
    /// (`torch.lerp(uncond, text, guidance)`) and the scheduler step with fresh noise from the
    /// generator; returns the row after this job's.
    func advance(_ predicted: Tensor, from row: Int, scheduler: DDPMWuerstchenScheduler) -> Int {
        let n = latents.dim(0)
        var noisePrediction = predicted.rows(row..<(row + n))
        if guided {
            noisePrediction = Tensor.lerp(predicted.rows((row + n)..<(row + 2 * n)), noisePrediction, weight: guidance)
        }
        let t = timesteps[stepIndex]
        let previous = DDPMWuerstchenScheduler.previousTimestep(t, in: timesteps)
        let noise = DDPMWuerstchenScheduler.stepNoise(generator, shape: latents.shape)
        latents = scheduler.step(
            modelOutput: noisePrediction, timesteps: [Float](repeating: t, count: n),
            previous: [Float](repeating: previous, count: n), sample: latents, noise: noise)
        stepIndex += 1
        return row + rows
    }
}
