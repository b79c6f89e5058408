import Dispatch
import Foundation
import SafeTensors
import Testing
@testable import Tensor

/// Largest `|actual - expected| / max(1, |expected|)` over all elements: absolute error for values up
/// to 1, relative above, so that tails such as GELU(1e4) are held to the same 1e-6 as values near 0.
/// Prints the error and the worst element either way.
func expectPerElement(
    _ actual: Tensor, _ expected: Tensor, tolerance: Float, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.shape == expected.shape, "\(what): shape \(actual.shape), expected \(expected.shape)", sourceLocation: sourceLocation)
    guard actual.shape == expected.shape else { return }
    var worst: Float = 0, at = 0
    for i in 0..<actual.count {
        let e = expected[flat: i], a = actual[flat: i]
        let err: Float = (a == e || (a.isNaN && e.isNaN)) ? 0 : (abs(a - e) / max(1, abs(e)))
        let bad = err.isNaN ? Float.infinity : err
        if bad > worst { worst = bad; at = i }
    }
    print("\(what): max error \(worst) (tolerance \(tolerance)) at \(at): got \(actual[flat: at]), torch \(expected[flat: at])")
    #expect(worst <= tolerance, "\(what): max error \(worst) exceeds \(tolerance) at element \(at): got \(actual[flat: at]), torch \(expected[flat: at])", sourceLocation: sourceLocation)
}

/// Parity of the elementwise ops, activations, softmax and concat with PyTorch
/// (`scripts/fixtures/elementwise.py`).
@Suite struct ElementwiseTests {
    /// Elementwise ops: one or two float roundings apart from torch at most.
    static let tolerance: Float = 1e-6

    let file: SafeTensorsFile
    init() throws { file = try Fixture.load("elementwise") }
    func t(_ name: String) throws -> Tensor { try file.tensor(name) }

    @Test(arguments: [
        ("gelu", Activation.gelu), ("gelu_tanh", .geluTanh), ("quick_gelu", .quickGelu),
        ("silu", .silu), ("sigmoid", .sigmoid),
    ])
    func activation(name: String, activation: Activation) throws {
        let x = try t("act.x")
        expectPerElement(activation(x), try t("act.\(name)"), tolerance: Self.tolerance, "activation \(name)")
        // The in-place form and the odd tail lengths run the same lane arithmetic.
        let y = x.copy()
        activation.applyInPlace(y)
        expectPerElement(y, try t("act.\(name)"), tolerance: Self.tolerance, "activation \(name) in place")
    }

    /// torch's own float GELU is up to 7e-7 away from the exact value (near x = -3.4, where
    /// `1 + erf` cancels); ours, with a 2.5-ulp erf, stays within 2e-7 of it.
    @Test func geluAgainstExact() throws {
        expectPerElement(try t("act.x").gelu(), try t("act.gelu_exact"), tolerance: 2e-7, "gelu vs float64 exact")
    }

    /// A dense sweep against float64 GELU (libm's `erfc`, which has no cancellation on either side),
    /// beyond the fixture's 2001 sweep points, and the limits: +inf, -inf (-9 Phi(-9) = -1e-18, the
    /// clamped tail; exact: 0, torch: NaN), NaN, -0.
    @Test func geluDenseSweepAndLimits() {
        let n = 240_001
        let x = Tensor(uninitialized: [n])
        for i in 0..<n { x.data[i] = Float(-12 + 24 * Double(i) / Double(n - 1)) }
        let expected = Tensor(uninitialized: [n])
        for i in 0..<n {
            let v = Double(x.data[i])
            expected.data[i] = Float(0.5 * v * Foundation.erfc(-v / 2.0.squareRoot()))
        }
        expectPerElement(x.gelu(), expected, tolerance: 2e-7, "gelu dense sweep vs float64")
        let special = Activation.gelu8(SIMD8<Float>(.infinity, -.infinity, .nan, -0.0, 0, 6, -6, -1e30))
        #expect(special[0] == .infinity)
        #expect(special[1] <= 0 && special[1] > -1e-17)
        #expect(special[2].isNaN)
        #expect(special[3] == 0 && special[3].sign == .minus)
        #expect(special[4] == 0 && special[4].sign == .plus)
        #expect(special[5] == 6)
        #expect(abs(special[6] + 6 * 9.865876e-10) < 5e-10)  // -6 Phi(-6), within the tail's 7.5e-8 absolute
        #expect(special[7] <= 0 && special[7] > -1e-17)
    }

    @Test func leakyRelu() throws {
        expectPerElement(try t("act.x").leakyRelu(negativeSlope: 0.2), try t("act.leaky_relu"), tolerance: 0, "leaky_relu")
    }

    @Test func activationNames() {
        #expect(Activation(name: "quick_gelu") == .quickGelu)
        #expect(Activation(name: "gelu") == .gelu)
        #expect(Activation(name: "gelu_new") == .geluTanh)
        #expect(Activation(name: "relu6") == nil)
    }

