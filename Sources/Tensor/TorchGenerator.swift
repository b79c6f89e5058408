import Foundation

/// A random number generator that matches `torch.Generator("cpu")` of torch 2.x on x86 (CPUs with AVX2 or
/// AVX-512, the kernels PyTorch dispatches to on any current x86 server): the same MT19937 stream, the same
/// uniform and normal transforms, the same cached second Box-Muller value, so that a seed gives the tensors
/// PyTorch gives, bit for bit.
///
/// Ports `aten/src/ATen/core/MT19937RNGEngine.h`, `CPUGeneratorImpl.cpp`, `core/DistributionsHelper.h`,
/// `core/TransformationHelper.h` and `native/cpu/DistributionTemplates.h` (`normal_fill_AVX2`,
/// `normal_fill_16_AVX2`) with the Cephes `log256_ps` / `sincos256_ps` of `native/cpu/avx_mathfun.h`,
/// evaluated with the fused multiply-adds that GCC forms from those intrinsics.
///
/// One stream per generator, no per-call offsets: every call continues where the previous one stopped.
/// Not thread-safe: use one generator per request (as diffusers does with `generator=`).
public final class TorchGenerator {
    private static let stateSize = 624
    private static let shift = 397

    /// The MT19937 state words.
    private let state: UnsafeMutablePointer<UInt32>
    /// Next state word to temper; `stateSize` means the state must twist first.
    private var index: Int
    /// Second value of the last Box-Muller pair drawn by the scalar `normal_distribution<double>`
    /// (`next_double_normal_sample_`); consumed by the next scalar normal draw, cleared by seeding.
    private var cachedNormal: Double?
    /// The seed last set, as given.
    public private(set) var initialSeed: UInt64

    /// A generator seeded as `torch.Generator("cpu").manual_seed(seed)`.
    public init(seed: UInt64) {
        state = .allocate(capacity: Self.stateSize)
        index = Self.stateSize
        initialSeed = seed
        manualSeed(seed)
    }

    deinit { state.deallocate() }

    /// Reseeds as `Generator.manual_seed(seed)`: MT19937 `init_genrand` on the low 32 bits of `seed`
    /// (torch keeps only those), and the cached normal value is dropped.
    public func manualSeed(_ seed: UInt64) {
        initialSeed = seed
        state[0] = UInt32(truncatingIfNeeded: seed)
        for j in 1..<Self.stateSize {
            let prev = state[j - 1]
            state[j] = 1_812_433_253 &* (prev ^ (prev >> 30)) &+ UInt32(j)
        }
        index = Self.stateSize
        cachedNormal = nil
    }

    // MARK: Raw draws

    /// One 32-bit draw (`CPUGeneratorImpl::random`, one tempered MT19937 word).
    public func random() -> UInt32 {
        if index == Self.stateSize { twist() }
        let y = state[index]
        index += 1
        return Self.temper(y)
    }

    /// One 64-bit draw (`CPUGeneratorImpl::random64`): the first word is the high half.
    public func random64() -> UInt64 {
        let hi = UInt64(random())
        let lo = UInt64(random())
        return hi << 32 | lo
    }

