import CLIP
import Foundation
import Imaging
import Tensor
import JSON
import Wuerstchen

/// Bounds the API applies on top of the model's own (from `ServerConfiguration`).
public struct RequestLimits: Sendable, Equatable {
    /// Most images per request (`num_images`, `n`).
    public var maxImages: Int
    /// Longest text field (`prompt`, `negative_prompt` and every other string), in characters.
    public var maxPromptChars: Int
    /// Most steps per stage.
    public var maxSteps: Int
    /// Longest `timeout_seconds` a request may ask for (`scheduler.request_timeout_seconds`).
    public var maxTimeout: Double
    /// Longest text field (`prompt`, `negative_prompt` and every other string), in UTF-8 bytes.
    public var maxPromptBytes: Int
    /// Largest width or height, in pixels (within the model's own bound).
    public var maxImageSide: Int
    /// The names `model` may give (`ServerConfiguration.acceptedModelNames`); any other is a 404.
    public var modelNames: [String]
    /// The precision that runs (`precision` after the CPU's fallback): a request's `precision` must equal it.
    public var precision: String
    /// `scheduler.max_batch_pixels`: a request's rows times pixels must fit in it, since the scheduler
    /// could never admit it beside others and its activations alone would pass the memory budget; 0 = off.
    public var maxBatchPixels: Int
    /// Longest run of combining marks (non-starters, counted on the canonical decomposition) in a text
    /// field: Unicode's stream-safe bound (UAX #15 §13, `StreamSafeText`). Real text needs a handful; a
    /// longer run is refused with a 400 naming the field rather than cut by inserting U+034F (UAX #15's
    /// stream-safe conversion), which would change the prompt behind the client's back.
    public static let maxCombiningRun = StreamSafeText.maxNonStarters

    /// Limits from the server configuration.
    public init(_ configuration: ServerConfiguration) {
        maxImages = configuration.maxImagesPerRequest
        maxPromptChars = configuration.maxPromptChars
        maxSteps = configuration.maxSteps
        maxTimeout = configuration.scheduler.requestTimeout
        maxPromptBytes = configuration.maxPromptBytes
        maxImageSide = configuration.maxImageSide
        maxBatchPixels = configuration.scheduler.maxBatchPixels
        modelNames = configuration.acceptedModelNames
        precision = (Precision(rawValue: configuration.precision) ?? .fp32).resolved().precision.rawValue
    }
}

/// A validated image request: what to run and what to tell the client about it.
public struct ImageJob: Sendable, Equatable {
    /// The pipeline request (seed drawn when the client gave none).
    public var generation: GenerationRequest
    /// The prompt has more tokens than CLIP reads (77): the rest is ignored (`X-Prompt-Truncated: true`).
    public var promptTruncated: Bool
    /// `timeout_seconds`: the request's deadline from submission; nil for the server's default.
    public var timeout: Double? = nil
    /// `output_format`; nil when not given (`Accept` then picks on `/v1/images`, else PNG).
    public var outputFormat: ImageFormat? = nil
    /// `output_compression` 0-100; nil for the format's default (`ImageEncoder`).
    public var outputCompression: Int? = nil
    /// The OpenAI endpoint's settings (`quality`, `stream`, `partial_images`); nil on `/v1/images`.
    public var openAI: OpenAIImageOptions? = nil
}

/// Parses and validates the JSON bodies of `POST /v1/images` and `POST /v1/images/generations`; every
/// error is a 400 whose `param` names the field (OpenAI's names on the OpenAI endpoint).
public enum ImageRequests {
    /// Fields of `POST /v1/images`; the last four are what `wuerstchen inspect` prints besides them, accepted
    /// so that its output can be posted as is: `model` must be a name of the served model (else 404
    /// `model_not_found`), `precision` the one the server runs (it cannot switch per request; else 400),
    /// `version` and `image_index` are informational (every image of the request comes back).
    public static let nativeFields = ["prompt", "negative_prompt", "width", "height", "num_images", "seed", "prior_steps",
                                      "prior_guidance_scale", "decoder_steps", "decoder_guidance_scale", "timeout_seconds",
                                      "output_format", "output_compression", "image_index", "precision", "model", "version"]
    /// Fields of `POST /v1/images/generations`: OpenAI's, then the extensions.
    public static let openAIFields = ["prompt", "n", "size", "response_format", "model", "user", "safety_identifier", "quality", "style",
                                      "output_format", "background", "moderation", "output_compression", "stream", "partial_images",
                                      "seed", "negative_prompt", "prior_steps", "prior_guidance_scale", "decoder_steps",
                                      "decoder_guidance_scale", "timeout_seconds"]
    /// Largest accepted seed: 2^63 - 1 (seeds are torch's int64 `manual_seed` values).
    public static let maxSeed = Int64.max

