/// How a `DepthwiseConv2d` fills the border it reads outside the image.
public enum PaddingMode: Sendable {
    /// Zeros, as `Conv2d(..., padding=p)`.
    case zeros
    /// The nearest edge pixel, as `nn.ReplicationPad2d(p)` before a valid convolution.
    case replicate
}

/// Depthwise `torch.nn.Conv2d(c, c, k, padding=p, groups=c)` with stride 1, over NHWC images.
///
/// Würstchen's ResBlock uses zero padding (`Conv2d(c, c, 3, padding=1, groups=c)`, diffusers
/// `pipelines/wuerstchen/modeling_wuerstchen_common.py`); Paella's MixingResidualBlock uses
/// `Sequential(nn.ReplicationPad2d(1), nn.Conv2d(c, c, 3, groups=c))`
/// (`pipelines/wuerstchen/modeling_paella_vq_model.py`).
/// A direct loop: NHWC puts the channels, which never mix, on the contiguous axis, so every tap is
/// a vector multiply-add over channels; output rows are split across the pool. 3x3 kernels with
/// padding 1 (the model's only case) take a register-blocked path, any other size a general one.
/// Each output is `bias + sum over taps (row-major over the kernel) of w * x`, in float32 (fused
/// multiply-adds on the 3x3 path).
public struct DepthwiseConv2d: @unchecked Sendable {
    /// The checkpoint's `weight` (`[C, 1, k, k]`), stored permuted to `[k, k, C]` (channels contiguous).
    public let weight: Tensor
    /// The checkpoint's `bias` (`[C]`), or nil for `bias=False`.
    public let bias: Tensor?
    /// Border width read outside the image on every side.
    public let padding: Int
    /// What the border holds.
    public let paddingMode: PaddingMode
    /// Channels.
    public let channels: Int
    /// Kernel size (square).
    public let kernelSize: Int
    /// For 3x3 kernels, the weights of the first `C & ~7` channels again as `[C / 8, 9, 8]`: the nine
    /// tap vectors of an 8-channel slice side by side, at fixed offsets from one pointer.
    private let slices: Tensor?

    /// A layer over PyTorch-layout parameters: `weight` `[C, 1, k, k]`, `bias` `[C]`;
    /// `padding` defaults to `k / 2` (same-size output for odd `k`).
    public init(weight: Tensor, bias: Tensor?, padding: Int? = nil, paddingMode: PaddingMode = .zeros) {
        precondition(
            weight.rank == 4 && weight.shape[1] == 1 && weight.shape[2] == weight.shape[3],
            "DepthwiseConv2d weight must be [C, 1, k, k], got \(weight.shape)")
        let c = weight.shape[0], k = weight.shape[2]
        if let bias { precondition(bias.shape == [c], "DepthwiseConv2d bias must be [\(c)], got \(bias.shape)") }
        let p = padding ?? k / 2
        precondition(p >= 0 && p < k, "DepthwiseConv2d padding must be in 0..<\(k), got \(p)")
        channels = c
        kernelSize = k
        self.padding = p
        self.paddingMode = paddingMode
        self.bias = bias
        // [C, 1, k, k] -> [k, k, C]
        let w = Tensor(uninitialized: [k, k, c])
        for ch in 0..<c {
            for t in 0..<(k * k) { w.data[t * c + ch] = weight.data[ch * k * k + t] }
        }
        self.weight = w
        if k == 3 && c >= 8 {
            let packed = Tensor(uninitialized: [c / 8, 9, 8])
            for ch in 0..<(c & ~7) {
                for t in 0..<9 { packed.data[(ch / 8) * 72 + t * 8 + ch % 8] = w.data[t * c + ch] }
            }
            slices = packed
        } else {
            slices = nil
        }
    }

