/// Numerically stable softmax over rows, vectorised.
///
/// Reproduces `torch.softmax(x, dim=-1)` (aten/src/ATen/native/cpu/SoftMaxKernel.cpp,
/// `_vec_softmax_lastdim`): subtract the row maximum, exponentiate, multiply by `1 / sum`.
public enum Softmax {
    /// In-place softmax of `rows` rows of `cols` elements, row `r` starting at `p + r * stride`:
    /// `p[r, j] = exp(scale * (p[r, j] - max_r)) / sum`. Runs on the calling thread (attention calls
    /// it from inside its own parallel loop). A row whose maximum is -inf (fully masked) becomes NaN,
    /// as in torch.
    public static func rows(
        _ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int, stride: Int, scale: Float = 1
    ) {
        precondition(stride >= cols, "Softmax.rows: stride \(stride) is shorter than a row of \(cols)")
        for r in 0..<rows { row(p + r * stride, cols, scale) }
    }

    @inline(__always)
    static func row(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ scale: Float) {
        typealias V = SIMD8<Float>
        guard n > 0 else { return }
        let full = n & ~7
        var m8 = V(repeating: -.infinity)
        var j = 0
        while j < full {
            let v = VectorMath.load(x + j)
            m8 = m8.replacing(with: v, where: v .> m8)
            j += 8
        }
        var m = m8.max()
        while j < n { m = Swift.max(m, x[j]); j += 1 }
        let mv = V(repeating: m), sv = V(repeating: scale)
        var acc = V()
        j = 0
        while j < full {
            let e = VectorMath.exp((VectorMath.load(x + j) - mv) * sv)
            VectorMath.store(e, x + j)
            acc += e
            j += 8
        }
        if j < n {
            let rest = n - j
            let e = VectorMath.exp((VectorMath.loadPartial(x + j, rest) - mv) * sv)
            for k in 0..<rest { x[j + k] = e[k]; acc[k] += e[k] }
        }
        let inv = 1 / acc.sum()
        let iv = V(repeating: inv)
        j = 0
        while j < full { VectorMath.store(VectorMath.load(x + j) * iv, x + j); j += 8 }
        while j < n { x[j] *= inv; j += 1 }
    }
}

extension Tensor {
    // x: [..., N] -> [..., N]

    /// `torch.softmax(self, dim=-1)`.
    public func softmax() -> Tensor {
        let out = copy()
        let n = dim(-1)
        guard n > 0 else { return out }
        let rows = count / n
        let o = out.data
        ElementwiseSplit.rows(rows, cols: n * 8) { range in
            Softmax.rows(o + range.lowerBound * n, rows: range.count, cols: n, stride: n)
        }
        return out
    }
}
