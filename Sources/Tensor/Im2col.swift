/// Lowers a convolution to a GEMM: copies the receptive fields of a block of output pixels into
/// rows of `[kh * kw * Cin]`, ordered `(i, j, c)` to match a kernel stored `[Cout, kh, kw, Cin]`.
///
/// NHWC makes each kernel row's span `(j, c)` one contiguous run of `kw * Cin` floats in the input
/// whenever it lies inside the image, so a row is `kh` copies (plus zeros at the borders). With
/// `stride == kernel` and no padding this is exactly space-to-depth.
/// Reproduces the lowering of PyTorch's `slow_conv2d` (aten/src/ATen/native/ConvolutionMM2d.cpp),
/// with the channels-last column order.
struct Im2col {
    // x: [B, H, W, Cin] -> rows of [kh, kw, Cin] for output pixels [B, Ho, Wo] (flattened)
    let batch, height, width, channels: Int
    let kernelHeight, kernelWidth, stride, padding: Int
    let outHeight, outWidth: Int

    /// Elements of one row (`kh * kw * Cin`).
    var rowLength: Int { kernelHeight * kernelWidth * channels }

    /// Writes the rows of output pixels `rows` (flat over `[B, Ho, Wo]`) to `dst`, one after the other.
    func fill(_ x: UnsafePointer<Float>, rows: Range<Int>, into dst: UnsafeMutablePointer<Float>) {
        let c = channels, kw = kernelWidth, span = kw * c
        let perImage = outHeight * outWidth
        var out = dst
        for r in rows {
            let b = r / perImage, p = r - b * perImage
            let oy = p / outWidth, ox = p - oy * outWidth
            let ix0 = ox * stride - padding
            let jLo = max(0, -ix0), jHi = min(kw, width - ix0)
            for i in 0..<kernelHeight {
                let iy = oy * stride - padding + i
                if iy < 0 || iy >= height || jHi <= jLo {
                    out.update(repeating: 0, count: span)
                } else {
                    if jLo > 0 { out.update(repeating: 0, count: jLo * c) }
                    let src = x + ((b * height + iy) * width + ix0 + jLo) * c
                    (out + jLo * c).update(from: src, count: (jHi - jLo) * c)
                    if jHi < kw { (out + jHi * c).update(repeating: 0, count: (kw - jHi) * c) }
                }
                out += span
            }
        }
    }
}
