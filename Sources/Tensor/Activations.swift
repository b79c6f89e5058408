import CKernels

/// Pointwise activations, vectorised over eight lanes and split over `Compute.pool`.
///
/// Formulas and their rounding order follow PyTorch's CPU kernels
/// (aten/src/ATen/native/cpu/Activation.cpp: `GeluKernelImpl`, `silu_kernel`, `leaky_relu_kernel`;
/// UnaryOpsKernel.cpp: `sigmoid_kernel`) and transformers' `QuickGELUActivation`
/// (`x * sigmoid(1.702 * x)`, CLIP's `hidden_act="quick_gelu"`).
public enum Activation: String, Sendable, CaseIterable {
    /// `torch.nn.GELU()` (approximate='none'): `x/2 * (1 + erf(x / sqrt 2))`.
    case gelu
    /// `torch.nn.GELU(approximate='tanh')`: `x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`.
    case geluTanh = "gelu_pytorch_tanh"
    /// `x * sigmoid(1.702 x)`.
    case quickGelu = "quick_gelu"
    /// `torch.nn.SiLU`: `x * sigmoid(x)`, computed as `x / (1 + e^-x)` like torch.
    case silu
    /// `torch.sigmoid`.
    case sigmoid

    /// The activation a transformers config names in `hidden_act` ("gelu", "gelu_new",
    /// "gelu_pytorch_tanh", "quick_gelu", "silu", "swish", "sigmoid"); nil for anything else.
    public init?(name: String) {
        switch name {
        case "gelu": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": self = .geluTanh
        case "quick_gelu": self = .quickGelu
        case "silu", "swish": self = .silu
        case "sigmoid": self = .sigmoid
        default: return nil
        }
    }

    /// The activation on eight lanes.
    @inline(__always)
    public func callAsFunction(_ x: SIMD8<Float>) -> SIMD8<Float> {
        switch self {
        case .gelu: return Activation.gelu8(x)
        case .geluTanh: return Activation.geluTanh8(x)
        case .quickGelu: return Activation.quickGelu8(x)
        case .silu: return Activation.silu8(x)
        case .sigmoid: return VectorMath.sigmoid(x)
        }
    }

    // x: [...] (any shape), out: same

    /// A new tensor holding the activation of `x` (`path`: see `apply`).
    public func callAsFunction(_ x: Tensor, path: KernelPath = .best) -> Tensor {
        let out = Tensor(uninitialized: x.shape)
        apply(x.data, out.data, count: x.count, path: path)
        return out
    }

    /// Writes the activation of `x` into `x`'s storage (`path`: see `apply`).
    public func applyInPlace(_ x: Tensor, path: KernelPath = .best) { apply(x.data, x.data, count: x.count, path: path) }

    /// `out[i] = f(x[i])` for `count` elements (`out` may equal `x`), split over `Compute.pool`.
    /// `path` picks GELU's kernel (the AVX-512 one where available, or the SIMD8 one; same results);
    /// the other activations have only SIMD8.
    public func apply(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int, path: KernelPath = .best) {
        // One specialised loop per case: the switch stays outside the inner loop.
        switch self {
        case .gelu:
            #if arch(x86_64)
            if path.usesAVX512 {
                // Sources/CKernels/gelu_avx512.c: gelu8's arithmetic on 16 lanes.
                ElementwiseSplit.elements(count, grain: Activation.grain) { lo, hi in
                    ck_gelu_avx512(x + lo, out + lo, hi - lo)
                }
                return
            }
            #endif
            Activation.run(x, out, count, Activation.gelu8)
        case .geluTanh: Activation.run(x, out, count, Activation.geluTanh8)
        case .quickGelu: Activation.run(x, out, count, Activation.quickGelu8)
        case .silu: Activation.run(x, out, count, Activation.silu8)
        case .sigmoid: Activation.run(x, out, count, VectorMath.sigmoid)
        }
    }

    /// Elements per parallel chunk: activations cost far more per element than a copy, so they split
    /// at a smaller grain than `ElementwiseSplit.grain`.
    static let grain = 8192

