import Foundation
import SafeTensors
import Testing
@testable import Tensor

/// Multi-head attention against PyTorch (`scripts/fixtures/attention.py`). GEMM-backed: 1e-5 relative.
@Suite struct AttentionTests {
    static let tolerance: Float = 1e-5

    /// (fixture name, heads, custom scale)
    static let cases: [(String, Int, Float?)] = [
        ("plain", 2, nil), ("long", 4, nil), ("padding", 3, nil), ("causal", 4, nil),
        ("additive", 2, nil), ("rows", 3, nil), ("scaled", 2, 0.3),
    ]

    @Test(arguments: cases.map { $0.0 })
    func scaledDotProductMatchesTorch(name: String) throws {
        let f = try Fixture.load("attention")
        let (_, heads, scale) = Self.cases.first { $0.0 == name }!
        let mask = f.names.contains("\(name).mask") ? try f.tensor("\(name).mask") : nil
        let y = scaledDotProductAttention(
            q: try f.tensor("\(name).q"), k: try f.tensor("\(name).k"), v: try f.tensor("\(name).v"),
            heads: heads, mask: mask, scale: scale)
        expectClose(y, try f.tensor("\(name).out"), tolerance: Self.tolerance, "sdpa \(name)")
    }

    /// Blocking over queries must not change the result: force blocks of 16 queries on the long case.
    @Test func blockedMatchesTorch() throws {
        let f = try Fixture.load("attention")
        let q = try f.tensor("long.q"), k = try f.tensor("long.k"), v = try f.tensor("long.v")
        let out = Tensor(uninitialized: q.shape)
        let e = q.dim(2)
        // At most 16 queries per block -> 3 blocks (40 = 14 + 14 + 12), 12 units over the workers.
        AttentionKernel.run(
            q: StridedRows(q.data, rowStride: e), k: StridedRows(k.data, rowStride: e), v: StridedRows(v.data, rowStride: e),
            out: out.data, outRowStride: e, batch: 1, queries: 40, keys: 53, heads: 4, headDim: 16, mask: nil,
            scale: 0.25, maxBlock: 16)
        expectClose(out, try f.tensor("long.out"), tolerance: Self.tolerance, "sdpa blocked")
    }

    /// One head at a time (heads: 1, batch 1, one block: a single unit, run on the calling thread with
    /// OpenBLAS's own threads), through strided views of the multi-head tensors.
    @Test func singleUnitMatchesTorch() throws {
        let f = try Fixture.load("attention")
        let q = try f.tensor("long.q"), k = try f.tensor("long.k"), v = try f.tensor("long.v")
        let out = Tensor(uninitialized: q.shape)
        let e = q.dim(2), d = 16
        for h in 0..<4 {
            AttentionKernel.run(
                q: StridedRows(q.data + h * d, rowStride: e), k: StridedRows(k.data + h * d, rowStride: e),
                v: StridedRows(v.data + h * d, rowStride: e), out: out.data + h * d, outRowStride: e,
                batch: 1, queries: 40, keys: 53, heads: 1, headDim: d, mask: nil, scale: 0.25)
        }
        expectClose(out, try f.tensor("long.out"), tolerance: Self.tolerance, "sdpa one head at a time")
    }

    static func layer(_ f: SafeTensorsFile) throws -> MultiheadAttention {
        MultiheadAttention(
            in_proj_weight: try f.tensor("mha.in_proj_weight"), in_proj_bias: try f.tensor("mha.in_proj_bias"),
            out_proj: Linear(weight: try f.tensor("mha.out_proj.weight"), bias: try f.tensor("mha.out_proj.bias")),
            heads: 4)
    }