    /// `POST /v1/images`.
    public static func native(_ body: JSONValue, model: ServedModel, limits: RequestLimits,
                              randomSeed: () -> UInt64 = defaultRandomSeed) throws(ServingError) -> ImageJob {
        let r = try FieldReader(body, allowed: nativeFields, limits: limits)
        let prompt = try r.prompt("prompt", required: true)!
        var g = GenerationRequest(prompt: prompt)
        g.negativePrompt = try r.prompt("negative_prompt", required: false) ?? ""
        g.width = try r.int("width", 1...Int(Int32.max)) ?? 1024
        g.height = try r.int("height", 1...Int(Int32.max)) ?? 1024
        g.numImages = try r.int("num_images", 1...limits.maxImages) ?? 1
        if let index = try r.int("image_index", 0...Int(Int32.max)), index >= g.numImages {
            throw ServingError.invalid("image_index", "image_index \(index) must be below num_images \(g.numImages)")
        }
        try r.oneOf("precision", ["fp32", "bf16", "int8"])
        if let precision = try r.string("precision"), precision != limits.precision {
            throw ServingError.invalid("precision", "precision \(quoted(precision)) cannot be run: this server runs \(limits.precision) "
                                       + "for every request (its configuration's precision)", code: "unsupported_value")
        }
        try checkModel(r, limits)
        _ = try r.string("version")
        return try finish(g, r, model: model, limits: limits, randomSeed: randomSeed)
    }

    /// `output_format` of a body (nil when absent or null); a 400 naming the field for anything but png,
    /// jpeg or webp. Read before the rest of the body, since it decides which `Accept` can be met.
    public static func outputFormat(_ body: JSONValue) throws(ServingError) -> ImageFormat? {
        guard case .object(let members) = body else { return nil }
        return try format(members.first(where: { $0.0 == "output_format" })?.1)
    }

    private static func format(_ value: JSONValue?) throws(ServingError) -> ImageFormat? {
        guard let value, value != .null else { return nil }
        guard case .string(let s) = value else {
            throw ServingError.invalid("output_format", "output_format must be a string, got \(value.kindDescription)", code: "invalid_type")
        }
        guard let format = ImageFormat(rawValue: s) else {
            throw ServingError.invalid("output_format", "output_format \(quoted(s)) must be one of png, jpeg, webp")
        }
        return format
    }

