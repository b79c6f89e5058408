import Foundation
import SafeTensors
import Testing
import Tensor
@testable import Wuerstchen

/// Stage A against diffusers' `PaellaVQModel` on a tiny random model (scripts/fixtures/vqgan.py):
/// levels 2, bottleneck_blocks 2, embed_dim 16, latent_channels 4, 64 codes; every parameter, gamma
/// and BatchNorm statistic random.
@Suite struct PaellaVQModelTests {
    static func tiny(tile: Int? = nil, band: Int? = nil) throws -> PaellaVQModel {
        var m = try PaellaVQModel(folder: Fixture.url("vqgan-tiny"))
        if let tile { m.channelwiseTileTokens = tile }
        m.bandRows = band
        return m
    }

    @Test func configDefaultsAreDiffusers() throws {
        let c = try JSONDecoder().decode(PaellaVQModelConfig.self, from: Data("{}".utf8))
        #expect(c == PaellaVQModelConfig.wuerstchenV2)
        #expect(c.channelLevels == [192, 384])
        #expect(c.downscale == 4)
        #expect(c.scaleFactor == 0.3764)
        let tiny = try loadConfig(PaellaVQModelConfig.self, from: Fixture.url("vqgan-tiny"))
        #expect(tiny == PaellaVQModelConfig(bottleneckBlocks: 2, embedDim: 16, numVqEmbeddings: 64))
    }

    @Test func decode() throws {
        let f = try Fixture.load("vqgan")
        let latents = try f.tensor("latents")  // [2, 6, 10, 4]
        let expected = try f.tensor("decode")  // [2, 24, 40, 3]
        expectClose(try Self.tiny().decode(latents), expected, tolerance: 1e-4, "PaellaVQModel.decode")
        // Channelwise MLP in tiles of 7 tokens (several tiles and a partial one at every level).
        expectClose(try Self.tiny(tile: 7).decode(latents), expected, tolerance: 1e-4, "PaellaVQModel.decode, 7-token tiles")
        // Row bands of 1, 2 and 4 rows (a partial last band at 6 and 12 rows), with tiles inside the bands.
        for band in [1, 2, 4] {
            expectClose(
                try Self.tiny(tile: 9, band: band).decode(latents), expected, tolerance: 1e-4,
                "PaellaVQModel.decode, \(band)-row bands, 9-token tiles")
        }
    }

    @Test func decodeQuantized() throws {
        let f = try Fixture.load("vqgan")
        let model = try Self.tiny()
        let latents = try f.tensor("latents")
        expectClose(try model.quantize(latents), try f.tensor("quantized"), tolerance: 1e-6, "VectorQuantizer")
        expectClose(
            try model.decode(latents, forceNotQuantize: false), try f.tensor("decode_quantized"), tolerance: 1e-4,
            "PaellaVQModel.decode(force_not_quantize=False)")
    }

    @Test func encode() throws {
        let f = try Fixture.load("vqgan")
        let image = try f.tensor("image")  // [2, 24, 40, 3]
        expectClose(try Self.tiny().encode(image), try f.tensor("encode"), tolerance: 1e-4, "PaellaVQModel.encode")
        expectClose(
            try Self.tiny(tile: 5, band: 3).encode(image), try f.tensor("encode"), tolerance: 1e-4,
            "PaellaVQModel.encode, 3-row bands, 5-token tiles")
    }

    @Test func pipelineScalingIsDecodeOfScaledLatents() throws {
        let f = try Fixture.load("vqgan")
        let model = try Self.tiny()
        let latents = try f.tensor("latents")
        let direct = try model.decode(latents * model.config.scaleFactor)
        expectClose(try model.decodePipelineLatents(latents), direct, tolerance: 0, "decodePipelineLatents")
    }

    /// The same weights in PaddlePaddle layout (fp16, Linear weights [in, out], BatchNorm `_mean` /
    /// `_variance`, no `num_batches_tracked`) against diffusers run on the fp16-rounded weights.
    @Test func paddleLayoutLoads() throws {
        let f = try Fixture.load("vqgan")
        let weights = try ModelFolder.locateWeights(in: Fixture.url("vqgan-tiny-paddle"))
        #expect(weights.layout == .paddle)
        let model = try PaellaVQModel(folder: Fixture.url("vqgan-tiny-paddle"))
        expectClose(
            try model.decode(try f.tensor("latents")), try f.tensor("decode_fp16_weights"), tolerance: 1e-4,
            "PaellaVQModel.decode, Paddle fp16 copy")
    }

    @Test func rejectsBadInputs() throws {
        let model = try Self.tiny()
        #expect(throws: PaellaVQModelError.self) { try model.decode(Tensor(zeros: [1, 4, 4, 3])) }
        #expect(throws: PaellaVQModelError.self) { try model.decode(Tensor(zeros: [4, 4, 4])) }
        #expect(throws: PaellaVQModelError.self) { try model.encode(Tensor(zeros: [1, 6, 8, 3])) }
        #expect(throws: PaellaVQModelError.self) { try model.quantize(Tensor(zeros: [1, 2, 2, 5])) }
    }