    /// erf within 2.5 ulp of torch.erf (Sleef, ~1 ulp): 3e-7 absolute.
    @Test func erf() throws {
        let x = try t("act.x")
        let out = Tensor(uninitialized: x.shape)
        ElementwiseSplit.elements(x.count) { lo, hi in ElementwiseSplit.map(x.data, out.data, lo, hi, VectorMath.erf) }
        expectPerElement(out, try t("act.erf"), tolerance: 3e-7, "erf")
    }

    /// exp within 2 ulp (relative 2.4e-7) of torch.exp over the normal range, 0 / inf beyond it.
    @Test func exp() throws {
        let x = try t("exp.x"), ref = try t("exp.y")
        let out = Tensor(uninitialized: x.shape)
        ElementwiseSplit.elements(x.count) { lo, hi in ElementwiseSplit.map(x.data, out.data, lo, hi, VectorMath.exp) }
        var worst: Float = 0
        for i in 0..<x.count where ref[flat: i] >= Float.leastNormalMagnitude {
            worst = max(worst, abs(out[flat: i] - ref[flat: i]) / ref[flat: i])
        }
        for i in 0..<x.count where ref[flat: i] < Float.leastNormalMagnitude {
            // Subnormal results: absolute error within a couple of subnormal steps.
            #expect(abs(out[flat: i] - ref[flat: i]) <= 4 * Float.leastNonzeroMagnitude, "exp(\(x[flat: i])) = \(out[flat: i]), torch \(ref[flat: i])")
        }
        print("exp: max relative error \(worst) (tolerance 2.4e-7)")
        #expect(worst <= 2.4e-7, "exp: max relative error \(worst)")
        let special = VectorMath.exp(SIMD8<Float>(89, 1000, .infinity, -.infinity, -1000, .nan, 0, -0.0))
        #expect(special[0] == .infinity && special[1] == .infinity && special[2] == .infinity)
        #expect(special[3] == 0 && special[4] == 0 && special[5].isNaN && special[6] == 1 && special[7] == 1)
    }

    @Test func arithmetic() throws {
        let x = try t("ar.x"), y = try t("ar.y"), v = try t("ar.v"), bv = try t("ar.bv")
        // One float rounding per op, as torch: bit for bit.
        expectPerElement(x + y, try t("ar.add"), tolerance: 0, "add")
        expectPerElement(x - y, try t("ar.sub"), tolerance: 0, "sub")
        expectPerElement(x * y, try t("ar.mul"), tolerance: 0, "mul")
        expectPerElement(x.add(v), try t("ar.add_v"), tolerance: 0, "add [C]")
        expectPerElement(x.mul(v), try t("ar.mul_v"), tolerance: 0, "mul [C]")
        expectPerElement(x.add(bv), try t("ar.add_bv"), tolerance: 0, "add [B,1,1,C]")
        expectPerElement(x.mul(bv), try t("ar.mul_bv"), tolerance: 0, "mul [B,1,1,C]")
        expectPerElement(x * 0.18215, try t("ar.scaled"), tolerance: 0, "mul scalar")
        expectPerElement(x.abs(), try t("ar.abs"), tolerance: 0, "abs")
        expectPerElement(x.clamped(0, 1), try t("ar.clamp"), tolerance: 0, "clamp(0, 1)")
        let r = x.copy()
        r.addInPlace(y)
        expectPerElement(r, try t("ar.add"), tolerance: 0, "addInPlace")
        let s = x.copy()
        s.mulInPlace(bv)
        expectPerElement(s, try t("ar.mul_bv"), tolerance: 0, "mulInPlace [B,1,1,C]")
    }

    @Test func modulation() throws {
        let x = try t("ar.x"), ab = try t("ar.ab")
        let c = x.dim(-1), b = x.dim(0)
        expectPerElement(x.modulated(scaleShift: ab), try t("ar.modulated"), tolerance: 0, "modulated(scaleShift:)")
        // The same with a and b as separate [B, 1, 1, C] tensors.
        let a1 = Tensor(uninitialized: [b, 1, 1, c]), b1 = Tensor(uninitialized: [b, 1, 1, c])
        for i in 0..<b {
            for j in 0..<c {
                a1[flat: i * c + j] = ab[flat: i * 2 * c + j]
                b1[flat: i * c + j] = ab[flat: i * 2 * c + c + j]
            }
        }
        expectPerElement(x.modulated(scale: a1, shift: b1), try t("ar.modulated"), tolerance: 0, "modulated(scale:shift:)")
        let y = x.copy()
        y.modulateInPlace(scaleShift: ab)
        expectPerElement(y, try t("ar.modulated"), tolerance: 0, "modulateInPlace")
    }

