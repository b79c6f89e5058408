import Foundation

/// `torch.nn.LayerNorm(C)` over the last dimension (channels of an NHWC tensor, features of a sequence).
///
/// Reproduces aten/src/ATen/native/cpu/layer_norm_kernel.cpp: `rstd = 1 / sqrt(var + eps)` with the
/// biased variance and `eps` rounded to Float, then `y = (x * rstd + (-rstd * mean)) * gamma + beta`
/// in that order. Mean and variance are two-pass sums in Float over eight lanes (the row is in L1
/// for the second pass); torch uses a Welford cascade, which differs by rounding only.
/// Würstchen's `WuerstchenLayerNorm` (= `LayerNorm2d`) is `LayerNorm(weight: nil, bias: nil, eps: 1e-6)`
/// on NHWC data, which needs no permute; CLIP uses the affine form with eps 1e-5.
public struct LayerNorm: @unchecked Sendable {
    /// `[C]` scale, or nil for `elementwise_affine=False`.
    public var weight: Tensor?
    /// `[C]` shift, or nil.
    public var bias: Tensor?
    /// Added to the variance.
    public var eps: Float

    /// A layer over the given parameters (any shape holding C elements, e.g. `[C]`).
    public init(weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) {
        if let weight, let bias {
            precondition(weight.count == bias.count, "LayerNorm weight \(weight.shape) and bias \(bias.shape) differ in size")
        }
        self.weight = weight
        self.bias = bias
        self.eps = eps
    }

    // x: [..., C] -> [..., C]

    /// Normalises every row of `C` elements of `x`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let out = Tensor(uninitialized: x.shape)
        apply(x, into: out)
        return out
    }

    /// Writes the normalised `x` into `x`'s storage.
    public func applyInPlace(_ x: Tensor) { apply(x, into: x) }

    private func apply(_ x: Tensor, into out: Tensor) {
        let c = x.dim(-1)
        if let weight { precondition(weight.count == c, "LayerNorm weight holds \(weight.count) values, x \(x.shape) has \(c) channels") }
        if let bias { precondition(bias.count == c, "LayerNorm bias holds \(bias.count) values, x \(x.shape) has \(c) channels") }
        guard c > 0 else { return }
        let rows = x.count / c
        let xp = x.data, op = out.data
        let g = weight?.data, b = bias?.data
        let eps = self.eps
        ElementwiseSplit.rows(rows, cols: c) { range in
            for r in range {
                LayerNorm.row(xp + r * c, op + r * c, c, eps, g, b)
            }
        }
    }

    /// Normalises one row of `c` elements (`out` may equal `x`).
    @inline(__always)
    static func row(
        _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ c: Int, _ eps: Float,
        _ gamma: UnsafePointer<Float>?, _ beta: UnsafePointer<Float>?
    ) {
        typealias V = SIMD8<Float>
        let full = c & ~7
        var acc = V()
        var j = 0
        while j < full { acc += VectorMath.load(x + j); j += 8 }
        var sum = acc.sum()
        while j < c { sum += x[j]; j += 1 }
        let mean = sum / Float(c)
        let m8 = V(repeating: mean)
        acc = V()
        j = 0
        while j < full {
            let d = VectorMath.load(x + j) - m8
            acc += d * d
            j += 8
        }
        var sq = acc.sum()
        while j < c { let d = x[j] - mean; sq += d * d; j += 1 }
        let variance = Swift.max(sq / Float(c), 0)
        let rstd = 1 / (variance + eps).squareRoot()
        let shift = -rstd * mean
        let s8 = V(repeating: rstd), b8 = V(repeating: shift)
        j = 0
        if let gamma, let beta {
            while j < full {
                let y = (VectorMath.load(x + j) * s8 + b8) * VectorMath.load(gamma + j) + VectorMath.load(beta + j)
                VectorMath.store(y, out + j)
                j += 8
            }
            while j < c { out[j] = (x[j] * rstd + shift) * gamma[j] + beta[j]; j += 1 }
        } else if gamma == nil && beta == nil {
            while j < full { VectorMath.store(VectorMath.load(x + j) * s8 + b8, out + j); j += 8 }
            while j < c { out[j] = x[j] * rstd + shift; j += 1 }
        } else {
            while j < c {
                out[j] = (x[j] * rstd + shift) * (gamma?[j] ?? 1) + (beta?[j] ?? 0)
                j += 1
            }
        }
    }
}

/// ConvNeXt-V2 Global Response Normalisation as Würstchen uses it, on channels-last data.
///
/// Reproduces diffusers' `GlobalResponseNorm` (pipelines/wuerstchen/modeling_wuerstchen_common.py):
/// ```
/// agg_norm = torch.norm(x, p=2, dim=(1, 2), keepdim=True)              # [B, 1, 1, C]
/// stand_div_norm = agg_norm / (agg_norm.mean(dim=-1, keepdim=True) + 1e-6)
/// return self.gamma * (x * stand_div_norm) + self.beta + x
/// ```
/// with the same rounding order in the last line. The sums of squares are accumulated in Float over
/// short runs of pixels and in Double across runs, so they are at least as accurate as torch's.
public struct GlobalResponseNorm: @unchecked Sendable {
    /// `gamma`, C values (checkpoint shape `[1, 1, 1, C]`).
    public var gamma: Tensor
    /// `beta`, C values.
    public var beta: Tensor

