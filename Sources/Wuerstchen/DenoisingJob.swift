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
    /// The steps after which `advance` keeps the predicted clean latents (`preview`); empty for none.
    public var previewSteps: [Int] = []
    /// The predicted clean latents `[n, h, w, c]` of the last step, when it is one of `previewSteps`
    /// (nil otherwise): the preview hook of the stepping loop. Taking it clears it.
    public internal(set) var preview: Tensor?

    init(request: GenerationRequest, generator: TorchGenerator, guidance: Float, timesteps: [Float], latents: Tensor) {
        self.request = request
        self.generator = generator
        self.guidance = guidance
        guided = guidance > 1
        self.timesteps = timesteps
        self.latents = latents
    }

    /// The preview of the last step, if it made one, cleared.
    public func takePreview() -> Tensor? {
        defer { preview = nil }
        return preview
    }

    /// The steps after which a request with `count` previews gets one, out of `steps`: evenly spaced,
    /// `round(j * steps / (count + 1))` for j in 1...count, without repeats and never the last step (whose
    /// result is the image itself), so fewer previews come when there are too few steps for them.
    public static func previewSteps(count: Int, steps: Int) -> [Int] {
        guard count > 0 else { return [] }
        var out: [Int] = []
        for j in 1...count {
            let s = Int((Double(j * steps) / Double(count + 1)).rounded())
            if s >= 1, s < steps, !out.contains(s) { out.append(s) }
        }
        return out
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
        let ts = [Float](repeating: t, count: n)
        preview = previewSteps.contains(stepIndex + 1)
            ? scheduler.predictedOriginal(modelOutput: noisePrediction, timesteps: ts, sample: latents) : nil
        latents = scheduler.step(
            modelOutput: noisePrediction, timesteps: ts,
            previous: [Float](repeating: previous, count: n), sample: latents, noise: noise)
        stepIndex += 1
        return row + rows
    }
}
