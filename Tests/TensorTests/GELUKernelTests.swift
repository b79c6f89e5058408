import Foundation
import SafeTensors
import Testing
@testable import Tensor

/// GELU's two kernels: the Swift SIMD8 one (`Activation.gelu8`) and the AVX-512 C one
/// (Sources/CKernels/gelu_avx512.c) that `KernelPath.best` picks on CPUs with AVX-512F.
/// Both must hold the torch fixtures, and they must agree bit for bit everywhere, specials included.
@Suite struct GELUKernelTests {
    /// Inputs that stress every part of the kernel: the clamp at 9, the sign handling, the 2^n
    /// scaling, subnormals, infinities and NaNs of both signs and several payloads.
    static let specials: [Float] = [
        0, -0.0, 1, -1, 0.5, -0.5, 3.4, -3.4, 3.47, -3.47, 6, -6, 8.999_999, -8.999_999, 9, -9,
        9.000_001, -9.000_001, 10, -10, 12, -12, 100, -100, 1e4, -1e4, 1e30, -1e30,
        .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .infinity, -.infinity,
        .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, -.leastNormalMagnitude,
        Float(bitPattern: 0x007F_FFFF), Float(bitPattern: 0x807F_FFFF), 1e-30, -1e-30, 1e-7, -1e-7,
        .nan, -.nan, .signalingNaN, Float(bitPattern: 0x7FC0_1234), Float(bitPattern: 0xFFFF_FFFF),
    ]