    @inline(__always)
    private static func temper(_ word: UInt32) -> UInt32 {
        var y = word
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// Regenerates the 624 state words (`mt19937_engine::next_state`).
    private func twist() {
        let n = Self.stateSize, m = Self.shift
        let s = state
        @inline(__always) func mixed(_ u: UInt32, _ v: UInt32) -> UInt32 {
            let y = (u & 0x8000_0000) | (v & 0x7FFF_FFFF)
            return (y >> 1) ^ ((v & 1) != 0 ? 0x9908_B0DF : 0)
        }
        for j in 0..<(n - m) { s[j] = s[j + m] ^ mixed(s[j], s[j + 1]) }
        for j in (n - m)..<(n - 1) { s[j] = s[j + m - n] ^ mixed(s[j], s[j + 1]) }
        s[n - 1] = s[m - 1] ^ mixed(s[n - 1], s[0])
        index = 0
    }

    /// Writes `count` uniform floats in [0, 1) from consecutive draws:
    /// `uniform_real_distribution<float>(0, 1)`, that is `(word & (2^24 - 1)) * 2^-24`.
    private func fillUniform(_ dst: UnsafeMutablePointer<Float>, count: Int) {
        var done = 0
        while done < count {
            if index == Self.stateSize { twist() }
            let k = min(count - done, Self.stateSize - index)
            let src = state + index
            let out = dst + done
            for j in 0..<k {
                let w = Self.temper(src[j]) & 0x00FF_FFFF
                out[j] = Float(Int32(bitPattern: w)) * 0x1p-24
            }
            index += k
            done += k
        }
    }

    /// One uniform double in [0, 1): `(random64 & (2^53 - 1)) * 2^-53`.
    private func uniformDouble() -> Double {
        Double(random64() & ((1 << 53) - 1)) * 0x1p-53
    }

    /// One draw of `at::normal_distribution<double>(0, 1)`: Box-Muller on two uniform doubles, the sine
    /// half cached for the next draw.
    private func normalDouble() -> Double {
        if let cached = cachedNormal {
            cachedNormal = nil
            return cached
        }
        let u1 = uniformDouble()
        let u2 = uniformDouble()
        let r = (-2.0 * log1p(-u2)).squareRoot()
        let theta = 2.0 * Double.pi * u1
        cachedNormal = r * sin(theta)
        return r * cos(theta)
    }

    // MARK: Tensors

    /// `torch.rand(shape, generator=g)` in float32: one 32-bit draw per element, in row-major order.
    public func rand(_ shape: [Int]) -> Tensor {
        let out = Tensor(uninitialized: shape)
        fillUniform(out.data, count: out.count)
        return out
    }

    /// `torch.randn(shape, generator=g)` in float32 (row-major; ask for the NCHW shape torch was given and
    /// permute afterwards to get the same values in another layout).
    ///
    /// With 16 elements or more, PyTorch's vectorised path: `count` uniform floats, Box-Muller on each block
    /// of 16 (element j paired with j + 8), and when `count % 16 != 0` the last 16 elements drawn afresh and
    /// transformed again. Below 16 elements, one `normal_distribution<double>` draw per element, which uses
    /// and refills the cached value.
    public func randn(_ shape: [Int]) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let n = out.count
        let d = out.data
        if n >= 16 {
            fillUniform(d, count: n)
            var i = 0
            while i + 16 <= n {
                Self.boxMuller16(d + i)
                i += 16
            }
            if n % 16 != 0 {
                fillUniform(d + n - 16, count: 16)
                Self.boxMuller16(d + n - 16)
            }
        } else {
            for i in 0..<n { d[i] = Float(normalDouble()) }
        }
        return out
    }

    // MARK: normal_fill_16_AVX2

    private typealias V = SIMD8<Float>
    private typealias VI = SIMD8<Int32>
    private typealias VU = SIMD8<UInt32>

    /// `normal_fill_16_AVX2` with mean 0 and std 1: `d[0..<8]` become `r cos(theta)` and `d[8..<16]` become
    /// `r sin(theta)`, with `r = sqrt(-2 log(1 - d[j]))` and `theta = 2 pi d[j + 8]` in float32.
    @inline(__always)
    private static func boxMuller16(_ d: UnsafeMutablePointer<Float>) {
        let raw = UnsafeMutableRawPointer(d)
        let u1 = 1 - raw.loadUnaligned(as: V.self)
        let u2 = raw.loadUnaligned(fromByteOffset: 32, as: V.self)
        let radius = squareRootOfNonNegative(-2 * cephesLog(u1))
        let theta = Float(2 * Double.pi) * u2  // _mm256_set1_ps(2.0f * c10::pi<double>)
        let (sine, cosine) = cephesSinCos(theta)
        // `fmadd(n, std, mean)` with std 1 and mean 0 is `n + 0`: exact, but turns -0 into +0 as torch does.
        raw.storeBytes(of: radius * cosine + 0, as: V.self)
        raw.storeBytes(of: radius * sine + 0, toByteOffset: 32, as: V.self)
    }

