import Foundation
import SafeTensors
import Testing
import Tensor
@testable import Wuerstchen

/// End to end against diffusers: the small random pipeline of scripts/fixtures/pipeline.py, saved in
/// diffusers fp32, diffusers fp16 and PaddlePaddle (fp16, transposed Linear weights) layouts, must give
/// diffusers' image embeddings (within 1e-3 relative) and pixels (at most 2 levels apart) for each request.
@Suite struct PipelineParityTests {
    struct Scenario {
        let name: String
        let request: GenerationRequest
    }

    static func scenarios(_ expected: SafeTensorsFile) throws -> [Scenario] {
        try expected.metadata.keys.sorted().map { name in
            let json = try JSONSerialization.jsonObject(with: Data(expected.metadata[name]!.utf8)) as! [String: Any]
            let request = GenerationRequest(
                prompt: json["prompt"] as! String, negativePrompt: json["negative_prompt"] as! String,
                width: json["width"] as! Int, height: json["height"] as! Int, numImages: json["num_images"] as! Int,
                seed: (json["seed"] as! NSNumber).uint64Value, priorSteps: json["prior_steps"] as? Int,
                priorGuidance: (json["prior_guidance"] as! NSNumber).floatValue, decoderSteps: json["decoder_steps"] as! Int,
                decoderGuidance: (json["decoder_guidance"] as! NSNumber).floatValue)
            return Scenario(name: name, request: request)
        }
    }

    /// The fixture pipeline in one of its layouts (`fp32`, `fp16`, `paddle`).
    static func pipeline(_ layout: String = "fp32") throws -> WuerstchenPipeline {
        let root = try Fixture.url("pipeline")
        return try WuerstchenPipeline(
            priorFolder: root.appendingPathComponent("prior-\(layout)"),
            decoderFolder: root.appendingPathComponent("decoder-\(layout)"),
            variant: layout == "fp16" ? .preferFP16 : .preferFull)
    }

    @Test(arguments: ["fp32", "fp16", "paddle"])
    func reproducesDiffusers(_ layout: String) throws {
        let root = try Fixture.url("pipeline")
        let pipeline = try Self.pipeline(layout)
        let expected = try SafeTensorsFile(url: root.appendingPathComponent("expected.safetensors"))
        let scenarios = try Self.scenarios(expected)
        #expect(scenarios.count == 4)
        // All requests in one call: they batch together where their shapes agree, which must not
        // change any image.
        let results = try pipeline.generate(scenarios.map(\.request))
        for (scenario, result) in zip(scenarios, results) {
            try Self.expectEqualToDiffusers(try result.get(), expected, scenario.name, what: "\(layout) \(scenario.name)")
        }
    }

    /// `output` against the fixture's `name.image_embeddings` (NCHW, within 1e-3 relative) and `name.pixels`
    /// (`[n, H, W, 3]` levels as numpy_to_pil rounds them, at most 2 apart).
    static func expectEqualToDiffusers(_ output: GenerationOutput, _ expected: SafeTensorsFile, _ name: String, what: String) throws {
        let embeddings = try expected.tensor("\(name).image_embeddings")  // NCHW
        expectClose(output.imageEmbeddings.nhwcToNCHW(), embeddings, tolerance: 1e-3, "\(what) image embeddings")
        let pixels = try expected.tensor("\(name).pixels")  // [n, H, W, 3]
        #expect(output.images.shape == pixels.shape, "\(what): image shape \(output.images.shape), expected \(pixels.shape)")
        guard output.images.shape == pixels.shape else { return }
        var worst: Float = 0, off = 0
        for i in 0..<pixels.count {
            let mine = (min(max(output.images[flat: i], 0), 1) * 255).rounded(.toNearestOrEven)  // numpy_to_pil
            let d = abs(mine - pixels[flat: i])
            worst = max(worst, d)
            if d > 0 { off += 1 }
        }
        print("\(what): pixels at most \(worst) levels apart (\(off) of \(pixels.count) differ; tolerance 2)")
        #expect(worst <= 2, "\(what): pixels up to \(worst) levels apart")
    }

    @Test func requestsBatchedTogetherMatchRequestsAlone() throws {
        let pipeline = try Self.pipeline()
        let a = GenerationRequest(prompt: "a red fox", width: 128, height: 128, seed: 5, priorSteps: 3, decoderSteps: 2)
        var b = a
        b.prompt = "a blue bird"
        b.seed = 6
        b.priorSteps = 5
        b.decoderGuidance = 3
        let together = try pipeline.generate([a, b])
        // GEMMs over a different number of rows may round differently; the images may move by at most
        // one level (the scheduler issue's bar).
        for (i, request) in [a, b].enumerated() {
            let alone = try pipeline.generate([request])[0].get().images
            let batched = try together[i].get().images
            var worst: Float = 0
            for k in 0..<alone.count {
                worst = max(worst, abs((alone[flat: k] * 255).rounded() - (batched[flat: k] * 255).rounded()))
            }
            print("request \(i): batched vs alone, pixels at most \(worst) levels apart, relative error \(relativeError(batched, alone))")
            #expect(worst <= 1, "request \(i): batched and alone differ by \(worst) levels")
        }
    }

    @Test func progressReportsEveryStepAndCancels() throws {
        let pipeline = try Self.pipeline()
        let a = GenerationRequest(prompt: "x", width: 128, height: 128, seed: 1, priorSteps: 3, decoderSteps: 2)
        var events: [GenerationProgress] = []
        // Request 1 is cancelled after its second prior step: nothing more may run for it.
        let results = try pipeline.generate([a, a]) { p in
            events.append(p)
            return !(p.request == 1 && p.stage == .prior && p.step == 2)
        }
        #expect((try? results[0].get()) != nil)
        #expect(throws: GenerationError.self) { try results[1].get() }
        #expect(events.filter { $0.request == 0 }.map { "\($0.stage.rawValue)\($0.step)/\($0.total)" } == ["prior1/3", "prior2/3", "prior3/3", "decoder1/2", "decoder2/2"])
        #expect(events.filter { $0.request == 1 }.count == 2)
    }

    @Test func invalidSizesNameTheFieldAndTheNearestValidSizes() throws {
        let pipeline = try Self.pipeline()
        do {
            _ = try pipeline.generate([GenerationRequest(prompt: "x", width: 1100, height: 1024)])
            Issue.record("width 1100 was accepted")
        } catch let e as GenerationError {
            #expect(e.field == "width")
            #expect(e.message.contains("1024") && e.message.contains("1110"), "\(e.message)")
        }
        #expect(throws: GenerationError.self) { try pipeline.generate([GenerationRequest(prompt: "x", width: 64, height: 128)]) }
        #expect(throws: GenerationError.self) { try pipeline.generate([GenerationRequest(prompt: "x", width: 128, height: 128, numImages: 0)]) }
    }
}
