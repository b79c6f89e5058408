import Foundation
import SafeTensors
import Testing
import Tensor
@testable import Wuerstchen

/// Stage C against diffusers' `WuerstchenPrior` with random weights (scripts/fixtures/prior.py), and the
/// real configuration against the published checkpoint's tensor list.
@Suite struct WuerstchenPriorTests {
    static func tiny() throws -> WuerstchenPrior { try WuerstchenPrior(folder: try Fixture.url("prior-tiny")) }

    @Test func configDecodesDiffusersFile() throws {
        let cfg = try loadConfig(WuerstchenPriorConfig.self, from: try Fixture.url("prior-tiny"))
        #expect(cfg == WuerstchenPriorConfig(cIn: 16, c: 32, cCond: 24, cR: 16, depth: 2, nhead: 4, dropout: 0.1))
        let empty = try JSONDecoder().decode(WuerstchenPriorConfig.self, from: Data("{}".utf8))
        #expect(empty == WuerstchenPriorConfig(cIn: 16, c: 1280, cCond: 1024, cR: 64, depth: 16, nhead: 16, dropout: 0.1))
    }

    /// Tolerance 1e-4 relative (the per-module bar); B = 2 with a different r per row.
    @Test(arguments: ["square", "wide"]) func forwardMatchesDiffusers(_ shape: String) throws {
        let f = try Fixture.load("prior")
        let prior = try Self.tiny()
        let out = prior(try f.tensor("\(shape).x"), r: try f.tensor("r").toArray(), clip: try f.tensor("clip"))
        expectClose(out, try f.tensor("\(shape).out"), tolerance: 1e-4, "WuerstchenPrior \(shape)")
    }

    /// Conditioning computed once and batched from single rows gives the same result as the full batch.
    @Test func batchedConditioningEqualsFullBatch() throws {
        let f = try Fixture.load("prior")
        let prior = try Self.tiny()
        let clip = try f.tensor("clip"), x = try f.tensor("wide.x"), r = try f.tensor("r").toArray()
        let rows = (0..<2).map { i in
            Tensor(shape: [1, 77, 24], values: Array(clip.toArray()[(i * 77 * 24)..<((i + 1) * 77 * 24)]))
        }
        let cond = WuerstchenPrior.Conditioning.batched(rows.map { prior.condition(clip: $0) })
        expectClose(prior(x, r: r, conditioning: cond), prior(x, r: r, clip: clip), tolerance: 1e-6, "batched conditioning")
    }

    @Test func badConfigIsRejected() throws {
        let cfg = WuerstchenPriorConfig(c: 30, nhead: 4)
        #expect(cfg.problem?.contains("nhead") == true)
        #expect(throws: WuerstchenPriorError.self) { try WuerstchenPrior(config: cfg, weights: [:]) }
    }

    /// The real configuration declares exactly the tensors of `warp-ai/wuerstchen-prior`.
    @Test func realConfigurationDeclaresPublishedTensors() throws {
        let expected = try Fixture.tensorShapes("real-prior-tensors.tsv")
        let specs = WuerstchenPrior.parameters(.v2)
        let declared = Dictionary(uniqueKeysWithValues: specs.map { ($0.name, $0.shape) })
        #expect(specs.count == declared.count, "duplicate names declared")
        #expect(Set(declared.keys) == Set(expected.keys), "missing: \(Set(expected.keys).subtracting(declared.keys).sorted().prefix(5)), extra: \(Set(declared.keys).subtracting(expected.keys).sorted().prefix(5))")
        for (name, shape) in expected { #expect(declared[name] == shape, "\(name): declared \(declared[name] ?? []), expected \(shape)") }
        let total = specs.reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(total == 993_636_896)
    }
}

/// Seconds per forward of the real Stage C with random weights, against the GEMM-only lower bound.
/// Opt-in (about 4 GB of weights, a minute of compute): `WUERSTCHEN_BENCH=1 swift test -c release ...`.
@Suite(.serialized) struct WuerstchenPriorSpeed {
    /// GEMM floating-point operations of one forward (conditioning included, as diffusers) at batch b and latent h x w (text length l).
    static func gemmFLOPs(_ cfg: WuerstchenPriorConfig, b: Int, h: Int, w: Int, l: Int = 77) -> Double {
        let c = Double(cfg.c), m = Double(b * h * w), bl = Double(b * l), hw = Double(h * w)
        let perBlock = 16 * m * c * c  // channelwise 0 and 4
            + 2 * m * c * c * 2  // to_q, to_out
            + 4 * (m + bl) * c * c  // to_k, to_v over cat([x, cond])
            + 2 * bl * c * c  // kv_mapper
            + 4 * Double(b) * hw * (hw + Double(l)) * c  // scores and weighted values
        return Double(cfg.depth) * perBlock + 2 * bl * Double(cfg.cCond) * c + 2 * bl * c * c
            + 2 * m * Double(cfg.cIn) * c * 3
    }

    /// One block of the real prior, op by op, next to a plain GEMM of the ResBlock's size timed at the
    /// same moment (the machine is shared, so the GEMM rate is the yardstick, not a constant).
    /// The FLOPs of `condition(clip:)`: cond_mapper, and per block kv_mapper, to_k, to_v over the text rows.
    static func conditioningFLOPs(_ cfg: WuerstchenPriorConfig, b: Int, l: Int = 77) -> Double {
        let c = Double(cfg.c), bl = Double(b * l)
        return 2 * bl * Double(cfg.cCond) * c + 2 * bl * c * c + Double(cfg.depth) * 6 * bl * c * c
    }

