import CBLAS
import Foundation

// Multi-head scaled dot-product attention, and torch.nn.MultiheadAttention on top of it.
//
// Reproduces `torch.nn.functional.scaled_dot_product_attention` with heads laid out as
// nn.MultiheadAttention / CLIP lay them out: a row of `[L, H*D]` holds head h in columns
// h*D..<(h+1)*D, so per (batch, head) both products are plain GEMMs on strided views
// (lda = H*D), with no transposed copies. The softmax is fused (mask add + max, then exp + sum)
// and its normalisation is folded into the output rows after the second GEMM. Queries are
// processed in blocks so that the score matrix of a long sequence (4096 queries x 4173 keys at
// 1024 px) never exists whole; the (batch, head, query block) units run in parallel, one
// single-threaded OpenBLAS call sequence per worker (see `AttentionKernel`).
// https://github.com/pytorch/pytorch/blob/main/torch/nn/functional.py (multi_head_attention_forward)

/// Multi-head attention `softmax(Q K^T * scale + mask) V`, heads side by side along the last
/// dimension (head h takes columns h*D..<(h+1)*D), as `torch.nn.functional.scaled_dot_product_attention`
/// on `q.view(B, L, H, D).transpose(1, 2)` and back.
///
/// - Parameters:
///   - q: `[B, Lq, H*D]`
///   - k: `[B, Lk, H*D]`
///   - v: `[B, Lk, H*D]`
///   - heads: H.
///   - mask: additive Float mask (use `-Float.infinity` to mask out), `[Bm, Lqm, Lk]` or `[Lqm, Lk]`
///     with Bm in {1, B} and Lqm in {1, Lq}, broadcast over heads. A row fully masked gives NaN, as in PyTorch.
///   - scale: factor on the scores, default `1/sqrt(D)`.
/// - Returns: `[B, Lq, H*D]`.
public func scaledDotProductAttention(
    q: Tensor, k: Tensor, v: Tensor, heads: Int, mask: Tensor? = nil, scale: Float? = nil
) -> Tensor {
    precondition(q.rank == 3 && k.rank == 3 && v.rank == 3, "attention q, k, v must be [B, L, H*D], got \(q.shape), \(k.shape), \(v.shape)")
    let b = q.dim(0), lq = q.dim(1), e = q.dim(2), lk = k.dim(1)
    precondition(k.dim(0) == b && v.dim(0) == b, "attention batch sizes differ: q \(q.shape), k \(k.shape), v \(v.shape)")
    precondition(k.dim(2) == e && v.dim(2) == e, "attention feature sizes differ: q \(q.shape), k \(k.shape), v \(v.shape)")
    precondition(v.dim(1) == lk, "attention k and v lengths differ: k \(k.shape), v \(v.shape)")
    precondition(heads > 0 && e % heads == 0, "attention features \(e) not divisible into \(heads) heads")
    let out = Tensor(uninitialized: [b, lq, e])
    AttentionKernel.run(
        q: StridedRows(q.data, rowStride: e), k: StridedRows(k.data, rowStride: e),
        v: StridedRows(v.data, rowStride: e), out: out.data, outRowStride: e,
        batch: b, queries: lq, keys: lk, heads: heads, headDim: e / heads,
        mask: mask.map { AttentionMask($0, batch: b, queries: lq, keys: lk) },
        scale: scale ?? 1 / Float(e / heads).squareRoot())
    return out
}

/// `torch.nn.MultiheadAttention(embed_dim, num_heads, bias=True, batch_first=True)`, parameters named
/// as its checkpoints store them.
///
/// Würstchen's `Attention2D` (the original repository's `modules/common.py`, which diffusers'
/// `AttnBlock` reproduces with separate `to_q`/`to_k`/`to_v`) calls it as `attn(x, kv, kv)` with
/// `kv = cat([x, kv], dim=1)` for self-attention: `callAsFunction(_:keyValue:selfAttention:)`.
public struct MultiheadAttention: @unchecked Sendable {
    /// `[3E, E]`: the query, key and value projections stacked, in that order (Float32 or bfloat16).
    public var in_proj_weight: WeightMatrix
    /// `[3E]`.
    public var in_proj_bias: Tensor
    /// `[E, E]` output projection with bias.
    public var out_proj: Linear
    /// Number of heads (E divisible by it).
    public let heads: Int

