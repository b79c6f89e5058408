import ArgumentParser
import Foundation
import Imaging
import SafeTensors
import Tensor
import Wuerstchen

/// Options shared by the commands that run the models.
struct ModelOptions: ParsableArguments {
    @Option(help: "Prior pipeline folder (warp-ai/wuerstchen-prior layout, diffusers or PaddlePaddle). Omit both folders for the embedded demo model.")
    var prior: String?

    @Option(help: "Decoder pipeline folder (warp-ai/wuerstchen layout, diffusers or PaddlePaddle).")
    var decoder: String?

    @Option(help: "Numeric precision: fp32, bf16 (GEMM weights and inputs in bfloat16 through oneDNN, float32 elsewhere; needs AVX512-BF16, else fp32 with a message) or int8 (Linear, 1x1-conv and attention-projection GEMMs in int8 through oneDNN, float32 elsewhere; needs AVX2, else fp32 with a message).")
    var precision: String = "fp32"

    @Option(help: "Threads for OpenBLAS and the op pool (0: all cores).")
    var threads: Int = 0

    func validate() throws {
        guard (prior == nil) == (decoder == nil) else {
            throw ValidationError("--prior and --decoder go together: give both pipeline folders, or neither for the demo model")
        }
        guard Precision(rawValue: precision) != nil else {
            throw ValidationError("--precision must be fp32, bf16 or int8, got '\(precision)'")
        }
        guard threads >= 0 else { throw ValidationError("--threads must be 0 (all cores) or more, got \(threads)") }
    }

    /// The precision that runs: `--precision`, or fp32 where the CPU lacks AVX512-BF16 (bf16) or AVX2 (int8).
    var effectivePrecision: Precision { (Precision(rawValue: precision) ?? .fp32).resolved().precision }

    /// Loads the pipelines (or the embedded demo model), logging what was loaded and how long it took.
    func load() throws -> WuerstchenPipeline {
        Compute.configure(threads: threads)
        let (precision, note) = (Precision(rawValue: precision) ?? .fp32).resolved()
        if let note { log(note) }
        let start = Date()
        let pipeline: WuerstchenPipeline
        if let prior, let decoder {
            pipeline = try WuerstchenPipeline(
                priorFolder: URL(fileURLWithPath: prior), decoderFolder: URL(fileURLWithPath: decoder), precision: precision)
            log("loaded \(prior) and \(decoder) (\(precision.rawValue)) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        } else {
            pipeline = try DemoModel.pipeline(precision: precision)
            log("using the embedded demo model (\(precision.rawValue)): it draws one shape on a plain background, e.g. \"a red circle on a blue background\"; pass --prior and --decoder with the real weights for anything else")
        }
        return pipeline
    }
}

/// Writes a line to stderr.
func log(_ message: String) {
    FileHandle.standardError.write(Data("wuerstchen: \(message)\n".utf8))
}

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
        let n = out.images.dim(0), per = out.images.count / n
        for i in 0..<n {
            let image = Tensor(uninitialized: Array(out.images.shape.dropFirst()))
            image.data.update(from: out.images.data + i * per, count: per)
            let path = Self.outputPath(output, index: i, count: n)
            try encoder.encode(image).write(to: URL(fileURLWithPath: path))
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

/// A one-line progress bar on stderr.
enum ProgressBar {
    static func draw(_ p: GenerationProgress) {
        let width = 30, filled = p.total == 0 ? width : width * p.step / p.total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data("\r\(p.stage.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) [\(bar)] \(p.step)/\(p.total)".utf8))
    }

    static func finish() { FileHandle.standardError.write(Data("\n".utf8)) }
}