    /// The published `warp-ai/wuerstchen` vqgan: exactly these names and shapes
    /// (../shared/reference/real-vqgan-tensors.tsv) plus the two BatchNorm running statistics.
    @Test func realConfigurationDeclaresThePublishedTensors() throws {
        let tsv = try String(contentsOf: Fixture.url("vqgan-real-tensors.tsv"), encoding: .utf8)
        var published: [String: [Int]] = [:]
        for line in tsv.split(separator: "\n") {
            let cols = line.split(separator: "\t")
            published[String(cols[0])] = cols[1].dropFirst().dropLast().split(separator: ",").map {
                Int($0.trimmingCharacters(in: .whitespaces))!
            }
        }
        let specs = PaellaVQModel.parameters(.wuerstchenV2)
        let stats = specs.filter { $0.kind == .batchNormStat }
        #expect(stats.map(\.name) == ["down_blocks.3.1.running_mean", "down_blocks.3.1.running_var"])
        #expect(stats.allSatisfy { $0.shape == [4] })
        var declared: [String: [Int]] = [:]
        for p in specs where p.kind != .batchNormStat { declared[p.name] = p.shape }
        #expect(Set(declared.keys).subtracting(published.keys).sorted() == [], "declared but not published")
        #expect(Set(published.keys).subtracting(declared.keys).sorted() == [], "published but not declared")
        for (k, shape) in published { #expect(declared[k] == shape, "\(k): declared \(declared[k] ?? []), published \(shape)") }
        let total = declared.values.reduce(0) { $0 + $1.reduce(1, *) }
        #expect(total == 18_406_894)
        #expect(specs.filter { $0.kind == .linearWeight }.count == 2 * 15)  // channelwise.0/2 of 2 + 13 blocks
    }
}

/// Stage A at the published size with random weights: seconds and peak memory of `decode` at 512 px
/// (latent 128x128) and 1024 px (latent 256x256). Opt-in: `WUERSTCHEN_BENCH=1 swift test -c release
/// -Xswiftc -enable-testing --filter PaellaVQModelSpeed`.
@Suite struct PaellaVQModelSpeed {
    /// Uniform values in ±1/sqrt(fan-in)-ish ranges (xorshift; speed does not depend on the values),
    /// BatchNorm variances positive, gammas small.
    static func randomWeights(_ specs: [ParameterSpec]) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (s, spec) in specs.enumerated() {
            let t = Tensor(uninitialized: spec.shape)
            let fanIn = spec.shape.count > 1 ? spec.shape.dropFirst().reduce(1, *) : 1
            let a: Float = spec.name.hasSuffix("gammas") ? 0.1 : 1 / Float(fanIn).squareRoot()
            let positive = spec.name.hasSuffix("running_var")
            var state = UInt64(s &+ 1) &* 0x9E37_79B9_7F4A_7C15 | 1
            for i in 0..<t.count {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                let u = Float(state >> 40) / Float(1 << 24)
                t[flat: i] = positive ? 0.5 + u : (u * 2 - 1) * a
            }
            out[spec.name] = t
        }
        return out
    }

    /// `VmHWM` / `VmRSS` of this process in GB, from /proc/self/status (nil where there is none).
    static func memoryGB(_ field: String) -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) }
            return kb.map { $0 / 1_048_576 }
        }
        return nil
    }

    /// Resets `VmHWM` to the current RSS (Linux: `echo 5 > /proc/self/clear_refs`).
    static func resetPeak() {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }

    @Test(.benchmark) func decodeAtRealSize() throws {
        let config = PaellaVQModelConfig.wuerstchenV2
        let model = try PaellaVQModel(config: config, weights: Self.randomWeights(PaellaVQModel.parameters(config)))
        let gen = TorchGenerator(seed: 0)
        for (px, latent) in [(512, 128), (1024, 256)] {
            let x = gen.randn([1, latent, latent, 4])
            // Activations and GEMM FLOPs (one multiply-add = 2): 12 + 1 MixingResidualBlocks (MLP 16 N C^2),
            // the transposed conv (2 N * 384 * 16 * 192) and the 1x1 convs.
            let n0 = Double(latent * latent), n1 = 4 * n0
            let flops = 12 * 16 * n0 * 384 * 384 + 16 * n1 * 192 * 192 + 2 * n0 * 384 * 16 * 192
                + 2 * n0 * 4 * 384 + 2 * n1 * 192 * 12
            for run in ["cold", "warm"] {
                let rssBefore = Self.memoryGB("VmRSS") ?? .nan
                Self.resetPeak()
                let t0 = Date()
                let out = try model.decode(x)
                let seconds = Date().timeIntervalSince(t0)
                let peak = Self.memoryGB("VmHWM") ?? .nan
                print(String(
                    format: "PaellaVQModel.decode %d px (latent %dx%d, B=1, %@): %.2f s, %.0f GFLOP (%.0f GFLOP/s); RSS before %.2f GB, peak %.2f GB (+%.2f GB); buffer cache %.2f GB",
                    px, latent, latent, run, seconds, flops / 1e9, flops / 1e9 / seconds, rssBefore, peak, peak - rssBefore,
                    Double(Compute.bufferCacheBytes) / 1_073_741_824))
                #expect(out.shape == [1, px, px, 3])
                #expect(out.maxAbs().isFinite)
            }
        }
    }
}
