import Foundation
import Tensor

/// Element types the reader understands.
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", i64 = "I64"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .i64: 8
        }
    }
}

/// One tensor's header entry.
public struct TensorInfo: Sendable, Equatable {
    /// Name in the file.
    public let name: String
    /// Element type.
    public let dtype: DType
    /// Shape as stored.
    public let shape: [Int]
    /// Byte range inside the data section (after the header).
    public let byteRange: Range<Int>
}

/// A safetensors error; its description names the file and, where there is one, the tensor.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    /// File the error is about.
    public let file: String
    /// Tensor the error is about, if any.
    public let tensor: String?
    /// What is wrong and what was expected.
    public let reason: String

    public init(file: String, tensor: String? = nil, reason: String) {
        self.file = file
        self.tensor = tensor
        self.reason = reason
    }

    public var description: String {
        if let tensor { return "\(file): tensor '\(tensor)': \(reason)" }
        return "\(file): \(reason)"
    }
}

/// A memory-mapped safetensors file (https://github.com/huggingface/safetensors format).
public final class SafeTensorsFile: @unchecked Sendable {
    /// Path of the file.
    public let url: URL
    /// The `__metadata__` string map (e.g. `format`: `pt`, `pd`, `np`).
    public let metadata: [String: String]
    /// Header entries by name.
    public let infos: [String: TensorInfo]
    private let bytes: Data
    private let dataStart: Int

    /// Names of all tensors, sorted.
    public var names: [String] { infos.keys.sorted() }

    /// Opens and validates `url`.
    public init(url: URL) throws {
        self.url = url
        let file = url.path
        do {
            bytes = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw SafeTensorsError(file: file, reason: "cannot read: \(error.localizedDescription)")
        }
        guard bytes.count >= 8 else {
            throw SafeTensorsError(file: file, reason: "truncated: \(bytes.count) bytes, need at least 8 for the header length")
        }
        let headerLength = bytes.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        guard headerLength >= 2, headerLength <= bytes.count - 8 else {
            throw SafeTensorsError(file: file, reason: "header length \(headerLength) does not fit in a file of \(bytes.count) bytes")
        }
        dataStart = 8 + headerLength
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<dataStart))
        } catch {
            throw SafeTensorsError(file: file, reason: "header is not valid JSON: \(error.localizedDescription)")
        }
        guard let header = json as? [String: Any] else {
            throw SafeTensorsError(file: file, reason: "header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var infos: [String: TensorInfo] = [:]
        let dataLength = bytes.count - dataStart
        for (name, value) in header {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else {
                    throw SafeTensorsError(file: file, reason: "__metadata__ is not an object of strings")
                }
                for (k, v) in map {
                    guard let s = v as? String else {
                        throw SafeTensorsError(file: file, reason: "__metadata__ value for '\(k)' is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any] else {
                throw SafeTensorsError(file: file, tensor: name, reason: "entry is not an object")
            }
            guard let dtypeName = entry["dtype"] as? String, let dtype = DType(rawValue: dtypeName) else {
                throw SafeTensorsError(file: file, tensor: name, reason: "unsupported dtype \(entry["dtype"] ?? "nil"); expected F32, F16, BF16 or I64")
            }
            guard let shapeAny = entry["shape"] as? [Any], let shape = Self.ints(shapeAny), shape.allSatisfy({ $0 >= 0 }) else {
                throw SafeTensorsError(file: file, tensor: name, reason: "shape is not a list of non-negative integers")
            }
            guard let offsAny = entry["data_offsets"] as? [Any], let offs = Self.ints(offsAny), offs.count == 2 else {
                throw SafeTensorsError(file: file, tensor: name, reason: "data_offsets is not a pair of integers")
            }
            guard offs[0] >= 0, offs[0] <= offs[1], offs[1] <= dataLength else {
                throw SafeTensorsError(file: file, tensor: name, reason: "data_offsets \(offs) outside the data section of \(dataLength) bytes (file truncated?)")
            }
            let (elements, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            guard !overflow, elements.multipliedReportingOverflow(by: dtype.size).overflow == false,
                  elements * dtype.size == offs[1] - offs[0] else {
                throw SafeTensorsError(file: file, tensor: name, reason: "\(offs[1] - offs[0]) bytes stored, but shape \(shape) of \(dtype.rawValue) needs \(elements &* dtype.size)")
            }
            infos[name] = TensorInfo(name: name, dtype: dtype, shape: shape, byteRange: offs[0]..<offs[1])
        }
        // Tensors must not overlap (they may leave no gaps either, per the format, but gaps are harmless).
        let sorted = infos.values.sorted { $0.byteRange.lowerBound < $1.byteRange.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.byteRange.upperBound > b.byteRange.lowerBound {
            throw SafeTensorsError(file: file, tensor: b.name, reason: "data overlaps tensor '\(a.name)'")
        }
        self.metadata = metadata
        self.infos = infos
    }

    private static func ints(_ values: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in values {
            guard let n = v as? NSNumber, let i = Int(exactly: n.doubleValue) else { return nil }
            out.append(i)
        }
        return out
    }

    /// The tensor `name` as Float32 (F16 and BF16 widened; F32 copied out of the mapping).
    public func tensor(_ name: String) throws -> Tensor {
        guard let info = infos[name] else {
            throw SafeTensorsError(file: url.path, tensor: name, reason: "not in file")
        }
        let out = Tensor(uninitialized: info.shape)
        let n = out.count
        bytes.withUnsafeBytes { raw in
            let src = raw.baseAddress! + dataStart + info.byteRange.lowerBound
            switch info.dtype {
            case .f32: memcpy(out.data, src, n * 4)
            case .f16: Conversion.float16ToFloat32(src, out.data, count: n)
            case .bf16: Conversion.bfloat16ToFloat32(src, out.data, count: n)
            case .i64:
                for i in 0..<n { out.data[i] = Float(src.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
            }
        }
        return out
    }

    /// The I64 tensor `name` as integers.
    public func int64s(_ name: String) throws -> [Int64] {
        guard let info = infos[name] else {
            throw SafeTensorsError(file: url.path, tensor: name, reason: "not in file")
        }
        guard info.dtype == .i64 else {
            throw SafeTensorsError(file: url.path, tensor: name, reason: "is \(info.dtype.rawValue), expected I64")
        }
        return bytes.withUnsafeBytes { raw in
            let src = raw.baseAddress! + dataStart + info.byteRange.lowerBound
            return (0..<(info.byteRange.count / 8)).map { Int64(littleEndian: src.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        }
    }
}

/// Writes F32 safetensors files.
public enum SafeTensorsWriter {
    /// Writes `tensors` (name, tensor) with optional `metadata` to `url`, names sorted as the
    /// reference implementation does.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + t.count * 4]] as [String: Any]
            offset += t.count * 4
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces to an 8-byte boundary, as the reference writer does.
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names {
            let t = tensors[name]!
            out.append(UnsafeBufferPointer(start: t.data, count: t.count))
        }
        do {
            try out.write(to: url, options: .atomic)
        } catch {
            throw SafeTensorsError(file: url.path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}
