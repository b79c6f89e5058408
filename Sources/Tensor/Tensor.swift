import Foundation

/// Float32 storage, 64-byte aligned, either owned (allocated here) or borrowed from another
/// owner such as a memory-mapped file, which is kept alive as long as the storage is.
public final class TensorStorage: @unchecked Sendable {
    /// First element.
    public let pointer: UnsafeMutablePointer<Float>
    /// Number of Float32 elements.
    public let count: Int
    private let owner: AnyObject?

    /// Allocates `count` elements, zero-filled when `zeroed`.
    public init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0, "negative element count \(count)")
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let raw = BufferCache.shared.allocate(bytes: bytes)
        if zeroed { raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        owner = nil
    }

    /// Wraps memory owned by `owner` (kept alive by this storage); never freed here.
    public init(borrowing pointer: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.pointer = pointer
        self.count = count
        self.owner = owner
    }

    deinit {
        if owner == nil {
            BufferCache.shared.release(UnsafeMutableRawPointer(pointer), bytes: max(count, 1) * MemoryLayout<Float>.stride)
        }
    }
}

/// A dense, row-major (C-contiguous) Float32 tensor. Images are NHWC.
///
/// Tensors share storage when reshaped; ops return new tensors. Functions named `...InPlace`
/// write into their receiver's storage and document it.
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
    /// Extent of every dimension, outermost first.
    public let shape: [Int]
    /// The elements.
    public let storage: TensorStorage

    /// A tensor of zeros.
    public init(zeros shape: [Int]) {
        self.shape = shape
        storage = TensorStorage(count: Tensor.elementCount(shape), zeroed: true)
    }

    /// A tensor whose elements the caller writes before reading.
    public init(uninitialized shape: [Int]) {
        self.shape = shape
        storage = TensorStorage(count: Tensor.elementCount(shape), zeroed: false)
    }

    /// A tensor filled with `value`.
    public init(shape: [Int], repeating value: Float) {
        self.init(uninitialized: shape)
        storage.pointer.update(repeating: value, count: count)
    }

    /// A tensor holding `values` (row-major) with the given shape.
    public init(shape: [Int], values: [Float]) {
        precondition(
            Tensor.elementCount(shape) == values.count,
            "shape \(shape) holds \(Tensor.elementCount(shape)) elements, got \(values.count) values")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    /// A tensor over existing storage (for example a memory-mapped weight).
    public init(shape: [Int], storage: TensorStorage) {
        precondition(
            Tensor.elementCount(shape) == storage.count,
            "shape \(shape) does not match storage of \(storage.count) elements")
        self.shape = shape
        self.storage = storage
    }

    /// Product of the extents.
    public static func elementCount(_ shape: [Int]) -> Int {
        shape.reduce(1) { p, d in
            precondition(d >= 0, "negative extent in shape \(shape)")
            return p * d
        }
    }

    /// Number of elements.
    @inlinable public var count: Int { storage.count }
    /// Number of dimensions.
    @inlinable public var rank: Int { shape.count }
    /// First element, for kernels.
    @inlinable public var data: UnsafeMutablePointer<Float> { storage.pointer }

    /// Extent of dimension `i`; negative `i` counts from the end.
    @inlinable public func dim(_ i: Int) -> Int { shape[i < 0 ? shape.count + i : i] }

    /// The same storage viewed with another shape of the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var newShape = newShape
        if let inferred = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != inferred }.reduce(1) { $0 * $1.element }
            newShape[inferred] = known == 0 ? 0 : count / known
        }
        precondition(
            Tensor.elementCount(newShape) == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        return Tensor(shape: newShape, storage: storage)
    }

    /// A copy with its own storage.
    public func copy() -> Tensor {
        let out = Tensor(uninitialized: shape)
        out.data.update(from: data, count: count)
        return out
    }

    /// The elements as an array (row-major).
    public func toArray() -> [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// Element at a flat (row-major) index.
    @inlinable public subscript(flat i: Int) -> Float {
        get { data[i] }
        nonmutating set { data[i] = newValue }
    }

    public var description: String {
        let head = UnsafeBufferPointer(start: data, count: min(count, 6)).map { String($0) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(head)\(count > 6 ? ", ..." : "")])"
    }
}
