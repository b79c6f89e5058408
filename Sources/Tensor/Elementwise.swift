/// Elementwise arithmetic on tensors: same-shape, per-channel broadcast (`[C]` or `[B, 1, ..., 1, C]`
/// over `[B, ..., C]`), scalar; the fused timestep modulation `x * (1 + a) + b`; `torch.lerp`; small
/// reductions for tests. Loops are SIMD over eight lanes and split over `Compute.pool` when large.
///
/// Reproduces PyTorch's `add`/`sub`/`mul` (one rounding per op, as torch), diffusers'
/// `TimestepBlock.forward` (pipelines/wuerstchen/modeling_wuerstchen_common.py) and `torch.lerp`
/// (aten/src/ATen/native/cpu/LerpKernel.cpp) bit for bit.

/// Splitting helpers shared by the elementwise, activation and normalisation kernels.
enum ElementwiseSplit {
    /// Elements per chunk below which a loop runs on the calling thread (128 KiB of floats).
    static let grain = 32_768

    /// Calls `body(lo, hi)` over disjoint element ranges covering `0..<count`, in parallel for large
    /// counts; every range but the last starts and ends on a multiple of 8.
    @inline(__always)
    static func elements(_ count: Int, grain: Int = grain, _ body: (Int, Int) -> Void) {
        let blocks = (count + 7) / 8
        Compute.pool.parallelFor(blocks, grain: max(1, grain / 8)) { r in
            body(r.lowerBound * 8, min(count, r.upperBound * 8))
        }
    }

    /// Calls `body(range)` over disjoint row ranges of `rows` rows of `cols` elements each, in
    /// parallel when the total is large.
    @inline(__always)
    static func rows(_ rows: Int, cols: Int, _ body: (Range<Int>) -> Void) {
        Compute.pool.parallelFor(rows, grain: max(1, grain / max(cols, 1)), body)
    }

    /// `out[i] = op(x[i])` over `lo..<hi`, eight lanes at a time; the tail goes through the same
    /// vector code on a zero-padded vector so that every element sees the same arithmetic.
    @inline(__always)
    static func map(
        _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ lo: Int, _ hi: Int,
        _ op: (SIMD8<Float>) -> SIMD8<Float>
    ) {
        var i = lo
        while i + 8 <= hi {
            VectorMath.store(op(VectorMath.load(x + i)), out + i)
            i += 8
        }
        if i < hi {
            VectorMath.storePartial(op(VectorMath.loadPartial(x + i, hi - i)), out + i, hi - i)
        }
    }

    /// `out[i] = op(x[i], y[i])` over `lo..<hi`.
    @inline(__always)
    static func zip(
        _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
        _ lo: Int, _ hi: Int, _ op: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>
    ) {
        var i = lo
        while i + 8 <= hi {
            VectorMath.store(op(VectorMath.load(x + i), VectorMath.load(y + i)), out + i)
            i += 8
        }
        if i < hi {
            let n = hi - i
            VectorMath.storePartial(op(VectorMath.loadPartial(x + i, n), VectorMath.loadPartial(y + i, n)), out + i, n)
        }
    }

    /// Row-wise broadcast: for each row `r` of `rows` rows of `c` elements, `out[r, j] = op(x[r, j], v[g, j])`
    /// where `g = r / rowsPerGroup` and `v` rows are `vStride` apart.
    @inline(__always)
    static func broadcastRows(
        _ x: UnsafePointer<Float>, _ v: UnsafePointer<Float>, vStride: Int, rowsPerGroup: Int,
        _ out: UnsafeMutablePointer<Float>, rows: Int, c: Int,
        _ op: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>
    ) {
        ElementwiseSplit.rows(rows, cols: c) { range in
            for r in range {
                zip(x + r * c, v + (r / rowsPerGroup) * vStride, out + r * c, 0, c, op)
            }
        }
    }
}

/// How a second operand lines up with a tensor of shape `[..., C]`.
enum ChannelBroadcast {
    /// Same shape: elementwise.
    case same
    /// `groups` vectors of `C`, each covering `count / (groups * C)` consecutive rows.
    case channels(groups: Int)

