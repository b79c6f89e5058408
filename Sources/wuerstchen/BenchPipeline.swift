import ArgumentParser
import Foundation
import Imaging
import JSON
import Tensor
import Wuerstchen

/// `wuerstchen bench --prior DIR --decoder DIR`: one generation with the model card's settings (prior:
/// default schedule, guidance 4; decoder: 12 steps, guidance 0; seed 0), timed per stage. Per stage also the
/// GEMM work the seam counted (`GEMMProfile`): `<stage>_gemm_gop`, the achieved rate `<stage>_gflops` (GEMM
/// operations over the stage's wall time), its fraction of this machine's GEMM rate in the stage's precision
/// (`<stage>_gemm_peak_fraction`, against `gemm_peak_gflops`, measured after the generation) and the share of the stage's wall time
/// spent outside products (`<stage>_non_gemm_share`); the same for the whole generation without the prefix.
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
        // The scheduler's measure of the request (rows x pixels, against `scheduler.max_batch_pixels`), so that
        // the peak RSS below can be matched with the largest request a configuration admits.
        let rows = numImages * (request.priorGuidance > 1 || request.decoderGuidance > 1 ? 2 : 1)
        let precision = model.effectivePrecision
        let profile = GEMMProfile()
        let outerProfile = profile.start()
        // Per stage: wall seconds, the products counted, the precision its products run in (steps add up).
        var stages: [String: (seconds: Double, counted: GEMMProfile.Totals, precision: Precision)] = [:]
        var t = Date()
        var mark = profile.totals
        func lap(_ stage: String? = nil, _ stagePrecision: Precision? = nil) -> Double {
            let now = Date(), counted = profile.totals
            defer { t = now; mark = counted }
            let seconds = now.timeIntervalSince(t)
            if let stage {
                let sofar = stages[stage] ?? (0, GEMMProfile.Totals(), stagePrecision ?? precision)
                stages[stage] = (sofar.seconds + seconds, sofar.counted + (counted - mark), sofar.precision)
            }
            return seconds
        }
        var priorSteps: [Double] = [], decoderSteps: [Double] = []
        let total = Date()
        t = Date()
        // The pipeline's own loop, timed unit by unit; taking the embeddings out of the prior counts for no stage.
        let images = try pipeline.generate([request], maxImages: 64, unitFinished: { unit in
            switch unit {
            case .priorText: _ = lap("prior_text")
            case .priorStep: priorSteps.append(lap("prior"))
            case .priorEmbeddings: _ = lap()
            case .decoderText: _ = lap("decoder_text")
            case .decoderStep: decoderSteps.append(lap("decoder"))
            case .vqDecode: _ = lap("vqgan", PaellaVQModel.weightPrecision(precision))
            }
        })[0].get().images
        let totalSeconds = Date().timeIntervalSince(total)
        profile.stop(restoring: outerProfile)
        let peakRSS = ProcessMemory.peakResidentBytes()
        // After the generation and its peak RSS, so that neither includes these products.
        let peaks = Dictionary(uniqueKeysWithValues: Set([precision, PaellaVQModel.weightPrecision(precision)]).map {
            ($0, GEMMRate.measure($0))
        })
        let mean = images.mean()
        var result: [String: JSONValue] = [
            "engine": .string("wuerstchen-swift"), "precision": .string(model.effectivePrecision.rawValue), "width": .int(width),
            "height": .int(height), "num_images": .int(numImages), "decoder_guidance": .double(Double(decoderGuidance)),
            "rows": .int(rows), "rows_x_pixels": .int(rows * width * height),
            "threads": .int(Compute.blasThreads), "blas_core": .string(Compute.blasCoreName),
            "load_s": .double(load), "total_s": .double(totalSeconds),
            "prior_text_s": .double(stages["prior_text"]!.seconds), "prior_steps": .int(priorSteps.count),
            "prior_step_s": .double(median(priorSteps)), "prior_s": .double(priorSteps.reduce(0, +)),
            "decoder_text_s": .double(stages["decoder_text"]!.seconds), "decoder_steps": .int(decoderSteps.count),
            "decoder_step_s": .double(median(decoderSteps)), "decoder_s": .double(decoderSteps.reduce(0, +)),
            "vqgan_s": .double(stages["vqgan"]!.seconds), "peak_rss_gb": .double(peakRSS / 1e9),
            "image_mean": mean.isFinite ? .number(String(mean)) : .null, "gemm_peak_gflops": .double(peaks[precision]!),
        ]
        func report(_ prefix: String, seconds: Double, counted: GEMMProfile.Totals, precision: Precision) {
            let rate = counted.operations / max(seconds, 1e-9) / 1e9
            result[prefix + "gemm_gop"] = .double(counted.operations / 1e9)
            result[prefix + "gemm_s"] = .double(counted.seconds)
            result[prefix + "gflops"] = .double(rate)
            result[prefix + "gemm_peak_fraction"] = .double(rate / peaks[precision]!)
            result[prefix + "non_gemm_share"] = .double(max(0, 1 - counted.seconds / max(seconds, 1e-9)))
        }
        for (stage, figures) in stages {
            report(stage + "_", seconds: figures.seconds, counted: figures.counted, precision: figures.precision)
        }
        // End to end: every stage's products over the whole generation's wall time, against the precision's rate.
        report("", seconds: totalSeconds, counted: stages.values.reduce(GEMMProfile.Totals()) { $0 + $1.counted },
               precision: precision)
        if let output {
            let first = images.row(0)  // [H, W, 3]
            try PNGEncoder().encode(rgb: first.pixelBytes(), width: first.dim(1), height: first.dim(0)).write(to: URL(fileURLWithPath: output))
        }
        let sorted = result.sorted { $0.key < $1.key }
        if json {
            print(JSONValue.object(sorted.map { ($0.key, $0.value) }).serialized)
        } else {
            for (key, value) in sorted { print("\(key): \(value.stringValue ?? value.serialized)") }
        }
    }

    private func median(_ xs: [Double]) -> Double {
        guard !xs.isEmpty else { return 0 }
        let s = xs.sorted()
        return s[s.count / 2]
    }
}