    /// A layer over PyTorch's own parameters (`in_proj_weight`, `in_proj_bias`, `out_proj.weight`, `out_proj.bias`).
    public init(in_proj_weight: Tensor, in_proj_bias: Tensor, out_proj: Linear, heads: Int) {
        precondition(in_proj_weight.rank == 2, "MultiheadAttention in_proj_weight must be [3E, E], got \(in_proj_weight.shape)")
        self.init(in_proj_weight: WeightMatrix(in_proj_weight), in_proj_bias: in_proj_bias, out_proj: out_proj, heads: heads)
    }

    /// A layer over a stacked projection in either precision.
    public init(in_proj_weight: WeightMatrix, in_proj_bias: Tensor, out_proj: Linear, heads: Int) {
        let e = out_proj.outFeatures
        precondition(in_proj_weight.shape == [3 * e, e], "MultiheadAttention in_proj_weight must be [\(3 * e), \(e)], got \(in_proj_weight.shape)")
        precondition(in_proj_bias.shape == [3 * e], "MultiheadAttention in_proj_bias must be [\(3 * e)], got \(in_proj_bias.shape)")
        precondition(out_proj.inFeatures == e, "MultiheadAttention out_proj must be [\(e), \(e)], got \(out_proj.weight.shape)")
        precondition(heads > 0 && e % heads == 0, "MultiheadAttention embed_dim \(e) not divisible into \(heads) heads")
        self.in_proj_weight = in_proj_weight
        self.in_proj_bias = in_proj_bias
        self.out_proj = out_proj
        self.heads = heads
    }

    /// A layer from separate projections with biases (diffusers' `to_q`, `to_k`, `to_v`, `to_out.0`),
    /// stacked once into `in_proj_weight`.
    public init(query: Linear, key: Linear, value: Linear, out: Linear, heads: Int) {
        let e = out.outFeatures
        for (name, p) in [("query", query), ("key", key), ("value", value)] {
            precondition(p.weight.shape == [e, e] && p.bias != nil, "MultiheadAttention \(name) projection must be [\(e), \(e)] with bias, got \(p.weight.shape)")
        }
        let w = WeightMatrix.stacked([query.weight, key.weight, value.weight])
        let bias = Tensor(uninitialized: [3 * e])
        for (i, p) in [query, key, value].enumerated() {
            (bias.data + i * e).update(from: p.bias!.data, count: e)
        }
        self.init(in_proj_weight: w, in_proj_bias: bias, out_proj: out, heads: heads)
    }

    /// The same layer with its projection weights in `precision`.
    public func converted(to precision: Precision) -> MultiheadAttention {
        MultiheadAttention(
            in_proj_weight: in_proj_weight.converted(to: precision), in_proj_bias: in_proj_bias,
            out_proj: out_proj.converted(to: precision), heads: heads)
    }

    /// Embedding size E.
    public var embedDim: Int { out_proj.outFeatures }

    /// Self-attention: queries, keys and values all from `x`, projected by one GEMM; `mask` as in
    /// `scaledDotProductAttention` (for example CLIP's causal mask `[1, L, L]`).
    /// x: [B, L, E] -> [B, L, E]
    public func callAsFunction(_ x: Tensor, mask: Tensor? = nil) -> Tensor {
        let e = embedDim
        precondition(x.rank == 3 && x.dim(2) == e, "MultiheadAttention expects [B, L, \(e)], got \(x.shape)")
        let b = x.dim(0), l = x.dim(1)
        let qkv = project(x, rows: 0..<(3 * e))  // [B*L, 3E]
        let attn = Tensor(uninitialized: [b, l, e])
        AttentionKernel.run(
            q: StridedRows(qkv.data, rowStride: 3 * e), k: StridedRows(qkv.data + e, rowStride: 3 * e),
            v: StridedRows(qkv.data + 2 * e, rowStride: 3 * e), out: attn.data, outRowStride: e,
            batch: b, queries: l, keys: l, heads: heads, headDim: e / heads,
            mask: mask.map { AttentionMask($0, batch: b, queries: l, keys: l) },
            scale: 1 / Float(e / heads).squareRoot())
        return out_proj(attn)
    }