    /// Classifies `other` against `shape`, or stops naming both shapes.
    static func of(_ other: [Int], against shape: [Int], _ op: String) -> ChannelBroadcast {
        if other == shape { return .same }
        let c = shape.last ?? 1
        let otherCount = Tensor.elementCount(other)
        let lastMatches = other.last == c
        // [C], [1, ..., 1, C]: one vector for every row.
        if lastMatches && otherCount == c && other.count <= shape.count { return .channels(groups: 1) }
        // [B, 1, ..., 1, C] over [B, ..., C]: one vector per sample.
        if lastMatches && other.count == shape.count && shape.count >= 2 && other[0] == shape[0]
            && other.dropFirst().dropLast().allSatisfy({ $0 == 1 })
        {
            return .channels(groups: shape[0])
        }
        preconditionFailure(
            "\(op): cannot broadcast \(other) over \(shape); expected the same shape, [C], or [B, 1, ..., 1, C] with C = \(c)")
    }
}

extension Tensor {
    @inline(__always)
    private func binary(_ other: Tensor, into out: Tensor, _ name: String, _ op: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>) {
        let x = data, y = other.data, o = out.data
        switch ChannelBroadcast.of(other.shape, against: shape, name) {
        case .same:
            ElementwiseSplit.elements(count) { lo, hi in ElementwiseSplit.zip(x, y, o, lo, hi, op) }
        case .channels(let groups):
            let c = dim(-1)
            let rows = c == 0 ? 0 : count / c
            ElementwiseSplit.broadcastRows(
                x, y, vStride: c, rowsPerGroup: max(1, rows / groups), o, rows: rows, c: c, op)
        }
    }

    // x: [..., C], other: same shape, [C] or [B, 1, ..., 1, C]

    /// `self + other` (`torch.add`); `other` has the same shape, or is `[C]` or `[B, 1, ..., 1, C]`.
    public func add(_ other: Tensor) -> Tensor {
        let out = Tensor(uninitialized: shape)
        binary(other, into: out, "add") { $0 + $1 }
        return out
    }

    /// `self - other` (`torch.sub`), broadcasting as `add`.
    public func sub(_ other: Tensor) -> Tensor {
        let out = Tensor(uninitialized: shape)
        binary(other, into: out, "sub") { $0 - $1 }
        return out
    }

    /// `self * other` (`torch.mul`), broadcasting as `add`.
    public func mul(_ other: Tensor) -> Tensor {
        let out = Tensor(uninitialized: shape)
        binary(other, into: out, "mul") { $0 * $1 }
        return out
    }

