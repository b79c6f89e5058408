import ArgumentParser
import Foundation
import Imaging
import SafeTensors
import Serving
import Tensor
import Wuerstchen

/// `wuerstchen generate`: text to image files with the resident pipeline, as diffusers would draw them;
/// `--from IMAGE` takes every setting from an image we wrote (flags given as well override it).
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate images from a prompt, or again from an image's stored parameters (--from).")

    @OptionGroup var model: ModelOptions

    // Deliberate parallel of ModelOptions.swift and Serve.swift's options: one ArgumentParser declaration per
    // flag, optional where `--from` may give the value.
    @Option(help: "Text to draw (required unless --from gives it).")
    var prompt: String?

    @Option(name: .customLong("from"), help: "An image written by wuerstchen: generate it again with its stored parameters (see `inspect`); other flags override them.")
    var from: String?

    @Option(name: .customLong("negative-prompt"), help: "Text to steer away from (used when guidance > 1).")
    var negativePrompt: String?

    @Option(help: "Image width in pixels (default 1024; every multiple of 128 works).")
    var width: Int?

    @Option(help: "Image height in pixels (default 1024).")
    var height: Int?

    @Option(help: "Seed of torch.Generator(\"cpu\").manual_seed (random when omitted, and printed).")
    var seed: UInt64?

    @Option(name: .customLong("prior-steps"), help: "Prior steps (default: the model card's 29-step schedule).")
    var priorSteps: Int?

    @Option(name: .customLong("prior-guidance"), help: "Prior classifier-free guidance scale (default 4.0).")
    var priorGuidance: Float?

    @Option(name: .customLong("decoder-steps"), help: "Decoder steps (default 12).")
    var decoderSteps: Int?

    @Option(name: .customLong("decoder-guidance"), help: "Decoder classifier-free guidance scale (default 0.0).")
    var decoderGuidance: Float?

    @Option(name: .customLong("num-images"), help: "Images for the prompt (default 1).")
    var numImages: Int?

    @Option(help: "Output file: .png, .jpg/.jpeg or .webp picks the format (no extension: PNG); with several images {i} is replaced by the index, or -{i} goes before the extension.")
    var output: String

    @Option(name: .customLong("output-compression"), help: "OpenAI's output_compression 0-100: JPEG quality, WebP quality (100: lossless), PNG zlib level round(c*9/100). Default: 100 for JPEG and WebP, --png-compression for PNG.")
    var outputCompression: Int?

    @Option(name: .customLong("prior-output"), help: "Also write the image embeddings (F32 `image_embeddings`, [n, 16, h, w]) as safetensors.")
    var priorOutput: String?

    @Option(name: .customLong("png-compression"), help: "zlib level of the PNG files (0-9) when --output-compression is not given.")
    var pngCompression: Int = 6

    @Flag(name: .customLong("no-metadata"), help: "Write no generation parameters into the files (privacy; `inspect` and --from then find none).")
    var noMetadata = false

    func validate() throws {
        guard prompt != nil || from != nil else { throw ValidationError("--prompt is required (or --from IMAGE)") }
        if let c = outputCompression, !(0...100).contains(c) {
            throw ValidationError("--output-compression must be between 0 and 100, got \(c)")
        }
        guard (0...9).contains(pngCompression) else { throw ValidationError("--png-compression must be between 0 and 9, got \(pngCompression)") }
        _ = try Self.format(of: output)
    }

    /// The format `--output`'s extension names (PNG without one).
    static func format(of path: String) throws -> ImageFormat {
        let ext = URL(fileURLWithPath: path).pathExtension
        if ext.isEmpty { return .png }
        guard let format = ImageFormat(fileExtension: ext) else {
            throw ValidationError("--output \(path): the extension picks the format, .png, .jpg, .jpeg or .webp (not .\(ext))")
        }
        return format
    }

    /// The request: the stored one of `--from` (or the defaults), with every flag given laid over it.
    func request(over stored: GenerationParameters?) -> GenerationRequest {
        var g = stored?.request ?? GenerationRequest(prompt: "", seed: UInt64.random(in: 0...UInt64(UInt32.max)))
        if let prompt { g.prompt = prompt }
        if let negativePrompt { g.negativePrompt = negativePrompt }
        if let width { g.width = width }
        if let height { g.height = height }
        if let seed { g.seed = seed }
        if let priorSteps { g.priorSteps = priorSteps }
        if let priorGuidance { g.priorGuidance = priorGuidance }
        if let decoderSteps { g.decoderSteps = decoderSteps }
        if let decoderGuidance { g.decoderGuidance = decoderGuidance }
        if let numImages { g.numImages = numImages }
        return g
    }

    func run() throws {
        var stored: GenerationParameters?
        if let from {
            do { stored = try GenerationParameters.read(from: Data(contentsOf: URL(fileURLWithPath: from))) } catch {
                throw ValidationError("--from \(from): \(error)")
            }
            log("parameters from \(from): seed \(stored!.request.seed), \(stored!.request.width)x\(stored!.request.height)")
        }
        var model = self.model
        if model.precision == nil, let p = stored?.precision { model.precision = p }
        let pipeline = try model.load()
        let request = self.request(over: stored)
        log("seed \(request.seed)")
        // Image i of a stored batch comes from the batch's one generator: run the whole batch and keep it.
        let keepOnly = stored.flatMap { numImages == nil && $0.request.numImages > 1 ? $0.imageIndex : nil }
        let started = Date()
        let results: [Result<GenerationOutput, GenerationError>]
        do {
            results = try pipeline.generate([request]) { p in
                ProgressBar.draw(p)
                return true
            }
        } catch let e as GenerationError {
            throw ValidationError(e.message)
        }
        ProgressBar.finish()
        let out = try results[0].get()
        if let priorOutput {
            try SafeTensorsWriter.write(["image_embeddings": out.imageEmbeddings.nhwcToNCHW()], metadata: ["format": "pt"],
                                        to: URL(fileURLWithPath: priorOutput))
            log("wrote \(priorOutput)")
        }
        let format = try Self.format(of: output)
        let compression = outputCompression ?? (stored?.outputFormat == format ? stored?.outputCompression : nil)
        let encoder = ImageEncoder(format: format, compression: compression, defaultPNGLevel: pngCompression)
        let parameters = GenerationParameters(request: request, model: model.modelID, precision: model.effectivePrecision.rawValue,
                                              outputFormat: format, outputCompression: compression)
        let n = out.images.dim(0), h = out.images.dim(1), w = out.images.dim(2)
        let indices = keepOnly.map { [$0] } ?? Array(0..<n)
        for i in indices {
            var p = parameters
            p.imageIndex = i
            let path = Self.outputPath(output, index: i, count: indices.count)
            let metadata = noMetadata ? nil : p.metadata
            if let metadata {
                do { try encoder.check(metadata) } catch { throw ValidationError("\(path): \(error) (or --no-metadata)") }
            }
            try encoder.encode(rgb: out.images.row(i).pixelBytes(), width: w, height: h, metadata: metadata)
                .write(to: URL(fileURLWithPath: path))
            log("wrote \(path)")
        }
        log("generated \(n) image(s) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }

    /// `{i}` replaced by the index; else, with several images, `-{i}` before the extension.
    static func outputPath(_ template: String, index: Int, count: Int) -> String {
        if template.contains("{i}") { return template.replacingOccurrences(of: "{i}", with: String(index)) }
        guard count > 1 else { return template }
        let url = URL(fileURLWithPath: template)
        let ext = url.pathExtension
        let stem = ext.isEmpty ? template : String(template.dropLast(ext.count + 1))
        return ext.isEmpty ? "\(stem)-\(index)" : "\(stem)-\(index).\(ext)"
    }
}