    /// `attn(x, kv, kv)`; with `selfAttention` the keys and values are `cat([x, kv], dim=1)`, as
    /// Würstchen's `Attention2D` does (x there is the NHWC image viewed as `[B, H*W, C]`); `mask` as in
    /// `scaledDotProductAttention`, over the keys after concatenation.
    /// x: [B, Lq, E], kv: [B, Lkv, E] -> [B, Lq, E]
    public func callAsFunction(_ x: Tensor, keyValue kv: Tensor, selfAttention: Bool = false, mask: Tensor? = nil) -> Tensor {
        let e = embedDim
        precondition(x.rank == 3 && x.dim(2) == e, "MultiheadAttention query must be [B, L, \(e)], got \(x.shape)")
        precondition(kv.rank == 3 && kv.dim(2) == e && kv.dim(0) == x.dim(0), "MultiheadAttention keyValue must be [\(x.dim(0)), L, \(e)], got \(kv.shape)")
        let b = x.dim(0), lq = x.dim(1)
        let source = selfAttention ? concatenateRows(x, kv) : kv
        let lk = source.dim(1)
        let q = project(x, rows: 0..<e)  // [B*Lq, E]
        let kvp = project(source, rows: e..<(3 * e))  // [B*Lk, 2E]
        let attn = Tensor(uninitialized: [b, lq, e])
        AttentionKernel.run(
            q: StridedRows(q.data, rowStride: e), k: StridedRows(kvp.data, rowStride: 2 * e),
            v: StridedRows(kvp.data + e, rowStride: 2 * e), out: attn.data, outRowStride: e,
            batch: b, queries: lq, keys: lk, heads: heads, headDim: e / heads,
            mask: mask.map { AttentionMask($0, batch: b, queries: lq, keys: lk) },
            scale: 1 / Float(e / heads).squareRoot())
        return out_proj(attn)
    }

    /// x [B, L, E] times rows `rows` of in_proj_weight (transposed), plus the same bias rows.
    /// -> [B*L, rows.count]
    private func project(_ x: Tensor, rows: Range<Int>) -> Tensor {
        let e = embedDim, n = rows.count, m = x.count / e
        let y = Tensor(uninitialized: [m, n])
        GEMM.linear(
            m: m, a: x.data, lda: e, weight: in_proj_weight, rows: rows, bias: in_proj_bias.data + rows.lowerBound,
            c: y.data, ldc: n)
        return y
    }
}

/// a: [B, La, E], b: [B, Lb, E] -> [B, La+Lb, E] (torch.cat dim 1).
private func concatenateRows(_ a: Tensor, _ b: Tensor) -> Tensor {
    let n = a.dim(0), la = a.dim(1), lb = b.dim(1), e = a.dim(2)
    let out = Tensor(uninitialized: [n, la + lb, e])
    for i in 0..<n {
        (out.data + i * (la + lb) * e).update(from: a.data + i * la * e, count: la * e)
        (out.data + (i * (la + lb) + la) * e).update(from: b.data + i * lb * e, count: lb * e)
    }
    return out
}

/// A matrix of rows inside a `[B, L, rowStride]` buffer: row r of batch i starts at
/// `base + (i * L + r) * rowStride`.
struct StridedRows {
    let base: UnsafePointer<Float>
    let rowStride: Int
    init(_ base: UnsafeMutablePointer<Float>, rowStride: Int) {
        self.base = UnsafePointer(base)
        self.rowStride = rowStride
    }
}

/// An additive mask `[Bm, Lqm, Lk]` broadcast over batch (Bm = 1) and queries (Lqm = 1).
struct AttentionMask {
    let data: UnsafePointer<Float>
    let batchStride: Int
    let rowStride: Int

    init(_ mask: Tensor, batch: Int, queries: Int, keys: Int) {
        let s = mask.rank == 2 ? [1] + mask.shape : mask.shape
        precondition(
            s.count == 3 && (s[0] == 1 || s[0] == batch) && (s[1] == 1 || s[1] == queries) && s[2] == keys,
            "attention mask must broadcast as [\(batch) or 1, \(queries) or 1, \(keys)], got \(mask.shape)")
        data = UnsafePointer(mask.data)
        batchStride = s[0] == 1 ? 0 : s[1] * keys
        rowStride = s[1] == 1 ? 0 : keys
    }

    /// The mask row for query `row` of batch `b`.
    @inline(__always) func row(batch b: Int, query row: Int) -> UnsafePointer<Float> {
        data + b * batchStride + row * rowStride
    }
}

/// The blocked attention loop shared by the free function and the layer.
///
/// The work is cut into units of (batch, head, block of queries) and the units are spread over
/// the op pool's workers, each running OpenBLAS single-threaded on its own units (GEMM, softmax,
/// GEMM). At the model's shapes one head's GEMMs are too small for OpenBLAS's own threading (two
/// threads barely beat one at 576 x 653 x 64), while independent units scale with the cores and keep
/// the softmax on the thread that owns the scores in its cache. OpenBLAS's thread count is process
/// state, so it is set to 1 for the duration and restored, in `BLASThreads.exclusive` (products on other
/// threads wait: OpenBLAS's results depend on its thread count); the pthreads build (Debian's
/// libopenblas0-pthread) takes concurrent calls from several threads.
enum AttentionKernel {
    /// Queries per block at most: a 256 x Lk score block per worker (670 KB at Lk = 653, in L2).
    static let maxBlockRows = 256
    /// Score-block budget per worker in floats (16 MB): fewer queries per block for very long keys.
    static let scoreBudget = 1 << 22

