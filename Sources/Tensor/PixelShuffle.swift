/// `torch.nn.functional.pixel_shuffle` in NHWC: moves `r x r` blocks of channels into space.
///
/// PyTorch (NCHW) maps input channel `c*r*r + i*r + j` at `(h, w)` to channel `c` at `(h*r + i, w*r + j)`
/// (aten/src/ATen/native/PixelShuffle.cpp); the same mapping here with channels last.
/// Paella's VQ-GAN ends its decoder with `nn.PixelShuffle(2)`.
/// x: [B, H, W, C*r*r] -> [B, H*r, W*r, C]
public func pixelShuffle(_ x: Tensor, factor r: Int) -> Tensor {
    precondition(r >= 1, "pixelShuffle factor must be >= 1, got \(r)")
    precondition(
        x.rank == 4 && x.shape[3] % (r * r) == 0,
        "pixelShuffle expects [B, H, W, C*\(r * r)] (channels divisible by \(r * r)), got \(x.shape)")
    let b = x.shape[0], h = x.shape[1], w = x.shape[2], cin = x.shape[3], c = cin / (r * r)
    let ho = h * r, wo = w * r
    let out = Tensor(uninitialized: [b, ho, wo, c])
    let src = x.data, dst = out.data
    let rr = r * r
    Compute.pool.parallelFor(b * ho, grain: 8) { range in
        for row in range {
            let bi = row / ho, oy = row - bi * ho
            let iy = oy / r, i = oy - iy * r
            for ox in 0..<wo {
                let ix = ox / r, j = ox - ix * r
                let s = src + ((bi * h + iy) * w + ix) * cin + i * r + j
                let o = dst + (row * wo + ox) * c
                for ch in 0..<c { o[ch] = s[ch * rr] }
            }
        }
    }
    return out
}

/// `torch.nn.functional.pixel_unshuffle` in NHWC: the inverse of `pixelShuffle`, moving `r x r`
/// blocks of pixels into channels `c*r*r + i*r + j` (PyTorch's order).
/// Paella's VQ-GAN starts its encoder with `nn.PixelUnshuffle(2)`.
/// x: [B, H*r, W*r, C] -> [B, H, W, C*r*r]
public func pixelUnshuffle(_ x: Tensor, factor r: Int) -> Tensor {
    precondition(r >= 1, "pixelUnshuffle factor must be >= 1, got \(r)")
    precondition(
        x.rank == 4 && x.shape[1] % r == 0 && x.shape[2] % r == 0,
        "pixelUnshuffle expects [B, H*\(r), W*\(r), C] (height and width divisible by \(r)), got \(x.shape)")
    let b = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
    let ho = h / r, wo = w / r, rr = r * r, co = c * rr
    let out = Tensor(uninitialized: [b, ho, wo, co])
    let src = x.data, dst = out.data
    Compute.pool.parallelFor(b * ho, grain: 4) { range in
        for row in range {
            let bi = row / ho, oy = row - bi * ho
            for ox in 0..<wo {
                let o = dst + (row * wo + ox) * co
                for i in 0..<r {
                    for j in 0..<r {
                        let s = src + ((bi * h + oy * r + i) * w + ox * r + j) * c
                        let oo = o + i * r + j
                        for ch in 0..<c { oo[ch * rr] = s[ch] }
                    }
                }
            }
        }
    }
    return out
}
