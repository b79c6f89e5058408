/// `torch.nn.Conv2d` with zero padding, dilation 1 and groups 1, over NHWC images, on GEMMs.
///
/// Reproduces `torch.nn.functional.conv2d`
/// (https://pytorch.org/docs/stable/generated/torch.nn.Conv2d.html). Two lowerings onto GEMMs:
/// - 1x1, stride 1, no padding: the image is already the matrix `[B*H*W, Cin]` (no copy).
/// - everything else through `Im2col` in blocks of output rows, so the column buffer stays below
///   `workspaceBytes`; a k x k kernel with stride k and no padding (Würstchen's 2x2/stride-2
///   patch embedding and downscalers) makes that a space-to-depth copy of contiguous runs; Paella's
///   4x4/stride-2/padding-1 downscalers take the general path.
/// The default 8 MB workspace keeps the column block in cache for the GEMM (measured as fast as a bare
/// sgemm of the same size; 64 MB blocks were 5-15% slower) and below glibc's mmap threshold.
/// The kernel is permuted once at init so that every GEMM is `[rows, kh*kw*Cin] x W^T`; in `bf16`
/// precision (`converted(to:)`) that kernel is held in bfloat16 and the columns are rounded at the GEMM; in
/// `int8` a 1x1 kernel is held in int8 (its input quantised per pixel at the GEMM) and larger kernels stay
/// float32 (the 2x2 patch embeddings and downscalers see raw latents and mix neighbouring pixels' ranges).
public struct Conv2d: @unchecked Sendable {
    /// The checkpoint's `weight` (`[Cout, Cin, kh, kw]`), stored permuted to `[Cout, kh, kw, Cin]` and
    /// viewed as the GEMM's `[Cout, kh*kw*Cin]`.
    public private(set) var weight: WeightMatrix
    /// The checkpoint's `bias` (`[Cout]`), or nil for `bias=False`.
    public let bias: Tensor?
    /// Step between receptive fields, both axes.
    public let stride: Int
    /// Zeros added on every side, both axes.
    public let padding: Int
    /// Upper bound on the im2col buffer, in bytes (at least one row is always used).
    public let workspaceBytes: Int

    /// Input channels.
    public let inChannels: Int
    /// Output channels.
    public let outChannels: Int
    /// Kernel height.
    public let kernelHeight: Int
    /// Kernel width.
    public let kernelWidth: Int

    /// A layer over PyTorch-layout parameters: `weight` `[Cout, Cin, kh, kw]`, `bias` `[Cout]`.
    public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0, workspaceBytes: Int = 8 << 20) {
        precondition(weight.rank == 4, "Conv2d weight must be [Cout, Cin, kh, kw], got \(weight.shape)")
        precondition(stride >= 1, "Conv2d stride must be >= 1, got \(stride)")
        precondition(padding >= 0, "Conv2d padding must be >= 0, got \(padding)")
        let co = weight.shape[0], ci = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3]
        if let bias { precondition(bias.shape == [co], "Conv2d bias must be [\(co)], got \(bias.shape)") }
        outChannels = co
        inChannels = ci
        kernelHeight = kh
        kernelWidth = kw
        self.stride = stride
        self.padding = padding
        self.bias = bias
        self.workspaceBytes = workspaceBytes
        if kh == 1 && kw == 1 {
            self.weight = WeightMatrix(weight.reshaped([co, ci]))
        } else {
            // [Cout, Cin, kh, kw] -> [Cout, kh, kw, Cin]
            let w = Tensor(uninitialized: [co, kh, kw, ci])
            let src = weight.data, dst = w.data
            for o in 0..<co {
                for c in 0..<ci {
                    for t in 0..<(kh * kw) { dst[(o * kh * kw + t) * ci + c] = src[(o * ci + c) * kh * kw + t] }
                }
            }
            self.weight = WeightMatrix(w.reshaped([co, kh * kw * ci]))
        }
    }

    /// The same layer with its kernel in `precision` (`int8` only for 1x1 kernels, float32 otherwise).
    public func converted(to precision: Precision) -> Conv2d {
        var c = self
        let pointwise = kernelHeight == 1 && kernelWidth == 1
        c.weight = weight.converted(to: precision == .int8 && !pointwise ? .fp32 : precision)
        return c
    }

    /// Output height and width for an input of `height` x `width`.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height + 2 * padding - kernelHeight) / stride + 1, (width + 2 * padding - kernelWidth) / stride + 1)
    }

    /// x: [B, H, W, Cin] -> [B, Ho, Wo, Cout], Ho = (H + 2p - kh) / s + 1
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(
            x.rank == 4 && x.shape[3] == inChannels, "Conv2d expects [B, H, W, \(inChannels)], got \(x.shape)")
        let b = x.shape[0], h = x.shape[1], w = x.shape[2]
        precondition(
            h + 2 * padding >= kernelHeight && w + 2 * padding >= kernelWidth,
            "Conv2d input \(x.shape) is smaller than the \(kernelHeight)x\(kernelWidth) kernel with padding \(padding)")
        let (ho, wo) = outputSize(height: h, width: w)
        let co = outChannels
        let out = Tensor(uninitialized: [b, ho, wo, co])
        let rows = b * ho * wo
        let bias = self.bias

        if kernelHeight == 1 && kernelWidth == 1 && stride == 1 && padding == 0 {
            // The image is the GEMM's A as it stands. (Blocking the rows so the preloaded output stays
            // in cache measured no faster.)
            GEMM.linear(
                m: rows, a: x.data, lda: inChannels, weight: weight, bias: bias?.data, c: out.data, ldc: co)
            return out
        }

        let lowering = Im2col(
            batch: b, height: h, width: w, channels: inChannels, kernelHeight: kernelHeight,
            kernelWidth: kernelWidth, stride: stride, padding: padding, outHeight: ho, outWidth: wo)
        let k = lowering.rowLength
        let blockRows = max(1, min(rows, workspaceBytes / (k * MemoryLayout<Float>.stride)))
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * k)
        defer { buffer.deallocate() }
        var r0 = 0
        while r0 < rows {
            let r1 = min(rows, r0 + blockRows)
            Compute.pool.parallelFor(r1 - r0, grain: 64) { r in
                lowering.fill(x.data, rows: (r0 + r.lowerBound)..<(r0 + r.upperBound), into: buffer + r.lowerBound * k)
            }
            GEMM.linear(
                m: r1 - r0, a: buffer, lda: k, weight: weight, bias: bias?.data, c: out.data + r0 * co, ldc: co)
            r0 = r1
        }
        return out
    }
}
