import Foundation
import Imaging
import JSON
import Wuerstchen

/// The package's version, written into every image's parameters (`version`) and `Software` tag.
public enum WuerstchenVersion {
    public static let current = "0.13.0"
    /// `wuerstchen 0.13.0`: the `Software` / `xmp:CreatorTool` of the files we write.
    public static var software: String { "wuerstchen \(current)" }
}

/// What every image we write carries about how it was made (`ImageMetadata`: PNG iTXt `wuerstchen`,
/// JPEG/WebP XMP `wuerstchen:parameters`), as one JSON object whose keys are `POST /v1/images` field
/// names: `prompt`, `negative_prompt`, `width`, `height`, `num_images`, `seed` (the one drawn when none
/// was given), `prior_steps` (null: the model card's 29-step schedule), `prior_guidance_scale`,
/// `decoder_steps`, `decoder_guidance_scale`, `output_format`, `output_compression` (null: the format's
/// default), plus `image_index` (which of the request's `num_images` this is: the images share one
/// generator, so image i is reproduced by the same request, not by one with a single image),
/// `precision` (the one that ran), `model` and `version`. `wuerstchen inspect` prints it,
/// `generate --from` and `POST /v1/images` take it back and give the same pixels.
public struct GenerationParameters: Sendable, Equatable {
    /// The request as it ran, seed included.
    public var request: GenerationRequest
    /// Which of the request's images this file holds (0-based).
    public var imageIndex: Int
    /// The model's id (`model_id` for the server; `wuerstchen-v2`, or `wuerstchen-v2-demo` for the
    /// embedded demo model, for the CLI).
    public var model: String
    /// `fp32`, `bf16` or `int8`: what ran (after the CPU's fallback).
    public var precision: String
    /// The package version that wrote it.
    public var version: String
    /// The file's format.
    public var outputFormat: ImageFormat
    /// `output_compression` as asked, nil for the format's default.
    public var outputCompression: Int?

    public init(request: GenerationRequest, imageIndex: Int = 0, model: String, precision: String,
                version: String = WuerstchenVersion.current, outputFormat: ImageFormat = .png, outputCompression: Int? = nil) {
        self.request = request
        self.imageIndex = imageIndex
        self.model = model
        self.precision = precision
        self.version = version
        self.outputFormat = outputFormat
        self.outputCompression = outputCompression
    }

    /// The keys of `json`, in its order.
    public static let keys = ["prompt", "negative_prompt", "width", "height", "num_images", "seed", "prior_steps",
                              "prior_guidance_scale", "decoder_steps", "decoder_guidance_scale", "output_format",
                              "output_compression", "image_index", "precision", "model", "version"]

    /// Guidance as its shortest decimal (4.0, 0.1): the same `Float` when read back.
    private static func number(_ f: Float) -> JSONValue { .number(f.description) }

    /// The JSON object (keys in `keys` order).
    public var json: JSONValue {
        let g = request
        return .object([
            ("prompt", .string(g.prompt)), ("negative_prompt", .string(g.negativePrompt)),
            ("width", .int(g.width)), ("height", .int(g.height)), ("num_images", .int(g.numImages)), ("seed", .int(g.seed)),
            ("prior_steps", g.priorSteps.map { .int($0) } ?? .null), ("prior_guidance_scale", Self.number(g.priorGuidance)),
            ("decoder_steps", .int(g.decoderSteps)), ("decoder_guidance_scale", Self.number(g.decoderGuidance)),
            ("output_format", .string(outputFormat.rawValue)), ("output_compression", outputCompression.map { .int($0) } ?? .null),
            ("image_index", .int(imageIndex)), ("precision", .string(precision)), ("model", .string(model)), ("version", .string(version)),
        ])
    }

