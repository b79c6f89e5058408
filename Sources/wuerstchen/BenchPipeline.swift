import ArgumentParser
import Foundation
import Imaging
import Tensor
import Wuerstchen

/// `wuerstchen bench --prior DIR --decoder DIR`: one generation with the model card's settings (prior:
/// default schedule, guidance 4; decoder: 12 steps, guidance 0; seed 0), timed per stage.
/// `scripts/bench/compare.py` runs diffusers on the same folders for the comparison.
struct BenchPipeline: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline", abstract: "Time a generation with the model card's settings, stage by stage.")

    @OptionGroup var model: ModelOptions

    @Option(help: "Image width.")
    var width: Int = 512

    @Option(help: "Image height.")
    var height: Int = 512

    @Option(name: .customLong("prior-steps"), help: "Prior steps (default: the model card's 29-step schedule).")
    var priorSteps: Int?

    @Option(name: .customLong("decoder-steps"), help: "Decoder steps.")
    var decoderSteps: Int = 12

    @Option(name: .customLong("num-images"), help: "Images in the one request (to measure the largest request `scheduler.max_batch_pixels` admits).")
    var numImages: Int = 1

    @Option(name: .customLong("decoder-guidance"), help: "Decoder guidance scale (above 1 doubles the decoder's rows).")
    var decoderGuidance: Float = 0

    @Flag(help: "Print one JSON object.")
    var json = false

    @Option(help: "Also write the image as PNG (to compare precisions).")
    var output: String?

    func run() throws {
        let loadStart = Date()
        let pipeline = try model.load()
        let load = Date().timeIntervalSince(loadStart)
        let request = GenerationRequest(prompt: "Anthropomorphic cat dressed as a fire fighter", width: width, height: height,
                                        numImages: numImages, seed: 0, priorSteps: priorSteps, priorGuidance: 4,
                                        decoderSteps: decoderSteps, decoderGuidance: decoderGuidance)
        try request.validate(sizes: pipeline.sizeRules, maxImages: 64)
        // The scheduler's measure of the request (rows x pixels, against `scheduler.max_batch_pixels`), so that
        // the peak RSS below can be matched with the largest request a configuration admits.
        let rows = numImages * (request.priorGuidance > 1 || request.decoderGuidance > 1 ? 2 : 1)
        var t = Date()
        func lap() -> Double {
            let now = Date()
            defer { t = now }
            return now.timeIntervalSince(t)
        }
        let total = Date()
        t = Date()
        let generator = TorchGenerator(seed: request.seed)
        let priorJob = try pipeline.prior.start(request, generator: generator)
        let priorText = lap()
        var priorSteps: [Double] = []
        while !priorJob.isFinished {
            pipeline.prior.step([priorJob])
            priorSteps.append(lap())
        }
        let embeddings = pipeline.prior.imageEmbeddings(priorJob)
        _ = lap()
        let decoderJob = try pipeline.decoder.start(request, imageEmbeddings: embeddings, generator: generator)
        let decoderText = lap()
        var decoderSteps: [Double] = []
        while !decoderJob.isFinished {
            pipeline.decoder.step([decoderJob])
            decoderSteps.append(lap())
        }
        let images = try pipeline.decoder.images(decoderJob)
        let vq = lap()
        let totalSeconds = Date().timeIntervalSince(total)
        let result: [String: Any] = [
            "engine": "wuerstchen-swift", "precision": model.effectivePrecision.rawValue, "width": width, "height": height,
            "num_images": numImages, "decoder_guidance": Double(decoderGuidance), "rows": rows, "rows_x_pixels": rows * width * height,
            "threads": Compute.blasThreads, "blas_core": Compute.blasCoreName,
            "load_s": load, "total_s": totalSeconds,
            "prior_text_s": priorText, "prior_steps": priorSteps.count, "prior_step_s": median(priorSteps),
            "prior_s": priorSteps.reduce(0, +), "decoder_text_s": decoderText, "decoder_steps": decoderSteps.count,
            "decoder_step_s": median(decoderSteps), "decoder_s": decoderSteps.reduce(0, +), "vqgan_s": vq,
            "peak_rss_gb": ProcessMemory.peakResidentBytes() / 1e9,
            "image_mean": images.mean(),
        ]
        if let output {
            // The first image, [H, W, 3].
            let shape = Array(images.shape.dropFirst())
            let first = Tensor(shape: shape, values: Array(images.toArray().prefix(shape.reduce(1, *))))
            try PNGEncoder().encode(first).write(to: URL(fileURLWithPath: output))
        }
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        } else {
            for key in result.keys.sorted() { print("\(key): \(result[key]!)") }
        }
    }

    private func median(_ xs: [Double]) -> Double {
        guard !xs.isEmpty else { return 0 }
        let s = xs.sorted()
        return s[s.count / 2]
    }
}

/// Memory figures of this process from /proc/self/status.
enum ProcessMemory {
    /// Peak resident set size (VmHWM) in bytes, 0 where /proc is missing.
    static func peakResidentBytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Double($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }
}
