/// Symmetric int8 GEMM weights with one scale per output channel, the resident form of GEMM weights in
/// `int8` precision: row `j` of the PyTorch `[out, in]` matrix is `scale[j] * q[j, :]`, `q` in -127...127
/// (`scale[j] = max |w[j, :]| / 127`, round to nearest even, rounded once at load). `rowSums[j]` is
/// `sum q[j, :]`, which the GEMM needs to undo the activations' zero points.
public final class Int8Weights: @unchecked Sendable {
    /// `rows * cols` signed bytes, row-major, 64-byte aligned.
    public let values: UnsafeMutablePointer<Int8>
    /// `rows` scales.
    public let scales: UnsafeMutablePointer<Float>
    /// `rows` sums of each row's `values`.
    public let rowSums: UnsafeMutablePointer<Int32>
    /// Output channels.
    public let rows: Int
    /// Input features.
    public let cols: Int

    /// `rows x cols` Float32 values at `source` (row-major) quantised per row on the pool.
    public init(quantizing source: UnsafePointer<Float>, rows: Int, cols: Int) {
        precondition(rows >= 0 && cols >= 0, "Int8Weights [\(rows), \(cols)]")
        self.rows = rows
        self.cols = cols
        values = UnsafeMutableRawPointer.allocate(byteCount: max(rows * cols, 1), alignment: 64)
            .bindMemory(to: Int8.self, capacity: max(rows * cols, 1))
        scales = .allocate(capacity: max(rows, 1))
        rowSums = .allocate(capacity: max(rows, 1))
        let values = values, scales = scales, rowSums = rowSums
        Compute.pool.parallelFor(rows, grain: max(1, 65536 / max(cols, 1))) { r in
            for j in r {
                let w = source + j * cols, q = values + j * cols
                var amax: Float = 0
                for i in 0..<cols { amax = max(amax, abs(w[i])) }
                let scale = amax > 0 ? amax / 127 : 1
                let inv = 1 / scale
                var sum: Int32 = 0
                for i in 0..<cols {
                    let v = Int32(max(-127, min(127, (w[i] * inv).rounded(.toNearestOrEven))))
                    q[i] = Int8(truncatingIfNeeded: v)
                    sum &+= v
                }
                scales[j] = scale
                rowSums[j] = sum
            }
        }
    }

    deinit {
        UnsafeMutableRawPointer(values).deallocate()
        scales.deallocate()
        rowSums.deallocate()
    }

    /// The weights as Float32 `[rows, cols]` (`scale[j] * q[j, i]`).
    public func dequantized() -> Tensor {
        let out = Tensor(uninitialized: [rows, cols])
        let cols = cols, values = values, scales = scales
        Compute.pool.parallelFor(rows, grain: max(1, 65536 / max(cols, 1))) { r in
            for j in r {
                for i in 0..<cols { out.data[j * cols + i] = scales[j] * Float(values[j * cols + i]) }
            }
        }
        return out
    }
}

/// Dynamic asymmetric quantisation of GEMM activations, one scale and zero point per row (a token or a
/// pixel): `x[i, :] ~ scale[i] * (q[i, :] - zero[i])` with `q` unsigned in 0...`levels`, over the row's
/// range widened to include 0 (so that zero padding and ReLU zeros stay exact).
///
/// Why per row, asymmetric, unsigned: x86 int8 dot products (`vpmaddubsw`, `vpdpbusd`) multiply unsigned by
/// signed bytes, so u8 activations need no shift; a per-row zero point cannot be given to oneDNN, but with
/// the weights' row sums it is undone exactly in integers (`sum_k q w - zero * sum_k w`) in the epilogue,
/// where the per-row scale is applied too. Rows differ a lot in range (CLIP's first token is 10-100x the
/// others), which per-tensor scaling would flatten into a handful of levels for every other token.
///
/// `levels` is 255 where oneDNN runs VNNI (32-bit accumulation in the instruction) and 127 elsewhere:
/// without VNNI, `vpmaddubsw` adds two u8 x s8 products into a saturating int16, which 127 x 127 x 2 = 32258
/// cannot overflow and 255 x 127 x 2 can.
enum ActivationQuantizer {
    private typealias VF = SIMD8<Float>

    /// Rows `rows` of `a` (`lda` apart, `k` used) into `q` (packed, `k` apart), with their scales and zero points.
    static func quantize(
        _ a: UnsafePointer<Float>, lda: Int, k: Int, rows: Range<Int>, levels: Int,
        into q: UnsafeMutablePointer<UInt8>, scales: UnsafeMutablePointer<Float>, zeros: UnsafeMutablePointer<Int32>
    ) {
        let raw = UnsafeRawPointer(a)
        let top = Float(levels)
        for i in rows {
            let x = a + i * lda, xr = raw + i * lda * 4
            // Range of the row, with 0 inside. (`replacing(with:where:)` inlines; `pointwiseMin` and the
            // stdlib's float-to-integer vector conversions are generic calls per lane here.)
            var lo = VF(repeating: 0), hi = VF(repeating: 0)
            var c = 0
            while c + 8 <= k {
                let v = xr.loadUnaligned(fromByteOffset: c * 4, as: VF.self)
                lo = lo.replacing(with: v, where: v .< lo)
                hi = hi.replacing(with: v, where: v .> hi)
                c += 8
            }
            var mn = lo.min(), mx = hi.max()
            while c < k {
                mn = min(mn, x[c])
                mx = max(mx, x[c])
                c += 1
            }
            let scale = mx > mn ? (mx - mn) / top : 1
            let inv = 1 / scale
            let zero = max(0, min(top, (-mn * inv).rounded(.toNearestOrEven)))
            scales[i] = scale
            zeros[i] = Int32(zero)
            let out = UnsafeMutableRawPointer(q + i * k)
            let vinv = VF(repeating: inv), vz = VF(repeating: zero), vtop = VF(repeating: top), v0 = VF(repeating: 0)
            // Adding 1.5 * 2^23 rounds a value in [0, 2^22) to the nearest integer, ties to even, and leaves that
            // integer in the low mantissa bits.
            let magic = VF(repeating: 0x1.8p23)
            c = 0
            while c + 8 <= k {
                let v = xr.loadUnaligned(fromByteOffset: c * 4, as: VF.self)
                var t = v * vinv + vz
                t = t.replacing(with: v0, where: t .< v0)
                t = t.replacing(with: vtop, where: t .> vtop)
                let bits = unsafeBitCast(t + magic, to: SIMD8<UInt32>.self)
                out.storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: bits), toByteOffset: c, as: SIMD8<UInt8>.self)
                c += 8
            }
            while c < k {
                q[i * k + c] = UInt8(max(0, min(top, (x[c] * inv).rounded(.toNearestOrEven) + zero)))
                c += 1
            }
        }
    }
}
