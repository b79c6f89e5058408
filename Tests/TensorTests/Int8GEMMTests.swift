import Foundation
import Testing
@testable import Tensor

/// The int8 path of the GEMM seam (int8 weights per output channel, u8 activations per row, oneDNN with
/// int32 accumulation) against a float64 product of the unquantised operands.
///
/// The bound each output must meet is the quantisation error itself: with weight steps `dw[j]` (the row's
/// scale, `max |w[j, :]| / 127`) and activation steps `da[i]` (`range of x[i, :] with 0 / levels`), every
/// element is off by at most half a step, so
/// `|y[i, j] - exact| <= sum_k (|x[i, k]| dw[j] / 2 + |w[j, k]| da[i] / 2 + da[i] dw[j] / 4)`;
/// the integer product is exact, so only the float32 epilogue adds to it (1e-5 relative slack here).
@Suite(.enabled(if: Precision.int8Supported, "oneDNN runs no vector int8 kernels here (no AVX2): int8 falls back to fp32, nothing to test"))
struct Int8GEMMTests {
    static func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var g = SplitMix(seed: seed)
        return Tensor(shape: shape, values: (0..<Tensor.elementCount(shape)).map { _ in g.nextFloat() * scale })
    }

    /// x [m, k] (rows lda apart) W[rows]^T + b in float64, and the quantisation bound of every element.
    static func reference(
        m: Int, k: Int, x: Tensor, lda: Int, w: Tensor, rows: Range<Int>, bias: Tensor?, weightScales: UnsafePointer<Float>
    ) -> (exact: [Double], bound: [Double]) {
        let levels = Double(Precision.int8ActivationLevels), n = rows.count
        var exact = [Double](repeating: 0, count: m * n), bound = exact
        for i in 0..<m {
            var lo = 0.0, hi = 0.0, l1 = 0.0
            for c in 0..<k {
                let v = Double(x[flat: i * lda + c])
                lo = min(lo, v)
                hi = max(hi, v)
                l1 += abs(v)
            }
            let da = hi > lo ? (hi - lo) / levels : 0
            for (jj, j) in rows.enumerated() {
                var s = Double(bias?[flat: jj] ?? 0), wl1 = 0.0
                for c in 0..<k {
                    let wv = Double(w[flat: j * k + c])
                    s += Double(x[flat: i * lda + c]) * wv
                    wl1 += abs(wv)
                }
                let dw = Double(weightScales[j])
                exact[i * n + jj] = s
                bound[i * n + jj] = l1 * dw / 2 + wl1 * da / 2 + Double(k) * da * dw / 4
            }
        }
        return (exact, bound)
    }

    static func scales(_ w: WeightMatrix) -> Int8Weights {
        guard case .int8(let q) = w.storage else { fatalError("not an int8 weight: \(w.precision)") }
        return q
    }

    /// Checks `got` (rows `ldc` apart) against the reference: every element within its bound; returns
    /// (max |error| / max |exact|, max error / bound).
    static func check(_ what: String, got: Tensor, ldc: Int, n: Int, exact: [Double], bound: [Double]) -> (Double, Double) {
        var err = 0.0, scale = 0.0, ratio = 0.0
        for i in 0..<(exact.count / n) {
            for j in 0..<n {
                let e = abs(Double(got[flat: i * ldc + j]) - exact[i * n + j])
                err = max(err, e)
                scale = max(scale, abs(exact[i * n + j]))
                ratio = max(ratio, e / (bound[i * n + j] * (1 + 1e-5) + 1e-5 * abs(exact[i * n + j]) + 1e-30))
            }
        }
        print("int8 \(what): max error \(err / scale) relative to max |y|, \(ratio) of the quantisation bound (must be <= 1)")
        #expect(ratio <= 1, "int8 \(what): an element is \(ratio) times its quantisation error bound")
        return (err / scale, ratio)
    }

    /// Linear layers of several shapes (tails of every width, rows and columns split over the pool), with
    /// bias: within the bound elementwise, and within 2e-2 of max |y| (uniform operands, k up to 1536).
    @Test(arguments: [(1, 7, 5), (37, 300, 129), (288, 1536, 640), (1000, 64, 3000)])
    func linearWithinQuantisationBound(shape: (m: Int, k: Int, n: Int)) {
        let x = Self.random([shape.m, shape.k], seed: 1), w = Self.random([shape.n, shape.k], seed: 2)
        let b = Self.random([shape.n], seed: 3)
        let layer = Linear(weight: w, bias: b).converted(to: .int8)
        #expect(layer.weight.precision == .int8)
        let (exact, bound) = Self.reference(
            m: shape.m, k: shape.k, x: x, lda: shape.k, w: w, rows: 0..<shape.n, bias: b,
            weightScales: Self.scales(layer.weight).scales)
        let (rel, _) = Self.check("Linear [\(shape.m), \(shape.k)] -> \(shape.n)", got: layer(x), ldc: shape.n, n: shape.n, exact: exact, bound: bound)
        #expect(rel < 2e-2, "relative error \(rel) (tolerance 2e-2)")
    }

    /// Per-row activation scales: rows 1000x apart in size each keep their own precision (a per-tensor
    /// scale would leave the small rows a fraction of one level and fail the bound's per-row `da`).
    @Test func rowsOfVeryDifferentSizeKeepTheirPrecision() {
        let m = 16, k = 256, n = 96
        let x = Self.random([m, k], seed: 4)
        for i in stride(from: 0, to: m, by: 2) {
            for c in 0..<k { x.data[i * k + c] *= 1000 }
        }
        let w = Self.random([n, k], seed: 5)
        let layer = Linear(weight: w, bias: nil).converted(to: .int8)
        let (exact, bound) = Self.reference(
            m: m, k: k, x: x, lda: k, w: w, rows: 0..<n, bias: nil, weightScales: Self.scales(layer.weight).scales)
        let got = layer(x)
        _ = Self.check("rows 1000x apart", got: got, ldc: n, n: n, exact: exact, bound: bound)
        // The small rows alone, relative to their own size.
        var err = 0.0, scale = 0.0
        for i in stride(from: 1, to: m, by: 2) {
            for j in 0..<n {
                err = max(err, abs(Double(got[flat: i * n + j]) - exact[i * n + j]))
                scale = max(scale, abs(exact[i * n + j]))
            }
        }
        print("int8 small rows next to 1000x larger ones: relative error \(err / scale) (tolerance 2e-2)")
        #expect(err / scale < 2e-2, "small rows: relative error \(err / scale)")
    }

    /// Strided rows in and out, a slice of the weight's rows, and accumulation onto the output
    /// (`c += a W[rows]^T + b`), as attention projections and in-place residuals use them; columns past n
    /// untouched.
    @Test func stridedSlicedAccumulating() {
        let m = 300, k = 80, lda = 100, ldc = 70, rows = 16..<56
        let a = Self.random([m, lda], seed: 6), wf = Self.random([64, k], seed: 7)
        let w = WeightMatrix(wf).converted(to: .int8)
        let bias = Self.random([rows.count], seed: 8), start = Self.random([m, ldc], seed: 9)
        let got = start.copy()
        GEMM.linear(m: m, a: a.data, lda: lda, weight: w, rows: rows, bias: bias.data, accumulate: true, c: got.data, ldc: ldc)
        var (exact, bound) = Self.reference(
            m: m, k: k, x: a, lda: lda, w: wf, rows: rows, bias: bias, weightScales: Self.scales(w).scales)
        for i in 0..<m {
            for j in 0..<rows.count { exact[i * rows.count + j] += Double(start[flat: i * ldc + j]) }
        }
        _ = Self.check("strided, sliced, accumulating", got: got, ldc: ldc, n: rows.count, exact: exact, bound: bound)
        for i in 0..<m {
            for j in rows.count..<ldc { #expect(got[flat: i * ldc + j] == start[flat: i * ldc + j]) }
        }
    }

    /// A 1x1 convolution runs int8 (within the bound of its GEMM); larger and transposed kernels keep
    /// their float32 weights in int8 precision and give the float32 result exactly.
    @Test func convolutions() {
        let x = Self.random([2, 12, 10, 24], seed: 11)
        let wf = Self.random([40, 24, 1, 1], seed: 12), b = Self.random([40], seed: 13)
        let pointwise = Conv2d(weight: wf, bias: b).converted(to: .int8)
        #expect(pointwise.weight.precision == .int8)
        let (exact, bound) = Self.reference(
            m: 240, k: 24, x: x, lda: 24, w: wf, rows: 0..<40, bias: b, weightScales: Self.scales(pointwise.weight).scales)
        _ = Self.check("Conv2d 1x1", got: pointwise(x), ldc: 40, n: 40, exact: exact, bound: bound)

        let conv = Conv2d(weight: Self.random([40, 24, 2, 2], seed: 14), bias: b, stride: 2)
        let kept = conv.converted(to: .int8)
        #expect(kept.weight.precision == .fp32)
        #expect(kept(x).toArray() == conv(x).toArray())
        let convT = ConvTranspose2d(weight: Self.random([24, 20, 4, 4], seed: 15), bias: nil, stride: 2, padding: 1)
        let keptT = convT.converted(to: .int8)
        #expect(keptT.precision == .fp32)
        #expect(keptT(x).toArray() == convT(x).toArray())
    }

    /// Weight quantisation: `max |w[j, :]| / 127` per row, round to nearest even, row sums; an all-zero row
    /// gives zeros; back to Float32 as `scale * q`.
    @Test func weightQuantisation() {
        // Row 0 has scale 1/64 (exact): -63.5 -> -64 and 2.5 -> 2 (ties to even), 1.5 -> 2.
        let t = Tensor(shape: [3, 4], values: [1.984375, -0.9921875, 0.0390625, 0.0234375, 0, 0, 0, 0, -2, 0.75, 0.5, 0.007])
        let w = WeightMatrix(t).converted(to: .int8)
        let q = Self.scales(w)
        #expect(Array(UnsafeBufferPointer(start: q.values, count: 12)) == [127, -64, 2, 2, 0, 0, 0, 0, -127, 48, 32, 0])
        #expect(q.scales[0] == 1 / 64 && q.scales[2] == 2 / Float(127))
        #expect(Array(UnsafeBufferPointer(start: q.rowSums, count: 3)) == [67, 0, -47])
        let back = w.float32
        #expect(back[flat: 1] == -1 && back[flat: 4] == 0 && back[flat: 8] == -2)
        // Converting again is the same weight; stacking keeps every row as it was.
        #expect(WeightMatrix.stacked([w, w]).float32.toArray() == back.toArray() + back.toArray())
    }

    /// An input of zeros gives the bias exactly (scale 1, zero point 0: no level is lost).
    @Test func zeroInputGivesTheBias() {
        let layer = Linear(weight: Self.random([33, 40], seed: 16), bias: Self.random([33], seed: 17)).converted(to: .int8)
        let y = layer(Tensor(shape: [5, 40], repeating: 0))
        for i in 0..<5 {
            for j in 0..<33 { #expect(y[flat: i * 33 + j] == layer.bias![flat: j]) }
        }
    }

    /// oneDNN picks a vector int8 kernel (VNNI or AVX2), not its reference loop.
    @Test func usesVectorInt8Kernels() {
        let name = GEMM.int8Implementation(m: 288, n: 6144, k: 1536)
        print("oneDNN int8 matmul implementation: \(name), activation levels \(Precision.int8ActivationLevels)")
        #expect(!name.contains("ref"), "oneDNN runs \(name)")
    }
}
