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
/// a vector multiply-add over channels; output rows are split across the pool. Each output is
/// `bias + sum over taps (row-major over the kernel) of w * x`, in float32.
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
    }

    /// x: [B, H, W, C] -> [B, H + 2p - k + 1, W + 2p - k + 1, C]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[3] == channels, "DepthwiseConv2d expects [B, H, W, \(channels)], got \(x.shape)")
        let b = x.shape[0], h = x.shape[1], w = x.shape[2], c = channels, k = kernelSize, p = padding
        let ho = h + 2 * p - k + 1, wo = w + 2 * p - k + 1
        precondition(ho > 0 && wo > 0, "DepthwiseConv2d input \(x.shape) is smaller than the \(k)x\(k) kernel with padding \(p)")
        let out = Tensor(uninitialized: [b, ho, wo, c])
        let replicate = paddingMode == .replicate
        let src = x.data, dst = out.data, wt = weight.data
        let biasPtr = bias?.data
        let c8 = c & ~7

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
                    var ch = 0
                    while ch < c8 {
                        var acc = biasPtr.map { load8($0 + ch) } ?? SIMD8<Float>()
                        for t in 0..<n { acc += load8(wt + tapW[t] + ch) * load8(src + tapX[t] + ch) }
                        store8(acc, o + ch)
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
        return out
    }
}

@inline(__always) private func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) private func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) private func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