    @Test func attention2DMatchesTorch() throws {
        let f = try Fixture.load("attention")
        let mha = try Self.layer(f)
        let x = try f.tensor("mha.x")  // [2, 3, 4, 32] NHWC
        let seq = x.reshaped([2, 12, 32])
        let kv = try f.tensor("mha.kv")
        expectClose(
            mha(seq, keyValue: kv).reshaped(x.shape), try f.tensor("mha.cross"), tolerance: Self.tolerance,
            "Attention2D cross")
        expectClose(
            mha(seq, keyValue: kv, selfAttention: true).reshaped(x.shape), try f.tensor("mha.self"),
            tolerance: Self.tolerance, "Attention2D self_attn")
        expectClose(mha(seq).reshaped(x.shape), try f.tensor("mha.pure"), tolerance: Self.tolerance, "MHA self-attention")
    }

    /// Separate q/k/v projections (diffusers' to_q/to_k/to_v) stacked into in_proj_weight give the same layer.
    @Test func separateProjectionsMatch() throws {
        let f = try Fixture.load("attention")
        let w = try f.tensor("mha.in_proj_weight"), b = try f.tensor("mha.in_proj_bias")
        let e = 32
        func part(_ i: Int) -> Linear {
            Linear(
                weight: Tensor(shape: [e, e], values: Array(w.toArray()[(i * e * e)..<((i + 1) * e * e)])),
                bias: Tensor(shape: [e], values: Array(b.toArray()[(i * e)..<((i + 1) * e)])))
        }
        let mha = MultiheadAttention(
            query: part(0), key: part(1), value: part(2),
            out: Linear(weight: try f.tensor("mha.out_proj.weight"), bias: try f.tensor("mha.out_proj.bias")), heads: 4)
        let x = try f.tensor("mha.x")
        let y = mha(x.reshaped([2, 12, 32]), keyValue: try f.tensor("mha.kv"), selfAttention: true)
        expectClose(y.reshaped(x.shape), try f.tensor("mha.self"), tolerance: Self.tolerance, "Attention2D from to_q/to_k/to_v")
    }

    @Test func expMatchesFoundation() {
        var maxRel: Float = 0
        var x: Float = -87
        while x <= 0 {
            let v = AttentionKernel.expNonPositive(SIMD8<Float>(repeating: x))[0]
            maxRel = max(maxRel, abs(v - Foundation.exp(x)) / Foundation.exp(x))
            x += 0.0137
        }
        print("expNonPositive: max relative error \(maxRel)")
        #expect(maxRel < 3e-7, "expNonPositive max relative error \(maxRel)")
        #expect(AttentionKernel.expNonPositive(SIMD8<Float>(repeating: -.infinity))[0] == 0)
        #expect(AttentionKernel.expNonPositive(SIMD8<Float>(repeating: 0))[0] == 1)
    }
}