    /// `c + a * b` rounded once, where GCC contracts `_mm256_add_ps(_mm256_mul_ps(a, b), c)` into `vfmadd`.
    /// Release builds target x86-64-v3 (Package.swift), where this is one `vfmadd` instruction; elsewhere
    /// it is a correctly rounded `fmaf` per lane: the same values, only slower.
    @inline(__always)
    private static func fma(_ a: V, _ b: V, _ c: V) -> V { c.addingProduct(a, b) }

    // Deliberate parallel of TorchGenerator.swift:float(_:) and squareRootOfNonNegative(_:): one lane loop per
    // intrinsic, each written to compile to its own instruction.
    /// `_mm256_cvttps_epi32`. The element loop compiles to `cvttps2dq`; `SIMD8<Int32>(_:rounding:)` would not.
    @inline(__always)
    private static func truncatedToInt(_ v: V) -> VI {
        var r = VI()
        for k in 0..<8 { r[k] = Int32(v[k]) }
        return r
    }

    /// `mask ? a : b` per lane (`_mm256_blendv_ps`), `mask` lanes all ones or all zeros. The masks come
    /// from sign bits, not from `.<` and `replacing(with:where:)`, which compiled here to byte shuffles
    /// and a branch per lane and kept the Box-Muller scalar.
    @inline(__always)
    private static func select(_ mask: VI, _ a: V, _ b: V) -> V {
        let m = unsafeBitCast(mask, to: VU.self)
        return unsafeBitCast((unsafeBitCast(a, to: VU.self) & m) | (unsafeBitCast(b, to: VU.self) & ~m), to: V.self)
    }

    /// All ones where `a < b`, for finite `a`, `b` (`_mm256_cmp_ps(a, b, _CMP_LT_OS)`): the sign of `a - b`,
    /// which is negative exactly when `a < b` (a difference of distinct floats is never zero).
    @inline(__always)
    private static func lessThan(_ a: V, _ b: V) -> VI {
        unsafeBitCast(a - b, to: VI.self) &>> 31
    }

    /// `_mm256_sqrt_ps` for `v >= 0` (or -0, whose root's sign the caller's `+ 0` drops). On Linux,
    /// `squareRoot()` is libm's `sqrtf` with its errno branch for negative inputs: a `sqrtf` call per lane
    /// that kept the whole Box-Muller scalar. Through `magnitude`, LLVM sees the input is never negative,
    /// drops the branch and emits one `vsqrtps` (correctly rounded: the same values).
    @inline(__always)
    private static func squareRootOfNonNegative(_ v: V) -> V {
        var r = V()
        for k in 0..<8 { r[k] = v[k].magnitude.squareRoot() }
        return r
    }

    /// `_mm256_cvtepi32_ps`, as an element loop that compiles to `vcvtdq2ps` (`V(_:)` did not).
    @inline(__always)
    private static func float(_ v: VI) -> V {
        var r = V()
        for k in 0..<8 { r[k] = Float(v[k]) }
        return r
    }

