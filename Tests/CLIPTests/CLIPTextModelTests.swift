import Foundation
import SafeTensors
import Testing
import Tensor
@testable import CLIP

/// Parity with transformers' CLIPTextModel on small random models (scripts/fixtures/clip_text_model.py).
@Suite struct CLIPTextModelTests {
    @Test(arguments: ["clip-text-gelu", "clip-text-quick_gelu"])
    func matchesTransformers(_ name: String) throws {
        let folder = try Fixture.url(name)
        let model = try CLIPTextModel(folder: folder)
        let io = try SafeTensorsFile(url: folder.appendingPathComponent("io.safetensors"))
        let ids = try io.tensor("input_ids"), mask = try io.tensor("attention_mask")
        let b = ids.dim(0), l = ids.dim(1)
        let rows = { (t: Tensor) in (0..<b).map { i in (0..<l).map { Int32(t[flat: i * l + $0]) } } }
        // Tolerance 1e-4 relative (the bar): float32 GEMMs summed in another order over
        // several layers.
        let tolerance: Float = 1e-4
        for (useMask, key) in [(true, "last_hidden_state"), (false, "last_hidden_state_no_mask")] {
            let out = try model(ids: rows(ids), attentionMask: useMask ? rows(mask) : nil)
            let expected = try io.tensor(key)
            #expect(out.shape == expected.shape)
            var maxDiff: Float = 0, maxRef: Float = 0
            for i in 0..<out.count {
                maxDiff = max(maxDiff, abs(out[flat: i] - expected[flat: i]))
                maxRef = max(maxRef, abs(expected[flat: i]))
            }
            let err = maxDiff / max(maxRef, 1)
            print("\(name) \(key): max relative error \(err) (tolerance \(tolerance))")
            #expect(err <= tolerance, "\(name) \(key): max relative error \(err)")
        }
    }

    /// The real text encoders declare exactly the tensors of the published files (names as
    /// transformers 4.x wrote them, `position_ids` being the one int64 buffer the loader skips).
    @Test(arguments: [("bigG", CLIPTextConfig.bigG), ("H", CLIPTextConfig.vitH)])
    func realConfigurationsDeclarePublishedTensors(_ name: String, _ config: CLIPTextConfig) throws {
        var published = try Fixture.tensorShapes("real-clip-\(name)-tensors.tsv")
        #expect(published.removeValue(forKey: "text_model.embeddings.position_ids") == [1, 77])
        var declared: [String: [Int]] = [:]
        for p in CLIPTextModel.parameters(config) { declared["text_model." + p.name] = p.shape }
        #expect(Set(declared.keys).subtracting(published.keys).sorted() == [], "declared but not published")
        #expect(Set(published.keys).subtracting(declared.keys).sorted() == [], "published but not declared")
        for (k, shape) in published { #expect(declared[k] == shape, "\(k): declared \(declared[k] ?? []), published \(shape)") }
        let total = CLIPTextModel.parameters(config).reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(total == (name == "bigG" ? 693_021_440 : 352_984_064))
    }

    @Test func rejectsBadInputs() throws {
        let model = try CLIPTextModel(folder: Fixture.url("clip-text-gelu"))
        #expect(throws: CLIPModelError.self) { try model(ids: [[1, 5000]]) }
        #expect(throws: CLIPModelError.self) { try model(ids: [[1, 2], [3]]) }
        #expect(throws: CLIPModelError.self) { try model(ids: [Array(repeating: 1, count: 78)]) }
        #expect(throws: CLIPModelError.self) { try model(ids: [[1, 2]], attentionMask: [[1]]) }
    }
}