    // Deliberate parallel of LayerNorm's init and call / in-place pair above: one layer API for both norms,
    // whose kernels differ.
    /// A layer over the given parameters.
    public init(gamma: Tensor, beta: Tensor) {
        precondition(gamma.count == beta.count, "GlobalResponseNorm gamma \(gamma.shape) and beta \(beta.shape) differ in size")
        self.gamma = gamma
        self.beta = beta
    }

    // x: [B, H, W, C] (or [B, L, C]) -> same

    /// The normalised tensor.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let out = Tensor(uninitialized: x.shape)
        apply(x, into: out)
        return out
    }

    /// Writes the result into `x`'s storage.
    public func applyInPlace(_ x: Tensor) { apply(x, into: x) }

    private func apply(_ x: Tensor, into out: Tensor) {
        precondition(x.rank >= 2, "GlobalResponseNorm needs [B, ..., C], got \(x.shape)")
        let c = x.dim(-1)
        precondition(gamma.count == c, "GlobalResponseNorm gamma holds \(gamma.count) values, x \(x.shape) has \(c) channels")
        let batch = x.dim(0)
        guard c > 0, batch > 0 else { return }
        let pixels = x.count / (batch * c)
        let scale = UnsafeMutablePointer<Float>.allocate(capacity: c)
        defer { scale.deallocate() }
        for b in 0..<batch {
            let xb = x.data + b * pixels * c
            GlobalResponseNorm.channelScale(xb, pixels: pixels, c: c, into: scale)
            GlobalResponseNorm.applyScale(xb, out.data + b * pixels * c, pixels: pixels, c: c, scale: scale, gamma.data, beta.data)
        }
    }

    /// `scale[c] = ||x[:, c]|| / (mean_c ||x[:, c]|| + 1e-6)` over `pixels` rows of `c` channels.
    static func channelScale(_ x: UnsafePointer<Float>, pixels: Int, c: Int, into scale: UnsafeMutablePointer<Float>) {
        let parts = Swift.max(1, Swift.min(Compute.pool.threadCount, pixels * c / ElementwiseSplit.grain))
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: parts * c)
        defer { partial.deallocate() }
        Compute.pool.parallelFor(parts, grain: 1) { range in
            let run = UnsafeMutablePointer<Float>.allocate(capacity: c)
            defer { run.deallocate() }
            for part in range {
                let lo = part * pixels / parts, hi = (part + 1) * pixels / parts
                let total = partial + part * c
                total.initialize(repeating: 0, count: c)
                var p = lo
                while p < hi {
                    // Float accumulation over at most 64 pixels, then into Double.
                    let end = Swift.min(hi, p + 64)
                    run.initialize(repeating: 0, count: c)
                    while p < end {
                        let row = x + p * c
                        var j = 0
                        while j + 8 <= c {
                            let v = VectorMath.load(row + j)
                            VectorMath.store(VectorMath.load(run + j) + v * v, run + j)
                            j += 8
                        }
                        while j < c { run[j] += row[j] * row[j]; j += 1 }
                        p += 1
                    }
                    for j in 0..<c { total[j] += Double(run[j]) }
                }
            }
        }
        // The mean over channels as torch's (pairwise, nearly exact) sum: one rounding from Double.
        var meanNorm = 0.0
        for j in 0..<c {
            var s = 0.0
            for part in 0..<parts { s += partial[part * c + j] }
            scale[j] = Float(s.squareRoot())
            meanNorm += Double(scale[j])
        }
        let denominator = Float(meanNorm) / Float(c) + 1e-6
        for j in 0..<c { scale[j] = scale[j] / denominator }
    }

    /// `out = gamma * (x * scale) + beta + x` per channel (`out` may equal `x`).
    static func applyScale(
        _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, pixels: Int, c: Int,
        scale: UnsafePointer<Float>, _ gamma: UnsafePointer<Float>, _ beta: UnsafePointer<Float>
    ) {
        ElementwiseSplit.rows(pixels, cols: c) { range in
            for p in range {
                let row = x + p * c, o = out + p * c
                var j = 0
                while j + 8 <= c {
                    let v = VectorMath.load(row + j)
                    let y = VectorMath.load(gamma + j) * (v * VectorMath.load(scale + j)) + VectorMath.load(beta + j) + v
                    VectorMath.store(y, o + j)
                    j += 8
                }
                while j < c { o[j] = gamma[j] * (row[j] * scale[j]) + beta[j] + row[j]; j += 1 }
            }
        }
    }
}
