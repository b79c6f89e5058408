import Dispatch
import Foundation
import SafeTensors
import Testing
import Tensor

/// Parity of the convolution-family ops with PyTorch (`scripts/fixtures/conv.py`): every case has
/// an NHWC input `<case>.x`, PyTorch-layout `<case>.weight` / `<case>.bias`, and the NHWC result `<case>.y`.
@Suite struct ConvTests {
    /// GEMM-backed ops: float32 sums in another order than PyTorch's.
    static let gemmTolerance: Float = 1e-5
    /// Elementwise ops (depthwise: at most k*k products per output).
    static let elementwiseTolerance: Float = 1e-6

    let file: SafeTensorsFile

    init() throws { file = try Fixture.load("conv") }

    func tensors(_ name: String) throws -> (x: Tensor, weight: Tensor?, bias: Tensor?, y: Tensor) {
        let names = Set(file.names)
        return (
            try file.tensor("\(name).x"),
            names.contains("\(name).weight") ? try file.tensor("\(name).weight") : nil,
            names.contains("\(name).bias") ? try file.tensor("\(name).bias") : nil,
            try file.tensor("\(name).y")
        )
    }

    @Test(arguments: [
        ("conv1x1", 1, 0), ("conv1x1_nobias", 1, 0), ("conv2x2s2", 2, 0), ("conv2x2s2_odd", 2, 0),
        ("conv4x4s2p1", 2, 1), ("conv4x4s2p1_even", 2, 1), ("conv3x3s1p1", 1, 1), ("conv3x3s2p1", 2, 1),
        ("conv1x1s2", 2, 0),
    ])
    // conv2d, depthwise and convTranspose2d are deliberate parallels: the same parity check per op
    // (llama.cpp's test-backend-ops style), each with its op's constructor and tolerance.
    func conv2d(name: String, stride: Int, padding: Int) throws {
        let t = try tensors(name)
        let conv = Conv2d(weight: t.weight!, bias: t.bias, stride: stride, padding: padding)
        expectClose(conv(t.x), t.y, tolerance: Self.gemmTolerance, "Conv2d \(name)")
    }

    /// A workspace of a few rows forces many im2col blocks, including a short last one.
    @Test func conv2dSmallWorkspaceBlocks() throws {
        let t = try tensors("conv4x4s2p1")
        let rowBytes = 4 * 4 * 6 * 4
        let conv = Conv2d(weight: t.weight!, bias: t.bias, stride: 2, padding: 1, workspaceBytes: 7 * rowBytes)
        expectClose(conv(t.x), t.y, tolerance: Self.gemmTolerance, "Conv2d conv4x4s2p1, 7-row blocks")
    }

    @Test(arguments: [
        ("dw3_zeros", PaddingMode.zeros), ("dw3_zeros_48", .zeros), ("dw3_replicate", .replicate),
        ("dw3_replicate_nobias", .replicate), ("dw5_zeros", .zeros), ("dw1_zeros", .zeros),
    ])
    func depthwise(name: String, mode: PaddingMode) throws {
        let t = try tensors(name)
        let conv = DepthwiseConv2d(weight: t.weight!, bias: t.bias, paddingMode: mode)
        let y = conv(t.x)
        expectClose(y, t.y, tolerance: Self.elementwiseTolerance, "DepthwiseConv2d \(name)")
        // Against the exact (float64) result as well, to tell our rounding from PyTorch's.
        expectClose(y, try file.tensor("\(name).y64"), tolerance: Self.elementwiseTolerance, "DepthwiseConv2d \(name) vs float64")
    }

    @Test(arguments: [
        ("convT2x2s2", 2, 0), ("convT2x2s2_nobias", 2, 0), ("convT4x4s2p1", 2, 1), ("convT4x4s2p1_even", 2, 1),
        ("convT3x3s2p1", 2, 1),
    ])
    func convTranspose2d(name: String, stride: Int, padding: Int) throws {
        let t = try tensors(name)
        let conv = ConvTranspose2d(weight: t.weight!, bias: t.bias, stride: stride, padding: padding)
        expectClose(conv(t.x), t.y, tolerance: Self.gemmTolerance, "ConvTranspose2d \(name)")
    }

    /// Blocks of one and two input rows: the rows carried between blocks (4x4/stride 2 needs one).
    @Test(arguments: [1, 2])
    func convTranspose2dSmallWorkspaceBlocks(rowsPerBlock: Int) throws {
        let t = try tensors("convT4x4s2p1")
        let inputRowBytes = 6 * 4 * 4 * 7 * 4  // W * kh * kw * Cout floats
        let conv = ConvTranspose2d(
            weight: t.weight!, bias: t.bias, stride: 2, padding: 1, workspaceBytes: (rowsPerBlock + 1) * inputRowBytes)
        expectClose(conv(t.x), t.y, tolerance: Self.gemmTolerance, "ConvTranspose2d convT4x4s2p1, \(rowsPerBlock)-row blocks")
    }

