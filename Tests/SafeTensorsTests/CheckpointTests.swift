import Foundation
import Testing
import Tensor
@testable import SafeTensors

/// Sharded `*.safetensors.index.json` checkpoints and the single-file checkpoint.
@Suite struct CheckpointTests {
    /// Writes shards `s1` (a, b) and `s2` (c) plus an index mapping `map` (default: the truth).
    static func makeSharded(in dir: URL, map: [String: String]? = nil, indexName: String = "model.safetensors.index.json") throws -> URL {
        try SafeTensorsWriter.write(
            ["a": Tensor(shape: [2], values: [1, 2]), "b": Tensor(shape: [1], values: [3])], metadata: ["format": "pt"],
            to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        try SafeTensorsWriter.write(
            ["c": Tensor(shape: [2, 2], values: [4, 5, 6, 7])], metadata: ["format": "pt"],
            to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        let weightMap = map ?? ["a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"]
        let body = weightMap.keys.sorted().map { "\"\($0)\": \"\(weightMap[$0]!)\"" }.joined(separator: ", ")
        let url = dir.appendingPathComponent(indexName)
        try Data("{\"metadata\": {\"total_size\": 28}, \"weight_map\": {\(body)}}".utf8).write(to: url)
        return url
    }

    @Test func shardedServesEveryTensor() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let ckpt = try SafeTensorsCheckpoint(url: Self.makeSharded(in: dir))
        #expect(ckpt.shards.count == 2)
        #expect(ckpt.names == ["a", "b", "c"])
        #expect(ckpt.indexMetadata["total_size"] == .int(28))
        #expect(ckpt.format == .pt)
        #expect(try ckpt.tensor("c").toArray() == [4, 5, 6, 7])
        #expect(try ckpt.borrowedTensor("a").toArray() == [1, 2])
        #expect(ckpt.info("b")?.shape == [1])
        #expect(ckpt.files.count == 3)
        let e = try #require(throws: SafeTensorsError.self) { try ckpt.tensor("zzz") }
        #expect(e.tensor == "zzz" && e.file.hasSuffix(".index.json"))
    }

    @Test func singleFileThroughTheSameProtocol() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let url = dir.appendingPathComponent("one.safetensors")
        try SafeTensorsWriter.write(["x": Tensor(shape: [3], values: [1, 2, 3])], to: url)
        let sources: [any TensorSource] = [try SafeTensorsCheckpoint(url: url), try SafeTensorsFile(url: url)]
        for s in sources {
            #expect(s.names == ["x"])
            #expect(try s.tensor("x").toArray() == [1, 2, 3])
            #expect(s.files == [url])
        }
    }

    @Test func missingShardIsNamed() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let index = try Self.makeSharded(in: dir)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        let e = try #require(throws: SafeTensorsError.self) { try SafeTensorsCheckpoint(url: index) }
        #expect(e.file == index.path && e.tensor == "c" && e.reason.contains("model-00002-of-00002.safetensors"))
        print(e)
    }

    @Test func nameMappedToTheWrongShard() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let index = try Self.makeSharded(
            in: dir, map: ["a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"])
        let e = try #require(throws: SafeTensorsError.self) { try SafeTensorsCheckpoint(url: index) }
        #expect(e.tensor == "b" && e.reason.contains("mapped to shard 'model-00002-of-00002.safetensors', which does not contain it"))
        #expect(e.reason.contains("it is in 'model-00001-of-00002.safetensors'"))
        print(e)
    }

    @Test func tensorMissingFromTheIndexOrFromEveryShard() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let unlisted = try Self.makeSharded(in: dir, map: ["a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"])
        let e1 = try #require(throws: SafeTensorsError.self) { try SafeTensorsCheckpoint(url: unlisted) }
        #expect(e1.tensor == "b" && e1.reason.contains("not listed"))
        let ghost = try Self.makeSharded(
            in: dir, map: ["a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                           "c": "model-00002-of-00002.safetensors", "d": "model-00002-of-00002.safetensors"])
        let e2 = try #require(throws: SafeTensorsError.self) { try SafeTensorsCheckpoint(url: ghost) }
        #expect(e2.tensor == "d" && e2.reason.contains("does not contain it"))
    }

    @Test func badIndexesFailCleanly() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        _ = try Self.makeSharded(in: dir)
        let cases: [(String, String?, String)] = [
            ("{", nil, "not valid JSON"),
            ("[]", nil, "expected an object"),
            ("{\"metadata\": {}}", nil, "no \"weight_map\""),
            ("{\"weight_map\": []}", nil, "expected an object"),
            ("{\"weight_map\": {\"a\": 3}}", "a", "expected a shard file name"),
            ("{\"weight_map\": {\"a\": \"../model-00001-of-00002.safetensors\"}}", "a", "plain file name"),
            ("{\"weight_map\": {\"a\": \"/etc/passwd\"}}", "a", "plain file name"),
            ("{\"weight_map\": {\"a\": \"x\", \"a\": \"y\"}}", "a", "more than once"),
            ("{\"metadata\": 5, \"weight_map\": {}}", nil, "\"metadata\" is an integer"),
        ]
        for (i, (text, tensor, reason)) in cases.enumerated() {
            let url = dir.appendingPathComponent("bad\(i).safetensors.index.json")
            try Data(text.utf8).write(to: url)
            let e = try #require(throws: SafeTensorsError.self) { try SafeTensorsCheckpoint(url: url) }
            #expect(e.file == url.path && e.tensor == tensor && e.reason.contains(reason), "case \(i): \(e)")
        }
        let e = try #require(throws: SafeTensorsError.self) {
            try SafeTensorsCheckpoint(url: dir.appendingPathComponent("absent.safetensors.index.json"))
        }
        #expect(e.reason.contains("cannot read"))
    }
}