    /// torch.lerp bit for bit (both weight branches and a negative weight).
    @Test func lerp() throws {
        let x = try t("ar.x"), y = try t("ar.y")
        expectPerElement(Tensor.lerp(x, y, weight: 4), try t("ar.lerp_4"), tolerance: 0, "lerp w=4")
        expectPerElement(Tensor.lerp(x, y, weight: 0.3), try t("ar.lerp_03"), tolerance: 0, "lerp w=0.3")
        expectPerElement(Tensor.lerp(x, y, weight: -0.7), try t("ar.lerp_m07"), tolerance: 0, "lerp w=-0.7")
    }

    @Test func reductions() {
        let x = Tensor(shape: [2, 9], values: (0..<18).map { Float($0) - 8 })
        #expect(x.sum() == 9)
        #expect(x.mean() == 0.5)
        #expect(x.maxAbs() == 9)
    }

    @Test func softmax() throws {
        expectPerElement(try t("sm.x").softmax(), try t("sm.y"), tolerance: Self.tolerance, "softmax [3,5,77] large logits")
        let small = try t("sm.small_x")
        expectPerElement(small.softmax(), try t("sm.small_y"), tolerance: Self.tolerance, "softmax [4,13]")
        // Raw-pointer rows with a stride wider than the row, and the attention scale.
        let rows = 4, cols = 13, stride = 16
        let buffer = Tensor(shape: [rows, stride], repeating: 7)
        for r in 0..<rows { for j in 0..<cols { buffer[flat: r * stride + j] = small[flat: r * cols + j] } }
        Softmax.rows(buffer.data, rows: rows, cols: cols, stride: stride, scale: 0.125)
        let packed = Tensor(uninitialized: [rows, cols])
        for r in 0..<rows {
            for j in 0..<cols { packed[flat: r * cols + j] = buffer[flat: r * stride + j] }
            #expect(buffer[flat: r * stride + cols] == 7, "Softmax.rows wrote past its row")
        }
        expectPerElement(packed, try t("sm.scaled_y"), tolerance: Self.tolerance, "Softmax.rows scale 0.125, stride 16")
    }

    @Test func concat() throws {
        let cat = Tensor.concat([try t("cat.a"), try t("cat.b"), try t("cat.c")], axis: -1)
        expectPerElement(cat, try t("cat.channels"), tolerance: 0, "concat channels")
        expectPerElement(Tensor.concat([try t("cat.s1"), try t("cat.s2")], axis: 1), try t("cat.seq"), tolerance: 0, "concat dim 1")
    }
}

/// Throughput at the model's sizes, in GB/s of memory traffic (bytes read + written once).
/// Off by default (the debug build is far too slow for it); run with
/// `WUERSTCHEN_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter ElementwiseSpeed`.
@Suite(.benchmark)
struct ElementwiseSpeed {
    static func measure(_ what: String, bytes: Int, _ body: () -> Void) {
        body()  // warm-up: page faults of fresh outputs
        var best = Double.infinity
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        print(String(format: "%@: %.2f ms, %.1f GB/s", what, best * 1e3, Double(bytes) / best / 1e9))
    }

    @Test(arguments: [[1, 256, 256, 320], [1, 24, 24, 1536]])
    func throughput(shape: [Int]) {
        var g = SplitMix(seed: 7)
        let x = Tensor(shape: shape, values: (0..<Tensor.elementCount(shape)).map { _ in g.nextFloat() * 3 })
        let y = x.copy()
        let n = x.count * 4
        let c = shape.last!
        let ln = LayerNorm(eps: 1e-6)
        let grn = GlobalResponseNorm(gamma: Tensor(shape: [c], repeating: 0.5), beta: Tensor(shape: [c], repeating: 0.1))
        let out = Tensor(uninitialized: shape)
        Self.measure("\(shape) gelu (new tensor)", bytes: 2 * n) { _ = x.gelu() }
        Self.measure("\(shape) gelu into buffer", bytes: 2 * n) { Activation.gelu.apply(x.data, out.data, count: x.count) }
        Self.measure("\(shape) silu into buffer", bytes: 2 * n) { Activation.silu.apply(x.data, out.data, count: x.count) }
        Self.measure("\(shape) layernorm", bytes: 2 * n) { _ = ln(x) }
        Self.measure("\(shape) layernorm in place", bytes: 2 * n) { ln.applyInPlace(y) }
        Self.measure("\(shape) grn", bytes: 3 * n) { _ = grn(x) }
        Self.measure("\(shape) grn in place", bytes: 3 * n) { grn.applyInPlace(y) }
        Self.measure("\(shape) add", bytes: 3 * n) { _ = x + y }
        Self.measure("\(shape) addInPlace", bytes: 3 * n) { y.addInPlace(x) }
        Self.measure("\(shape) softmax rows", bytes: 2 * n) { _ = x.softmax() }
        Self.measure("\(shape) copy (memcpy reference)", bytes: 2 * n) { out.data.update(from: x.data, count: x.count) }
    }
}