    /// The specials, 2^20 uniform values on [-12, 12] and 2^20 random bit patterns (every exponent,
    /// subnormals, a few thousand NaNs and infinities): a length that is not a multiple of 16.
    static func inputs() -> Tensor {
        var g = SplitMix(seed: 20_251_126)
        var values = specials
        for _ in 0..<(1 << 20) { values.append(g.nextFloat() * 12) }
        for _ in 0..<(1 << 20) { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: g.next()))) }
        return Tensor(shape: [values.count], values: values)
    }

    /// The torch fixture on each path: within 1e-6 of torch.nn.GELU, within 2e-7 of float64 GELU,
    /// out of place and in place.
    @Test(arguments: KernelPath.allCases)
    func torchFixture(path: KernelPath) throws {
        let file = try Fixture.load("elementwise")
        let x: Tensor = try file.tensor("act.x")
        let torch: Tensor = try file.tensor("act.gelu"), exact: Tensor = try file.tensor("act.gelu_exact")
        expectPerElement(Activation.gelu(x, path: path), torch, tolerance: 1e-6, "gelu \(path) vs torch")
        expectPerElement(Activation.gelu(x, path: path), exact, tolerance: 2e-7, "gelu \(path) vs float64 exact")
        let y = x.copy()
        Activation.gelu.applyInPlace(y, path: path)
        expectPerElement(y, torch, tolerance: 1e-6, "gelu \(path) in place vs torch")
    }

    /// Both kernels give the same bits for every input (NaN: both NaN), tolerance 0. The message names
    /// the kernel `best` ran: on a CPU without AVX-512 this compares SIMD8 with itself.
    @Test func kernelsAgreeBitForBit() {
        let x = Self.inputs()
        let best = Activation.gelu(x, path: .best), simd8 = Activation.gelu(x, path: .simd8)
        var mismatches = 0, first = -1
        for i in 0..<x.count {
            let a = best.data[i], b = simd8.data[i]
            let same = a.isNaN ? b.isNaN : a.bitPattern == b.bitPattern
            if !same {
                mismatches += 1
                if first < 0 { first = i }
            }
        }
        let at = max(first, 0)
        print("gelu \(KernelPath.bestName) vs simd8: \(mismatches) of \(x.count) elements differ (tolerance 0)")
        #expect(mismatches == 0, "gelu \(KernelPath.bestName) vs simd8: \(mismatches) elements differ, first at \(at): x = \(x.data[at]), \(best.data[at]) vs \(simd8.data[at])")
    }

    /// Both kernels on every Float32 bit pattern (release builds; a debug build, where the SIMD8 code
    /// is too slow for 2^32 elements, takes every 65537th): the same bits, NaN for NaN. Tolerance 0.
    @Test func kernelsAgreeOnEveryFloat() {
        #if DEBUG
        let stride: UInt64 = 65_537
        #else
        let stride: UInt64 = 1
        #endif
        let chunk = 1 << 22
        let x = Tensor(uninitialized: [chunk]), a = Tensor(uninitialized: [chunk]), b = Tensor(uninitialized: [chunk])
        var mismatches = 0, checked = 0, example = ""
        var next: UInt64 = 0
        while next < (1 << 32) {
            var n = 0
            while n < chunk && next < (1 << 32) {
                x.data[n] = Float(bitPattern: UInt32(next))
                n += 1
                next += stride
            }
            Activation.gelu.apply(x.data, a.data, count: n, path: .best)
            Activation.gelu.apply(x.data, b.data, count: n, path: .simd8)
            for i in 0..<n where a.data[i].bitPattern != b.data[i].bitPattern && !(a.data[i].isNaN && b.data[i].isNaN) {
                if mismatches == 0 { example = "x = \(x.data[i]) (0x\(String(x.data[i].bitPattern, radix: 16))): \(a.data[i]) vs \(b.data[i])" }
                mismatches += 1
            }
            checked += n
        }
        print("gelu \(KernelPath.bestName) vs simd8 on \(checked) bit patterns: \(mismatches) differ (tolerance 0)")
        #expect(mismatches == 0, "gelu \(KernelPath.bestName) vs simd8: \(mismatches) of \(checked) bit patterns differ, first \(example)")
    }

    /// Both kernels against float64 GELU on the random inputs: within 2e-7 (absolute up to 1,
    /// relative above) wherever the input is finite; subnormal inputs to within one subnormal step.
    @Test(arguments: KernelPath.allCases)
    func accuracyOverTheFloatRange(path: KernelPath) {
        let x = Self.inputs()
        let y = Activation.gelu(x, path: path)
        var worst: Double = 0, at = 0
        for i in 0..<x.count where x.data[i].isFinite {
            let v = Double(x.data[i])
            let exact = 0.5 * v * Foundation.erfc(-v / 2.0.squareRoot())
            let err = abs(Double(y.data[i]) - exact) / max(1, abs(exact))
            if err > worst || err.isNaN { worst = err.isNaN ? .infinity : err; at = i }
        }
        print("gelu \(path) vs float64 over 2^21 inputs: max error \(worst) (tolerance 2e-7) at x = \(x.data[at]), got \(y.data[at])")
        #expect(worst <= 2e-7, "gelu \(path): max error \(worst) at x = \(x.data[at]), got \(y.data[at])")
        for i in 0..<x.count where x.data[i].isFinite && x.data[i] != 0 && abs(x.data[i]) < .leastNormalMagnitude {
            // GELU(x) = x/2 + O(x^2) for subnormal x: the exact value rounds to the grid of x/2.
            let expected = Double(x.data[i]) / 2
            #expect(abs(Double(y.data[i]) - expected) <= Double(Float.leastNonzeroMagnitude), "gelu \(path)(\(x.data[i])) = \(y.data[i]), expected \(expected)")
        }
    }

    /// torch's results at the limits on each path: GELU(+inf) = inf, NaN stays NaN, -0 stays -0,
    /// large x gives x. The one deliberate difference: torch gives NaN at -inf (-inf * 0), we give
    /// -9 Phi(-9) = -1e-18 (the clamped tail), and values below -9 give that too (torch: -0).
    @Test(arguments: KernelPath.allCases)
    func limits(path: KernelPath) {
        let x = Tensor(shape: [8], values: [.infinity, -.infinity, .nan, -0.0, 0, 1e30, -1e30, -.nan])
        let y = Activation.gelu(x, path: path)
        #expect(y.data[0] == .infinity)
        #expect(y.data[1] <= 0 && y.data[1] > -1e-17)
        #expect(y.data[2].isNaN && y.data[7].isNaN)
        #expect(y.data[3] == 0 && y.data[3].sign == .minus)
        #expect(y.data[4] == 0 && y.data[4].sign == .plus)
        #expect(y.data[5] == 1e30)
        #expect(y.data[6] <= 0 && y.data[6] > -1e-17)
    }

    /// Short and unaligned ranges (the AVX-512 kernel's masked tail): every length from 1 to 80 at
    /// offsets 0-3, results equal to the SIMD8 kernel's, and no element outside the range written.
    @Test(arguments: KernelPath.allCases)
    func shortAndUnalignedRanges(path: KernelPath) {
        var g = SplitMix(seed: 3)
        let x = Tensor(shape: [96], values: (0..<96).map { _ in g.nextFloat() * 6 })
        let reference = Activation.gelu(x, path: .simd8)
        let sentinel: Float = 12_345
        var wrong = 0, first = ""
        for offset in 0..<4 {
            for count in 1...80 {
                let out = Tensor(shape: [96], repeating: sentinel)
                Activation.gelu.apply(x.data + offset, out.data + offset, count: count, path: path)
                for i in 0..<96 {
                    let inside = i >= offset && i < offset + count
                    let expected = inside ? reference.data[i] : sentinel
                    if out.data[i].bitPattern != expected.bitPattern {
                        if wrong == 0 { first = "offset \(offset) count \(count) element \(i): \(out.data[i]), expected \(expected)" }
                        wrong += 1
                    }
                }
            }
        }
        #expect(wrong == 0, "gelu \(path) on short ranges: \(wrong) elements wrong, first: \(first)")
    }
}
