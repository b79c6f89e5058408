#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Tensor

/// A memory-mapped, validated safetensors file (https://github.com/huggingface/safetensors format).
///
/// Opening maps the file (`mmap`, read-only) and validates the whole header (see `SafeTensorsHeader`
/// for the rules); any damage is a `SafeTensorsError` naming the file and tensor, never a crash.
/// `tensor(_:)` returns an owned Float32 copy (F16/BF16 widened); `borrowedTensor(_:)` returns a
/// zero-copy, read-only view into the mapping when the data is F32 and 4-byte aligned.
public final class SafeTensorsFile: TensorSource, @unchecked Sendable {
    /// Path of the file.
    public let url: URL
    /// The `__metadata__` string map (e.g. `format`: `pt`, `pd`, `np`).
    public let metadata: [String: String]
    /// Header entries by name.
    public let infos: [String: TensorInfo]
    /// Offset of the data section from the start of the file.
    public let dataStart: Int
    private let mapping: MappedFile

    /// Names of all tensors, sorted.
    public var names: [String] { infos.keys.sorted() }
    /// Which framework wrote the file, from `metadata["format"]`.
    public var format: SafeTensorsFormat { SafeTensorsFormat(metadataValue: metadata["format"]) }
    /// This file.
    public var files: [URL] { [url] }

    /// How the file will be read, for the kernel's readahead.
    public enum Access: Sendable {
        /// Each tensor read about once, front to back (loading with conversion): `MADV_SEQUENTIAL`.
        case sequential
        /// Views kept and read repeatedly (borrowed weights): no advice.
        case random
    }

    /// Opens, maps and validates `url`.
    public init(url: URL, access: Access = .sequential, limits: SafeTensorsLimits = SafeTensorsLimits()) throws {
        self.url = url
        mapping = try MappedFile(path: url.path)
        let header = try SafeTensorsHeader.parse(mapping.bytes, file: url.path, limits: limits)
        metadata = header.metadata
        infos = header.infos
        dataStart = header.dataStart
        if access == .sequential { mapping.advise(MADV_SEQUENTIAL) }
    }

    /// The header entry of `name`, if present.
    public func info(_ name: String) -> TensorInfo? { infos[name] }

    /// Calls `body` with the stored bytes of `name` (valid only during the call).
    public func withRawBytes<R>(_ name: String, _ body: (TensorInfo, UnsafeRawBufferPointer) throws -> R) throws -> R {
        let info = try require(name)
        let start = dataStart + info.byteRange.lowerBound
        return try withExtendedLifetime(mapping) {
            try body(info, UnsafeRawBufferPointer(rebasing: mapping.bytes[start..<(start + info.byteRange.count)]))
        }
    }

    /// The tensor `name` as an owned Float32 tensor (F16 and BF16 widened, I64 converted, F32 copied
    /// out of the mapping): safe to mutate and independent of this file's lifetime.
    public func tensor(_ name: String) throws -> Tensor {
        let out = try withRawBytes(name) { info, raw in
            let out = Tensor(uninitialized: info.shape)
            Self.widen(info.dtype, raw, into: out.data, count: out.count)
            return out
        }
        if let info = infos[name] {
            mapping.dropPages((dataStart + info.byteRange.lowerBound)..<(dataStart + info.byteRange.upperBound))
        }
        return out
    }

    /// The tensor `name` without copying when it is F32 and 4-byte aligned in the mapping (the
    /// usual case: the reference writer aligns the data section to 8 bytes); otherwise as `tensor(_:)`.
    ///
    /// A borrowed tensor is a READ-ONLY view (the mapping is `PROT_READ`: writing to it crashes); it
    /// keeps the mapping alive for as long as it exists.
    public func borrowedTensor(_ name: String) throws -> Tensor {
        let info = try require(name)
        let offset = dataStart + info.byteRange.lowerBound
        guard info.dtype == .f32, offset % MemoryLayout<Float>.alignment == 0, let base = mapping.base else {
            return try tensor(name)
        }
        let pointer = UnsafeMutableRawPointer(mutating: base + offset).assumingMemoryBound(to: Float.self)
        let storage = TensorStorage(borrowing: pointer, count: info.byteRange.count / 4, owner: mapping)
        return Tensor(shape: info.shape, storage: storage)
    }

    /// The I64 tensor `name` as integers.
    public func int64s(_ name: String) throws -> [Int64] {
        try withRawBytes(name) { info, raw in
            guard info.dtype == .i64 else {
                throw SafeTensorsError(file: url.path, tensor: name, reason: "is \(info.dtype.rawValue), expected I64")
            }
            return (0..<(raw.count / 8)).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        }
    }

    private func require(_ name: String) throws -> TensorInfo {
        guard let info = infos[name] else {
            throw SafeTensorsError(file: url.path, tensor: name, reason: "not in file")
        }
        return info
    }

    /// Converts `count` stored elements of `dtype` at `raw` (any alignment) to Float32.
    /// Large tensors are split across `Compute.pool` (page faults and conversion overlap).
    static func widen(_ dtype: DType, _ raw: UnsafeRawBufferPointer, into dst: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0, let src = raw.baseAddress else { return }
        Compute.pool.parallelFor(count, grain: 1 << 18) { r in
            widenSerial(dtype, src + r.lowerBound * dtype.size, into: dst + r.lowerBound, count: r.count)
        }
    }

    private static func widenSerial(_ dtype: DType, _ src: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>, count: Int) {
        switch dtype {
        case .f32: memcpy(dst, src, count * 4)
        case .f16: Conversion.float16ToFloat32(src, dst, count: count)
        case .bf16: Conversion.bfloat16ToFloat32(src, dst, count: count)
        case .i64:
            for i in 0..<count { dst[i] = Float(Int64(littleEndian: src.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))) }
        }
    }
}
