import ArgumentParser
import Foundation
import Imaging
import SafeTensors
import Tensor
import Wuerstchen

/// `wuerstchen generate`: text to PNG files with the resident pipeline, as diffusers would draw them.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate images from a prompt.")

    @OptionGroup var model: ModelOptions

    @Option(help: "Text to draw.")
    var prompt: String

    @Option(name: .customLong("negative-prompt"), help: "Text to steer away from (used when guidance > 1).")
    var negativePrompt: String = ""

    @Option(help: "Image width in pixels (every multiple of 128 works).")
    var width: Int = 1024

    @Option(help: "Image height in pixels.")
    var height: Int = 1024

    @Option(help: "Seed of torch.Generator(\"cpu\").manual_seed (random when omitted, and printed).")
    var seed: UInt64?

    @Option(name: .customLong("prior-steps"), help: "Prior steps (default: the model card's 29-step schedule).")
    var priorSteps: Int?

    @Option(name: .customLong("prior-guidance"), help: "Prior classifier-free guidance scale.")
    var priorGuidance: Float = 4.0

    @Option(name: .customLong("decoder-steps"), help: "Decoder steps.")
    var decoderSteps: Int = 12

    @Option(name: .customLong("decoder-guidance"), help: "Decoder classifier-free guidance scale.")
    var decoderGuidance: Float = 0.0

    @Option(name: .customLong("num-images"), help: "Images for the prompt.")
    var numImages: Int = 1

    @Option(help: "Output PNG; with several images {i} is replaced by the index, or -{i} goes before the extension.")
    var output: String

    @Option(name: .customLong("prior-output"), help: "Also write the image embeddings (F32 `image_embeddings`, [n, 16, h, w]) as safetensors.")
    var priorOutput: String?

    @Option(name: .customLong("png-compression"), help: "zlib level of the PNG files (0-9).")
    var pngCompression: Int = 6

    func run() throws {
        let pipeline = try model.load()
        let seed = self.seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
        log("seed \(seed)")
        let request = GenerationRequest(
            prompt: prompt, negativePrompt: negativePrompt, width: width, height: height, numImages: numImages,
            seed: seed, priorSteps: priorSteps, priorGuidance: priorGuidance, decoderSteps: decoderSteps,
            decoderGuidance: decoderGuidance)
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
        let encoder = PNGEncoder(compressionLevel: pngCompression)
        let n = out.images.dim(0)
        for i in 0..<n {
            let image = out.images.row(i)  // [H, W, 3]
            let path = Self.outputPath(output, index: i, count: n)
            try encoder.encode(rgb: image.pixelBytes(), width: image.dim(1), height: image.dim(0)).write(to: URL(fileURLWithPath: path))
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