    /// out rows (same layout as q, row stride `outRowStride`) = softmax(scale * Q_h K_h^T + mask) V_h per head.
    /// `maxBlock` caps the queries per block (tests force small blocks).
    static func run(
        q: StridedRows, k: StridedRows, v: StridedRows, out: UnsafeMutablePointer<Float>, outRowStride: Int,
        batch: Int, queries lq: Int, keys lk: Int, heads: Int, headDim d: Int, mask: AttentionMask?, scale: Float,
        maxBlock: Int? = nil
    ) {
        if batch == 0 || lq == 0 { return }
        precondition(lk > 0, "attention needs at least one key")
        // Equal blocks of at most maxBlock queries.
        let maxBlock = maxBlock ?? max(16, min(maxBlockRows, scoreBudget / lk))
        let blocks = (lq + maxBlock - 1) / maxBlock
        let block = (lq + blocks - 1) / blocks
        let units = batch * heads * blocks
        let pool = Compute.pool
        let workers = min(pool.threadCount, units)
        // Per worker: the score block, then one reciprocal row sum per query.
        let perWorker = block * lk + block
        let scratch = Tensor(uninitialized: [workers * perWorker])

        // One unit: queries i0..<i0+m of head h in batch bi, with the worker's scratch. `sgemm` is
        // `GEMM.sgemm` for one worker, and the unlocked call inside the exclusive section for several.
        typealias Product = (_ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
                             _ b: UnsafePointer<Float>, _ ldb: Int, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) -> Void
        func unit(_ u: Int, _ buffer: UnsafeMutablePointer<Float>, _ sgemm: Product) {
            let scores = buffer, rowScale = buffer + block * lk
            let bh = u / blocks, bi = bh / heads, h = bh % heads
            let i0 = (u % blocks) * block, m = min(block, lq - i0)
            // scores[m, lk] = scale * Q[i0..<i0+m] K^T
            sgemm(true, m, lk, d, scale, q.base + (bi * lq + i0) * q.rowStride + h * d, q.rowStride,
                  k.base + bi * lk * k.rowStride + h * d, k.rowStride, scores, lk)
            for r in 0..<m {
                let maskRow = mask?.row(batch: bi, query: i0 + r)
                rowScale[r] = 1 / softmaxRowUnnormalised(scores + r * lk, count: lk, mask: maskRow)
            }
            // out[i0..<i0+m, head h] = exp-scores V, then each row divided by its sum.
            let o = out + (bi * lq + i0) * outRowStride + h * d
            sgemm(false, m, d, lk, 1, scores, lk, v.base + bi * lk * v.rowStride + h * d, v.rowStride, o, outRowStride)
            for r in 0..<m {
                let row = o + r * outRowStride
                let s = rowScale[r]
                for j in 0..<d { row[j] *= s }
            }
        }

        if workers <= 1 {
            // One worker: the units in order, OpenBLAS with whatever threads it has.
            let locked: Product = { GEMM.sgemm(transB: $0, m: $1, n: $2, k: $3, alpha: $4, a: $5, lda: $6, b: $7, ldb: $8, c: $9, ldc: $10) }
            for u in 0..<units { unit(u, scratch.data, locked) }
            return
        }
        let inSection: Product = {
            GEMM.sgemmInExclusiveSection(transB: $0, m: $1, n: $2, k: $3, alpha: $4, a: $5, lda: $6, b: $7, ldb: $8, c: $9, ldc: $10)
        }
        BLASThreads.exclusive(threads: 1) {
            let next = UnitCounter()
            pool.parallelFor(workers) { range in
                for w in range {
                    while let u = next.take(below: units) { unit(u, scratch.data + w * perWorker, inSection) }
                }
            }
        }
    }

