/// Conversions between Float32 and the two half-precision formats of checkpoints (IEEE binary16 and bfloat16),
/// vectorised with branch-free bit manipulation on SIMD8 lanes.
///
/// The package is compiled for baseline x86-64 (no F16C), where `Float(Float16)` is one `__extendhfsf2` call
/// per element; these loops convert 8 elements per step with SSE2 integer and float operations instead.
/// Half-precision buffers are little-endian (as safetensors stores them, and as every supported CPU is) and
/// may be unaligned.
public enum Conversion {
    private typealias VU = SIMD8<UInt32>
    private typealias VI = SIMD8<Int32>
    private typealias VF = SIMD8<Float>
    private typealias VH = SIMD8<UInt16>

    // MARK: Widening

    /// IEEE binary16 (little-endian, possibly unaligned) to Float32, exactly: normals, subnormals, signed
    /// zeros, infinities; NaNs stay NaNs with their payload, signalling ones quieted (as `Float(Float16)` does).
    public static func float16ToFloat32(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        convert(src, dst, count: count, halfToFloat)
    }

    /// bfloat16 (little-endian, possibly unaligned) to Float32: the upper half of a Float32, exactly.
    public static func bfloat16ToFloat32(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        convert(src, dst, count: count, bfloatToFloat)
    }

    @inline(__always)
    private static func convert(
        _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int, _ kernel: (VH) -> VF
    ) {
        precondition(count >= 0, "negative element count \(count)")
        let out = UnsafeMutableRawPointer(dst)
        var i = 0
        while i + 8 <= count {
            let h = src.loadUnaligned(fromByteOffset: i * 2, as: VH.self)
            out.storeBytes(of: kernel(h), toByteOffset: i * 4, as: VF.self)
            i += 8
        }
        if i < count {
            // The tail goes through the same kernel, padded with zeros.
            var h = VH()
            for k in 0..<(count - i) { h[k] = src.loadUnaligned(fromByteOffset: (i + k) * 2, as: UInt16.self) }
            let f = kernel(h)
            for k in 0..<(count - i) { dst[i + k] = f[k] }
        }
    }

    @inline(__always)
    private static func bfloatToFloat(_ h: VH) -> VF {
        unsafeBitCast(VU(truncatingIfNeeded: h) &<< 16, to: VF.self)
    }

    /// binary16 bits to Float32 (F. Giesen's `half_to_float_fast5`, branch-free): move exponent and mantissa
    /// into place and rebias the exponent by 127 - 15; infinities and NaNs get the maximal exponent, subnormals
    /// (and zeros) are renormalised by one float subtraction of 2^-14, which is exact.
    @inline(__always)
    private static func halfToFloat(_ h: VH) -> VF {
        let w = VU(truncatingIfNeeded: h)
        var o = (w & 0x7FFF) &<< 13  // exponent and mantissa, in float position
        let exponent = unsafeBitCast(o & 0x0F80_0000, to: VI.self)
        o = o &+ 0x3800_0000  // (127 - 15) << 23
        // Comparisons are vector against vector: the vector-against-scalar integer forms do not vectorise.
        let infOrNaN = exponent .== VI(repeating: 0x0F80_0000)
        let subnormal = exponent .== VI(repeating: 0)
        // Exponent 255: (128 - 16) << 23 more; NaNs also get the quiet bit, as `Float(Float16)` and F16C give them
        // (a non-zero 10-bit mantissa plus 0x3FF carries into bit 10).
        let quiet = (((w & 0x3FF) &+ 0x3FF) & 0x400) &<< 12
        let big = (o &+ 0x3800_0000) | quiet
        let renormalised = unsafeBitCast(
            unsafeBitCast(o &+ 0x0080_0000, to: VF.self) - VF(repeating: 0x1p-14), to: VU.self)
        o = o.replacing(with: big, where: infOrNaN)
        o = o.replacing(with: renormalised, where: subnormal)
        return unsafeBitCast(o | ((w & 0x8000) &<< 16), to: VF.self)
    }

    // MARK: Narrowing