    /// `log256_ps`: natural logarithm with the Cephes polynomial (NaN for x <= 0).
    @inline(__always)
    private static func cephesLog(_ input: V) -> V {
        // x <= 0 (or a NaN with the sign bit set): the sign bit set (negative, -0), or +0 (bits - 1 < 0).
        let inputBits = unsafeBitCast(input, to: VI.self)
        let invalid = (inputBits &>> 31) | ((inputBits &- 1) &>> 31)
        // Cut off denormals (max with the smallest normal float).
        let minNormal = V(repeating: Float(bitPattern: 0x0080_0000))
        let xin = select(lessThan(input, minNormal), minNormal, input)
        let bits = unsafeBitCast(xin, to: VU.self)
        let exponent = unsafeBitCast(bits &>> 23, to: VI.self) &- 0x7F
        // Keep the mantissa, with the exponent of 0.5: x in [0.5, 1).
        var x = unsafeBitCast((bits & ~0x7F80_0000) | 0x3F00_0000, to: V.self)
        var e = float(exponent) + 1
        // if x < sqrt(1/2) { e -= 1; x = x + x - 1 } else { x = x - 1 }
        let small = lessThan(x, V(repeating: 0.707106781186547524))
        let tmp = select(small, x, V(repeating: 0))
        x = x - 1
        e = e - select(small, V(repeating: 1), V(repeating: 0))
        x = x + tmp

        let z = x * x
        var y = fma(V(repeating: 7.0376836292E-2), x, V(repeating: -1.1514610310E-1))
        y = fma(y, x, V(repeating: 1.1676998740E-1))
        y = fma(y, x, V(repeating: -1.2420140846E-1))
        y = fma(y, x, V(repeating: 1.4249322787E-1))
        y = fma(y, x, V(repeating: -1.6668057665E-1))
        y = fma(y, x, V(repeating: 2.0000714765E-1))
        y = fma(y, x, V(repeating: -2.4999993993E-1))
        y = fma(y, x, V(repeating: 3.3333331174E-1))
        y = y * x
        y = fma(y, z, e * -2.12194440e-4)
        y = fma(-z, V(repeating: 0.5), y)
        x = x + y
        x = fma(e, V(repeating: 0.693359375), x)
        return select(invalid, V(repeating: .nan), x)
    }

    /// `sincos256_ps`: sine and cosine with the Cephes polynomials and three-part reduction by pi/4.
    @inline(__always)
    private static func cephesSinCos(_ input: V) -> (sin: V, cos: V) {
        let inputBits = unsafeBitCast(input, to: VU.self)
        var x = unsafeBitCast(inputBits & 0x7FFF_FFFF, to: V.self)
        var signSin = inputBits & 0x8000_0000
        // j = (int(|x| * 4/pi) + 1) & ~1
        var j = truncatedToInt(x * 1.27323954473516)
        j = (j &+ 1) & ~1
        let y = float(j)
        let swapSignSin = unsafeBitCast((j & 4) &<< 29, to: VU.self)
        let polyMask = ~(((j & 2) &<< 30) &>> 31)  // (j & 2) == 0
        // Extended precision modular arithmetic: x = ((x - y DP1) - y DP2) - y DP3.
        x = fma(y, V(repeating: -0.78515625), x)
        x = fma(y, V(repeating: -2.4187564849853515625e-4), x)
        x = fma(y, V(repeating: -3.77489497744594108e-8), x)
        let signCos = unsafeBitCast((~(j &- 2) & 4) &<< 29, to: VU.self)
        signSin ^= swapSignSin

        // Cosine polynomial, for 0 <= x <= pi/4.
        let z = x * x
        var c = fma(V(repeating: 2.443315711809948E-005), z, V(repeating: -1.388731625493765E-003))
        c = fma(c, z, V(repeating: 4.166664568298827E-002))
        c = c * z
        c = fma(c, z, -(z * 0.5))
        c = c + 1

        // Sine polynomial, for pi/4 < x <= pi/2.
        var s = fma(V(repeating: -1.9515295891E-4), z, V(repeating: 8.3321608736E-3))
        s = fma(s, z, V(repeating: -1.6666654611E-1))
        s = s * z
        s = fma(s, x, x)

        // Pick each result from the polynomial that fits its octant, with torch's exact arithmetic.
        let zero = V(repeating: 0)
        let ysin2 = select(polyMask, s, zero)
        let ysin1 = select(polyMask, zero, c)
        let s2 = s - ysin2
        let c2 = c - ysin1
        let sine = unsafeBitCast(unsafeBitCast(ysin1 + ysin2, to: VU.self) ^ signSin, to: V.self)
        let cosine = unsafeBitCast(unsafeBitCast(c2 + s2, to: VU.self) ^ signCos, to: V.self)
        return (sine, cosine)
    }
}
