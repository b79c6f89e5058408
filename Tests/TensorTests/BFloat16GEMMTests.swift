import Foundation
import Testing
@testable import Tensor

/// The oneDNN bfloat16 backend of the GEMM seam against OpenBLAS float32 on the same bfloat16-rounded
/// operands: both accumulate in float32, so they may differ only by summation order.
@Suite(.enabled(if: Precision.bfloat16Supported, "this CPU has no AVX512-BF16: bf16 precision falls back to fp32, nothing to test"))
struct BFloat16GEMMTests {
    /// Values in [-1, 1) rounded to bfloat16 and widened back (exactly representable in bfloat16).
    static func rounded(_ shape: [Int], seed: UInt64) -> Tensor {
        var g = SplitMix(seed: seed)
        let t = Tensor(shape: shape, values: (0..<Tensor.elementCount(shape)).map { _ in g.nextFloat() })
        return WeightMatrix(t.reshaped([1, t.count])).converted(to: .bf16).float32.reshaped(shape)
    }

    /// max |a - b| / max |b|
    static func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
        var err: Float = 0, scale: Float = 0
        for i in 0..<b.count {
            err = max(err, abs(a[flat: i] - b[flat: i]))
            scale = max(scale, abs(b[flat: i]))
        }
        return err / scale
    }

    /// Tolerance 2e-6 relative: float32 accumulation either way, only the order of the sums differs.
    @Test(arguments: [(1, 7, 5), (37, 300, 129), (288, 1536, 640), (1000, 64, 3000)])
    func linearMatchesFloat32OnRoundedInputs(shape: (m: Int, k: Int, n: Int)) {
        let x = Self.rounded([shape.m, shape.k], seed: 1)
        let w = Self.rounded([shape.n, shape.k], seed: 2)
        let b = Self.rounded([shape.n], seed: 3)
        let fp32 = Linear(weight: w, bias: b)
        let bf16 = fp32.converted(to: .bf16)
        #expect(bf16.weight.precision == .bf16)
        let want = fp32(x), got = bf16(x)
        let err = Self.relativeError(got, want)
        print("bf16 Linear [\(shape.m), \(shape.k)] -> \(shape.n): relative error \(err) (tolerance 2e-6)")
        #expect(err < 2e-6, "bf16 Linear [\(shape.m), \(shape.k)] -> \(shape.n): relative error \(err)")
    }

    /// Rounding the activations happens inside the seam: unrounded x through a bf16 layer equals rounded x
    /// through the float32 layer of the same rounded weight.
    @Test func activationsRoundToNearestEven() {
        var g = SplitMix(seed: 9)
        let x = Tensor(shape: [64, 96], values: (0..<(64 * 96)).map { _ in g.nextFloat() * 3 })
        let xr = WeightMatrix(x).converted(to: .bf16).float32
        let w = Self.rounded([48, 96], seed: 4)
        let err = Self.relativeError(Linear(weight: w, bias: nil).converted(to: .bf16)(x), Linear(weight: w, bias: nil)(xr))
        print("bf16 Linear on unrounded input: relative error \(err) against rounded input in fp32 (tolerance 2e-6)")
        #expect(err < 2e-6, "relative error \(err)")
    }

    /// Strided rows in and out, a slice of the weight's rows, and accumulation onto the output
    /// (`c += a W[rows]^T + b`), as attention projections and in-place residuals use them.
    @Test func stridedSlicedAccumulating() {
        let m = 33, k = 80, lda = 100, ldc = 70, rows = 16..<56
        let a = Self.rounded([m, lda], seed: 5)
        let w = WeightMatrix(Self.rounded([64, k], seed: 6))
        let bias = Self.rounded([rows.count], seed: 7)
        let start = Self.rounded([m, ldc], seed: 8)
        let want = start.copy(), got = start.copy()
        GEMM.linear(m: m, a: a.data, lda: lda, weight: w, rows: rows, bias: bias.data, accumulate: true, c: want.data, ldc: ldc)
        GEMM.linear(
            m: m, a: a.data, lda: lda, weight: w.converted(to: .bf16), rows: rows, bias: bias.data, accumulate: true,
            c: got.data, ldc: ldc)
        let err = Self.relativeError(got, want)
        print("bf16 strided, sliced, accumulating GEMM: relative error \(err) (tolerance 2e-6)")
        #expect(err < 2e-6, "relative error \(err)")
        // Columns past n in each output row are untouched.
        for i in 0..<m {
            for j in rows.count..<ldc { #expect(got[flat: i * ldc + j] == start[flat: i * ldc + j]) }
        }
    }

    /// Convolutions through the seam: the 1x1 (image as the matrix) and im2col paths.
    @Test(arguments: [(1, 1, 0), (2, 2, 0), (4, 2, 1), (3, 1, 1)])
    func convolutionMatchesFloat32(kernel: (size: Int, stride: Int, padding: Int)) {
        let x = Self.rounded([2, 12, 10, 24], seed: 11)
        let conv = Conv2d(
            weight: Self.rounded([40, 24, kernel.size, kernel.size], seed: 12), bias: Self.rounded([40], seed: 13),
            stride: kernel.stride, padding: kernel.padding, workspaceBytes: 4096)
        let err = Self.relativeError(conv.converted(to: .bf16)(x), conv(x))
        print("bf16 Conv2d \(kernel.size)x\(kernel.size)/s\(kernel.stride)/p\(kernel.padding): relative error \(err) (tolerance 2e-6)")
        #expect(err < 2e-6, "relative error \(err)")
    }

    /// Transposed convolutions: the GEMM in bfloat16, the col2im sums in float32.
    @Test(arguments: [(2, 2, 0), (4, 2, 1)])
    func transposedConvolutionMatchesFloat32(kernel: (size: Int, stride: Int, padding: Int)) {
        let x = Self.rounded([2, 9, 7, 24], seed: 14)
        let conv = ConvTranspose2d(
            weight: Self.rounded([24, 20, kernel.size, kernel.size], seed: 15), bias: Self.rounded([20], seed: 16),
            stride: kernel.stride, padding: kernel.padding, workspaceBytes: 4096)
        let bf16 = conv.converted(to: .bf16)
        #expect(bf16.precision == .bf16 && bf16.converted(to: .fp32).precision == .fp32)
        let err = Self.relativeError(bf16(x), conv(x))
        let back = Self.relativeError(bf16.converted(to: .fp32)(x), conv(x))
        #expect(back < 1e-6, "bf16 kernel widened back to fp32 differs by \(back) (the inputs were bfloat16 already)")
        print("bf16 ConvTranspose2d \(kernel.size)x\(kernel.size)/s\(kernel.stride)/p\(kernel.padding): relative error \(err) (tolerance 2e-6)")
        #expect(err < 2e-6, "relative error \(err)")
    }

    /// oneDNN picks its AVX512-BF16 kernels, not a reference or emulated path (which would be slower than fp32).
    @Test func usesNativeBFloat16Kernels() {
        let name = GEMM.bfloat16Implementation(m: 288, n: 6144, k: 1536)
        print("oneDNN bf16 matmul implementation: \(name)")
        #expect(name.contains("bf16") || name.contains("amx"), "oneDNN runs \(name)")
    }

    /// Rounding a weight to bfloat16 and widening it back is torch's `.to(torch.bfloat16).float()`.
    @Test func weightRoundTrip() {
        // 1 + 2^-8 ties between 1 and 1 + 2^-7 (even: 1); 1 + 3 * 2^-8 ties between 1 + 2^-7 and 1 + 2^-6
        // (even: 1 + 2^-6); 1 + 2^-8 + 2^-20 is past the tie (up); infinity stays.
        let t = Tensor(shape: [2, 3], values: [1, 1.00390625, 1.01171875, 1.00390625 + 0x1p-20, -.infinity, 0.5])
        let r = WeightMatrix(t).converted(to: .bf16).float32
        #expect(r.toArray() == [1, 1, 1.015625, 1.0078125, -.infinity, 0.5])
    }
}
