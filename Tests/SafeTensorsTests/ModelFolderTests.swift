import Foundation
import JSON
import Testing
import Tensor
@testable import SafeTensors

/// Component folders in diffusers and PaddlePaddle layouts, strict loading, configs, model_index.json.
@Suite struct ModelFolderTests {
    /// The parameters of a toy module: a Linear, a BatchNorm and a conv.
    static let specs: [ParameterSpec] = [
        .init("proj.weight", [3, 5], .linearWeight),
        .init("proj.bias", [3]),
        .init("bn.weight", [4]),
        .init("bn.running_mean", [4], .batchNormStat),
        .init("bn.running_var", [4], .batchNormStat),
        .init("conv.weight", [4, 2, 1, 1]),
    ]

    /// PyTorch-layout values for `specs`.
    static func reference() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (k, s) in specs.enumerated() {
            let n = Tensor.elementCount(s.shape)
            out[s.name] = Tensor(shape: s.shape, values: (0..<n).map { Float(k * 100 + $0) * 0.5 })
        }
        return out
    }

    /// `reference()` as stored by Paddle: Linear transposed, BN stats renamed.
    static func paddleEntries(half: Bool = false) -> [SafeTensorsWriter.Entry] {
        reference().map { name, t in
            var stored = t
            var storedName = name
            if name == "proj.weight" {
                let (o, i) = (t.shape[0], t.shape[1])
                stored = Tensor(shape: [i, o], values: (0..<(i * o)).map { t[flat: ($0 % o) * i + $0 / o] })
            }
            storedName = storedName.replacingOccurrences(of: ".running_mean", with: "._mean").replacingOccurrences(of: ".running_var", with: "._variance")
            if half {
                return .init(name: storedName, dtype: .f16, shape: stored.shape, bytes: TestFiles.f16(stored.toArray()))
            }
            return .init(name: storedName, tensor: stored)
        }
    }

    static func expectMatchesReference(_ loaded: [String: Tensor], sourceLocation: SourceLocation = #_sourceLocation) {
        let ref = reference()
        #expect(Set(loaded.keys) == Set(ref.keys), sourceLocation: sourceLocation)
        for (name, t) in ref {
            #expect(loaded[name]?.shape == t.shape, "\(name)", sourceLocation: sourceLocation)
            #expect(loaded[name]?.toArray() == t.toArray(), "\(name)", sourceLocation: sourceLocation)
        }
    }

    @Test func diffusersLayout() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        var tensors = Self.reference()
        tensors["bn.num_batches_tracked"] = nil
        try SafeTensorsWriter.write(
            entries: tensors.map { .init(name: $0.key, tensor: $0.value) }
                + [.init(name: "bn.num_batches_tracked", dtype: .i64, shape: [], bytes: TestFiles.i64([7]))],
            metadata: ["format": "pt"], to: dir.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        let weights = try ModelFolder.locateWeights(in: dir)
        #expect(weights.file.lastPathComponent == "diffusion_pytorch_model.safetensors")
        #expect(weights.layout == .pytorch && !weights.isFP16Variant)
        Self.expectMatchesReference(try weights.load(Self.specs))
        Self.expectMatchesReference(try ModelFolder.loadParameters(Self.specs, from: dir))
    }

    @Test func fp16VariantPreference() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let ref = Self.reference()
        try SafeTensorsWriter.write(
            entries: ref.map { .init(name: $0.key, dtype: .f16, shape: $0.value.shape, bytes: TestFiles.f16($0.value.toArray())) },
            to: dir.appendingPathComponent("diffusion_pytorch_model.fp16.safetensors"))
        // Only the fp16 file: taken even when the full one is preferred; values widened exactly.
        let only = try ModelFolder.locateWeights(in: dir)
        #expect(only.isFP16Variant && only.file.lastPathComponent == "diffusion_pytorch_model.fp16.safetensors")
        Self.expectMatchesReference(try only.load(Self.specs))
        try SafeTensorsWriter.write(ref, to: dir.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        #expect(try ModelFolder.locateWeights(in: dir).file.lastPathComponent == "diffusion_pytorch_model.safetensors")
        #expect(try ModelFolder.locateWeights(in: dir, variant: .preferFP16).isFP16Variant)
    }

    @Test func shardedAndShardedFP16() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let ref = Self.reference()
        let names = ref.keys.sorted()
        let first = Dictionary(uniqueKeysWithValues: names.prefix(3).map { ($0, ref[$0]!) })
        let second = Dictionary(uniqueKeysWithValues: names.dropFirst(3).map { ($0, ref[$0]!) })
        for (prefix, index, variant) in [
            ("diffusion_pytorch_model.fp16", "diffusion_pytorch_model.safetensors.index.fp16.json", WeightsVariant.preferFP16),
            ("diffusion_pytorch_model", "diffusion_pytorch_model.safetensors.index.json", .preferFull),
        ] {
            try SafeTensorsWriter.write(first, to: dir.appendingPathComponent("\(prefix)-00001-of-00002.safetensors"))
            try SafeTensorsWriter.write(second, to: dir.appendingPathComponent("\(prefix)-00002-of-00002.safetensors"))
            let map = names.map { "\"\($0)\": \"\(prefix)-0000\(first[$0] != nil ? 1 : 2)-of-00002.safetensors\"" }
            try Data("{\"metadata\": {}, \"weight_map\": {\(map.joined(separator: ","))}}".utf8).write(to: dir.appendingPathComponent(index))
            let w = try ModelFolder.locateWeights(in: dir, variant: variant)
            #expect(w.file.lastPathComponent == index && w.checkpoint.shards.count == 2)
            Self.expectMatchesReference(try w.load(Self.specs))
        }
        #expect(try ModelFolder.locateWeights(in: dir, variant: .preferFP16).isFP16Variant)
    }

    @Test func paddleLayoutTransposesAndRenames() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        try SafeTensorsWriter.write(entries: Self.paddleEntries(), metadata: ["format": "pd"],
                                    to: dir.appendingPathComponent("diffusion_paddle_model.safetensors"))
        let w = try ModelFolder.locateWeights(in: dir)
        #expect(w.layout == .paddle)
        Self.expectMatchesReference(try w.load(Self.specs))

        // model.safetensors is Paddle when its metadata says pd; F16 transposes go through widening.
        let dir2 = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir2) }
        try SafeTensorsWriter.write(entries: Self.paddleEntries(half: true), metadata: ["format": "pd"],
                                    to: dir2.appendingPathComponent("model.safetensors"))
        let w2 = try ModelFolder.locateWeights(in: dir2)
        #expect(w2.layout == .paddle)
        Self.expectMatchesReference(try w2.load(Self.specs))
    }

    @Test func blockedTransposeAtOddSizes() {
        for (rows, cols) in [(1, 1), (1, 77), (70, 45), (33, 32), (64, 200)] {
            let src = (0..<(rows * cols)).map(Float.init)
            var dst = [Float](repeating: -1, count: rows * cols)
            src.withUnsafeBufferPointer { s in
                dst.withUnsafeMutableBufferPointer { Transpose.matrix(s.baseAddress!, rows: rows, cols: cols, into: $0.baseAddress!) }
            }
            let ok = (0..<rows).allSatisfy { r in (0..<cols).allSatisfy { c in dst[c * rows + r] == src[r * cols + c] } }
            #expect(ok, "transpose \(rows)x\(cols)")
        }
    }

    @Test func mismatchesAreReportedTogether() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        var tensors = Self.reference()
        tensors["bn.weight"] = nil                               // missing
        tensors["proj.bias"] = Tensor(zeros: [4])                // mis-shaped
        tensors["extra.weight"] = Tensor(zeros: [2, 2])          // unexpected
        try SafeTensorsWriter.write(
            entries: tensors.map { .init(name: $0.key, tensor: $0.value) }
                + [.init(name: "text.position_ids", dtype: .i64, shape: [1, 3], bytes: TestFiles.i64([0, 1, 2]))],
            to: dir.appendingPathComponent("model.safetensors"))
        let e = try #require(throws: WeightMismatchError.self) { try ModelFolder.loadParameters(Self.specs, from: dir) }
        print(e)
        #expect(e.missing == [.init(name: "bn.weight", shape: [4])])
        #expect(e.unexpected == [.init(name: "extra.weight", shape: [2, 2])])
        #expect(e.misShaped == [.init(name: "proj.bias", storedName: "proj.bias", expected: [3], found: [4])])
        #expect(e.description.contains(dir.appendingPathComponent("model.safetensors").path))
        #expect(e.description.contains("bn.weight [4]") && e.description.contains("extra.weight [2, 2]"))

        // Paddle: a Linear weight stored un-transposed is mis-shaped, reported in stored terms.
        let pd = try TestFiles.makeDirectory()
        defer { TestFiles.remove(pd) }
        var paddle = Self.paddleEntries().filter { $0.name != "proj.weight" }
        paddle.append(.init(name: "proj.weight", tensor: Tensor(zeros: [3, 5])))
        paddle.removeAll { $0.name == "bn._variance" }
        try SafeTensorsWriter.write(entries: paddle, to: pd.appendingPathComponent("diffusion_paddle_model.safetensors"))
        let e2 = try #require(throws: WeightMismatchError.self) { try ModelFolder.loadParameters(Self.specs, from: pd) }
        print(e2)
        #expect(e2.misShaped == [.init(name: "proj.weight", storedName: "proj.weight", expected: [5, 3], found: [3, 5])])
        #expect(e2.missing == [.init(name: "bn.running_var", shape: [4])])
        #expect(e2.unexpected.isEmpty)
    }

    @Test func noWeightsListsWhatWasSought() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        try Data("{}".utf8).write(to: dir.appendingPathComponent("config.json"))
        let e = try #require(throws: ModelFolderError.self) { try ModelFolder.locateWeights(in: dir) }
        #expect(e.path == dir.path && e.reason.contains("diffusion_pytorch_model.safetensors") && e.reason.contains("config.json"))
        try Data([0x80, 0x02]).write(to: dir.appendingPathComponent("model_state.pdparams"))
        let e2 = try #require(throws: ModelFolderError.self) { try ModelFolder.locateWeights(in: dir) }
        #expect(e2.reason.contains("model_state.pdparams is a pickled checkpoint, which is not supported"))
        print(e2)
        let e3 = try #require(throws: ModelFolderError.self) { try ModelFolder.locateWeights(in: dir.appendingPathComponent("nope")) }
        #expect(e3.reason.contains("does not exist"))
        // A damaged weights file is a SafeTensorsError naming it.
        try Data([1, 2, 3]).write(to: dir.appendingPathComponent("model.safetensors"))
        let e4 = try #require(throws: SafeTensorsError.self) { try ModelFolder.locateWeights(in: dir) }
        #expect(e4.file.hasSuffix("model.safetensors"))
    }

    @Test func modelIndexDecoding() throws {
        let text = """
            {"_class_name": "WuerstchenPriorPipeline", "_diffusers_version": "0.19.0.dev0",
             "latent_mean": 42.0, "latent_std": 1.0, "resolution_multiple": 42.67,
             "prior": ["wuerstchen", "WuerstchenPrior"], "scheduler": ["diffusers", "DDPMWuerstchenScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizerFast"],
             "safety_checker": [null, null], "_name_or_path": "warp-ai/wuerstchen-prior"}
            """
        let index = try ModelIndex(data: Data(text.utf8), path: "model_index.json")
        #expect(index.className == "WuerstchenPriorPipeline")
        #expect(index.diffusersVersion == "0.19.0.dev0")
        #expect(index.components["prior"] == .init(library: "wuerstchen", className: "WuerstchenPrior"))
        #expect(index.components.count == 4)
        #expect(index.absentComponents == ["safety_checker"])
        #expect(index.parameters["latent_mean"]?.doubleValue == 42)
        #expect(index.parameters["resolution_multiple"] == .double(42.67))
        #expect(index.parameters["_name_or_path"]?.stringValue == "warp-ai/wuerstchen-prior")

        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        try Data(text.utf8).write(to: dir.appendingPathComponent("model_index.json"))
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("prior"), withIntermediateDirectories: true)
        let loaded = try ModelIndex(folder: dir)
        #expect(try loaded.componentFolder("prior", in: dir).lastPathComponent == "prior")
        #expect(throws: ModelFolderError.self) { try loaded.componentFolder("scheduler", in: dir) }  // folder missing
        #expect(throws: ModelFolderError.self) { try loaded.componentFolder("vae", in: dir) }        // not a component
        let bad = try #require(throws: ModelFolderError.self) { try ModelIndex(data: Data("{\"prior\": 1}".utf8), path: "x/model_index.json") }
        #expect(bad.path == "x/model_index.json" && bad.reason.contains("_class_name"))
    }

    struct ToyConfig: Decodable, Equatable {
        let cIn: Int
        let depth: Int
        let dropout: Double
        let blocks: [Int]
        enum CodingKeys: String, CodingKey { case cIn = "c_in", depth, dropout, blocks }
    }

    @Test func configDecoding() throws {
        let dir = try TestFiles.makeDirectory()
        defer { TestFiles.remove(dir) }
        let url = dir.appendingPathComponent("config.json")
        try Data(#"{"_class_name": "X", "c_in": 16, "depth": 2, "dropout": 0.1, "blocks": [1, 2], "unknown": true}"#.utf8).write(to: url)
        #expect(try loadConfig(ToyConfig.self, from: dir) == ToyConfig(cIn: 16, depth: 2, dropout: 0.1, blocks: [1, 2]))

        try Data(#"{"c_in": "16", "depth": 2, "dropout": 0.1, "blocks": [1, 2]}"#.utf8).write(to: url)
        let e1 = try #require(throws: ModelFolderError.self) { try loadConfig(ToyConfig.self, from: dir) }
        #expect(e1.path == url.path && e1.reason.contains("key c_in"))
        try Data(#"{"c_in": 16, "dropout": 0.1, "blocks": [1, "x"]}"#.utf8).write(to: url)
        let e2 = try #require(throws: ModelFolderError.self) { try loadConfig(ToyConfig.self, from: dir) }
        #expect(e2.reason.contains("depth"))
        try Data(#"{"c_in": 16, "depth": 1, "dropout": 0.1, "blocks": [1, "x"]}"#.utf8).write(to: url)
        let e3 = try #require(throws: ModelFolderError.self) { try loadConfig(ToyConfig.self, from: dir) }
        #expect(e3.reason.contains("blocks[1]"))
        print(e1, e2, e3, separator: "\n")
        let e4 = try #require(throws: ModelFolderError.self) { try loadConfig(ToyConfig.self, from: dir, fileName: "scheduler_config.json") }
        #expect(e4.path.hasSuffix("scheduler_config.json"))
    }
}
