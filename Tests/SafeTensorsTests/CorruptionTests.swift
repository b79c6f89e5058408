import Foundation
import Testing
import Tensor
import TestSupport
@testable import SafeTensors

/// Damaged and hostile files: every one must fail with a `SafeTensorsError` naming the file (and
/// the tensor where there is one), never crash.
@Suite struct CorruptionTests {
    /// A valid entry string.
    static func entry(_ dtype: String = "F32", _ shape: String = "[2]", _ offsets: String = "[0,8]") -> String {
        "{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":\(offsets)}"
    }

    /// (file name, header, data, header-length override, tensor named in the error, reason fragment)
    static let corpus: [(String, String, [UInt8], UInt64?, String?, String)] = [
        ("huge-length", "{}", [], 1 << 62, nil, "exceeds the limit"),
        ("max-length", "{}", [], .max, nil, "exceeds the limit"),
        ("length-past-end", "{}", [], 4096, nil, "runs past the end"),
        ("length-zero", "{}", [], 0, nil, "not valid JSON"),
        ("not-json", "{\"a\":", [], nil, nil, "not valid JSON"),
        ("garbage", "\u{01}\u{02}abc", [], nil, nil, "not valid JSON"),
        ("trailing-text", "{} x", [], nil, nil, "not valid JSON"),
        ("array", "[1,2]", [], nil, nil, "expected a JSON object"),
        ("string", "\"x\"", [], nil, nil, "expected a JSON object"),
        ("deep", String(repeating: "[", count: 100_000), [], nil, nil, "nesting deeper"),
        ("deep-object", String(repeating: "{\"a\":", count: 50_000), [], nil, nil, "nesting deeper"),
        ("bad-escape", "{\"a\\q\":1}", [], nil, nil, "invalid escape"),
        ("lone-surrogate", "{\"\\ud800\":1}", [], nil, nil, "surrogate"),
        ("raw-control", "{\"a\nb\":1}", [], nil, nil, "control character"),
        ("leading-zero", "{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", Array(repeating: 0, count: 8), nil, nil, "leading zero"),
        ("entry-not-object", "{\"a\":[1]}", [], nil, "a", "expected an object"),
        ("no-dtype", "{\"a\":{\"shape\":[],\"data_offsets\":[0,0]}}", [], nil, "a", "no dtype"),
        ("dtype-number", "{\"a\":{\"dtype\":4,\"shape\":[],\"data_offsets\":[0,0]}}", [], nil, "a", "dtype is an integer"),
        ("unknown-dtype", "{\"a\":" + entry("F99") + "}", Array(repeating: 0, count: 8), nil, "a", "unknown dtype"),
        ("unsupported-dtype", "{\"a\":" + entry("F64", "[1]") + "}", Array(repeating: 0, count: 8), nil, "a", "unsupported dtype F64"),
        ("no-shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,0]}}", [], nil, "a", "no shape"),
        ("shape-object", "{\"a\":" + entry("F32", "{}") + "}", Array(repeating: 0, count: 8), nil, "a", "shape is an object"),
        ("negative-shape", "{\"a\":" + entry("F32", "[-1,2]") + "}", Array(repeating: 0, count: 8), nil, "a", "non-negative"),
        ("float-shape", "{\"a\":" + entry("F32", "[2.0]") + "}", Array(repeating: 0, count: 8), nil, "a", "non-negative"),
        ("huge-shape", "{\"a\":" + entry("F32", "[99999999999999999999]") + "}", Array(repeating: 0, count: 8), nil, "a", "fit in 64 bits"),
        ("overflow-shape", "{\"a\":" + entry("F32", "[4294967296,4294967296,16]") + "}", Array(repeating: 0, count: 8), nil, "a", "overflows"),
        ("overflow-bytes", "{\"a\":" + entry("I64", "[2305843009213693952]") + "}", Array(repeating: 0, count: 8), nil, "a", "overflows"),
        ("overflow-wrap", "{\"a\":" + entry("F32", "[4611686018427387904,4]") + "}", Array(repeating: 0, count: 8), nil, "a", "overflows"),
        ("no-offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[]}}", [], nil, "a", "no data_offsets"),
        ("offsets-triple", "{\"a\":" + entry("F32", "[2]", "[0,4,8]") + "}", Array(repeating: 0, count: 8), nil, "a", "not a pair"),
        ("offsets-negative", "{\"a\":" + entry("F32", "[2]", "[-8,0]") + "}", Array(repeating: 0, count: 8), nil, "a", "not a pair"),
        ("offsets-reversed", "{\"a\":" + entry("F32", "[2]", "[8,0]") + "}", Array(repeating: 0, count: 8), nil, "a", "end before"),
        ("offsets-past-end", "{\"a\":" + entry("F32", "[2]", "[0,8]") + "}", Array(repeating: 0, count: 4), nil, "a", "run past the data section"),
        ("offsets-huge", "{\"a\":" + entry("F32", "[2]", "[9223372036854775800,9223372036854775807]") + "}", [], nil, "a", "run past"),
        ("wrong-size", "{\"a\":" + entry("F32", "[3]", "[0,8]") + "}", Array(repeating: 0, count: 8), nil, "a", "needs 12"),
        ("overlap", "{\"a\":" + entry("F32", "[2]", "[0,8]") + ",\"b\":" + entry("F32", "[2]", "[4,12]") + "}",
         Array(repeating: 0, count: 12), nil, "b", "overlap tensor 'a'"),
        ("same-range", "{\"a\":" + entry() + ",\"b\":" + entry() + "}", Array(repeating: 0, count: 8), nil, "b", "overlap"),
        ("hole", "{\"a\":" + entry("F32", "[1]", "[0,4]") + ",\"b\":" + entry("F32", "[1]", "[8,12]") + "}",
         Array(repeating: 0, count: 12), nil, "b", "no holes"),
        ("trailing-bytes", "{\"a\":" + entry() + "}", Array(repeating: 0, count: 12), nil, nil, "trailing"),
        ("no-tensors-trailing", "{}", [1, 2, 3], nil, nil, "trailing"),
        ("duplicate", "{\"a\":" + entry() + ",\"a\":" + entry() + "}", Array(repeating: 0, count: 8), nil, "a", "more than once"),
        ("metadata-array", "{\"__metadata__\":[\"pt\"]}", [], nil, nil, "__metadata__ is an array"),
        ("metadata-number", "{\"__metadata__\":{\"format\":1}}", [], nil, nil, "value for 'format' is an integer"),
        ("metadata-nested", "{\"__metadata__\":{\"format\":{\"x\":\"y\"}}}", [], nil, nil, "expected a string"),
        ("metadata-duplicate", "{\"__metadata__\":{\"format\":\"pt\",\"format\":\"pd\"}}", [], nil, "format", "more than once"),
    ]

    @Test func corpusOfBrokenFilesFailsCleanly() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        for (name, header, data, length, tensor, reason) in Self.corpus {
            let url = try TestFiles.write(TestFiles.image(header: header, data: data, headerLength: length), name + ".safetensors", in: dir)
            let e = expectOpenFails(url, tensor: tensor, reason: reason)
            if tensor == nil, let e { #expect(e.tensor == nil, "\(name): unexpected tensor in \(e)") }
        }
    }

    @Test func emptyTinyMissingAndDirectory() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        expectOpenFails(try TestFiles.write([], "empty.safetensors", in: dir), reason: "0 bytes")
        expectOpenFails(try TestFiles.write([1, 2, 3, 4, 5, 6, 7], "seven.safetensors", in: dir), reason: "7 bytes")
        expectOpenFails(dir.appendingPathComponent("absent.safetensors"), reason: "cannot open")
        expectOpenFails(dir, reason: "not a regular file")
        // The smallest valid file: an empty header object.
        let minimal = try SafeTensorsFile(url: TestFiles.write(TestFiles.image(header: "{}"), "min.safetensors", in: dir))
        #expect(minimal.names.isEmpty)
        // Null metadata is accepted as none (the reference's Option).
        let nullMeta = try SafeTensorsFile(url: TestFiles.write(TestFiles.image(header: "{\"__metadata__\":null}"), "nm.safetensors", in: dir))
        #expect(nullMeta.metadata.isEmpty)
    }

    @Test func invalidUTF8InANameFails() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        var header = Array("{\"a\u{7F}\":{}}".utf8)
        header[3] = 0xFF
        var bytes: [UInt8] = []
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { bytes.append(contentsOf: $0) }
        let url = try TestFiles.write(bytes + header, "utf8.safetensors", in: dir)
        expectOpenFails(url, reason: "UTF-8")
    }

    /// A small valid file with every dtype, for the truncation and mutation sweeps.
    static func validImage() throws -> [UInt8] {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let url = dir.appendingPathComponent("v.safetensors")
        try SafeTensorsWriter.write(
            entries: [
                .init(name: "w", tensor: Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])),
                .init(name: "h", dtype: .f16, shape: [3], bytes: TestFiles.f16([1, 2, 3])),
                .init(name: "b", dtype: .bf16, shape: [1, 2], bytes: TestFiles.bf16([1, 2])),
                .init(name: "position_ids", dtype: .i64, shape: [1, 2], bytes: TestFiles.i64([0, 1])),
            ], metadata: ["format": "pt"], to: url)
        return Array(try Data(contentsOf: url))
    }

    @Test func everyTruncationFails() throws {
        let image = try Self.validImage()
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        for length in 0..<image.count {
            expectOpenFails(try TestFiles.write(Array(image[0..<length]), "t\(length).safetensors", in: dir))
        }
        #expect(try SafeTensorsFile(url: TestFiles.write(image, "whole.safetensors", in: dir)).names.count == 4)
    }

    /// Flips every header byte (and bytes of the length) in several ways, then random multi-byte
    /// mutations: opening either fails with a `SafeTensorsError` naming the file, or succeeds and
    /// every tensor then reads without crashing.
    @Test func mutatedHeadersNeverCrash() throws {
        let image = try Self.validImage()
        let headerEnd = 8 + Int(image[0]) + Int(image[1]) << 8
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        var opened = 0, failed = 0
        func check(_ bytes: [UInt8], _ tag: String) throws {
            let url = try TestFiles.write(bytes, "m.safetensors", in: dir)
            do {
                let f = try SafeTensorsFile(url: url)
                opened += 1
                for name in f.names {
                    _ = try f.tensor(name)
                    _ = try f.borrowedTensor(name)
                    if f.infos[name]!.dtype == .i64 { _ = try f.int64s(name) }
                }
            } catch let e as SafeTensorsError {
                failed += 1
                #expect(e.description.contains(url.path), "\(tag): \(e)")
            }
        }
        for i in 0..<headerEnd {
            for mask: UInt8 in [0xFF, 0x01, 0x20, 0x80] {
                var m = image
                m[i] ^= mask
                try check(m, "byte \(i) ^ \(mask)")
            }
        }
        var rng = SplitMix(seed: 0x5EED)
        for round in 0..<600 {
            var m = image
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let i = Int(rng.next() % UInt64(headerEnd))
                m[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            if round % 3 == 0 { m = Array(m.prefix(Int(rng.next() % UInt64(m.count + 1)))) }
            try check(m, "round \(round)")
        }
        print("mutated headers: \(opened) opened, \(failed) rejected")
        #expect(failed > opened)
    }
}
