import CBLAS

/// The GEMM seam: every matrix product of the engine goes through here, so that a second
/// backend (bfloat16 through oneDNN) can slot in without touching the ops.
public enum GEMM {
    /// Row-major `C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C`, where `op` transposes
    /// when asked. `lda`, `ldb`, `ldc` are the row strides of A, B and C as stored.
    @inlinable
    public static func sgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `batch` independent products whose operands sit at fixed strides from each other
    /// (`strideA` elements between consecutive A's, and so on).
    @inlinable
    public static func sgemmStridedBatched(
        batch: Int, transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, strideA: Int,
        b: UnsafePointer<Float>, ldb: Int, strideB: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int
    ) {
        for i in 0..<batch {
            sgemm(
                transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                a: a + i * strideA, lda: lda, b: b + i * strideB, ldb: ldb,
                beta: beta, c: c + i * strideC, ldc: ldc)
        }
    }
}

extension Tensor {
    /// Matrix product over the last two dimensions, broadcasting nothing: `self` is `[..., m, k]`,
    /// `other` is `[..., k, n]` (or `[..., n, k]` with `transposeOther`), same leading dimensions,
    /// or `other` 2-D and shared by every batch.
    public func matmul(_ other: Tensor, transposeOther: Bool = false) -> Tensor {
        precondition(rank >= 2 && other.rank >= 2, "matmul needs rank >= 2, got \(shape) and \(other.shape)")
        let m = dim(-2), k = dim(-1)
        let n = transposeOther ? other.dim(-2) : other.dim(-1)
        let kb = transposeOther ? other.dim(-1) : other.dim(-2)
        precondition(k == kb, "matmul inner dimensions differ: \(shape) x \(other.shape)")
        let batch = count / max(m * k, 1)
        let shared = other.rank == 2
        precondition(
            shared || Array(other.shape.dropLast(2)) == Array(shape.dropLast(2)),
            "matmul batch dimensions differ: \(shape) x \(other.shape)")
        let out = Tensor(uninitialized: Array(shape.dropLast(2)) + [m, n])
        if shared {
            // One GEMM over all rows: [batch*m, k] x [k, n].
            GEMM.sgemm(
                transB: transposeOther, m: batch * m, n: n, k: k, a: data, lda: k,
                b: other.data, ldb: transposeOther ? k : n, c: out.data, ldc: n)
        } else {
            GEMM.sgemmStridedBatched(
                batch: batch, transB: transposeOther, m: m, n: n, k: k, a: data, lda: k, strideA: m * k,
                b: other.data, ldb: transposeOther ? k : n, strideB: k * n, c: out.data, ldc: n, strideC: m * n)
        }
        return out
    }
}

/// `torch.nn.Linear`: `y = x W^T + b` over the last dimension.
public struct Linear: @unchecked Sendable {
    /// `[out, in]`, PyTorch layout (the GEMM reads it transposed, no copy).
    public var weight: Tensor
    /// `[out]`, or nil for `bias=False`.
    public var bias: Tensor?

    /// A layer over the given parameters.
    public init(weight: Tensor, bias: Tensor?) {
        precondition(weight.rank == 2, "Linear weight must be [out, in], got \(weight.shape)")
        if let bias { precondition(bias.shape == [weight.shape[0]], "Linear bias must be [\(weight.shape[0])], got \(bias.shape)") }
        self.weight = weight
        self.bias = bias
    }

    /// Input features.
    public var inFeatures: Int { weight.shape[1] }
    /// Output features.
    public var outFeatures: Int { weight.shape[0] }

    /// x: [..., in] -> [..., out]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.dim(-1) == inFeatures, "Linear expects last dimension \(inFeatures), got \(x.shape)")
        let rows = x.count / inFeatures
        let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outFeatures])
        var beta: Float = 0
        if let bias {
            // Preload every row with the bias and let the GEMM accumulate onto it (beta = 1).
            let o = outFeatures
            Compute.pool.parallelFor(rows, grain: 64) { r in
                for i in r { (out.data + i * o).update(from: bias.data, count: o) }
            }
            beta = 1
        }
        GEMM.sgemm(
            transB: true, m: rows, n: outFeatures, k: inFeatures, a: x.data, lda: inFeatures,
            b: weight.data, ldb: inFeatures, beta: beta, c: out.data, ldc: outFeatures)
        return out
    }
}
