import ArgumentParser
import CLIP
import Foundation
import JSON
import Tensor

/// `wuerstchen bench clip`: the ViT-bigG/14 text encoder (random weights) on a batch of 2 x 77 tokens,
/// as the prior pipeline runs it with guidance; `scripts/bench/clip_text.py` times transformers.
struct BenchCLIP: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clip", abstract: "Time the bigG text encoder on 2 x 77 tokens.")

    @Option(help: "Threads for OpenBLAS and the op pool (0: all cores).")
    var threads: Int = 0

    @Option(help: "Timed repetitions (the median is reported).")
    var repeats: Int = 5

    func run() throws {
        Compute.configure(threads: threads)
        let config = CLIPTextConfig.bigG
        let g = TorchGenerator(seed: 0)
        var weights: [String: Tensor] = [:]
        for spec in CLIPTextModel.parameters(config) { weights[spec.name] = g.rand(spec.shape).add(-0.5).mul(0.04) }
        let model = try CLIPTextModel(config: config, weights: weights)
        let tok = try CLIPTokenizer.embedded
        let texts = ["Anthropomorphic cat dressed as a fire fighter", ""]
        let tokens = texts.map { tok.encode($0) }
        _ = try model(ids: tokens.map(\.ids), attentionMask: tokens.map(\.attentionMask))
        var times: [Double] = []
        for _ in 0..<repeats {
            let t0 = Date()
            _ = try model(ids: tokens.map(\.ids), attentionMask: tokens.map(\.attentionMask))
            times.append(Date().timeIntervalSince(t0))
        }
        times.sort()
        let result = JSONValue.object([
            ("model", .string("clip-bigG-text")), ("batch", .int(2)), ("seconds", .number(String(format: "%.4f", times[times.count / 2]))),
            ("threads", .int(Compute.blasThreads)), ("blas_core", .string(Compute.blasCoreName)),
        ])
        print(result.serialized)
    }
}