/// Timings at the model's shapes; run in release with `WUERSTCHEN_BENCH=1`:
/// `WUERSTCHEN_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter AttentionSpeed`.
@Suite(.serialized, .benchmark)
struct AttentionSpeed {
    static func seconds(repeats: Int = 7, _ body: () -> Void) -> Double {
        body()  // warm-up
        var times: [Double] = []
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return times.min()!  // the least disturbed run: the machine is shared
    }

    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var g = SplitMix(seed: seed)
        let t = Tensor(uninitialized: shape)
        for i in 0..<t.count { t[flat: i] = g.nextFloat() }
        return t
    }

    /// (name, B, Lq, Lk, E, H)
    @Test(arguments: [
        ("prior 24x24 + 77", 2, 576, 653, 1536, 24),
        ("prior 12x12 + 77 (512 px)", 2, 144, 221, 1536, 24),
        ("decoder 32x32 + 77", 1, 1024, 1101, 640, 10),
        ("decoder 64x64 + 77", 1, 4096, 4173, 320, 5),
    ])
    func attentionCore(name: String, b: Int, lq: Int, lk: Int, e: Int, h: Int) {
        let q = Self.random([b, lq, e], seed: 1), k = Self.random([b, lk, e], seed: 2), v = Self.random([b, lk, e], seed: 3)
        let flops = 4.0 * Double(b * lq * lk * e)
        let t = Self.seconds { _ = scaledDotProductAttention(q: q, k: k, v: v, heads: h) }
        // The same per-head GEMMs on contiguous operands, nothing else.
        let d = e / h
        let qh = Self.random([lq, d], seed: 4), kh = Self.random([lk, d], seed: 5), vh = Self.random([lk, d], seed: 6)
        let s = Tensor(uninitialized: [lq, lk]), o = Tensor(uninitialized: [lq, d])
        let tg = Self.seconds {
            for _ in 0..<(b * h) {
                GEMM.sgemm(transB: true, m: lq, n: lk, k: d, a: qh.data, lda: d, b: kh.data, ldb: d, c: s.data, ldc: lk)
                GEMM.sgemm(m: lq, n: d, k: lk, a: s.data, lda: lk, b: vh.data, ldb: d, c: o.data, ldc: d)
            }
        }
        // One square-ish GEMM of the same work: [Lq, E] x [E, Lk] twice.
        let a = Self.random([lq, e], seed: 7), bm = Self.random([e, lk], seed: 8), c = Tensor(uninitialized: [lq, lk])
        let tb = Self.seconds {
            for _ in 0..<(2 * b) {
                GEMM.sgemm(m: lq, n: lk, k: e, a: a.data, lda: e, b: bm.data, ldb: lk, c: c.data, ldc: lk)
            }
        }
        print(String(
            format: "attention %@: %.2f ms, %.1f GFLOP/s | per-head sgemm only %.2f ms, %.1f GFLOP/s | big sgemm %.2f ms, %.1f GFLOP/s",
            name, t * 1e3, flops / t / 1e9, tg * 1e3, flops / tg / 1e9, tb * 1e3, flops / tb / 1e9))
    }

    @Test func softmaxRows() {
        let rows = 576, n = 653
        let x = Self.random([rows, n], seed: 9)
        let t = Self.seconds {
            for r in 0..<rows { _ = AttentionKernel.softmaxRowUnnormalised(x.data + r * n, count: n, mask: nil) }
            for i in 0..<(rows * n) { x.data[i] = Float(i % 7) }
        }
        let z = Self.random([rows, n], seed: 9)
        let tc = Self.seconds { for i in 0..<(rows * n) { z.data[i] = Float(i % 7) } }
        print(String(format: "softmax rows %dx%d single thread: %.3f ms (%.2f ns/element)", rows, n, (t - tc) * 1e3, (t - tc) / Double(rows * n) * 1e9))
    }

    @Test func attention2DLayerPrior() {
        let e = 1536
        let mha = MultiheadAttention(
            in_proj_weight: Self.random([3 * e, e], seed: 1), in_proj_bias: Self.random([3 * e], seed: 2),
            out_proj: Linear(weight: Self.random([e, e], seed: 3), bias: Self.random([e], seed: 4)), heads: 24)
        let x = Self.random([2, 576, e], seed: 5), kv = Self.random([2, 77, e], seed: 6)
        let t = Self.seconds { _ = mha(x, keyValue: kv, selfAttention: true) }
        let flops = 2.0 * Double(2 * 576 * e * e) * 2 + 2.0 * Double(2 * 653 * e * 2 * e) + 4.0 * Double(2 * 576 * 653 * e)
        print(String(format: "Attention2D prior layer (B=2, 576 + 77, E=1536): %.2f ms, %.1f GFLOP/s", t * 1e3, flops / t / 1e9))
    }

    @Test func interpolateEffnet() {
        let x = Self.random([1, 24, 24, 16], seed: 1)
        for side in [128, 256] {
            let t = Self.seconds { _ = interpolateBicubicAntialias(x, height: side, width: side) }
            print(String(format: "bicubic aa [1, 24, 24, 16] -> %dx%d: %.3f ms", side, side, t * 1e3))
        }
        let y = Self.random([2, 256, 256, 16], seed: 2)
        let t = Self.seconds { _ = interpolateBicubicAntialias(y, height: 24, width: 24) }
        print(String(format: "bicubic aa [2, 256, 256, 16] -> 24x24: %.3f ms", t * 1e3))
    }
}
