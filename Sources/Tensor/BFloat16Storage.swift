/// bfloat16 elements (raw `UInt16` bit patterns, little-endian), 64-byte aligned and owned: the resident
/// form of GEMM weights in `bf16` precision.
public final class BFloat16Storage: @unchecked Sendable {
    /// First element.
    public let pointer: UnsafeMutablePointer<UInt16>
    /// Number of elements.
    public let count: Int

    /// `count` uninitialised elements (the caller fills them).
    public init(count: Int) {
        precondition(count >= 0, "negative element count \(count)")
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 2, alignment: 64)
        pointer = raw.bindMemory(to: UInt16.self, capacity: max(count, 1))
        self.count = count
    }

    /// `count` Float32 values at `source` rounded to bfloat16 (round to nearest even, as torch).
    public convenience init(rounding source: UnsafePointer<Float>, count: Int) {
        self.init(count: count)
        BFloat16Storage.round(source, into: pointer, count: count)
    }

    /// `count` raw bfloat16 values (little-endian, possibly unaligned) copied as they are.
    public convenience init(copying source: UnsafeRawPointer, count: Int) {
        self.init(count: count)
        UnsafeMutableRawPointer(pointer).copyMemory(from: source, byteCount: count * 2)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    /// The elements widened to Float32 (exact).
    public func widened() -> Tensor {
        let out = Tensor(uninitialized: [count])
        let src = UnsafeRawPointer(pointer)
        Compute.pool.parallelFor(count, grain: 1 << 16) { r in
            Conversion.bfloat16ToFloat32(src + 2 * r.lowerBound, out.data + r.lowerBound, count: r.count)
        }
        return out
    }

    /// Rounds `count` Float32 values to bfloat16 on the pool.
    static func round(_ source: UnsafePointer<Float>, into dst: UnsafeMutablePointer<UInt16>, count: Int) {
        Compute.pool.parallelFor(count, grain: 1 << 16) { r in
            Conversion.float32ToBFloat16(source + r.lowerBound, dst + r.lowerBound, count: r.count)
        }
    }
}