    @Test(.benchmark)
    func realPriorBlockBreakdown() throws {
        let cfg = WuerstchenPriorConfig.v2
        let gen = TorchGenerator(seed: 0)
        var weights: [String: Tensor] = [:]
        let specs = ResBlock.parameters("r", c: cfg.c) + TimestepBlock.parameters("t", c: cfg.c, cR: cfg.cR)
            + AttnBlock.parameters("a", c: cfg.c, cCond: cfg.c)
        for spec in specs {
            let t = gen.randn(spec.shape)
            t.mulInPlace(0.02)
            weights[spec.name] = t
        }
        let w = Weights(tensors: weights)
        let res = ResBlock(w, "r"), ts = TimestepBlock(w, "t"), attn = AttnBlock(w, "a", heads: cfg.nhead)
        func time(_ body: () -> Void) -> Double {
            var best = Double.infinity
            for _ in 0..<3 {
                let s = Date()
                body()
                best = min(best, Date().timeIntervalSince(s))
            }
            return best
        }
        let c = cfg.c
        for h in [12, 24] {
            let m = 2 * h * h
            let x = gen.randn([2, h, h, c]), cond = gen.randn([2, 77, c]), r = rEmbedding([0.9, 0.5], cR: cfg.cR)
            let a = gen.randn([m, c]), bw = gen.randn([4 * c, c]), out = Tensor(uninitialized: [m, 4 * c])
            let gemm = time { GEMM.sgemm(transB: true, m: m, n: 4 * c, k: c, a: a.data, lda: c, b: bw.data, ldb: c, c: out.data, ldc: 4 * c) }
            let gemmRate = 2 * Double(m) * Double(4 * c * c) / gemm
            let tRes = time { _ = res(x) }
            let tTs = time { ts.apply(x.copy(), r) }
            let kv = attn.mapCondition(cond)
            let tKV = time { _ = attn.mapCondition(cond) }
            let tAttnGeneric = time { _ = attn(x, mappedKV: kv) }
            let keys = PriorAttention.project(kv, attn.attention, part: 1), values = PriorAttention.project(kv, attn.attention, part: 2)
            let tAttn = time { _ = PriorAttention.apply(attn.attention, x, textKeys: keys, textValues: values) }
            let resFlops = 16 * Double(m) * Double(c * c)
            let attnFlops = 8 * Double(m) * Double(c * c) + 4 * 2 * Double(h * h) * Double(h * h + 77) * Double(c)
            print(String(format: "prior block B=2 %dx%d: GEMM [%d x %d x %d] %.0f GFLOP/s now; ResBlock %.3f s (%.0f GFLOP/s), TimestepBlock %.4f s, attention with cached text keys/values %.3f s (%.0f GFLOP/s; AttnBlock generic path %.3f s + kv_mapper %.4f s); x depth %d = %.2f s",
                         h, h, m, 4 * c, c, gemmRate / 1e9, tRes, resFlops / tRes / 1e9, tTs, tAttn, attnFlops / tAttn / 1e9, tAttnGeneric, tKV, cfg.depth, Double(cfg.depth) * (tRes + tTs + tAttn)))
        }
    }

    @Test(.benchmark)
    func realPriorForward() throws {
        let cfg = WuerstchenPriorConfig.v2
        let gen = TorchGenerator(seed: 0)
        var start = Date()
        var weights: [String: Tensor] = [:]
        for spec in WuerstchenPrior.parameters(cfg) {
            let t = gen.randn(spec.shape)
            t.mulInPlace(0.02)
            weights[spec.name] = t
        }
        let prior = try WuerstchenPrior(config: cfg, weights: weights)
        print(String(format: "real prior: random weights in %.1f s", Date().timeIntervalSince(start)))
        let clip = gen.randn([2, 77, cfg.cCond])
        for (h, px) in [(12, 512), (24, 1024)] {
            let x = gen.randn([2, h, h, cfg.cIn])
            start = Date()
            let cond = prior.condition(clip: clip)
            let condSeconds = Date().timeIntervalSince(start)
            var best = Double.infinity
            for _ in 0..<3 {  // the first is a warm-up (page faults, buffer cache)
                start = Date()
                let y = prior(x, r: [0.9, 0.5], clip: clip)
                best = min(best, Date().timeIntervalSince(start))
                #expect(y.shape == x.shape && y.toArray().allSatisfy(\.isFinite))
            }
            var cached = Double.infinity
            for _ in 0..<2 {
                start = Date()
                _ = prior(x, r: [0.9, 0.5], conditioning: cond)
                cached = min(cached, Date().timeIntervalSince(start))
            }
            let flops = Self.gemmFLOPs(cfg, b: 2, h: h, w: h)
            let cachedFlops = flops - Self.conditioningFLOPs(cfg, b: 2)
            print(String(format: "real prior B=2 %dx%d (%d px): %.2f s/forward incl. condition() (%.2f s of it); %.2f s with the conditioning cached across steps. GEMM FLOPs %.0f (%.0f cached): bound at 200 GFLOP/s %.2f s (%.2f s cached), achieved %.0f GFLOP/s (%.0f%% of 200)",
                         h, h, px, best, condSeconds, cached, flops / 1e9, cachedFlops / 1e9, flops / 200e9, cachedFlops / 200e9, cachedFlops / cached / 1e9, 100 * cachedFlops / cached / 200e9))
        }
    }
}