    /// `self * s`.
    public func mul(_ s: Float) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, o = out.data
        ElementwiseSplit.elements(count) { lo, hi in ElementwiseSplit.map(x, o, lo, hi) { $0 * s } }
        return out
    }

    /// `self + s`.
    public func add(_ s: Float) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, o = out.data
        ElementwiseSplit.elements(count) { lo, hi in ElementwiseSplit.map(x, o, lo, hi) { $0 + s } }
        return out
    }

    /// Writes `self + other` into this tensor's storage (residual adds); broadcasting as `add`.
    public func addInPlace(_ other: Tensor) { binary(other, into: self, "addInPlace") { $0 + $1 } }

    /// Writes `self - other` into this tensor's storage; broadcasting as `add`.
    public func subInPlace(_ other: Tensor) { binary(other, into: self, "subInPlace") { $0 - $1 } }

    /// Writes `self * other` into this tensor's storage; broadcasting as `add`.
    public func mulInPlace(_ other: Tensor) { binary(other, into: self, "mulInPlace") { $0 * $1 } }

    /// Writes `self * s` into this tensor's storage.
    public func mulInPlace(_ s: Float) {
        let x = data
        ElementwiseSplit.elements(count) { lo, hi in ElementwiseSplit.map(x, x, lo, hi) { $0 * s } }
    }

    /// Writes `self * scale + shift` into this tensor's storage: two roundings, as torch's separate
    /// `mul` and `add` (Paella's `norm(x) * (1 + g0) + g1` with scalar gammas).
    public func scaleShiftInPlace(scale: Float, shift: Float) {
        let x = data
        let s8 = SIMD8<Float>(repeating: scale), b8 = SIMD8<Float>(repeating: shift)
        ElementwiseSplit.elements(count) { lo, hi in ElementwiseSplit.map(x, x, lo, hi) { $0 * s8 + b8 } }
    }

    // self, other: same shape

    /// Writes `self + other * scale` into this tensor's storage: the product rounded first, as torch's
    /// `x + y * g` (Paella's residual adds with scalar gammas).
    public func addScaledInPlace(_ other: Tensor, scale: Float) {
        precondition(other.shape == shape, "addScaledInPlace: \(other.shape) does not match \(shape)")
        let x = data, y = other.data
        let s8 = SIMD8<Float>(repeating: scale)
        ElementwiseSplit.elements(count) { lo, hi in ElementwiseSplit.zip(x, y, x, lo, hi) { $0 + $1 * s8 } }
    }

    /// Elementwise sum.
    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.add(rhs) }
    /// Elementwise difference.
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.sub(rhs) }
    /// Elementwise product.
    public static func * (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.mul(rhs) }
    /// Every element times `rhs`.
    public static func * (lhs: Tensor, rhs: Float) -> Tensor { lhs.mul(rhs) }
    /// Every element times `lhs`.
    public static func * (lhs: Float, rhs: Tensor) -> Tensor { rhs.mul(lhs) }

    // x: [B, ..., C], scale a / shift b: [B, 1, ..., 1, C] or [B, C] (also [C] for every sample)

    /// Würstchen's `TimestepBlock`: `x * (1 + a) + b` with per-sample, per-channel `a` and `b`,
    /// rounded as torch does it (three separate ops, no fused multiply-add).
    public func modulated(scale a: Tensor, shift b: Tensor) -> Tensor {
        let out = Tensor(uninitialized: shape)
        modulate(a: a.data, b: b.data, stride: dim(-1), groups: modulationGroups(a, "scale"), into: out,
            check: modulationGroups(b, "shift"))
        return out
    }

    /// `x * (1 + a) + b` where `ab` is `[B, 2C]` (or `[B, 2C, 1, 1]`-like) holding `a` then `b`, as the
    /// `mapper(t).chunk(2, dim=1)` of `TimestepBlock` splits it.
    public func modulated(scaleShift ab: Tensor) -> Tensor {
        let out = Tensor(uninitialized: shape)
        modulateFused(ab, into: out)
        return out
    }

    /// Writes `x * (1 + a) + b` into this tensor's storage; `ab` as in `modulated(scaleShift:)`.
    public func modulateInPlace(scaleShift ab: Tensor) { modulateFused(ab, into: self) }

    private func modulateFused(_ ab: Tensor, into out: Tensor) {
        let c = dim(-1)
        precondition(
            ab.count % (2 * max(c, 1)) == 0 && (ab.count / (2 * max(c, 1)) == 1 || ab.count / (2 * c) == dim(0)),
            "modulated(scaleShift:): expected [\(dim(0)), \(2 * c)] for x \(shape), got \(ab.shape)")
        let groups = ab.count / (2 * c)
        modulate(a: ab.data, b: ab.data + c, stride: 2 * c, groups: groups, into: out, check: groups)
    }

    private func modulationGroups(_ v: Tensor, _ name: String) -> Int {
        let c = dim(-1)
        precondition(
            v.count == c || (v.count == dim(0) * c && v.shape.first == dim(0) && v.shape.last == c),
            "modulated: \(name) must be [B, 1, 1, C], [B, C] or [C] for x \(shape), got \(v.shape)")
        return v.count / c
    }

    private func modulate(
        a: UnsafePointer<Float>, b: UnsafePointer<Float>, stride: Int, groups: Int, into out: Tensor, check: Int
    ) {
        precondition(groups == check, "modulated: scale covers \(groups) samples, shift \(check)")
        let c = dim(-1)
        let rows = c == 0 ? 0 : count / c
        let rowsPerGroup = max(1, rows / groups)
        let x = data, o = out.data
        let one = SIMD8<Float>(repeating: 1)
        ElementwiseSplit.rows(rows, cols: c) { range in
            for r in range {
                let g = r / rowsPerGroup
                let ag = a + g * stride, bg = b + g * stride
                let xr = x + r * c, orow = o + r * c
                var j = 0
                while j + 8 <= c {
                    let y = VectorMath.load(xr + j) * (one + VectorMath.load(ag + j)) + VectorMath.load(bg + j)
                    VectorMath.store(y, orow + j)
                    j += 8
                }
                while j < c {
                    orow[j] = xr[j] * (1 + ag[j]) + bg[j]
                    j += 1
                }
            }
        }
    }

    // start, end: same shape

    /// `torch.lerp(start, end, weight)`: `start + w * (end - start)` for `|w| < 0.5`, else
    /// `end + (w - 1) * (end - start)`, each with one rounding as torch's vectorised FMA path
    /// (LerpKernel.cpp `lerp_vec`); the product of two floats is exact in Double, so the Double
    /// sum rounded once to Float reproduces the FMA.
    public static func lerp(_ start: Tensor, _ end: Tensor, weight: Float) -> Tensor {
        precondition(start.shape == end.shape, "lerp: start \(start.shape) and end \(end.shape) differ")
        let out = Tensor(uninitialized: start.shape)
        let s = start.data, e = end.data, o = out.data
        let small = Swift.abs(weight) < 0.5
        let coeff = Double(small ? weight : weight - 1)
        ElementwiseSplit.elements(start.count) { lo, hi in
            for i in lo..<hi {
                let d = Double(e[i] - s[i])
                let base = Double(small ? s[i] : e[i])
                o[i] = Float(coeff * d + base)
            }
        }
        return out
    }

    /// `|x|` elementwise.
    public func abs() -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, o = out.data
        let mask = SIMD8<UInt32>(repeating: 0x7FFF_FFFF)
        ElementwiseSplit.elements(count) { lo, hi in
            ElementwiseSplit.map(x, o, lo, hi) { unsafeBitCast(unsafeBitCast($0, to: SIMD8<UInt32>.self) & mask, to: SIMD8<Float>.self) }
        }
        return out
    }

    /// `torch.clamp(x, lower, upper)` (NaN stays NaN).
    public func clamped(_ lower: Float, _ upper: Float) -> Tensor {
        precondition(lower <= upper, "clamped: lower \(lower) > upper \(upper)")
        let out = Tensor(uninitialized: shape)
        let x = data, o = out.data
        let lo8 = SIMD8<Float>(repeating: lower), hi8 = SIMD8<Float>(repeating: upper)
        ElementwiseSplit.elements(count) { lo, hi in
            ElementwiseSplit.map(x, o, lo, hi) { v in
                let a = v.replacing(with: lo8, where: v .< lo8)
                return a.replacing(with: hi8, where: a .> hi8)
            }
        }
        return out
    }

    /// Sum of all elements, accumulated in Double.
    public func sum() -> Float { Float(sumInDouble()) }

    private func sumInDouble() -> Double {
        var total = 0.0
        let x = data
        var i = 0
        while i < count {
            // Float lanes over short blocks, Double across blocks: accurate and still vectorised.
            let hi = min(count, i + 1024)
            var acc = SIMD8<Float>()
            while i + 8 <= hi { acc += VectorMath.load(x + i); i += 8 }
            while i < hi { acc[0] += x[i]; i += 1 }
            for j in 0..<8 { total += Double(acc[j]) }
        }
        return total
    }

    /// Mean of all elements.
    public func mean() -> Float { count == 0 ? .nan : Float(sumInDouble() / Double(count)) }

    /// Largest absolute value (0 for an empty tensor; NaN if any element is NaN).
    public func maxAbs() -> Float {
        var m: Float = 0
        for i in 0..<count {
            let a = Swift.abs(data[i])
            if a.isNaN { return .nan }
            m = Swift.max(m, a)
        }
        return m
    }
}
