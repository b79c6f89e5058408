import Foundation
import Testing
import Tensor
@testable import SafeTensors

@Suite struct RoundTripTests {
    @Test func writeThenRead() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rt-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        try SafeTensorsWriter.write(["a": a], metadata: ["format": "pt"], to: url)
        let f = try SafeTensorsFile(url: url)
        #expect(f.metadata["format"] == "pt")
        #expect(f.format == .pt)
        #expect(try f.tensor("a").toArray() == a.toArray())
    }

    /// Expected bytes written by safetensors 0.8.0 `save_file` for
    /// `{"b": arange(6).reshape(2, 3), "a": [1, -2.5, 3.25], "é/x\"y\n": [1], "empty": zeros(0, 4)}`, metadata `{"format": "pt"}`.
    static let pythonF32 = """
        10010000000000007b225f5f6d657461646174615f5f223a7b22666f726d6174223a227074227d2c2261223a7b226474797065223a22463332222c\
        227368617065223a5b335d2c22646174615f6f666673657473223a5b302c31325d7d2c2262223a7b226474797065223a22463332222c22736861706\
        5223a5b322c335d2c22646174615f6f666673657473223a5b31322c33365d7d2c22656d707479223a7b226474797065223a22463332222c22736861\
        7065223a5b302c345d2c22646174615f6f666673657473223a5b33362c33365d7d2c22c3a92f785c22795c6e223a7b226474797065223a224633322\
        22c227368617065223a5b315d2c22646174615f6f666673657473223a5b33362c34305d7d7d20202020200000803f000020c0000050400000000000\
        00803f0000004000004040000080400000a0400000803f
        """

    /// Expected bytes for `{"w": f16 [1.5, -2], "v": bf16 [1.5, -2], "ids": int64 [1, -2], "f": [0.5]}`, no metadata.
    static let pythonMixed = """
        e0000000000000007b22696473223a7b226474797065223a22493634222c227368617065223a5b325d2c22646174615f6f666673657473223a5b30\
        2c31365d7d2c2266223a7b226474797065223a22463332222c227368617065223a5b315d2c22646174615f6f666673657473223a5b31362c32305d\
        7d2c2276223a7b226474797065223a2242463136222c227368617065223a5b325d2c22646174615f6f666673657473223a5b32302c32345d7d2c22\
        77223a7b226474797065223a22463136222c227368617065223a5b325d2c22646174615f6f666673657473223a5b32342c32385d7d7d2001000000\
        00000000feffffffffffffff0000003fc03f00c0003e00c0
        """

    @Test func writerMatchesPythonBytes() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let url = dir.appendingPathComponent("f32.safetensors")
        try SafeTensorsWriter.write(
            [
                "b": Tensor(shape: [2, 3], values: [0, 1, 2, 3, 4, 5]), "a": Tensor(shape: [3], values: [1, -2.5, 3.25]),
                "é/x\"y\n": Tensor(shape: [1], values: [1]), "empty": Tensor(zeros: [0, 4]),
            ], metadata: ["format": "pt"], to: url)
        #expect(Array(try Data(contentsOf: url)) == TestFiles.hex(Self.pythonF32))

        let mixed = dir.appendingPathComponent("mixed.safetensors")
        try SafeTensorsWriter.write(
            entries: [
                .init(name: "w", dtype: .f16, shape: [2], bytes: TestFiles.f16([1.5, -2])),
                .init(name: "v", dtype: .bf16, shape: [2], bytes: TestFiles.bf16([1.5, -2])),
                .init(name: "ids", dtype: .i64, shape: [2], bytes: TestFiles.i64([1, -2])),
                .init(name: "f", tensor: Tensor(shape: [1], values: [0.5])),
            ], to: mixed)
        #expect(Array(try Data(contentsOf: mixed)) == TestFiles.hex(Self.pythonMixed))
    }

    @Test func readsPythonBytesEveryDtype() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let url = try TestFiles.write(TestFiles.hex(Self.pythonMixed), "mixed.safetensors", in: dir)
        let f = try SafeTensorsFile(url: url)
        #expect(f.names == ["f", "ids", "v", "w"])
        #expect(f.metadata.isEmpty && f.format == .unspecified)
        #expect(try f.tensor("w").toArray() == [1.5, -2])
        #expect(try f.tensor("v").toArray() == [1.5, -2])
        #expect(try f.tensor("f").toArray() == [0.5])
        #expect(try f.tensor("ids").toArray() == [1, -2])
        #expect(try f.int64s("ids") == [1, -2])
        #expect(f.infos["w"] == TensorInfo(name: "w", dtype: .f16, shape: [2], byteRange: 24..<28))
        #expect(throws: SafeTensorsError.self) { try f.int64s("w") }
        let e = try #require(throws: SafeTensorsError.self) { try f.tensor("nope") }
        #expect(e.tensor == "nope" && e.description.contains(url.path))

        let f32 = try SafeTensorsFile(url: TestFiles.write(TestFiles.hex(Self.pythonF32), "f32.safetensors", in: dir))
        #expect(try f32.tensor("é/x\"y\n").toArray() == [1])
        #expect(try f32.tensor("empty").shape == [0, 4])
        #expect(try f32.tensor("b").toArray() == [0, 1, 2, 3, 4, 5])
    }

    @Test func everyDtypeRoundTripsThroughTheWriter() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let values: [Float] = [0, 1, -1, 0.5, 65504, -0.25, 3.140625, 1e-3]
        let url = dir.appendingPathComponent("all.safetensors")
        try SafeTensorsWriter.write(
            entries: [
                .init(name: "f32", tensor: Tensor(shape: [2, 4], values: values)),
                .init(name: "f16", dtype: .f16, shape: [4, 2], bytes: TestFiles.f16(values)),
                .init(name: "bf16", dtype: .bf16, shape: [8], bytes: TestFiles.bf16(values)),
                .init(name: "i64", dtype: .i64, shape: [3], bytes: TestFiles.i64([.max, .min, 7])),
                .init(name: "scalar", tensor: Tensor(shape: [], values: [42])),
            ], metadata: ["format": "np", "note": "a \"quoted\"\tvalue/é"], to: url)
        let f = try SafeTensorsFile(url: url)
        #expect(f.metadata == ["format": "np", "note": "a \"quoted\"\tvalue/é"])
        #expect(f.format == .np)
        #expect(try f.tensor("f32").toArray() == values)
        #expect(try f.tensor("f16").toArray() == values.map { Float(Float16($0)) })
        #expect(try f.tensor("f16").shape == [4, 2])
        #expect(try f.tensor("bf16").toArray() == values.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) })
        #expect(try f.int64s("i64") == [.max, .min, 7])
        #expect(try f.tensor("scalar").shape == [] && f.tensor("scalar").toArray() == [42])
    }

    @Test func borrowedTensorIsAZeroCopyViewThatOutlivesTheFile() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let url = dir.appendingPathComponent("b.safetensors")
        let a = Tensor(shape: [64, 3], values: (0..<192).map(Float.init))
        try SafeTensorsWriter.write(
            entries: [.init(name: "a", tensor: a), .init(name: "h", dtype: .f16, shape: [1], bytes: TestFiles.f16([2]))], to: url)
        var file: SafeTensorsFile? = try SafeTensorsFile(url: url, access: .random)
        let view = try file!.borrowedTensor("a")
        let copy = try file!.tensor("a")
        #expect(view.data != copy.data)
        try file!.withRawBytes("a") { _, raw in #expect(UnsafeRawPointer(view.data) == raw.baseAddress) }
        #expect(try file!.borrowedTensor("h").toArray() == [2])  // F16: widened copy
        file = nil  // the view keeps the mapping alive
        #expect(view.toArray() == a.toArray())
    }

    @Test func formatClassification() {
        #expect(SafeTensorsFormat(metadataValue: "pd") == .pd)
        #expect(SafeTensorsFormat(metadataValue: "mlx") == .other("mlx"))
        #expect(SafeTensorsFormat(metadataValue: nil) == .unspecified)
    }

    @Test func writerRejectsBadEntries() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let url = dir.appendingPathComponent("bad.safetensors")
        let e = try #require(throws: SafeTensorsError.self) {
            try SafeTensorsWriter.write(entries: [.init(name: "x", dtype: .f16, shape: [3], bytes: [0, 0])], to: url)
        }
        #expect(e.tensor == "x" && e.description.contains(url.path))
        #expect(throws: SafeTensorsError.self) { try SafeTensorsWriter.write(["__metadata__": Tensor(zeros: [1])], to: url) }
        #expect(!FileManager.default.fileExists(atPath: url.path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)  // no temporary left behind
    }
}
