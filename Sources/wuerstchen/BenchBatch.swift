import ArgumentParser
import Foundation
import JSON
import Tensor
import Wuerstchen

/// `wuerstchen bench batch --prior DIR --decoder DIR`: what batching buys per forward pass. For each size
/// and batch size, times denoising steps of the prior (guidance 4: two rows per request) and of the decoder
/// (guidance 0) with that many requests in one forward, and reports seconds per request-step against
/// batch 1. This is the ceiling of the scheduler's throughput gain; `scripts/bench/scheduler.sh` measures
/// the service end to end.
struct BenchBatch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch", abstract: "Time prior and decoder steps at several batch sizes.")

    @OptionGroup var model: ModelOptions

    @Option(help: "Square image sizes in pixels, comma-separated.")
    var sizes: String = "512"

    @Option(help: "Requests per forward pass, comma-separated.")
    var batches: String = "1,2,4,8"

    @Option(help: "Timed steps per measurement (after one warm-up step).")
    var steps: Int = 2

    @Flag(help: "Print one JSON object per measurement.")
    var json = false

    func run() throws {
        let pipeline = try model.load()
        let sizeList = try Self.integers(sizes, "sizes"), batchList = try Self.integers(batches, "batches")
        for px in sizeList {
            var baseline: [String: Double] = [:]
            for n in batchList {
                let requests = (0..<n).map {
                    GenerationRequest(prompt: "a photo of a cat number \($0)", width: px, height: px, seed: UInt64($0),
                                      priorSteps: steps + 1, priorGuidance: 4, decoderSteps: steps + 1, decoderGuidance: 0)
                }
                try requests[0].validate(sizes: pipeline.sizeRules)
                let priorJobs = try pipeline.prior.start(requests.map { ($0, TorchGenerator(seed: $0.seed)) })
                let prior = Self.time(steps) { pipeline.prior.step(priorJobs) }
                let (h, w) = pipeline.prior.latentSize(height: px, width: px)
                let embeddings = TorchGenerator(seed: 1).randn([1, h, w, 16])
                let decoderJobs = try pipeline.decoder.start(requests.map { ($0, embeddings, TorchGenerator(seed: $0.seed)) })
                let decoder = Self.time(steps) { pipeline.decoder.step(decoderJobs) }
                for (stage, seconds) in [("prior", prior), ("decoder", decoder)] {
                    if n == batchList[0] { baseline[stage] = seconds / Double(n) }
                    let perRequest = seconds / Double(n)
                    // Keys in sorted order, as before.
                    let row = JSONValue.object([
                        ("batch", .int(n)), ("blas_core", .string(Compute.blasCoreName)), ("forward_s", .double(seconds)),
                        ("per_request_step_s", .double(perRequest)), ("size", .int(px)), ("stage", .string(stage)),
                        ("threads", .int(Compute.blasThreads)), ("throughput_vs_first", .double(baseline[stage]! / perRequest)),
                    ])
                    if json {
                        print(row.serialized)
                    } else {
                        print(String(format: "%4d px  batch %2d  %-7@  forward %8.3f s  per request-step %8.3f s  throughput x%.2f",
                                     px, n, stage as NSString, seconds, perRequest, baseline[stage]! / perRequest))
                    }
                    FileHandle.standardOutput.synchronizeFile()
                }
            }
        }
    }

    /// Median seconds of `count` calls of `body`, after one warm-up call.
    static func time(_ count: Int, _ body: () -> Void) -> Double {
        body()
        var laps: [Double] = []
        for _ in 0..<count {
            let t = Date()
            body()
            laps.append(Date().timeIntervalSince(t))
        }
        return laps.sorted()[laps.count / 2]
    }

    static func integers(_ text: String, _ name: String) throws -> [Int] {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw ValidationError("--\(name) '\(text)': expected comma-separated positive integers")
        }
        return values.map { $0! }
    }
}
