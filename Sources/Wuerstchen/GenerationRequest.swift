import Foundation

/// One text-to-image request: what the CLI's flags and the API's JSON fields say.
public struct GenerationRequest: Sendable, Equatable {
    /// Text to draw.
    public var prompt: String
    /// Text to steer away from (classifier-free guidance's unconditional branch); "" as diffusers' default.
    public var negativePrompt: String
    /// Image width in pixels.
    public var width: Int
    /// Image height in pixels.
    public var height: Int
    /// Images for this prompt (`num_images_per_prompt`).
    public var numImages: Int
    /// Seed of the request's `torch.Generator("cpu")`, shared by both stages.
    public var seed: UInt64
    /// Prior steps; nil means the model card's `DEFAULT_STAGE_C_TIMESTEPS` (29 steps).
    public var priorSteps: Int?
    /// Prior classifier-free guidance scale (guidance only when > 1).
    public var priorGuidance: Float
    /// Decoder steps.
    public var decoderSteps: Int
    /// Decoder classifier-free guidance scale (guidance only when > 1).
    public var decoderGuidance: Float
    /// Previews wanted during the decoder (OpenAI's `partial_images`): the predicted clean latents at
    /// evenly spaced decoder steps (`DecoderJob.previewSteps`). They change nothing of the images.
    public var previewCount = 0

    // Deliberate parallel of PaellaVQModel.swift:PaellaVQModelConfig.init (and every public memberwise init):
    // Swift synthesises no public memberwise init, so each public type writes its own.
    /// A request with the model card's settings unless given.
    public init(
        prompt: String, negativePrompt: String = "", width: Int = 1024, height: Int = 1024, numImages: Int = 1,
        seed: UInt64 = 0, priorSteps: Int? = nil, priorGuidance: Float = 4.0, decoderSteps: Int = 12,
        decoderGuidance: Float = 0.0
    ) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.width = width
        self.height = height
        self.numImages = numImages
        self.seed = seed
        self.priorSteps = priorSteps
        self.priorGuidance = priorGuidance
        self.decoderSteps = decoderSteps
        self.decoderGuidance = decoderGuidance
    }
}

/// A request the pipeline cannot run; `field` names the offending input as the CLI and API call it.
public struct GenerationError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The input at fault (`width`, `prior_steps`, ...), or nil when it is not one field.
    public let field: String?
    /// What is wrong and what would be accepted.
    public let message: String

    public init(field: String?, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { message }
}

/// Which image sizes the two stages can take, from the pipelines' configurations.
public struct SizeRules: Sendable, Equatable {
    /// The prior pipeline's `resolution_multiple` (42.67).
    public var resolutionMultiple: Double
    /// The decoder pipeline's `latent_dim_scale` (10.67).
    public var latentDimScale: Double
    /// What the decoder latent must be a multiple of: patch size times 2^(levels - 1).
    public var decoderLatentMultiple: Int
    /// Smallest and largest accepted side in pixels.
    public var minSide = 128, maxSide = 2048

    /// Prior latent side: `ceil(px / resolution_multiple)` (pipeline_wuerstchen_prior.py).
    public func priorLatent(_ px: Int) -> Int { Int((Double(px) / resolutionMultiple).rounded(.up)) }

    /// Decoder latent side: `int(prior * latent_dim_scale)` (pipeline_wuerstchen.py).
    public func decoderLatent(prior: Int) -> Int { Int(Double(prior) * latentDimScale) }

    /// Whether a side of `px` pixels gives latents both stages can take.
    public func isValid(_ px: Int) -> Bool {
        px >= minSide && px <= maxSide && decoderLatent(prior: priorLatent(px)) % decoderLatentMultiple == 0
    }

    /// The closest valid sides below and above `px` (either may be nil at the ends of the range).
    public func nearestValid(_ px: Int) -> (below: Int?, above: Int?) {
        let below = stride(from: min(px, maxSide), through: minSide, by: -1).first(where: isValid)
        let above = stride(from: max(px, minSide), through: maxSide, by: 1).first(where: isValid)
        return (below, above)
    }

    /// Throws a `GenerationError` naming `field` when `px` is not a valid side.
    public func check(_ px: Int, field: String) throws {
        guard !isValid(px) else { return }
        if px < minSide || px > maxSide {
            throw GenerationError(field: field, message: "\(field) \(px) is outside \(minSide)...\(maxSide) pixels")
        }
        let (below, above) = nearestValid(px)
        let options = [below, above].compactMap { $0 }.map(String.init).joined(separator: " or ")
        throw GenerationError(
            field: field,
            message: "\(field) \(px) gives a prior latent of \(priorLatent(px)) and a decoder latent of "
                + "\(decoderLatent(prior: priorLatent(px))), which the decoder cannot take (it needs a multiple of "
                + "\(decoderLatentMultiple)); nearest valid \(field): \(options) (every multiple of 128 works)")
    }
}

extension GenerationRequest {
    /// Checks every field, throwing an error that names the first bad one.
    public func validate(sizes: SizeRules, maxImages: Int = 8, maxSteps: Int = 200) throws {
        try sizes.check(width, field: "width")
        try sizes.check(height, field: "height")
        guard (1...maxImages).contains(numImages) else {
            throw GenerationError(field: "num_images", message: "num_images \(numImages) must be between 1 and \(maxImages)")
        }
        if let s = priorSteps, !(1...maxSteps).contains(s) {
            throw GenerationError(field: "prior_steps", message: "prior_steps \(s) must be between 1 and \(maxSteps)")
        }
        guard (1...maxSteps).contains(decoderSteps) else {
            throw GenerationError(field: "decoder_steps", message: "decoder_steps \(decoderSteps) must be between 1 and \(maxSteps)")
        }
        for (name, g) in [("prior_guidance_scale", priorGuidance), ("decoder_guidance_scale", decoderGuidance)] {
            guard g.isFinite, (0...50).contains(g) else {
                throw GenerationError(field: name, message: "\(name) \(g) must be a number between 0 and 50")
            }
        }
    }
}