    /// x: [B, H, W, C] -> [B, H + 2p - k + 1, W + 2p - k + 1, C]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[3] == channels, "DepthwiseConv2d expects [B, H, W, \(channels)], got \(x.shape)")
        let b = x.shape[0], h = x.shape[1], w = x.shape[2], c = channels, k = kernelSize, p = padding
        let ho = h + 2 * p - k + 1, wo = w + 2 * p - k + 1
        precondition(ho > 0 && wo > 0, "DepthwiseConv2d input \(x.shape) is smaller than the \(k)x\(k) kernel with padding \(p)")
        let out = Tensor(uninitialized: [b, ho, wo, c])
        let c8 = c & ~7
        if k == 3 && p == 1, let slices {
            // The model's case (3x3, same size); a channel tail past the 8-channel slices goes the general way.
            run3x3(x.data, out.data, slices.data, batch: b, height: h, width: w)
            if c8 < c { runGeneral(x, out, fromChannel: c8) }
        } else {
            runGeneral(x, out, fromChannel: 0)
        }
        return out
    }

    /// 3x3 kernel, padding 1 (both modes), channels `0..<C & ~7`.
    ///
    /// Output rows are split across the pool. A row goes in blocks of four pixels: for each 8-channel
    /// slice, the block's nine weight vectors and four accumulators sit in registers and each of the
    /// 3 x 6 input vectors it reads is loaded once and used for every output it touches (nine FMAs per
    /// output for about seven loads: the FMA ports, not the loads, set the pace, ~1.8 ns per output
    /// vector on one core). The slice loop is innermost, so every load walks memory contiguously and
    /// the hardware prefetchers follow (sweeping a row with the slice fixed strides by a whole pixel,
    /// crosses a page every step or so and ran at half the speed). The blocks at the row's ends and the
    /// rows at the image's top and bottom are specialised calls: no bounds checks inside.
    /// Each output is `bias + sum of the taps in row-major kernel order`, as in the general path.
    private func run3x3(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ packed: UnsafePointer<Float>,
        batch b: Int, height h: Int, width w: Int
    ) {
        let c = channels
        let replicate = paddingMode == .replicate
        let wt = packed, biasPtr = bias.map { UnsafePointer($0.data) }
        Compute.pool.parallelFor(b * h, grain: 2) { range in
            for row in range {
                let bi = row / h, oy = row - bi * h
                let mid = src + (bi * h + oy) * w * c
                // Rows outside the image: absent (zeros) or the edge row itself (replicate).
                let top: UnsafePointer<Float>? = oy > 0 ? mid - w * c : (replicate ? mid : nil)
                let bottom: UnsafePointer<Float>? = oy + 1 < h ? mid + w * c : (replicate ? mid : nil)
                let o = dst + row * w * c
                switch (top, bottom) {
                case let (t?, d?):
                    Self.row3x3(o, t, mid, d, wt, biasPtr, w, c, replicate, hasTop: true, hasBottom: true)
                case let (t?, nil):
                    Self.row3x3(o, t, mid, mid, wt, biasPtr, w, c, replicate, hasTop: true, hasBottom: false)
                case let (nil, d?):
                    Self.row3x3(o, mid, mid, d, wt, biasPtr, w, c, replicate, hasTop: false, hasBottom: true)
                case (nil, nil):
                    Self.row3x3(o, mid, mid, mid, wt, biasPtr, w, c, replicate, hasTop: false, hasBottom: false)
                }
            }
        }
    }

    /// One output row `o` from the input rows above (`t`), at (`m`) and below (`d`) it; a row whose flag
    /// is false is outside the image and not read.
    @inline(__always)
    private static func row3x3(
        _ o: UnsafeMutablePointer<Float>, _ t: UnsafePointer<Float>, _ m: UnsafePointer<Float>, _ d: UnsafePointer<Float>,
        _ wt: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?, _ width: Int, _ c: Int, _ replicate: Bool,
        hasTop: Bool, hasBottom: Bool
    ) {
        let rows = Rows3(t: t, m: m, d: d, wt: wt, bias: bias, c: c, hasTop: hasTop, hasBottom: hasBottom)
        if width < 4 {
            // Column offsets (in floats) of the left, centre and right taps; at the edges, replicate
            // reads the edge pixel again.
            for ox in 0..<width {
                let x = ox * c, l = max(ox - 1, 0) * c, r = min(ox + 1, width - 1) * c
                rows.pixel(o, l, x, r, hasLeft: ox > 0 || replicate, hasRight: ox < width - 1 || replicate)
            }
            return
        }
        if width == 4 {
            rows.block4(o, 0, leftEdge: true, rightEdge: true, replicate: replicate)
            return
        }
        // Blocks of four pixels; the last one ends at the right edge and may overlap the one before
        // it (the overlapped pixels come out the same).
        rows.block4(o, 0, leftEdge: true, rightEdge: false, replicate: replicate)
        var ox = 4
        while ox + 4 < width {
            rows.block4(o, ox * c, leftEdge: false, rightEdge: false, replicate: replicate)
            ox += 4
        }
        rows.block4(o, (width - 4) * c, leftEdge: false, rightEdge: true, replicate: replicate)
    }

    /// The three input rows of one output row with the packed weights (`[C / 8, 9, 8]`) and the bias:
    /// the inner kernels. Every pointer advances by one slice per iteration and the taps sit at fixed
    /// or `c`-scaled offsets from them, so the loops keep their addresses in registers.
    private struct Rows3 {
        let t: UnsafePointer<Float>, m: UnsafePointer<Float>, d: UnsafePointer<Float>
        let wt: UnsafePointer<Float>, bias: UnsafePointer<Float>?
        let c: Int
        let hasTop: Bool, hasBottom: Bool

        /// One pixel, every slice: `o[x] = bias + taps`, reading columns `l`, `x`, `r` (float offsets).
        @inline(__always)
        func pixel(_ o: UnsafeMutablePointer<Float>, _ l: Int, _ x: Int, _ r: Int, hasLeft: Bool, hasRight: Bool) {
            var w = wt, ch = 0
            while ch + 8 <= c {
                var acc = bias.map { VectorMath.load($0 + ch) } ?? SIMD8<Float>()
                @inline(__always) func tapRow(_ row: UnsafePointer<Float>, _ tap: Int) {
                    let p = row + ch
                    if hasLeft { acc = acc.addingProduct(VectorMath.load(w + 8 * tap), VectorMath.load(p + l)) }
                    acc = acc.addingProduct(VectorMath.load(w + 8 * (tap + 1)), VectorMath.load(p + x))
                    if hasRight { acc = acc.addingProduct(VectorMath.load(w + 8 * (tap + 2)), VectorMath.load(p + r)) }
                }
                if hasTop { tapRow(t, 0) }
                tapRow(m, 3)
                if hasBottom { tapRow(d, 6) }
                VectorMath.store(acc, o + x + ch)
                w += 72
                ch += 8
            }
        }

        /// Four pixels starting at column offset `x`, every slice. `leftEdge`: the first pixel is the
        /// row's first (its left tap is padding: skipped for zeros, the pixel itself for replicate);
        /// `rightEdge` likewise for the last pixel.
        @inline(__always)
        func block4(_ o: UnsafeMutablePointer<Float>, _ x: Int, leftEdge: Bool, rightEdge: Bool, replicate: Bool) {
            var w = wt
            var pt = t + x - c, pm = m + x - c, pd = d + x - c, q = o + x
            var bp = bias
            let end = q + (c & ~7)
            while q < end {
                let b: SIMD8<Float>
                if let p = bp {
                    b = VectorMath.load(p)
                    bp = p + 8
                } else {
                    b = SIMD8<Float>()
                }
                var a0 = b, a1 = b, a2 = b, a3 = b
                @inline(__always) func tapRow(_ p: UnsafePointer<Float>, _ tap: Int) {
                    let w0 = VectorMath.load(w + 8 * tap), w1 = VectorMath.load(w + 8 * (tap + 1)), w2 = VectorMath.load(w + 8 * (tap + 2))
                    let p3 = p + 3 * c
                    let x1 = VectorMath.load(p + c)
                    if !leftEdge {
                        a0 = a0.addingProduct(w0, VectorMath.load(p))
                    } else if replicate {
                        a0 = a0.addingProduct(w0, x1)
                    }
                    a0 = a0.addingProduct(w1, x1)
                    a1 = a1.addingProduct(w0, x1)
                    let x2 = VectorMath.load(p + 2 * c)
                    a0 = a0.addingProduct(w2, x2)
                    a1 = a1.addingProduct(w1, x2)
                    a2 = a2.addingProduct(w0, x2)
                    let x3 = VectorMath.load(p3)
                    a1 = a1.addingProduct(w2, x3)
                    a2 = a2.addingProduct(w1, x3)
                    a3 = a3.addingProduct(w0, x3)
                    let x4 = VectorMath.load(p3 + c)
                    a2 = a2.addingProduct(w2, x4)
                    a3 = a3.addingProduct(w1, x4)
                    if !rightEdge {
                        a3 = a3.addingProduct(w2, VectorMath.load(p3 + 2 * c))
                    } else if replicate {
                        a3 = a3.addingProduct(w2, x4)
                    }
                }
                if hasTop { tapRow(pt, 0) }
                tapRow(pm, 3)
                if hasBottom { tapRow(pd, 6) }
                VectorMath.store(a0, q)
                VectorMath.store(a1, q + c)
                VectorMath.store(a2, q + 2 * c)
                VectorMath.store(a3, q + 3 * c)
                w += 72
                pt += 8
                pm += 8
                pd += 8
                q += 8
            }
        }
    }

    /// Any kernel size and padding, channels `from..<C`: per pixel, the list of taps inside the image
    /// (or clamped to it), then a vector loop over channels.
    private func runGeneral(_ x: Tensor, _ out: Tensor, fromChannel first: Int) {
        let b = x.shape[0], h = x.shape[1], w = x.shape[2], c = channels, k = kernelSize, p = padding
        let ho = out.shape[1], wo = out.shape[2]
        let replicate = paddingMode == .replicate
        let src = x.data, dst = out.data, wt = weight.data
        let biasPtr = bias?.data

        Compute.pool.parallelFor(b * ho, grain: 4) { range in
            // Offsets of the taps that read inside the image for the current pixel: weight element
            // and input element, both without the channel.
            let tapW = UnsafeMutablePointer<Int>.allocate(capacity: 2 * k * k)
            let tapX = tapW + k * k
            let rowOff = UnsafeMutablePointer<Int>.allocate(capacity: 2 * k)
            let rowTap = rowOff + k
            defer {
                tapW.deallocate()
                rowOff.deallocate()
            }
            for row in range {
                let bi = row / ho, oy = row - bi * ho
                var rows = 0
                for i in 0..<k {
                    var iy = oy - p + i
                    if iy < 0 || iy >= h {
                        if !replicate { continue }
                        iy = min(max(iy, 0), h - 1)
                    }
                    rowOff[rows] = (bi * h + iy) * w * c
                    rowTap[rows] = i * k
                    rows += 1
                }
                for ox in 0..<wo {
                    var n = 0
                    for r in 0..<rows {
                        for j in 0..<k {
                            var ix = ox - p + j
                            if ix < 0 || ix >= w {
                                if !replicate { continue }
                                ix = min(max(ix, 0), w - 1)
                            }
                            tapW[n] = (rowTap[r] + j) * c
                            tapX[n] = rowOff[r] + ix * c
                            n += 1
                        }
                    }
                    let o = dst + (row * wo + ox) * c
                    var ch = first
                    while ch + 8 <= c {
                        var acc = biasPtr.map { VectorMath.load($0 + ch) } ?? SIMD8<Float>()
                        for t in 0..<n { acc += VectorMath.load(wt + tapW[t] + ch) * VectorMath.load(src + tapX[t] + ch) }
                        VectorMath.store(acc, o + ch)
                        ch += 8
                    }
                    while ch < c {
                        var acc = biasPtr?[ch] ?? 0
                        for t in 0..<n { acc += wt[tapW[t] + ch] * src[tapX[t] + ch] }
                        o[ch] = acc
                        ch += 1
                    }
                }
            }
        }
    }
}
