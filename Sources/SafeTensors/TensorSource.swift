import Foundation
import Tensor

/// Named tensors from one safetensors file or a sharded checkpoint.
public protocol TensorSource: AnyObject, Sendable {
    /// The files the tensors come from (for error messages), index file first when sharded.
    var files: [URL] { get }
    /// Names of all tensors, sorted.
    var names: [String] { get }
    /// Which framework wrote the tensors (`metadata["format"]`).
    var format: SafeTensorsFormat { get }
    /// The header entry of `name`, if present.
    func info(_ name: String) -> TensorInfo?
    /// The tensor `name` as an owned Float32 tensor (F16/BF16 widened, I64 converted).
    func tensor(_ name: String) throws -> Tensor
    /// The tensor `name`, a read-only zero-copy view when it is aligned F32, else as `tensor(_:)`.
    func borrowedTensor(_ name: String) throws -> Tensor
    /// The I64 tensor `name` as integers.
    func int64s(_ name: String) throws -> [Int64]
    /// Calls `body` with the stored bytes of `name` (valid only during the call).
    func withRawBytes<R>(_ name: String, _ body: (TensorInfo, UnsafeRawBufferPointer) throws -> R) throws -> R
}

extension TensorSource {
    /// The files as one string for messages (`a.safetensors, b.safetensors`).
    public var fileList: String { files.map(\.path).joined(separator: ", ") }
}
