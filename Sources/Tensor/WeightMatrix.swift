/// A GEMM weight `[rows, cols]` in PyTorch's `[out, in]` order (row-major), held in the precision its
/// layer runs in: a Float32 tensor for OpenBLAS, bfloat16 or int8 (per output channel scales) for oneDNN. `GEMM.linear` multiplies by its
/// transpose either way, without copying.
public struct WeightMatrix: @unchecked Sendable {
    /// Where the elements live.
    public enum Storage: @unchecked Sendable {
        /// Float32, `[rows, cols]`.
        case float32(Tensor)
        /// bfloat16, `rows * cols` elements.
        case bfloat16(BFloat16Storage)
        /// Symmetric int8 with one scale per row.
        case int8(Int8Weights)
    }

    /// Output features (PyTorch's first dimension).
    public let rows: Int
    /// Input features (every further dimension of the PyTorch tensor, flattened).
    public let cols: Int
    /// The elements.
    public let storage: Storage

    /// A Float32 weight: `[rows, ...]` is viewed as `[rows, product of the rest]` (a conv kernel already in
    /// the GEMM's order).
    public init(_ tensor: Tensor) {
        precondition(tensor.rank >= 2, "WeightMatrix needs a tensor of rank >= 2, got \(tensor.shape)")
        rows = tensor.shape[0]
        cols = tensor.count / max(rows, 1)
        storage = .float32(tensor.reshaped([rows, cols]))
    }

    /// A bfloat16 weight of `rows * cols` elements.
    public init(rows: Int, cols: Int, bfloat16: BFloat16Storage) {
        precondition(bfloat16.count == rows * cols, "WeightMatrix [\(rows), \(cols)] given \(bfloat16.count) bfloat16 elements")
        self.rows = rows
        self.cols = cols
        storage = .bfloat16(bfloat16)
    }

    /// An int8 weight.
    public init(int8: Int8Weights) {
        rows = int8.rows
        cols = int8.cols
        storage = .int8(int8)
    }

    /// `[rows, cols]`.
    public var shape: [Int] { [rows, cols] }

    /// The precision the elements are held in.
    public var precision: Precision {
        switch storage {
        case .float32: return .fp32
        case .bfloat16: return .bf16
        case .int8: return .int8
        }
    }

    /// The weight in `precision`: bfloat16 rounds to nearest even (as torch), int8 quantises each row
    /// symmetrically (`Int8Weights`), Float32 widens (exactly from bfloat16, `scale * q` from int8); the same
    /// value when it already is in that precision.
    public func converted(to precision: Precision) -> WeightMatrix {
        if precision == self.precision { return self }
        switch precision {
        case .fp32:
            return WeightMatrix(float32)
        case .bf16:
            let t = float32
            return WeightMatrix(rows: rows, cols: cols, bfloat16: BFloat16Storage(rounding: t.data, count: t.count))
        case .int8:
            let t = float32
            return WeightMatrix(int8: Int8Weights(quantizing: t.data, rows: rows, cols: cols))
        }
    }

    /// The elements as a Float32 `[rows, cols]` tensor: the storage itself for Float32, a widened copy for
    /// bfloat16 or int8 (for load-time arithmetic such as folding or stacking).
    public var float32: Tensor {
        switch storage {
        case .float32(let t): return t
        case .bfloat16(let s): return s.widened().reshaped([rows, cols])
        case .int8(let q): return q.dequantized()
        }
    }

    /// The weights' rows one after the other (`torch.cat(dim=0)`), all in the precision of the first.
    public static func stacked(_ parts: [WeightMatrix]) -> WeightMatrix {
        precondition(!parts.isEmpty, "WeightMatrix.stacked needs at least one part")
        let cols = parts[0].cols, precision = parts[0].precision
        precondition(parts.allSatisfy { $0.cols == cols }, "WeightMatrix.stacked: column counts differ, \(parts.map(\.shape))")
        let rows = parts.reduce(0) { $0 + $1.rows }
        // Float32 first, rounded once at the end when bfloat16 or int8: rounding is idempotent, so bfloat16
        // parts come out bit for bit as they went in (int8 too: each row keeps its scale, its largest element
        // maps to 127 again).
        let out = Tensor(uninitialized: [rows, cols])
        var at = 0
        for p in parts {
            let f = p.float32
            (out.data + at).update(from: f.data, count: p.rows * cols)
            at += p.rows * cols
        }
        return WeightMatrix(out).converted(to: precision)
    }
}
