import Foundation
import Testing
@testable import SafeTensors

/// Builders for files the tests write into a fresh temporary directory.
enum TestFiles {
    /// A new empty directory under the temporary directory (removed by `remove`).
    static func makeDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Removes `dir` and everything in it.
    static func remove(_ dir: URL) { try? FileManager.default.removeItem(at: dir) }

    /// A safetensors file image: 8-byte length (`headerLength` overrides the true one), `header`, `data`.
    static func image(header: String, data: [UInt8] = [], headerLength: UInt64? = nil) -> [UInt8] {
        let h = Array(header.utf8)
        var out: [UInt8] = []
        withUnsafeBytes(of: (headerLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
        return out + h + data
    }

    /// Writes `bytes` to `dir/name` and returns its URL.
    @discardableResult
    static func write(_ bytes: [UInt8], _ name: String, in dir: URL) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// Little-endian bytes of Float32 values.
    static func f32(_ values: [Float]) -> [UInt8] { values.flatMap { le($0.bitPattern) } }
    /// Little-endian bytes of IEEE half values.
    static func f16(_ values: [Float]) -> [UInt8] { values.flatMap { le(Float16($0).bitPattern) } }
    /// Little-endian bytes of bfloat16 values (the values must be exact in bfloat16).
    static func bf16(_ values: [Float]) -> [UInt8] { values.flatMap { le(UInt16($0.bitPattern >> 16)) } }
    /// Little-endian bytes of Int64 values.
    static func i64(_ values: [Int64]) -> [UInt8] { values.flatMap { le(UInt64(bitPattern: $0)) } }

    private static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    /// Bytes from a hex string.
    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = s.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
        return out
    }
}

/// Expects opening `url` to throw a `SafeTensorsError` that names the file (and `tensor`, when
/// given) and whose reason contains `reason`; returns the error.
@discardableResult
func expectOpenFails(
    _ url: URL, tensor: String? = nil, reason: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
) -> SafeTensorsError? {
    do {
        let f = try SafeTensorsFile(url: url)
        Issue.record("opened \(url.lastPathComponent) with tensors \(f.names), expected an error", sourceLocation: sourceLocation)
        return nil
    } catch let e as SafeTensorsError {
        #expect(e.description.contains(url.path), "error does not name the file: \(e)", sourceLocation: sourceLocation)
        if let tensor {
            #expect(e.tensor == tensor, "error names tensor \(e.tensor ?? "nil"), expected \(tensor): \(e)", sourceLocation: sourceLocation)
            #expect(e.description.contains("'\(tensor)'"), "description lacks the tensor: \(e)", sourceLocation: sourceLocation)
        }
        if let reason {
            #expect(e.reason.contains(reason), "reason '\(e.reason)' lacks '\(reason)'", sourceLocation: sourceLocation)
        }
        return e
    } catch {
        Issue.record("threw \(type(of: error)), expected SafeTensorsError: \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
