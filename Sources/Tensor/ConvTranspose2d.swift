/// `torch.nn.ConvTranspose2d` (dilation 1, groups 1, no output padding) over NHWC images.
///
/// Reproduces `torch.nn.functional.conv_transpose2d`
/// (https://pytorch.org/docs/stable/generated/torch.nn.ConvTranspose2d.html), lowered as in
/// PyTorch's `slow_conv_transpose2d` (aten/src/ATen/native/NaiveConvolutionTranspose2d.cpp):
/// one GEMM `[rows, Cin] x [Cin, kh*kw*Cout]` gives every input pixel's contribution to each kernel
/// tap, then col2im sums them into the output. The col2im here gathers: each output row is written
/// by one worker from the (at most `ceil(kh/s)`) input rows that reach it, so nothing races. With
/// `kernel == stride` and no padding (Würstchen's 2x2/stride-2 upscalers) every output pixel has
/// exactly one source and col2im is a depth-to-space copy; Paella's 4x4/stride-2/padding-1 upscalers
/// sum four. Input rows are processed in blocks so the GEMM buffer stays below `workspaceBytes`
/// (8 MB by default: in cache for the gather, measured as fast as larger blocks). The GEMM goes through
/// `GEMM.linear`, so in `bf16` precision (`converted(to:)`) the kernel is held in bfloat16 and the input
/// rounded at the GEMM; the col2im sums stay float32. `int8` keeps the kernel float32 (the upscalers).
public struct ConvTranspose2d: @unchecked Sendable {
    /// The checkpoint's `weight` (`[Cin, Cout, kh, kw]`), as the GEMM takes it.
    private var kernel: Kernel
    /// Float32 as `[Cin, kh*kw*Cout]` (OpenBLAS, not transposed); bfloat16 as `[kh*kw*Cout, Cin]`, the
    /// `[out, in]` form `GEMM.linear` takes.
    private enum Kernel {
        case float32(Tensor)
        case bfloat16(WeightMatrix)
    }
    // Deliberate parallel of Conv2d.swift:Conv2d's properties and init: the same layer description, while the
    // kernel layouts ([Cin, Cout, kh, kw]) and lowerings (col2im, not im2col) differ, so no shared type.
    /// The checkpoint's `bias` (`[Cout]`), or nil for `bias=False`.
    public let bias: Tensor?
    /// Step between the input pixels' footprints in the output, both axes.
    public let stride: Int
    /// Rows and columns cropped from every side of the full output, both axes.
    public let padding: Int
    /// Upper bound on the GEMM output buffer, in bytes (at least one input row is always used).
    public let workspaceBytes: Int

    /// Input channels.
    public let inChannels: Int
    /// Output channels.
    public let outChannels: Int
    /// Kernel height.
    public let kernelHeight: Int
    /// Kernel width.
    public let kernelWidth: Int

