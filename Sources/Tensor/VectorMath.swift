/// Float32 transcendental functions on eight lanes at a time, for the activation, softmax and
/// normalisation kernels. Written with plain SIMD arithmetic, so every function vectorises on SSE2 and
/// better; `normalTail` alone uses fused multiply-adds (`addingProduct`: one `vfmadd` in release
/// builds, which target x86-64-v3; a correctly rounded `fmaf` per lane elsewhere, same values).
///
/// Accuracy, measured over the float range against float64 references (see ElementwiseTests):
/// `exp` within 1 ulp, `erf` within 2.5 ulp (about 1.5e-7 absolute). PyTorch's CPU kernels use
/// Sleef's u10 functions (1 ulp), so results agree with it to a few ulp, not bit for bit.
public enum VectorMath {
    /// Eight Float32 lanes.
    public typealias V = SIMD8<Float>

    /// `e^x` per lane; overflows to +inf above 88.72, flushes to 0 below about -103.9, keeps NaN.
    ///
    /// Cody-Waite reduction `x = n ln2 + r` with `|r| <= ln2/2`, a degree-7 Taylor polynomial (error
    /// 5e-9 relative on that interval), then scaling by `2^n` in two steps so that results in the
    /// subnormal range come out right.
    @inline(__always)
    public static func exp(_ x: V) -> V {
        // Clamp to where the result is 0 or inf anyway, so that n stays in Int32 exponent range.
        var xc = x.replacing(with: 88.8, where: x .> 88.8)
        xc = xc.replacing(with: -104, where: xc .< -104)
        // Round x/ln2 to the nearest integer with the 1.5 * 2^23 trick: the integer lands in the
        // low mantissa bits of k.
        let shifter: Float = 12_582_912
        let k = xc * 1.442_695_04 + V(repeating: shifter)
        let n = k - V(repeating: shifter)
        // ln2 split so that n * ln2Hi is exact for |n| < 2^9.
        let r = (xc - n * 0.693_145_751_953_125) - n * 1.428_606_765_330_187e-6
        var q: V = V(repeating: 1.0 / 5040) * r + V(repeating: 1.0 / 720)
        q = q * r + V(repeating: 1.0 / 120)
        q = q * r + V(repeating: 1.0 / 24)
        q = q * r + V(repeating: 1.0 / 6)
        q = q * r + V(repeating: 0.5)
        let p = V(repeating: 1) + (r + (r * r) * q)
        let ni = unsafeBitCast(k, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let n1 = ni &>> 1
        let n2 = ni &- n1
        let s1 = unsafeBitCast((n1 &+ 127) &<< 23, to: V.self)
        let s2 = unsafeBitCast((n2 &+ 127) &<< 23, to: V.self)
        return (p * s1) * s2
    }

    /// Error function per lane (`torch.erf`), within 2.5 ulp.
    ///
    /// `|x| < 0.875`: `x * P(x^2)`; above: `1 - exp(-x^2) * Q(1 / (1 + |x|/2))`, both least-squares
    /// fits made for this file (scripts/fixtures/elementwise.py checks the result against torch).
    /// Both branches are computed for every lane and selected, which keeps the loop branch-free.
    @inline(__always)
    public static func erf(_ x: V) -> V {
        let signBit = SIMD8<UInt32>(repeating: 0x8000_0000)
        let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
        let sign = bits & signBit
        var a = unsafeBitCast(bits & ~signBit, to: V.self)
        a = a.replacing(with: 10, where: a .> 10)  // erf is 1 in float32 well before 10
        let u = a * a
        // Small branch: erf(a) / a as a polynomial in a^2.
        var p: V = V(repeating: 8.737_627_649_679_78e-05) * u + V(repeating: -0.000_822_587_346_192_449_3)
        p = p * u + V(repeating: 0.005_208_075_512_200_594)
        p = p * u + V(repeating: -0.026_862_144_470_214_844)
        p = p * u + V(repeating: 0.112_837_441_265_583_04)
        p = p * u + V(repeating: -0.376_126_378_774_642_94)
        p = p * u + V(repeating: 1.128_379_225_730_896)
        let small = a * p
        // Large branch: erfc(a) * exp(a^2) as a polynomial in t = 1 / (1 + a/2).
        let t = V(repeating: 1) / (V(repeating: 1) + a * 0.5)
        var q: V = V(repeating: 0.120_184_637_606_143_95) * t + V(repeating: -0.474_171_310_663_223_27)
        q = q * t + V(repeating: 0.567_743_062_973_022_5)
        q = q * t + V(repeating: -0.107_309_401_035_308_84)
        q = q * t + V(repeating: 0.349_613_189_697_265_6)
        q = q * t + V(repeating: 0.259_162_783_622_741_7)
        q = q * t + V(repeating: 0.284_995_943_307_876_6)
        q = q * t + V(repeating: -0.000_159_791_845_362_633_47)
        let large = V(repeating: 1) - exp(-u) * q
        let magnitude = large.replacing(with: small, where: a .< 0.875)
        // NaN input: a is NaN, both branches are NaN, the sign is kept.
        return unsafeBitCast(unsafeBitCast(magnitude, to: SIMD8<UInt32>.self) | sign, to: V.self)
    }

    /// Upper tail of the standard normal distribution per lane, `Phi(-a) = erfc(a / sqrt 2) / 2`, for
    /// `0 <= a <= 9` (callers clamp; NaN stays NaN), to the accuracy GELU needs: absolute error below
    /// 7.5e-8 and `a` times the error below 7.5e-8 (so `a Phi(-a)`, GELU's negative part, is within
    /// 7.5e-8); relative error within 7e-7 up to `a = 2`, growing in the tail (`Phi(-9)` = 1.1e-19).
    ///
    /// `2^G(a)` with `G` a degree-9 polynomial for `log2 Phi(-a)` on `[0, 9]`, a weighted minimax fit made
    /// for this file (the weight is the tolerance above), and `2^r` on `[-1/2, 1/2]` by a degree-5
    /// minimax polynomial (9e-8 relative). No division, no range checks: 15 fused multiply-adds and a
    /// few bit operations, which is all of GELU's cost (`Activation.gelu8`).
    @inline(__always)
    public static func normalTail(_ a: V) -> V {
        var g = V(repeating: -4.733_177_775_051_445e-06).addingProduct(V(repeating: 1.872_907_517_963_540_2e-07), a)
        g = V(repeating: 4.606_233_778_758_906e-05).addingProduct(g, a)
        g = V(repeating: -0.000_193_896_426_935_680_2).addingProduct(g, a)
        g = V(repeating: -0.000_144_522_069_604_136_05).addingProduct(g, a)
        g = V(repeating: 0.007_090_595_085_173_845).addingProduct(g, a)
        g = V(repeating: -0.052_520_960_569_381_714).addingProduct(g, a)
        g = V(repeating: -0.459_199_041_128_158_57).addingProduct(g, a)
        g = V(repeating: -1.151_106_476_783_752_4).addingProduct(g, a)
        g = V(repeating: -0.999_999_940_395_355_2).addingProduct(g, a)
        // 2^g with g in [-63, -1]: n = round(g) by the 1.5 * 2^23 shifter (n lands in k's low mantissa
        // bits, so k's bits shifted left by 23 are n in the exponent field), r = g - n exactly.
        let shifter = V(repeating: 12_582_912)
        let k = g + shifter
        let r = g - (k - shifter)
        var q = V(repeating: 0.009_671_512_991_189_957).addingProduct(V(repeating: 0.001_326_472_731_307_149), r)
        q = V(repeating: 0.055_507_335_811_853_41).addingProduct(q, r)
        q = V(repeating: 0.240_222_424_268_722_53).addingProduct(q, r)
        q = V(repeating: 0.693_147_003_650_665_3).addingProduct(q, r)
        let p = V(repeating: 1).addingProduct(q, r)
        let scaled = unsafeBitCast(p, to: SIMD8<UInt32>.self) &+ (unsafeBitCast(k, to: SIMD8<UInt32>.self) &<< 23)
        return unsafeBitCast(scaled, to: V.self)
    }

    /// Logistic function `1 / (1 + e^-x)` per lane (`torch.sigmoid`).
    @inline(__always)
    public static func sigmoid(_ x: V) -> V {
        V(repeating: 1) / (V(repeating: 1) + exp(-x))
    }

    /// Hyperbolic tangent per lane as `1 - 2 / (e^(2x) + 1)`: exact limits at both ends, about
    /// 1e-7 absolute error (relative error grows near 0, which no caller here depends on).
    @inline(__always)
    public static func tanh(_ x: V) -> V {
        V(repeating: 1) - V(repeating: 2) / (exp(x + x) + V(repeating: 1))
    }

    /// Loads `count < 8` elements into the low lanes, zeros elsewhere (tails of vector loops).
    @inline(__always)
    public static func loadPartial(_ p: UnsafePointer<Float>, _ count: Int) -> V {
        var v = V()
        for j in 0..<count { v[j] = p[j] }
        return v
    }

    /// Stores the low `count < 8` lanes.
    @inline(__always)
    public static func storePartial(_ v: V, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        for j in 0..<count { p[j] = v[j] }
    }

    /// Loads eight elements from any alignment.
    @inline(__always)
    public static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    /// Stores eight elements at any alignment.
    @inline(__always)
    public static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }
}
