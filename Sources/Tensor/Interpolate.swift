// Bicubic resampling with antialiasing, exactly as PyTorch's CPU kernel for
// `F.interpolate(x, size, mode="bicubic", antialias=True, align_corners=...)` on float32.
// https://github.com/pytorch/pytorch/blob/main/aten/src/ATen/native/cpu/UpSampleKernel.cpp
// (`upsample_bicubic2d_aa_kernel_impl` -> `separable_upsample_generic_Nd_kernel_impl`,
// `HelperInterpCubic::aa_filter`, `HelperInterpBase::_compute_indices_min_size_weights_aa`).
//
// What makes it "exact":
// - Separable: the width pass first (into a temporary), then the height pass; a pass whose size
//   does not change is skipped, and equal sizes are a copy.
// - Per output index i: `center = scale * (i + 0.5)` even with align_corners (which only changes
//   the scale to (in - 1) / (out - 1)); the support is 2 input pixels, widened to 2 * scale when
//   downsampling, with the filter argument scaled by 1/scale; weights are normalised to sum 1.
// - The filter is Keys' cubic with a = -0.5 (the non-antialiased bicubic uses -0.75).
// - Weights and accumulations are float32, with the same promotions to double the C++ makes
//   (`i + 0.5`, `+ 0.5`, `1.0 / scale`), and each output is `x0 * w0 + x1 * w1 + ...` left to right.
// - Rounding as PyTorch's x86-64 build executes that C++ (found by extracting its weights with
//   one-hot inputs and checking every output bit for bit): GCC contracts the cubic's polynomial into
//   fused multiply-adds, and compiles the tap loop `output += t * w` as 4-wide vector products added
//   in order (each product rounded) for the first multiple of 4 taps after the first, then a fused
//   multiply-add per remaining tap. `scripts/fixtures/interpolate.py` covers up to 50 taps.

/// `F.interpolate(x, size: (height, width), mode: "bicubic", antialias: true, align_corners: alignCorners)`.
/// x: [N, H, W, C] -> [N, height, width, C]
public func interpolateBicubicAntialias(_ x: Tensor, height: Int, width: Int, alignCorners: Bool = true) -> Tensor {
    precondition(x.rank == 4, "interpolateBicubicAntialias expects NHWC [N, H, W, C], got \(x.shape)")
    precondition(height > 0 && width > 0, "interpolateBicubicAntialias output size must be positive, got \(height)x\(width)")
    let n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3)
    precondition(h > 0 && w > 0, "interpolateBicubicAntialias input has an empty spatial size: \(x.shape)")
    if h == height && w == width { return x.copy() }
    var current = x
    if w != width {
        // Width pass: [N, H, W, C] -> [N, H, width, C]; each output pixel mixes pixels of its row.
        let f = AntialiasFilter(input: w, output: width, alignCorners: alignCorners)
        let out = Tensor(uninitialized: [n, h, width, c])
        let src = current
        Compute.pool.parallelFor(n * h, grain: 4) { rows in
            for r in rows {
                f.apply(
                    source: src.data + r * w * c, sourceStride: c, destination: out.data + r * width * c,
                    destinationStride: c, length: c)
            }
        }
        current = out
    }
    if h != height {
        // Height pass: [N, H, width, C] -> [N, height, width, C]; whole rows (width * C floats) mix.
        let f = AntialiasFilter(input: h, output: height, alignCorners: alignCorners)
        let out = Tensor(uninitialized: [n, height, width, c])
        let src = current
        let row = width * c
        Compute.pool.parallelFor(n) { images in
            for i in images {
                f.apply(
                    source: src.data + i * h * row, sourceStride: row, destination: out.data + i * height * row,
                    destinationStride: row, length: row)
            }
        }
        current = out
    }
    return current
}