    @inline(__always)
    static func run(
        _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ count: Int,
        _ op: (SIMD8<Float>) -> SIMD8<Float>
    ) {
        ElementwiseSplit.elements(count, grain: Activation.grain) { lo, hi in
            // Four independent vectors per iteration: one vector's chain of ~40 dependent operations
            // (GELU) is longer than the out-of-order window can hide, so a one-vector loop waits on
            // latency; four interleave. Lanes see the same arithmetic whichever group they are in.
            var i = lo
            while i + 32 <= hi {
                let v0 = op(VectorMath.load(x + i)), v1 = op(VectorMath.load(x + i + 8))
                let v2 = op(VectorMath.load(x + i + 16)), v3 = op(VectorMath.load(x + i + 24))
                VectorMath.store(v0, out + i)
                VectorMath.store(v1, out + i + 8)
                VectorMath.store(v2, out + i + 16)
                VectorMath.store(v3, out + i + 24)
                i += 32
            }
            ElementwiseSplit.map(x, out, i, hi, op)
        }
    }

    @inline(__always)
    static func gelu8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        // x Phi(x) = max(x, 0) - |x| Phi(-|x|): one tail evaluation, no cancellation for x < 0, and for
        // x >= 0 a single rounding in x - x Phi(-x). torch evaluates x * 0.5 * (1 + erf(x * M_SQRT1_2))
        // with an erf of 1.5e-7 absolute error (up to 1.1e-6 off the exact GELU near x = -3.47); this
        // is within 1.2e-7 of exact. |x| is clamped to 9 for the tail: below -9 the result is
        // -9 Phi(-9) = -1e-18 (exact: smaller still; torch: 0, and NaN at -inf). NaN stays NaN.
        let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
        let a = unsafeBitCast(bits & 0x7FFF_FFFF, to: SIMD8<Float>.self)
        let ac = a.replacing(with: 9, where: a .> 9)
        let positive = x.replacing(with: 0, where: x .< 0)
        // The tail negated by its sign bit: SIMD's prefix minus is 0 - v, which would turn gelu(-0) into +0.
        let minusTail = unsafeBitCast(unsafeBitCast(VectorMath.normalTail(ac), to: SIMD8<UInt32>.self) ^ 0x8000_0000, to: SIMD8<Float>.self)
        return positive.addingProduct(ac, minusTail)
    }

    @inline(__always)
    static func geluTanh8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        // torch: kBeta = M_SQRT2 * M_2_SQRTPI * 0.5; inner = kBeta * (x + kKappa * x^3).
        let cube = x * x * x
        let inner = (x + cube * 0.044_715) * 0.797_884_560_802_865_4
        return (x * 0.5) * (SIMD8<Float>(repeating: 1) + VectorMath.tanh(inner))
    }

    @inline(__always)
    static func quickGelu8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        x * VectorMath.sigmoid(x * 1.702)
    }

    @inline(__always)
    static func silu8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        x / (SIMD8<Float>(repeating: 1) + VectorMath.exp(-x))
    }
}

extension Tensor {
    /// `torch.nn.GELU()` (exact, erf).
    public func gelu() -> Tensor { Activation.gelu(self) }
    /// `torch.nn.GELU(approximate='tanh')`.
    public func geluTanh() -> Tensor { Activation.geluTanh(self) }
    /// `x * sigmoid(1.702 x)` (CLIP's quick_gelu).
    public func quickGelu() -> Tensor { Activation.quickGelu(self) }
    /// `torch.nn.SiLU`.
    public func silu() -> Tensor { Activation.silu(self) }
    /// `torch.sigmoid`.
    public func sigmoid() -> Tensor { Activation.sigmoid(self) }

    /// Writes GELU (exact) into this tensor's storage.
    public func geluInPlace() { Activation.gelu.applyInPlace(self) }
    /// Writes SiLU into this tensor's storage.
    public func siluInPlace() { Activation.silu.applyInPlace(self) }

    /// `torch.nn.LeakyReLU(negative_slope)`: `x > 0 ? x : x * negativeSlope`.
    public func leakyRelu(negativeSlope: Float = 0.01) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, o = out.data
        let slope = SIMD8<Float>(repeating: negativeSlope)
        ElementwiseSplit.elements(count) { lo, hi in
            ElementwiseSplit.map(x, o, lo, hi) { v in v.replacing(with: v * slope, where: .!(v .> 0)) }
        }
        return out
    }
}