    /// `POST /v1/images/generations` (OpenAI Images API). `response_format` must be `b64_json` (or absent).
    public static func openAI(_ body: JSONValue, model: ServedModel, limits: RequestLimits,
                              randomSeed: () -> UInt64 = defaultRandomSeed) throws(ServingError) -> ImageJob {
        let r = try FieldReader(body, allowed: openAIFields, limits: limits)
        let prompt = try r.prompt("prompt", required: true)!
        var g = GenerationRequest(prompt: prompt)
        g.numImages = try r.int("n", 1...limits.maxImages) ?? 1
        // `auto` (or no size): 1024x1024, the model's native size and OpenAI's square.
        if let size = try r.string("size"), size != "auto" {
            let parts = size.split(separator: "x", omittingEmptySubsequences: false)
            guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), parts.allSatisfy({ $0.allSatisfy(\.isASCII) && !$0.hasPrefix("+") && !$0.hasPrefix("-") }) else {
                throw ServingError.invalid("size", "size \(quoted(size)) must be WIDTHxHEIGHT in pixels, e.g. 1024x1024")
            }
            g.width = w
            g.height = h
        }
        switch try r.string("response_format") {
        case nil, "b64_json": break
        case "url":
            throw ServingError.invalid("response_format", "response_format 'url' is not supported: this server keeps no images; use b64_json",
                                       code: "unsupported_value")
        case let other?:
            throw ServingError.invalid("response_format", "response_format \(quoted(other)) must be b64_json")
        }
        try checkModel(r, limits)
        _ = try r.string("user")
        _ = try r.string("safety_identifier")  // accepted, not applied (as `user`): no moderation runs
        try r.oneOf("quality", ImageQuality.accepted)
        var options = OpenAIImageOptions()
        options.quality = ImageQuality(requested: try r.string("quality"))!
        try r.oneOf("style", ["vivid", "natural"])
        if try r.string("background") == "transparent" {
            throw ServingError.invalid("background", "background 'transparent' is not supported: the images have no alpha channel; use opaque or auto",
                                       code: "unsupported_value")
        }
        try r.oneOf("background", ["auto", "opaque"])
        try r.oneOf("moderation", ["auto", "low"])  // accepted, not applied: no moderation runs
        options.stream = try r.bool("stream") ?? false
        options.partialImages = try r.int("partial_images", 0...OpenAIImageOptions.maxPartialImages) ?? 0
        g.negativePrompt = try r.prompt("negative_prompt", required: false) ?? ""
        if options.stream { g.previewCount = options.partialImages }
        var job = try finish(g, r, model: model, limits: limits, randomSeed: randomSeed, steps: options.quality.steps,
                             rename: ["width": "size", "height": "size", "num_images": "n"])
        job.openAI = options
        return job
    }

    /// `model`, when given, must name the served model (`model_aliases`): OpenAI's 404 `model_not_found` otherwise.
    private static func checkModel(_ r: FieldReader, _ limits: RequestLimits) throws(ServingError) {
        guard let name = try r.string("model"), !limits.modelNames.contains(name) else { return }
        throw ServingError(status: 404, message: "The model \(quoted(name)) does not exist on this server: it serves one model, "
                           + "under the names \(limits.modelNames.joined(separator: ", ")) (model_aliases)", param: "model", code: "model_not_found")
    }

    /// The fields both endpoints share (seed, steps, guidance, timeout), read in this order after the
    /// endpoint's own, then the whole request checked against the model; `steps` are the step counts
    /// without `prior_steps` / `decoder_steps` (the model card's by default); `rename` maps the
    /// pipeline's field names to the endpoint's in errors.
    private static func finish(_ request: GenerationRequest, _ r: FieldReader, model: ServedModel, limits: RequestLimits,
                               randomSeed: () -> UInt64, steps: (prior: Int?, decoder: Int) = ImageQuality.high.steps,
                               rename: [String: String] = [:]) throws(ServingError) -> ImageJob {
        var g = request
        g.seed = try r.seed() ?? randomSeed()
        g.priorSteps = try r.int("prior_steps", 1...limits.maxSteps) ?? steps.prior.map { min($0, limits.maxSteps) }
        g.priorGuidance = try r.guidance("prior_guidance_scale") ?? 4.0
        g.decoderSteps = try r.int("decoder_steps", 1...limits.maxSteps) ?? min(steps.decoder, limits.maxSteps)
        g.decoderGuidance = try r.guidance("decoder_guidance_scale") ?? 0.0
        var sizes = model.sizeRules
        sizes.maxSide = min(sizes.maxSide, limits.maxImageSide)
        do {
            try g.validate(sizes: sizes, maxImages: limits.maxImages, maxSteps: limits.maxSteps)
            try checkMemory(g, maxBatchPixels: limits.maxBatchPixels)
        } catch let error as GenerationError {
            throw ServingError.from(error, rename: rename)
        } catch {
            throw ServingError(status: 500, message: "\(error)", type: "server_error")
        }
        return ImageJob(generation: g, promptTruncated: model.tokenCount(g.prompt) > model.maxTokens,
                        timeout: try r.timeout("timeout_seconds", max: limits.maxTimeout),
                        outputFormat: try format(r.value("output_format")),
                        outputCompression: try r.int("output_compression", 0...100))
    }

    /// Throws, naming the field to change, when the request's forward-pass rows (its images, twice when
    /// either stage is guided: the scheduler's own count) times its pixels exceed `maxBatchPixels` (0 = no bound).
    public static func checkMemory(_ g: GenerationRequest, maxBatchPixels: Int) throws(GenerationError) {
        guard maxBatchPixels > 0 else { return }
        let guided = g.priorGuidance > 1 || g.decoderGuidance > 1
        let perRow = g.width * g.height, perImage = perRow * (guided ? 2 : 1)
        guard g.numImages * perImage > maxBatchPixels else { return }
        let limit = "scheduler.max_batch_pixels \(maxBatchPixels)"
        if perRow > maxBatchPixels {
            throw GenerationError(field: "width", message: "\(g.width)x\(g.height) is \(perRow) pixels, more than \(limit) allows for one image")
        }
        if perImage > maxBatchPixels {
            let field = g.decoderGuidance > 1 ? "decoder_guidance_scale" : "prior_guidance_scale"
            throw GenerationError(field: field, message: "guidance above 1 doubles the rows: 2 x \(g.width)x\(g.height) = \(perImage) pixels, "
                                  + "more than \(limit) allows; use \(field) <= 1 or a smaller size")
        }
        throw GenerationError(field: "num_images", message: "num_images \(g.numImages) at \(g.width)x\(g.height)\(guided ? " with guidance" : "") "
                              + "is \(g.numImages * perImage) pixels of rows, more than \(limit) allows: at most \(maxBatchPixels / perImage) images")
    }

    /// A random seed in 0..<2^32 (small enough for any JSON client to hold exactly).
    public static func defaultRandomSeed() -> UInt64 { UInt64.random(in: 0...UInt64(UInt32.max)) }
}