/// One dimension's taps: output i reads input `start[i] ..< start[i] + size[i]` with
/// `weights[i * taps ..< i * taps + size[i]]`.
private struct AntialiasFilter {
    var start: [Int] = []
    var size: [Int] = []
    var weights: [Float] = []
    let taps: Int
    let outputCount: Int

    init(input: Int, output: Int, alignCorners: Bool) {
        // area_pixel_compute_scale<float>
        let scale: Float =
            alignCorners
            ? (output > 1 ? Float(input - 1) / Float(output - 1) : 0)
            : Float(input) / Float(output)
        // support = (interp_size * 0.5) * scale when downsampling (computed in double, stored float).
        let support: Float = scale >= 1 ? Float(2.0 * Double(scale)) : 2
        taps = Int(support.rounded(.up)) * 2 + 1
        outputCount = output
        let invscale: Float = scale >= 1 ? Float(1.0 / Double(scale)) : 1
        weights = [Float](repeating: 0, count: output * taps)
        for i in 0..<output {
            let center = Float(Double(scale) * (Double(i) + 0.5))
            // static_cast<int64_t> truncates toward zero.
            let xmin = max(Int(Double(center - support) + 0.5), 0)
            let xsize = min(max(min(Int(Double(center + support) + 0.5), input) - xmin, 0), taps)
            var total: Float = 0
            for j in 0..<xsize {
                let arg = Float((Double(Float(j + xmin) - center) + 0.5) * Double(invscale))
                let wj = AntialiasFilter.keysCubic(arg)
                weights[i * taps + j] = wj
                total += wj
            }
            if total != 0 {
                for j in 0..<xsize { weights[i * taps + j] /= total }
            }
            start.append(xmin)
            size.append(xsize)
        }
    }

    /// Keys' cubic convolution kernel with a = -0.5, in float32 (`HelperInterpCubic::aa_filter`).
    /// `((a + 2) * x - (a + 3)) * x * x + 1` below 1, `((a * x - 5a) * x + 8a) * x - 4a` below 2, with
    /// the multiply-adds fused as GCC compiles them.
    static func keysCubic(_ x: Float) -> Float {
        let a: Float = -0.5
        let x = abs(x)
        if x < 1 {
            let t = (-(a + 3)).addingProduct(a + 2, x)
            return Float(1).addingProduct(t * x, x)
        }
        if x < 2 {
            let t = (-(5 * a)).addingProduct(a, x)
            return (-(4 * a)).addingProduct((8 * a).addingProduct(t, x), x)
        }
        return 0
    }

    /// destination[i * dStride + k] = sum_j w_ij * source[(start_i + j) * sStride + k], k < length.
    func apply(
        source: UnsafeMutablePointer<Float>, sourceStride: Int, destination: UnsafeMutablePointer<Float>,
        destinationStride: Int, length: Int
    ) {
        weights.withUnsafeBufferPointer { wts in
            for i in 0..<outputCount {
                let d = destination + i * destinationStride
                let s = source + start[i] * sourceStride
                let w = wts.baseAddress! + i * taps
                let count = size[i]
                if count == 0 {
                    d.update(repeating: 0, count: length)
                    continue
                }
                // First tap assigns, the others accumulate in order: the first multiple of 4 with
                // rounded products, the rest fused (see the top of the file).
                let w0 = w[0]
                for k in 0..<length { d[k] = s[k] * w0 }
                let unfused = (count - 1) / 4 * 4
                for j in 1..<count {
                    let wj = w[j]
                    let sj = s + j * sourceStride
                    if j <= unfused {
                        for k in 0..<length { d[k] += sj[k] * wj }
                    } else {
                        // fma(sj, wj, d): the product is exact in Double; one more rounding to Float
                        // (differs from a true fma only on double-rounding ties, at most 1 ulp).
                        let wd = Double(wj)
                        for k in 0..<length { d[k] = Float(Double(sj[k]) * wd + Double(d[k])) }
                    }
                }
            }
        }
    }
}
