extension Tensor {
    // x: [..., H, W, 3] in [0, 1] -> count bytes, same order

    /// Pixels to 8-bit values: `round(clamp(x, 0, 1) * 255)` with ties to even, as diffusers'
    /// `numpy_to_pil` (`(images * 255).round().astype("uint8")`), for image encoders that take bytes.
    public func pixelBytes() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let src = data
        for i in 0..<count {
            let v = Swift.min(Swift.max(src[i], 0), 1) * 255
            out[i] = UInt8(v.rounded(.toNearestOrEven))
        }
        return out
    }
}