    /// Float32 to bfloat16 (little-endian, possibly unaligned) with round-to-nearest-even, as
    /// `c10::BFloat16`'s `round_to_nearest_even`: NaN becomes 0x7FC0, overflow rounds to infinity.
    public static func float32ToBFloat16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, count: Int) {
        narrow(src, dst, count: count, floatToBFloat)
    }

    /// Float32 to IEEE binary16 (little-endian, possibly unaligned) with round-to-nearest-even, as
    /// `Float16(Float)` and torch's `.half()`: values past 65520 become infinity, small values round to
    /// subnormals or zero; NaN becomes the quiet NaN 0x7E00 with the input's sign.
    public static func float32ToFloat16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, count: Int) {
        narrow(src, dst, count: count, floatToHalf)
    }

    // Deliberate parallel of Conversion.swift:convert: the other direction (4-byte lanes in, 2-byte lanes out,
    // the tail stored as 2-byte values).
    @inline(__always)
    private static func narrow(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, count: Int, _ kernel: (VF) -> VH
    ) {
        precondition(count >= 0, "negative element count \(count)")
        let input = UnsafeRawPointer(src)
        var i = 0
        while i + 8 <= count {
            let f = input.loadUnaligned(fromByteOffset: i * 4, as: VF.self)
            dst.storeBytes(of: kernel(f), toByteOffset: i * 2, as: VH.self)
            i += 8
        }
        if i < count {
            var f = VF()
            for k in 0..<(count - i) { f[k] = src[i + k] }
            let h = kernel(f)
            for k in 0..<(count - i) { dst.storeBytes(of: h[k], toByteOffset: (i + k) * 2, as: UInt16.self) }
        }
    }

    @inline(__always)
    private static func floatToBFloat(_ f: VF) -> VH {
        let u = unsafeBitCast(f, to: VU.self)
        let rounded = (u &+ ((u &>> 16) & 1) &+ 0x7FFF) &>> 16
        let isNaN = f .!= f
        return VH(truncatingIfNeeded: rounded.replacing(with: 0x7FC0, where: isNaN))
    }

    /// F. Giesen's `float_to_half_fast3_rtne`, branch-free: values at or above 2^16 (after rounding, 65520)
    /// saturate to infinity (NaN to 0x7E00); values below 2^-14 are rounded into the subnormal range by one float
    /// addition of 0.5 (whose rounding is the round-to-nearest-even we need); the rest round the mantissa with
    /// the add-half-minus-one-plus-odd-bit trick and rebias the exponent.
    @inline(__always)
    private static func floatToHalf(_ f: VF) -> VH {
        let u = unsafeBitCast(f, to: VU.self)
        let sign = u & 0x8000_0000
        let a = u ^ sign  // |f|
        let ai = unsafeBitCast(a, to: VI.self)  // sign bit clear: signed compares are unsigned ones

        // Overflow, infinity, NaN.
        let tooBig = ai .>= VI(repeating: (127 + 16) << 23)
        let special = VU(repeating: 0x7C00).replacing(
            with: VU(repeating: 0x7E00), where: ai .> VI(repeating: 0x7F80_0000))

        // Subnormal halves (and zero): |f| < 2^-14.
        let denormMagic: UInt32 = ((127 - 15) + (23 - 10) + 1) << 23  // 0.5
        let tiny = ai .< VI(repeating: 113 << 23)
        let sub = unsafeBitCast(unsafeBitCast(a, to: VF.self) + VF(repeating: Float(bitPattern: denormMagic)), to: VU.self) &- denormMagic

        // Normal halves: rebias, round to nearest even on the 13 dropped bits.
        let mantissaOdd = (a &>> 13) & 1
        let normal = (a &+ (UInt32(bitPattern: (15 - 127) << 23) &+ 0xFFF) &+ mantissaOdd) &>> 13

        var o = normal.replacing(with: sub, where: tiny)
        o = o.replacing(with: special, where: tooBig)
        return VH(truncatingIfNeeded: o | (sign &>> 16))
    }
}
