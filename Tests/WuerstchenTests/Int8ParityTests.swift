import CLIP
import Foundation
import SafeTensors
import Testing
import Tensor
@testable import Wuerstchen

/// `int8` precision against `fp32`: one forward pass of every model on the same inputs (the cases of
/// `BFloat16ParityTests.forwards`), max |int8 - fp32| over max |fp32| within `tolerance`, finite values.
///
/// Each int8 GEMM carries two quantisation errors of about 1/255 of its row's range (activations) and 1/127
/// of its channel's largest weight, i.e. ~0.5-1% of a GEMM's output, independently per layer; through a
/// model's depth they add up to a few percent, so 6e-2 (3x the bf16 tolerance). The VQ-GAN stays float32
/// in int8, so it must match exactly.
@Suite(.enabled(if: Precision.int8Supported, "oneDNN runs no vector int8 kernels here (no AVX2): int8 falls back to fp32, nothing to compare"))
struct Int8ParityTests {
    static let tolerance: Float = 6e-2

    static func compare(_ what: String, fp32: [(String, Tensor)], int8: [(String, Tensor)]) {
        for ((name, want), (_, got)) in zip(fp32, int8) {
            #expect(got.shape == want.shape, "\(what) \(name): shape \(got.shape), fp32 gave \(want.shape)")
            let err = BFloat16ParityTests.relative(got, want)
            let limit: Float = name.hasPrefix("vqgan") ? 0 : tolerance
            print("int8 vs fp32, \(what) \(name) \(want.shape): relative error \(err) (tolerance \(limit))")
            #expect(err <= limit, "\(what) \(name): int8 is \(err) relative from fp32")
        }
    }

    @Test func demoModel() throws {
        let fp32 = try DemoModel.pipeline(precision: .fp32), int8 = try DemoModel.pipeline(precision: .int8)
        Self.compare(
            "demo", fp32: try BFloat16ParityTests.forwards(fp32.prior, fp32.decoder),
            int8: try BFloat16ParityTests.forwards(int8.prior, int8.decoder))
    }

    /// The small random pipeline of the parity fixtures, loaded from its folders (the lazy, per-tensor
    /// conversion), then end to end with guidance on both stages.
    @Test func fixturePipeline() throws {
        let root = try Fixture.url("pipeline")
        func load(_ precision: Precision) throws -> WuerstchenPipeline {
            try WuerstchenPipeline(
                priorFolder: root.appendingPathComponent("prior-fp32"), decoderFolder: root.appendingPathComponent("decoder-fp32"),
                precision: precision)
        }
        let fp32 = try load(.fp32), int8 = try load(.int8)
        #expect(int8.prior.textEncoder.precision == .int8 && int8.decoder.textEncoder.precision == .int8)
        Self.compare(
            "fixture", fp32: try BFloat16ParityTests.forwards(fp32.prior, fp32.decoder),
            int8: try BFloat16ParityTests.forwards(int8.prior, int8.decoder))

        let request = GenerationRequest(
            prompt: "a cat", width: 256, height: 256, seed: 3, priorSteps: 4, priorGuidance: 4, decoderSteps: 3, decoderGuidance: 2)
        let a = try fp32.generate([request])[0].get(), b = try int8.generate([request])[0].get()
        let embedErr = BFloat16ParityTests.relative(b.imageEmbeddings, a.imageEmbeddings)
        var worst: Float = 0, sum: Float = 0
        for i in 0..<a.images.count {
            #expect(b.images[flat: i].isFinite)
            let d = abs(b.images[flat: i] - a.images[flat: i])
            worst = max(worst, d)
            sum += d
        }
        // As bf16's end-to-end bound, twice: guidance 4 scales the difference of two predictions by 4 and
        // every sampler step feeds the last one's error back in.
        let mean = sum / Float(a.images.count) * 255
        print("int8 vs fp32, fixture end to end: image embeddings \(embedErr) relative, pixels \(mean) levels apart on average, at most \(worst * 255) (tolerance 1e-1, 32 levels)")
        #expect(embedErr <= 1e-1, "image embeddings \(embedErr) relative from fp32")
        #expect(worst * 255 <= 32, "pixels \(worst * 255) levels from fp32")
    }

    /// The real architecture's prior (`WuerstchenPrior.Config.v2`, 1B parameters, 4 GB in fp32) on weights of
    /// std 0.02 drawn here, `b`'s bias at -3, as `BFloat16ParityTests.realArchitectureRandomWeights` does,
    /// at 512 px; and the real text encoders and decoder from `scripts/bench/make_real_random.py`'s files
    /// when WUERSTCHEN_REAL_RANDOM names them. Set WUERSTCHEN_INT8_REAL=1 (about 10 GB, minutes).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["WUERSTCHEN_INT8_REAL"] != nil,
                   "set WUERSTCHEN_INT8_REAL=1 (and WUERSTCHEN_REAL_RANDOM=DIR for the files' models)"))
    func realArchitecture() throws {
        let gen = TorchGenerator(seed: 11)
        let priorX = gen.randn([2, 12, 12, 16]), priorClip = gen.randn([2, 77, 1280])
        var cases: [(String, (Precision) throws -> Tensor)] = [
            ("prior 512 px (weights std 0.02, b bias -3)", { p in
                try BFloat16ParityTests.wellConditionedPrior(p)(priorX, r: [0.9, 0.3], clip: priorClip) }),
        ]
        if let dir = ProcessInfo.processInfo.environment["WUERSTCHEN_REAL_RANDOM"] {
            cases += try BFloat16ParityTests.realFileCases(URL(fileURLWithPath: dir), gen)
        }
        for (name, run) in cases {
            let want = try run(.fp32)
            let got = try run(.int8)
            Self.compare("real architecture", fp32: [(name, want)], int8: [(name, got)])
        }
    }
}