/// A client's text in an error message: quoted, and cut after 64 characters (the text itself can be
/// `max_prompt_bytes` long).
private func quoted(_ text: String) -> String {
    text.count <= 64 ? "'\(text)'" : "'\(text.prefix(64))...' (\(text.utf8.count) bytes)"
}

/// Reads typed fields of a JSON object; `null` counts as absent. Every string it returns is within the
/// text bounds of `limits` (bytes, stream-safe runs, characters), whatever the field.
private struct FieldReader {
    let members: [String: JSONValue]
    let limits: RequestLimits

    init(_ body: JSONValue, allowed: [String], limits: RequestLimits) throws(ServingError) {
        self.limits = limits
        guard case .object(let list) = body else {
            throw ServingError.invalid(nil, "the body must be a JSON object, got \(body.kindDescription)", code: "invalid_json")
        }
        for (key, _) in list where !allowed.contains(key) {
            throw ServingError.invalid(key, "unknown field '\(key)' (accepted: \(allowed.joined(separator: ", ")))", code: "unknown_parameter")
        }
        members = Dictionary(list, uniquingKeysWith: { a, _ in a })
    }

    func value(_ key: String) -> JSONValue? {
        guard let v = members[key], v != .null else { return nil }
        return v
    }

    func string(_ key: String) throws(ServingError) -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else { throw ServingError.invalid(key, "\(key) must be a string, got \(v.kindDescription)", code: "invalid_type") }
        try checkText(key, s)
        return s
    }

    /// The text bounds, cheapest first: bytes (constant time), then the stream-safe run and the
    /// characters (both one pass over at most `max_prompt_bytes`). A `Character` can hold any number of
    /// combining marks, so characters alone bound nothing; the run bound keeps the tokenizer's canonical
    /// reordering to short runs.
    private func checkText(_ key: String, _ s: String) throws(ServingError) {
        guard s.utf8.count <= limits.maxPromptBytes else {
            throw ServingError.invalid(key, "\(key) has \(s.utf8.count) bytes of UTF-8, at most \(limits.maxPromptBytes) are accepted (max_prompt_bytes)",
                                       code: "string_above_max_length")
        }
        if let run = StreamSafeText.firstRun(longerThan: RequestLimits.maxCombiningRun, in: s.unicodeScalars) {
            throw ServingError.invalid(key, "\(key) has \(run.length) combining marks in a row (from Unicode scalar \(run.start)), "
                                       + "at most \(RequestLimits.maxCombiningRun) are accepted (Unicode's stream-safe text format, UAX #15)",
                                       code: "too_many_combining_marks")
        }
        guard s.count <= limits.maxPromptChars else {
            throw ServingError.invalid(key, "\(key) has \(s.count) characters, at most \(limits.maxPromptChars) are accepted (max_prompt_chars)",
                                       code: "string_above_max_length")
        }
    }

    func prompt(_ key: String, required: Bool) throws(ServingError) -> String? {
        guard let s = try string(key) else {
            if required { throw ServingError.invalid(key, "\(key) is required", code: "missing_required_parameter") }
            return nil
        }
        if required, s.allSatisfy(\.isWhitespace) { throw ServingError.invalid(key, "\(key) must not be empty") }
        return s
    }

    func int(_ key: String, _ range: ClosedRange<Int>) throws(ServingError) -> Int? {
        guard let v = value(key) else { return nil }
        guard case .number = v else { throw ServingError.invalid(key, "\(key) must be an integer, got \(v.kindDescription)", code: "invalid_type") }
        guard let i = v.intValue else {
            if let d = v.doubleValue, d.rounded() != d || abs(d) > 1e18 || !d.isFinite {
                throw ServingError.invalid(key, "\(key) must be an integer, got \(v.serialized)", code: "invalid_type")
            }
            // 512.0 or 1e3: an integral number written as a float.
            return try checked(key, Int(v.doubleValue!), range)
        }
        return try checked(key, i, range)
    }

    private func checked(_ key: String, _ n: Int, _ range: ClosedRange<Int>) throws(ServingError) -> Int {
        guard range.contains(n) else {
            throw ServingError.invalid(key, "\(key) \(n) must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return n
    }

    func seed() throws(ServingError) -> UInt64? {
        guard let v = value("seed") else { return nil }
        guard case .number(let text) = v else { throw ServingError.invalid("seed", "seed must be an integer, got \(v.kindDescription)", code: "invalid_type") }
        guard !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) else {
            throw ServingError.invalid("seed", "seed must be an integer, got \(text)", code: "invalid_type")
        }
        guard let s = Int64(text), s >= 0 else {
            throw ServingError.invalid("seed", "seed \(text) must be between 0 and \(ImageRequests.maxSeed) (2^63 - 1)")
        }
        return UInt64(s)
    }

    func guidance(_ key: String) throws(ServingError) -> Float? {
        guard let v = value(key) else { return nil }
        guard let d = v.doubleValue else { throw ServingError.invalid(key, "\(key) must be a number, got \(v.kindDescription)", code: "invalid_type") }
        guard d.isFinite, (0...50).contains(d) else { throw ServingError.invalid(key, "\(key) \(v.serialized) must be a number between 0 and 50") }
        return Float(d)
    }

    /// A positive number of seconds, at most `max`.
    func timeout(_ key: String, max: Double) throws(ServingError) -> Double? {
        guard let v = value(key) else { return nil }
        guard let d = v.doubleValue else { throw ServingError.invalid(key, "\(key) must be a number of seconds, got \(v.kindDescription)", code: "invalid_type") }
        guard d.isFinite, d > 0, d <= max else {
            throw ServingError.invalid(key, "\(key) \(v.serialized) must be more than 0 and at most \(max) seconds (the server's request_timeout_seconds)")
        }
        return d
    }

    func bool(_ key: String) throws(ServingError) -> Bool? {
        guard let v = value(key) else { return nil }
        guard case .bool(let b) = v else { throw ServingError.invalid(key, "\(key) must be a boolean, got \(v.kindDescription)", code: "invalid_type") }
        return b
    }

    func oneOf(_ key: String, _ options: [String]) throws(ServingError) {
        guard let s = try string(key) else { return }
        guard options.contains(s) else {
            throw ServingError.invalid(key, "\(key) \(quoted(s)) must be one of \(options.joined(separator: ", "))")
        }
    }
}
