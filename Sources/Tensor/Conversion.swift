/// Widening conversions of half-precision formats to Float32.
public enum Conversion {
    /// IEEE binary16 (little-endian, possibly unaligned) to Float32.
    public static func float16ToFloat32(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let bits = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
            dst[i] = Float(Float16(bitPattern: bits))
        }
    }

    /// bfloat16 (little-endian, possibly unaligned) to Float32: the upper half of a Float32.
    public static func bfloat16ToFloat32(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let bits = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
            dst[i] = Float(bitPattern: UInt32(bits) << 16)
        }
    }
}
