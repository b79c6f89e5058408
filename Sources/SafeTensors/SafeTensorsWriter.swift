#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import JSON
import Tensor

/// Writes safetensors files byte-for-byte as the reference writer (`safetensors.torch.save_file`,
/// safetensors 0.8 `tensor.rs` `prepare`/`serialize`) does:
/// - header JSON compact (serde_json), `__metadata__` first, then the tensors in data order;
/// - data order: by dtype descending in the reference's enum order (I64, F32, BF16, F16), then by
///   name (byte order);
/// - entry keys in the order `dtype`, `shape`, `data_offsets`;
/// - header padded with spaces to a multiple of 8 bytes.
/// The reference writes metadata keys in hash-map (random) order; we sort them, which is one of
/// its possible outputs (identical when there is at most one key). Empty `metadata` means none
/// (`metadata=None`: no `__metadata__` key).
public enum SafeTensorsWriter {
    /// One tensor to write.
    public struct Entry: @unchecked Sendable {
        /// Name in the file.
        public let name: String
        /// Element type.
        public let dtype: DType
        /// Shape.
        public let shape: [Int]
        fileprivate let payload: Payload

        fileprivate enum Payload {
            case tensor(Tensor)
            case bytes([UInt8])
        }

        /// An F32 entry holding `tensor`'s elements.
        public init(name: String, tensor: Tensor) {
            self.name = name
            dtype = .f32
            shape = tensor.shape
            payload = .tensor(tensor)
        }

        /// An entry of raw little-endian `bytes` (for F16/BF16/I64 data prepared by the caller);
        /// `bytes.count` must equal the shape's element count times the dtype size.
        public init(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            payload = .bytes(bytes)
        }

        fileprivate var byteCount: Int {
            switch payload {
            case .tensor(let t): t.count * 4
            case .bytes(let b): b.count
            }
        }
    }

    /// Writes F32 `tensors` with optional `metadata` to `url` (atomically: a temporary file renamed).
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        try write(entries: tensors.map { Entry(name: $0.key, tensor: $0.value) }, metadata: metadata, to: url)
    }

    /// Writes `entries` (any supported dtype) with optional `metadata` to `url` (atomically).
    public static func write(entries: [Entry], metadata: [String: String] = [:], to url: URL) throws {
        let path = url.path
        let ordered = try order(entries, file: path)
        let header = headerBytes(ordered, metadata: metadata)
        let tmp = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SafeTensorsError(file: path, reason: "cannot create \(tmp): \(errnoText())") }
        var ok = false
        defer {
            if !ok {
                close(fd)
                unlink(tmp)
            }
        }
        var length = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &length) { try writeAll(fd, $0, file: path) }
        try header.withUnsafeBytes { try writeAll(fd, $0, file: path) }
        for e in ordered {
            switch e.payload {
            case .tensor(let t): try writeAll(fd, UnsafeRawBufferPointer(start: t.data, count: t.count * 4), file: path)
            case .bytes(let b): try b.withUnsafeBytes { try writeAll(fd, $0, file: path) }
            }
        }
        guard close(fd) == 0 else {
            ok = true
            unlink(tmp)
            throw SafeTensorsError(file: path, reason: "cannot write: \(errnoText())")
        }
        ok = true
        guard rename(tmp, path) == 0 else {
            let reason = errnoText()
            unlink(tmp)
            throw SafeTensorsError(file: path, reason: "cannot move \(tmp) into place: \(reason)")
        }
    }

    /// The entries in the reference's data order, validated.
    static func order(_ entries: [Entry], file: String) throws -> [Entry] {
        var seen = Set<String>()
        for e in entries {
            guard e.name != "__metadata__" else {
                throw SafeTensorsError(file: file, tensor: e.name, reason: "name is reserved for the metadata")
            }
            guard seen.insert(e.name).inserted else {
                throw SafeTensorsError(file: file, tensor: e.name, reason: "given twice")
            }
            guard e.shape.allSatisfy({ $0 >= 0 }) else {
                throw SafeTensorsError(file: file, tensor: e.name, reason: "negative extent in shape \(e.shape)")
            }
            let needed = e.shape.reduce(1, *) * e.dtype.size
            guard needed == e.byteCount else {
                throw SafeTensorsError(file: file, tensor: e.name, reason: "\(e.byteCount) bytes given, shape \(e.shape) of \(e.dtype.rawValue) needs \(needed)")
            }
        }
        return entries.sorted {
            $0.dtype.writerRank != $1.dtype.writerRank
                ? $0.dtype.writerRank > $1.dtype.writerRank
                : $0.name.utf8.lexicographicallyPrecedes($1.name.utf8)
        }
    }

    /// The padded header JSON for `ordered` entries: serde's compact form of the reference's struct (metadata
    /// first, keys in byte order; then each entry's dtype, shape and data_offsets, in data order).
    static func headerBytes(_ ordered: [Entry], metadata: [String: String]) -> [UInt8] {
        var members: [(String, JSONValue)] = []
        if !metadata.isEmpty {
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            members.append(("__metadata__", .object(keys.map { ($0, .string(metadata[$0]!)) })))
        }
        var offset = 0
        for e in ordered {
            members.append((e.name, .object([
                ("dtype", .string(e.dtype.rawValue)), ("shape", .array(e.shape.map { .int($0) })),
                ("data_offsets", .array([.int(offset), .int(offset + e.byteCount)])),
            ])))
            offset += e.byteCount
        }
        var bytes = JSONValue.object(members).serializedBytes
        bytes.append(contentsOf: repeatElement(0x20, count: (8 - bytes.count % 8) % 8))
        return bytes
    }

    private static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, file: String) throws {
        guard var p = buffer.baseAddress else { return }
        var left = buffer.count
        while left > 0 {
            let n = systemWrite(fd, p, min(left, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError(file: file, reason: "cannot write: \(errnoText())")
            }
            p += n
            left -= n
        }
    }

    private static func systemWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
        #if canImport(Glibc)
        Glibc.write(fd, p, n)
        #else
        Darwin.write(fd, p, n)
        #endif
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