    /// Pure permutations: exact.
    @Test(arguments: [("shuffle2", 2), ("shuffle3", 3)])
    func shuffle(name: String, factor: Int) throws {
        let t = try tensors(name)
        expectClose(pixelShuffle(t.x, factor: factor), t.y, tolerance: 0, "pixelShuffle \(name)")
    }

    /// The 3x3 fast path's edge cases (images narrower than its 4-pixel blocks, one or two rows, widths
    /// whose last block overlaps the one before, a channel tail past the 8-channel slices) against a
    /// direct float64 loop over the same taps.
    @Test(arguments: [PaddingMode.zeros, .replicate])
    func depthwise3x3Edges(mode: PaddingMode) {
        var worst: Float = 0
        for (h, w) in [(1, 1), (1, 2), (2, 3), (3, 4), (2, 5), (4, 6), (3, 7), (5, 9), (1, 12)] {
            for (c, withBias) in [(8, true), (16, false), (21, true)] {
                var g = SplitMix(seed: UInt64(h * 1000 + w * 10 + c))
                func random(_ shape: [Int]) -> Tensor {
                    let t = Tensor(uninitialized: shape)
                    for i in 0..<t.count { t[flat: i] = g.nextFloat() }
                    return t
                }
                let x = random([2, h, w, c]), weight = random([c, 1, 3, 3]), bias = withBias ? random([c]) : nil
                let y = DepthwiseConv2d(weight: weight, bias: bias, paddingMode: mode)(x)
                let expected = Tensor(uninitialized: [2, h, w, c])
                for bi in 0..<2 {
                    for oy in 0..<h {
                        for ox in 0..<w {
                            for ch in 0..<c {
                                var acc = Double(bias?.data[ch] ?? 0)
                                for i in 0..<3 {
                                    for j in 0..<3 {
                                        var iy = oy + i - 1, ix = ox + j - 1
                                        if mode == .zeros && (iy < 0 || iy >= h || ix < 0 || ix >= w) { continue }
                                        iy = min(max(iy, 0), h - 1)
                                        ix = min(max(ix, 0), w - 1)
                                        acc += Double(weight.data[ch * 9 + i * 3 + j]) * Double(x.data[((bi * h + iy) * w + ix) * c + ch])
                                    }
                                }
                                expected.data[((bi * h + oy) * w + ox) * c + ch] = Float(acc)
                            }
                        }
                    }
                }
                let err = relativeError(y, expected)
                #expect(err <= Self.elementwiseTolerance, "DepthwiseConv2d 3x3 \(mode) [2,\(h),\(w),\(c)] bias \(withBias): error \(err)")
                worst = max(worst, err)
            }
        }
        print("DepthwiseConv2d 3x3 \(mode) edge shapes vs float64: max relative error \(worst) (tolerance \(Self.elementwiseTolerance))")
    }

    /// Pure permutations: exact, and the inverse of `pixelShuffle`.
    @Test(arguments: [("unshuffle2", 2), ("unshuffle3", 3)])
    func unshuffle(name: String, factor: Int) throws {
        let t = try tensors(name)
        let y = pixelUnshuffle(t.x, factor: factor)
        expectClose(y, t.y, tolerance: 0, "pixelUnshuffle \(name)")
        expectClose(pixelShuffle(y, factor: factor), t.x, tolerance: 0, "pixelShuffle(pixelUnshuffle) \(name)")
    }
}

/// Timings at the model's real shapes against a bare `GEMM.sgemm` of the same M, N, K (beta 0).
/// Release only, opt-in: `WUERSTCHEN_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter ConvSpeed`.
/// The machine is shared, so each op is timed twice: on one thread by that thread's CPU time (steady
/// whatever else runs; OpenBLAS and the pool both run inline on the caller then), and on all threads
/// by wall-clock time (best of a few runs).
@Suite(.benchmark, .serialized)
struct ConvSpeed {
    static func random(_ shape: [Int], scale: Float = 1) -> Tensor {
        var g = SplitMix(seed: UInt64(shape.reduce(7, *)))
        let t = Tensor(uninitialized: shape)
        for i in 0..<t.count { t[flat: i] = g.nextFloat() * scale }
        return t
    }

