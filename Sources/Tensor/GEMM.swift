import CBLAS

/// The GEMM seam: every matrix product of the engine goes through here. Two backends: OpenBLAS in
/// float32 (`sgemm`, and `linear` with a Float32 weight) and oneDNN, with bfloat16 inputs and float32
/// accumulation and output (`linear` with a bfloat16 weight, see `OneDNNMatmul`) or with int8 inputs and
/// int32 accumulation (`linear` with an int8 weight, see `linearInt8`).
public enum GEMM {
    /// Row-major `C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C`, where `op` transposes
    /// when asked. `lda`, `ldb`, `ldc` are the row strides of A, B and C as stored.
    /// Holds OpenBLAS's thread count fixed for the call (`BLASThreads`: its results depend on it).
    @inlinable
    public static func sgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        BLASThreads.shared {
            sgemmInExclusiveSection(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                    b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    /// `sgemm` without taking `BLASThreads`' lock: only inside `BLASThreads.exclusive`, which holds it.
    @usableFromInline
    static func sgemmInExclusiveSection(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        GEMMProfile.measure(operations: 2 * Double(m) * Double(n) * Double(k)) {
            cblas_sgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
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
    /// `c[m, n] = a[m, k] W[rows]^T + bias[n]`, plus `c` when `accumulate` (a residual added in place):
    /// the product of activations with a layer's weight (`rows` of its `[out, in]` matrix, `n = rows.count`,
    /// `k = weight.cols`), `a` rows `lda` apart, `c` rows `ldc` apart. A Float32 weight runs `sgemm`; a
    /// bfloat16 one rounds `a` to bfloat16 (nearest even) and runs oneDNN, accumulating in float32; an int8
    /// one quantises `a` per row and runs oneDNN, accumulating in int32.
    public static func linear(
        m: Int, a: UnsafePointer<Float>, lda: Int, weight: WeightMatrix, rows: Range<Int>? = nil,
        bias: UnsafePointer<Float>?, accumulate: Bool = false, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let rows = rows ?? 0..<weight.rows
        precondition(rows.lowerBound >= 0 && rows.upperBound <= weight.rows, "GEMM.linear rows \(rows) outside the weight's \(weight.rows)")
        let n = rows.count, k = weight.cols
        if m == 0 || n == 0 { return }
        GEMMProfile.measure(operations: 2 * Double(m) * Double(n) * Double(k)) {
            linearUnprofiled(m: m, a: a, lda: lda, weight: weight, rows: rows, bias: bias, accumulate: accumulate, c: c, ldc: ldc)
        }
    }

    private static func linearUnprofiled(
        m: Int, a: UnsafePointer<Float>, lda: Int, weight: WeightMatrix, rows: Range<Int>,
        bias: UnsafePointer<Float>?, accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let n = rows.count, k = weight.cols
        switch weight.storage {
        case .float32(let w):
            if let bias {
                // Bias into every row (added onto c when accumulating), then the GEMM accumulates (beta = 1).
                Compute.pool.parallelFor(m, grain: 64) { r in
                    for i in r {
                        let row = c + i * ldc
                        if accumulate {
                            for j in 0..<n { row[j] += bias[j] }
                        } else {
                            row.update(from: bias, count: n)
                        }
                    }
                }
            }
            sgemm(
                transB: true, m: m, n: n, k: k, a: a, lda: lda, b: w.data + rows.lowerBound * k, ldb: k,
                beta: bias != nil || accumulate ? 1 : 0, c: c, ldc: ldc)
        case .bfloat16(let w):
            let bytes = m * k * 2
            let raw = BufferCache.shared.allocate(bytes: bytes)
            defer { BufferCache.shared.release(raw, bytes: bytes) }
            let a16 = raw.bindMemory(to: UInt16.self, capacity: m * k)
            Compute.pool.parallelFor(m, grain: max(1, 16384 / max(k, 1))) { r in
                if lda == k {
                    Conversion.float32ToBFloat16(a + r.lowerBound * k, a16 + r.lowerBound * k, count: r.count * k)
                } else {
                    for i in r { Conversion.float32ToBFloat16(a + i * lda, a16 + i * k, count: k) }
                }
            }
            OneDNNMatmul.shared.run(
                m: m, n: n, k: k, a: a16, w: w.pointer + rows.lowerBound * k, ldw: k,
                bias: bias, accumulate: accumulate, c: c, ldc: ldc)
        case .int8(let q):
            linearInt8(m: m, a: a, lda: lda, weight: q, rows: rows, bias: bias, accumulate: accumulate, c: c, ldc: ldc)
        }
    }

    /// The oneDNN implementation a bfloat16 `[m, k] x [k, n]` product runs on (e.g. `brg:avx512_core_bf16`).
    public static func bfloat16Implementation(m: Int, n: Int, k: Int) -> String {
        OneDNNMatmul.shared.implementation(m: m, n: n, k: k)
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

/// `torch.nn.Linear`: `y = x W^T + b` over the last dimension, with the weight in the precision the
/// layer runs in (Float32 through OpenBLAS, bfloat16 through oneDNN).
public struct Linear: @unchecked Sendable {
    /// `[out, in]`, PyTorch layout (the GEMM reads it transposed, no copy).
    public var weight: WeightMatrix
    /// `[out]`, or nil for `bias=False`.
    public var bias: Tensor?

    /// A layer over Float32 parameters: `weight` `[out, in]`, `bias` `[out]`.
    public init(weight: Tensor, bias: Tensor?) {
        precondition(weight.rank == 2, "Linear weight must be [out, in], got \(weight.shape)")
        self.init(weight: WeightMatrix(weight), bias: bias)
    }

    /// A layer over a weight in either precision.
    public init(weight: WeightMatrix, bias: Tensor?) {
        if let bias { precondition(bias.shape == [weight.rows], "Linear bias must be [\(weight.rows)], got \(bias.shape)") }
        self.weight = weight
        self.bias = bias
    }

    /// The same layer with its weight in `precision` (the bias stays Float32).
    public func converted(to precision: Precision) -> Linear {
        Linear(weight: weight.converted(to: precision), bias: bias)
    }

    /// Input features.
    public var inFeatures: Int { weight.cols }
    /// Output features.
    public var outFeatures: Int { weight.rows }

    /// x: [..., in] -> [..., out]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.dim(-1) == inFeatures, "Linear expects last dimension \(inFeatures), got \(x.shape)")
        let rows = x.count / inFeatures
        let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outFeatures])
        apply(x.data, rows: rows, into: out.data)
        return out
    }

    /// `rows` rows of `inFeatures` at `x` (rows `lda` apart, default packed) through the layer, written to
    /// `out` (rows `ldc` apart), or added onto it with `accumulate` (`out += x W^T + b`, a residual in place).
    public func apply(
        _ x: UnsafePointer<Float>, rows: Int, lda: Int? = nil, into out: UnsafeMutablePointer<Float>, ldc: Int? = nil,
        accumulate: Bool = false
    ) {
        GEMM.linear(
            m: rows, a: x, lda: lda ?? inFeatures, weight: weight, bias: bias?.data, accumulate: accumulate,
            c: out, ldc: ldc ?? outFeatures)
    }
}