    /// A layer over PyTorch-layout parameters: `weight` `[Cin, Cout, kh, kw]`, `bias` `[Cout]`.
    public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0, workspaceBytes: Int = 8 << 20) {
        precondition(weight.rank == 4, "ConvTranspose2d weight must be [Cin, Cout, kh, kw], got \(weight.shape)")
        precondition(stride >= 1, "ConvTranspose2d stride must be >= 1, got \(stride)")
        let ci = weight.shape[0], co = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3]
        precondition(
            padding >= 0 && padding < kh && padding < kw,
            "ConvTranspose2d padding must be in 0..<\(min(kh, kw)), got \(padding)")
        if let bias { precondition(bias.shape == [co], "ConvTranspose2d bias must be [\(co)], got \(bias.shape)") }
        inChannels = ci
        outChannels = co
        kernelHeight = kh
        kernelWidth = kw
        self.stride = stride
        self.padding = padding
        self.bias = bias
        self.workspaceBytes = workspaceBytes
        // [Cin, Cout, kh, kw] -> [Cin, kh, kw, Cout]
        let w = Tensor(uninitialized: [ci, kh, kw, co])
        let src = weight.data, dst = w.data
        for c in 0..<ci {
            for o in 0..<co {
                for t in 0..<(kh * kw) { dst[(c * kh * kw + t) * co + o] = src[(c * co + o) * kh * kw + t] }
            }
        }
        kernel = .float32(w)
    }

    /// The precision the kernel is held in.
    public var precision: Precision {
        if case .bfloat16 = kernel { return .bf16 }
        return .fp32
    }

    /// The same layer with its kernel in `precision` (`int8`: float32).
    public func converted(to precision: Precision) -> ConvTranspose2d {
        var c = self
        let n = kernelHeight * kernelWidth * outChannels, ci = inChannels
        switch (kernel, precision == .int8 ? .fp32 : precision) {
        case (.float32(let w), .bf16):
            let t = Tensor(uninitialized: [n, ci])  // [Cin, n] -> [n, Cin]
            for r in 0..<ci {
                for j in 0..<n { t.data[j * ci + r] = w.data[r * n + j] }
            }
            c.kernel = .bfloat16(WeightMatrix(t).converted(to: .bf16))
        case (.bfloat16(let m), .fp32):
            let t = m.float32, w = Tensor(uninitialized: [ci, n])
            for j in 0..<n {
                for r in 0..<ci { w.data[r * n + j] = t.data[j * ci + r] }
            }
            c.kernel = .float32(w)
        default:
            break
        }
        return c
    }

    /// Output height and width for an input of `height` x `width`.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height - 1) * stride - 2 * padding + kernelHeight, (width - 1) * stride - 2 * padding + kernelWidth)
    }

    /// x: [B, H, W, Cin] -> [B, Ho, Wo, Cout], Ho = (H - 1) * s - 2p + kh
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(
            x.rank == 4 && x.shape[3] == inChannels, "ConvTranspose2d expects [B, H, W, \(inChannels)], got \(x.shape)")
        let b = x.shape[0], h = x.shape[1], w = x.shape[2]
        let (ho, wo) = outputSize(height: h, width: w)
        precondition(ho > 0 && wo > 0, "ConvTranspose2d input \(x.shape) gives an empty output")
        let ci = inChannels, co = outChannels, kh = kernelHeight, kw = kernelWidth, s = stride, p = padding
        let n = kh * kw * co  // GEMM columns per input pixel: [kh, kw, Cout]
        let out = Tensor(uninitialized: [b, ho, wo, co])
        let biasPtr = bias?.data

        // Input rows an output row still needs from before the current block.
        let halo = (kh - 1) / s
        let rowFloats = w * n
        let blockRows = max(1, min(h, workspaceBytes / (rowFloats * MemoryLayout<Float>.stride) - halo))
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: (blockRows + halo) * rowFloats)
        defer { buffer.deallocate() }

        // Per output column: its sources (input column, kernel column) as offsets into one input row
        // of the buffer (`(ix * kh * kw + j) * Cout`), `colStart[ox]..<colStart[ox + 1]`.
        var colStart = [Int](repeating: 0, count: wo + 1)
        var colOffsets: [Int] = []
        for ox in 0..<wo {
            for j in 0..<kw where (ox + p - j) % s == 0 {
                let ix = (ox + p - j) / s
                if ix >= 0 && ix < w { colOffsets.append((ix * kh * kw + j) * co) }
            }
            colStart[ox + 1] = colOffsets.count
        }
        colOffsets.append(0)  // never read: keeps the buffer non-empty when no column has a source

        colStart.withUnsafeBufferPointer { colStartBuf in
            colOffsets.withUnsafeBufferPointer { colOffBuf in
                let colStart = colStartBuf.baseAddress!, colOff = colOffBuf.baseAddress!
                for bi in 0..<b {
                    var lo = 0  // first input row held in the buffer
                    var r0 = 0
                    while r0 < h {
                        let r1 = min(h, r0 + blockRows)
                        // Keep the last `halo` rows of the previous block in front of the new ones.
                        let keep = r0 - max(0, r0 - halo)
                        if keep > 0 {
                            (buffer).update(from: buffer + (r0 - keep - lo) * rowFloats, count: keep * rowFloats)
                        }
                        lo = r0 - keep
                        let a = x.data + (bi * h + r0) * w * ci, c = buffer + keep * rowFloats
                        switch kernel {
                        case .float32(let weight):
                            GEMM.sgemm(m: (r1 - r0) * w, n: n, k: ci, a: a, lda: ci, b: weight.data, ldb: n, c: c, ldc: n)
                        case .bfloat16(let weight):
                            GEMM.linear(m: (r1 - r0) * w, a: a, lda: ci, weight: weight, bias: nil, c: c, ldc: n)
                        }
                        // Output rows complete once input rows lo..<r1 are in.
                        let oyLo = r0 == 0 ? 0 : max(0, r0 * s - p)
                        let oyHi = r1 == h ? ho : min(ho, r1 * s - p)
                        let rowBase = buffer - lo * rowFloats  // input row iy starts at rowBase + iy * rowFloats
                        Compute.pool.parallelFor(oyHi - oyLo, grain: 1) { range in
                            let sources = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: kh)
                            defer { sources.deallocate() }
                            for oy in (oyLo + range.lowerBound)..<(oyLo + range.upperBound) {
                                // Input rows reaching output row oy, each at its kernel row i.
                                var count = 0
                                for i in 0..<kh where (oy + p - i) % s == 0 {
                                    let iy = (oy + p - i) / s
                                    if iy >= 0 && iy < h {
                                        sources[count] = UnsafePointer(rowBase + iy * rowFloats + i * kw * co)
                                        count += 1
                                    }
                                }
                                Self.gatherRow(
                                    into: out.data + ((bi * ho + oy) * wo) * co, width: wo, channels: co,
                                    rows: sources, rowCount: count, colStart: colStart, colOffsets: colOff, bias: biasPtr)
                            }
                        }
                        r0 = r1
                    }
                }
            }
        }
        return out
    }

    /// Sums one output row (`[Wo, Cout]`): for each pixel, the bias plus every (row source, column
    /// source) pair's `Cout` values from the GEMM buffer.
    @inline(__always)
    private static func gatherRow(
        into dst: UnsafeMutablePointer<Float>, width wo: Int, channels co: Int,
        rows: UnsafeMutablePointer<UnsafePointer<Float>>, rowCount: Int,
        colStart: UnsafePointer<Int>, colOffsets: UnsafePointer<Int>, bias: UnsafeMutablePointer<Float>?
    ) {
        let c8 = co & ~7
        for ox in 0..<wo {
            let o = dst + ox * co
            let cLo = colStart[ox], cHi = colStart[ox + 1]
            var ch = 0
            while ch < c8 {
                var acc = bias.map { VectorMath.load($0 + ch) } ?? SIMD8<Float>()
                for r in 0..<rowCount {
                    let row = rows[r] + ch
                    for t in cLo..<cHi { acc += VectorMath.load(row + colOffsets[t]) }
                }
                VectorMath.store(acc, o + ch)
                ch += 8
            }
            while ch < co {
                var acc = bias?[ch] ?? 0
                for r in 0..<rowCount {
                    for t in cLo..<cHi { acc += rows[r][ch + colOffsets[t]] }
                }
                o[ch] = acc
                ch += 1
            }
        }
    }
}