    static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// (one-thread CPU seconds, all-threads wall seconds), best of `runs` each.
    static func time(runs: Int = 3, _ body: () -> Void) -> (cpu1: Double, wall: Double) {
        Compute.configure(threads: 1)
        var cpu = Double.infinity
        for _ in 0..<runs {
            let start = threadCPUSeconds()
            body()
            cpu = min(cpu, threadCPUSeconds() - start)
        }
        Compute.configure(threads: 0)
        var wall = Double.infinity
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            wall = min(wall, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return (cpu, wall)
    }

    /// Prints the op's times next to a bare sgemm's, both into a reused output and into a freshly
    /// allocated one (as the op must: first-touch page faults cost about 0.35 ms per MB here).
    static func report(_ what: String, op: (cpu1: Double, wall: Double), m: Int, n: Int, k: Int) {
        let a = random([m, k]), b = random([n, k]), c = Tensor(uninitialized: [m, n])
        let reused = time(runs: 2) {
            GEMM.sgemm(transB: true, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: k, c: c.data, ldc: n)
        }
        let fresh = time(runs: 2) {
            let c = Tensor(uninitialized: [m, n])
            GEMM.sgemm(transB: true, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: k, c: c.data, ldc: n)
        }
        let gflop = 2 * Double(m) * Double(n) * Double(k) / 1e9
        print(String(
            format: "%@ (sgemm M=%d N=%d K=%d)\n  1 thread CPU: op %.0f ms (%.0f GFLOP/s); sgemm %.0f ms (%.0f GFLOP/s), "
                + "into a new output %.0f ms; op at %.0f%% / %.0f%%\n  %d threads wall: op %.0f ms; sgemm %.0f ms, "
                + "into a new output %.0f ms; op at %.0f%% / %.0f%%",
            what, m, n, k, op.cpu1 * 1e3, gflop / op.cpu1, reused.cpu1 * 1e3, gflop / reused.cpu1, fresh.cpu1 * 1e3,
            100 * reused.cpu1 / op.cpu1, 100 * fresh.cpu1 / op.cpu1, Compute.pool.threadCount, op.wall * 1e3,
            reused.wall * 1e3, fresh.wall * 1e3, 100 * reused.wall / op.wall, 100 * fresh.wall / op.wall))
    }

    @Test func conv2x2Stride2() {
        let x = Self.random([1, 256, 256, 320])
        let conv = Conv2d(weight: Self.random([640, 320, 2, 2], scale: 0.03), bias: Self.random([640]), stride: 2)
        let t = Self.time { _ = conv(x) }
        Self.report("Conv2d 2x2/s2 [1,256,256,320]->[1,128,128,640]", op: t, m: 128 * 128, n: 640, k: 4 * 320)
    }

    @Test func conv1x1() {
        let x = Self.random([1, 256, 256, 320])
        let conv = Conv2d(weight: Self.random([320, 320, 1, 1], scale: 0.05), bias: Self.random([320]))
        let t = Self.time { _ = conv(x) }
        Self.report("Conv2d 1x1 [1,256,256,320]->320", op: t, m: 256 * 256, n: 320, k: 320)
    }

    @Test func conv4x4Stride2Pad1() {
        let x = Self.random([1, 512, 512, 192])
        let conv = Conv2d(weight: Self.random([384, 192, 4, 4], scale: 0.02), bias: Self.random([384]), stride: 2, padding: 1)
        let t = Self.time(runs: 2) { _ = conv(x) }
        Self.report("Conv2d 4x4/s2/p1 [1,512,512,192]->[1,256,256,384]", op: t, m: 256 * 256, n: 384, k: 16 * 192)
    }

    @Test func convTranspose2x2Stride2() {
        let x = Self.random([1, 128, 128, 640])
        let conv = ConvTranspose2d(weight: Self.random([640, 320, 2, 2], scale: 0.04), bias: Self.random([320]), stride: 2)
        let t = Self.time { _ = conv(x) }
        Self.report("ConvTranspose2d 2x2/s2 [1,128,128,640]->[1,256,256,320]", op: t, m: 128 * 128, n: 4 * 320, k: 640)
    }

    @Test func convTranspose4x4Stride2Pad1() {
        let x = Self.random([1, 256, 256, 384])
        let conv = ConvTranspose2d(
            weight: Self.random([384, 192, 4, 4], scale: 0.05), bias: Self.random([192]), stride: 2, padding: 1)
        let t = Self.time(runs: 2) { _ = conv(x) }
        Self.report("ConvTranspose2d 4x4/s2/p1 [1,256,256,384]->[1,512,512,192]", op: t, m: 256 * 256, n: 16 * 192, k: 384)
    }

    @Test func depthwise3x3() {
        let x = Self.random([1, 256, 256, 320])
        for mode in [PaddingMode.zeros, .replicate] {
            let conv = DepthwiseConv2d(weight: Self.random([320, 1, 3, 3], scale: 0.3), bias: Self.random([320]), paddingMode: mode)
            let t = Self.time { _ = conv(x) }
            let gb = 2.0 * Double(x.count * 4) / 1e9
            print(String(
                format: "DepthwiseConv2d 3x3 %@ [1,256,256,320] | 1 thread CPU %.1f ms (%.1f GB/s in+out) | wall %.1f ms",
                "\(mode)", t.cpu1 * 1e3, gb / t.cpu1, t.wall * 1e3))
        }
    }

    @Test func shuffles() {
        let x = Self.random([1, 512, 512, 12])
        let t = Self.time { _ = pixelShuffle(x, factor: 2) }
        let y = Self.random([1, 1024, 1024, 3])
        let u = Self.time { _ = pixelUnshuffle(y, factor: 2) }
        print(String(
            format: "pixelShuffle [1,512,512,12]->[1,1024,1024,3] | 1 thread CPU %.1f ms | wall %.1f ms; pixelUnshuffle back %.1f ms | %.1f ms",
            t.cpu1 * 1e3, t.wall * 1e3, u.cpu1 * 1e3, u.wall * 1e3))
    }
}
