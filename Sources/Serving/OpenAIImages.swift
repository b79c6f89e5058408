import Foundation
import JSON
import Wuerstchen

/// `quality` of `POST /v1/images/generations` as step counts. `high` and `auto` are the model card's
/// defaults (the prior's 29-step `DEFAULT_STAGE_C_TIMESTEPS` schedule, 12 decoder steps); `low` and
/// `medium` cut both stages. dall-e-3's `standard` and `hd` are `medium` and `high`. The extension fields
/// `prior_steps` / `decoder_steps`, when given, override the level's counts (they are the more specific).
public enum ImageQuality: String, Sendable, CaseIterable {
    case low, medium, high

    /// The level of a request's `quality` (nil or `auto`: `high`, the model card's defaults).
    public init?(requested: String?) {
        switch requested {
        case nil, "auto", "high", "hd": self = .high
        case "medium", "standard": self = .medium
        case "low": self = .low
        default: return nil
        }
    }

    /// The values `quality` accepts.
    public static let accepted = ["low", "medium", "high", "auto", "standard", "hd"]

    /// Prior steps (nil: the model card's 29-step schedule) and decoder steps.
    public var steps: (prior: Int?, decoder: Int) {
        switch self {
        case .low: (10, 4)
        case .medium: (20, 8)
        case .high: (nil, 12)
        }
    }
}

/// What the OpenAI endpoint reports and streams besides the images: the request's settings as it ran.
public struct OpenAIImageOptions: Sendable, Equatable {
    /// The level that ran (`auto` resolved).
    public var quality: ImageQuality = .high
    /// `stream: true`: answer with server-sent events.
    public var stream = false
    /// `partial_images` 0-3: previews streamed before each image (only with `stream`).
    public var partialImages = 0

    /// Most `partial_images` (OpenAI's bound).
    public static let maxPartialImages = 3
    /// `background`: always `opaque` (the images have no alpha channel; `transparent` is refused).
    public static let background = "opaque"
}

/// OpenAI's `usage` of an image generation, in our units: `input_tokens` are the CLIP tokens the text
/// encoder reads of the prompt (BOS and EOS included, at most 77: the rest is truncated; the negative
/// prompt is not counted), all of them text (`input_tokens_details.text_tokens`, `image_tokens` 0);
/// `output_tokens` are the latent positions generated: for each of the n images, the prior latent's
/// h x w plus the decoder latent's h x w (1024x1024: 24x24 + 256x256 = 66112 per image).
public struct ImageUsage: Sendable, Equatable {
    public var inputTokens: Int
    public var outputTokens: Int
    public var totalTokens: Int { inputTokens + outputTokens }

    /// The usage of `request` on `model`.
    public init(_ request: GenerationRequest, model: ServedModel) {
        inputTokens = min(model.tokenCount(request.prompt), model.maxTokens)
        let rules = model.sizeRules
        let ph = rules.priorLatent(request.height), pw = rules.priorLatent(request.width)
        let dh = rules.decoderLatent(prior: ph), dw = rules.decoderLatent(prior: pw)
        outputTokens = request.numImages * (ph * pw + dh * dw)
    }

    /// `{"input_tokens", "input_tokens_details": {"image_tokens", "text_tokens"}, "output_tokens", "total_tokens"}`.
    public var json: JSONValue {
        .object([
            ("input_tokens", .int(inputTokens)),
            ("input_tokens_details", .object([("image_tokens", .int(0)), ("text_tokens", .int(inputTokens))])),
            ("output_tokens", .int(outputTokens)), ("total_tokens", .int(totalTokens)),
        ])
    }
}

extension ImageJob {
    /// The members OpenAI's image answers carry besides the image (`background`, `output_format`,
    /// `quality`, `size`), in its order, for the format that is written.
    func openAISettings(format: String) -> [(String, JSONValue)] {
        [("background", .string(OpenAIImageOptions.background)), ("output_format", .string(format)),
         ("quality", .string((openAI ?? OpenAIImageOptions()).quality.rawValue)),
         ("size", .string("\(generation.width)x\(generation.height)"))]
    }
}