    /// AUTOMATIC1111's `parameters` text: the prompt, `Negative prompt: ...` when there is one, then
    /// `Key: value` pairs (its `Steps`, `CFG scale`, `Seed`, `Size`, `Model` for the prior; ours after).
    public var a1111Text: String {
        let g = request
        var lines = [g.prompt]
        if !g.negativePrompt.isEmpty { lines.append("Negative prompt: \(g.negativePrompt)") }
        var pairs = ["Steps: \(g.priorSteps ?? DDPMWuerstchenScheduler.defaultStageCTimesteps.count - 1)", "Sampler: DDPMWuerstchenScheduler",
                     "CFG scale: \(g.priorGuidance)", "Seed: \(g.seed)", "Size: \(g.width)x\(g.height)", "Model: \(model)",
                     "Decoder steps: \(g.decoderSteps)", "Decoder CFG scale: \(g.decoderGuidance)", "Precision: \(precision)"]
        if g.numImages > 1 { pairs += ["Batch size: \(g.numImages)", "Batch pos: \(imageIndex)"] }
        pairs.append("Version: \(version)")
        lines.append(pairs.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }

    /// What the file carries.
    public var metadata: ImageMetadata {
        ImageMetadata(json: json.serialized, text: a1111Text, software: "wuerstchen \(version)")
    }

    /// Parameters from their JSON (as `json` writes it; absent or null optional keys take the API's
    /// defaults). Throws a `GenerationError` naming the first key with a wrong type or value.
    public init(json value: JSONValue) throws(GenerationError) {
        guard case .object(let members) = value else {
            throw GenerationError(field: nil, message: "the parameters must be a JSON object, got \(value.kindDescription)")
        }
        let fields = Dictionary(members, uniquingKeysWith: { a, _ in a }).filter { $0.value != .null }
        for (key, _) in members where !Self.keys.contains(key) {
            throw GenerationError(field: key, message: "unknown parameter '\(key)' (known: \(Self.keys.joined(separator: ", ")))")
        }
        func string(_ key: String) throws(GenerationError) -> String? {
            guard let v = fields[key] else { return nil }
            guard case .string(let s) = v else { throw GenerationError(field: key, message: "\(key) must be a string, got \(v.kindDescription)") }
            return s
        }
        func int(_ key: String) throws(GenerationError) -> Int? {
            guard let v = fields[key] else { return nil }
            guard let i = v.intValue else { throw GenerationError(field: key, message: "\(key) must be an integer, got \(v.serialized)") }
            return i
        }
        func float(_ key: String) throws(GenerationError) -> Float? {
            guard let v = fields[key] else { return nil }
            guard case .number(let text) = v, let f = Float(text), f.isFinite else {
                throw GenerationError(field: key, message: "\(key) must be a number, got \(v.serialized)")
            }
            return f
        }
        guard let prompt = try string("prompt") else { throw GenerationError(field: "prompt", message: "prompt is missing") }
        var g = GenerationRequest(prompt: prompt)
        g.negativePrompt = try string("negative_prompt") ?? ""
        g.width = try int("width") ?? g.width
        g.height = try int("height") ?? g.height
        g.numImages = try int("num_images") ?? 1
        if let v = fields["seed"] {
            guard case .number(let text) = v, let s = UInt64(text), s <= UInt64(Int64.max) else {
                throw GenerationError(field: "seed", message: "seed must be an integer between 0 and 2^63 - 1, got \(v.serialized)")
            }
            g.seed = s
        } else {
            throw GenerationError(field: "seed", message: "seed is missing: without it the image cannot be reproduced")
        }
        g.priorSteps = try int("prior_steps")
        g.priorGuidance = try float("prior_guidance_scale") ?? g.priorGuidance
        g.decoderSteps = try int("decoder_steps") ?? g.decoderSteps
        g.decoderGuidance = try float("decoder_guidance_scale") ?? g.decoderGuidance
        request = g
        imageIndex = try int("image_index") ?? 0
        guard (0..<max(g.numImages, 1)).contains(imageIndex) else {
            throw GenerationError(field: "image_index", message: "image_index \(imageIndex) must be below num_images \(g.numImages)")
        }
        let format = try string("output_format") ?? "png"
        guard let f = ImageFormat(rawValue: format) else {
            throw GenerationError(field: "output_format", message: "output_format '\(format)' must be png, jpeg or webp")
        }
        outputFormat = f
        outputCompression = try int("output_compression")
        if let c = outputCompression, !(0...100).contains(c) {
            throw GenerationError(field: "output_compression", message: "output_compression \(c) must be between 0 and 100")
        }
        precision = try string("precision") ?? "fp32"
        model = try string("model") ?? ""
        version = try string("version") ?? ""
    }

    /// The parameters stored in an image file we wrote (PNG, JPEG or WebP). Throws naming the file's
    /// problem: not an image, no parameters (written with `image_metadata` off, or by another program),
    /// or parameters that do not parse.
    public static func read(from file: Data) throws -> GenerationParameters {
        let image = try ImageDecoder.decode(file, pixels: false)
        guard let text = image.json else {
            let other = image.text.map { " (it has AUTOMATIC1111-style parameters text: \(String($0.prefix(80)).debugDescription))" } ?? ""
            throw GenerationError(field: nil, message: "the \(image.format.rawValue.uppercased()) file holds no wuerstchen parameters\(other); "
                                  + "it was written with image metadata off, or by another program")
        }
        let value: JSONValue
        do { value = try JSONValue.parse(Array(text.utf8)) } catch {
            throw GenerationError(field: nil, message: "the file's wuerstchen parameters are not valid JSON: \(error)")
        }
        return try GenerationParameters(json: value)
    }
}
