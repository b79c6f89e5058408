import CLIP
import FuzzSupport
import JSON
import Serving
@testable import Wuerstchen

/// libFuzzer harness for request validation: a JSON body to `GenerationRequest` through both endpoints'
/// readers (`ImageRequests.native`, `.openAI`) with the default configuration's limits and the real
/// model's size rules. Properties: every refusal is a `ServingError` with a 4xx status, a message and (but
/// for a body that is not an object) the field it names, one of the endpoint's; every accepted request
/// passes the pipeline's own validation and lies inside every limit (sides, images, steps, text bytes,
/// combining-mark runs, rows x pixels).
@main
struct RequestFuzz {
    static func main() {
        // Loaded before libFuzzer starts its per-input clock (the vocabulary takes seconds under ASan).
        _ = model.tokenCount("warm")
        runFuzzer { data, size in
            check(bytes(data, size))
            return 0
        }
    }
}

let configuration = ServerConfiguration()
let limits = RequestLimits(configuration)
let tokenizer: CLIPTokenizer = {
    do { return try CLIPTokenizer.embedded } catch { fatalError("\(error)") }
}()
/// The published pipelines' rules (prior `resolution_multiple` 42.67, decoder `latent_dim_scale` 10.67).
let model = ServedModel(sizeRules: SizeRules(resolutionMultiple: 42.67, latentDimScale: 10.67, decoderLatentMultiple: 4),
                        tokenCount: { tokenizer.tokenIDs($0).count + 2 })

func check(_ input: [UInt8]) {
    guard let body = try? JSONValue.parse(input) else { return }
    for openAI in [false, true] {
        let fields = openAI ? ImageRequests.openAIFields : ImageRequests.nativeFields
        let job: ImageJob
        do {
            job = try openAI ? ImageRequests.openAI(body, model: model, limits: limits, randomSeed: { 7 })
                : ImageRequests.native(body, model: model, limits: limits, randomSeed: { 7 })
        } catch {
            precondition((400..<500).contains(error.status) && !error.message.isEmpty, "refusal \(error)")
            if case .object = body, let param = error.param {
                // An unknown field is named as sent; any other refusal names one of the endpoint's fields.
                let known = fields.contains(param) || error.code == "unknown_parameter"
                precondition(known, "refusal names \(param), not a field of the endpoint: \(error)")
            }
            continue
        }
        let g = job.generation
        var sizes = model.sizeRules
        sizes.maxSide = min(sizes.maxSide, limits.maxImageSide)
        do { try g.validate(sizes: sizes, maxImages: limits.maxImages, maxSteps: limits.maxSteps) } catch {
            fatalError("accepted a request the pipeline refuses: \(error): \(g)")
        }
        precondition(sizes.isValid(g.width) && sizes.isValid(g.height), "sides \(g.width)x\(g.height)")
        precondition((1...limits.maxImages).contains(g.numImages), "num_images \(g.numImages)")
        precondition((1...limits.maxSteps).contains(g.decoderSteps) && (g.priorSteps.map { (1...limits.maxSteps).contains($0) } ?? true),
                     "steps \(g.priorSteps as Any) \(g.decoderSteps)")
        for text in [g.prompt, g.negativePrompt] {
            precondition(text.utf8.count <= limits.maxPromptBytes && text.count <= limits.maxPromptChars, "text of \(text.utf8.count) bytes")
            precondition(StreamSafeText.firstRun(in: text.unicodeScalars) == nil, "a combining run over the bound was accepted")
        }
        let rows = g.numImages * (g.priorGuidance > 1 || g.decoderGuidance > 1 ? 2 : 1)
        precondition(rows * g.width * g.height <= limits.maxBatchPixels, "\(rows) rows of \(g.width)x\(g.height)")
        precondition(g.priorGuidance.isFinite && g.decoderGuidance.isFinite, "guidance \(g.priorGuidance) \(g.decoderGuidance)")
    }
}