    /// In place: x[j] = exp(x[j] + mask[j] - max), returning the sum (the caller divides by it).
    /// Two vectors per step in the unmasked passes, for independent dependency chains.
    /// (Selects instead of `pointwiseMax`, which the compiler scalarises.)
    @inline(__always)
    static func softmaxRowUnnormalised(_ x: UnsafeMutablePointer<Float>, count n: Int, mask: UnsafePointer<Float>?) -> Float {
        typealias V = SIMD8<Float>
        let w = 8
        let full = n - n % w
        // Pass 1: add the mask, find the max.
        var max0 = V(repeating: -.infinity), max1 = max0
        var smax = -Float.infinity
        var j = 0
        if let mask {
            while j < full {
                let p = UnsafeMutableRawPointer(x + j)
                let s = p.loadUnaligned(as: V.self) + UnsafeRawPointer(mask + j).loadUnaligned(as: V.self)
                p.storeBytes(of: s, as: V.self)
                max0.replace(with: s, where: s .> max0)
                j += w
            }
            for t in full..<n {
                x[t] += mask[t]
                smax = max(smax, x[t])
            }
        } else {
            while j + 2 * w <= full {
                let p = UnsafeRawPointer(x + j)
                let s0 = p.loadUnaligned(as: V.self), s1 = p.loadUnaligned(fromByteOffset: 32, as: V.self)
                max0.replace(with: s0, where: s0 .> max0)
                max1.replace(with: s1, where: s1 .> max1)
                j += 2 * w
            }
            if j < full {
                let s0 = UnsafeRawPointer(x + j).loadUnaligned(as: V.self)
                max0.replace(with: s0, where: s0 .> max0)
            }
            for t in full..<n { smax = max(smax, x[t]) }
        }
        max0.replace(with: max1, where: max1 .> max0)
        let mx = V(repeating: max(max0.max(), smax))
        // Pass 2: exponentials and their sum.
        var sum0 = V(), sum1 = V()
        j = 0
        while j + 2 * w <= full {
            let p = UnsafeMutableRawPointer(x + j)
            let e0 = expNonPositive(p.loadUnaligned(as: V.self) - mx)
            let e1 = expNonPositive(p.loadUnaligned(fromByteOffset: 32, as: V.self) - mx)
            p.storeBytes(of: e0, as: V.self)
            p.storeBytes(of: e1, toByteOffset: 32, as: V.self)
            sum0 += e0
            sum1 += e1
            j += 2 * w
        }
        if j < full {
            let p = UnsafeMutableRawPointer(x + j)
            let e0 = expNonPositive(p.loadUnaligned(as: V.self) - mx)
            p.storeBytes(of: e0, as: V.self)
            sum0 += e0
        }
        if full < n {
            var tail = V(repeating: -.infinity)
            for t in full..<n { tail[t - full] = x[t] - mx[0] }
            let e = expNonPositive(tail)
            for t in full..<n { x[t] = e[t - full] }
            sum1 += e
        }
        return (sum0 + sum1).sum()
    }

    /// exp(x) for x <= 0 (scores minus their row max), about 1 ulp: Cephes' expf polynomial on
    /// x - n ln 2 with n = round(x / ln 2), in fused multiply-adds; below -87.3 (and -inf) the result is 0.
    @inline(__always)
    static func expNonPositive(_ x: SIMD8<Float>) -> SIMD8<Float> {
        typealias V = SIMD8<Float>
        let lowest = V(repeating: -87.33654)
        let below = x .< lowest
        let xc = x.replacing(with: lowest, where: below)
        // Adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits.
        let magic = V(repeating: 12_582_912)
        let t = magic.addingProduct(xc, V(repeating: 1.442_695_04))
        let n = t - magic
        var r = xc.addingProduct(n, V(repeating: -0.693_359_375))
        r = r.addingProduct(n, V(repeating: 2.121_944_4e-4))
        var p = V(repeating: 1.398_199_950_7e-3).addingProduct(V(repeating: 1.987_569_15e-4), r)
        p = V(repeating: 8.333_451_907_3e-3).addingProduct(p, r)
        p = V(repeating: 4.166_579_589_4e-2).addingProduct(p, r)
        p = V(repeating: 1.666_666_545_9e-1).addingProduct(p, r)
        p = V(repeating: 5.000_000_120_1e-1).addingProduct(p, r)
        let y = (r + 1).addingProduct(p, r * r)
        let exponent = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        let result = y * unsafeBitCast(exponent, to: V.self)
        return result.replacing(with: 0, where: below)
    }
}

/// Hands out work-unit indices 0, 1, 2, ... to the attention workers, each once.
private final class UnitCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0

    /// The next unit below `limit`, or nil when all are taken.
    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < limit else { return nil }
        next += 1
        return next - 1
    }
}
