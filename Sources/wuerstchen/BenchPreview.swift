import ArgumentParser
import Foundation
import Imaging
import JSON
import Tensor
import Wuerstchen

/// `wuerstchen bench preview`: what one streamed preview (`partial_images`) costs on the demo model: the
/// VQ decoding of the decoder's predicted clean latents (on the engine thread) and their encoding in each
/// output format at its default setting (on the connection's thread), per image side; one JSON object per
/// line with the median times. The preview is a real one: after 6 of 12 decoder steps.
struct BenchPreview: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "preview", abstract: "Time one streamed preview: VQ decode and encode.")

    @Option(help: "Image sides in pixels, comma-separated.")
    var sizes: String = "512,1024"

    @Option(help: "Timed repetitions (the median is reported).")
    var repeats: Int = 3

    func run() throws {
        let pipeline = try DemoModel.pipeline()
        for size in sizes.split(separator: ",").compactMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
            let request = GenerationRequest(prompt: "a large red circle on a blue background", width: size, height: size, seed: 0)
            let prior = try pipeline.prior.start(request, generator: TorchGenerator(seed: 0))
            while !prior.isFinished { pipeline.prior.step([prior]) }
            let job = try pipeline.decoder.start(request, imageEmbeddings: pipeline.prior.imageEmbeddings(prior), generator: prior.generator)
            job.previewSteps = [6]
            var latents: Tensor?
            while latents == nil, !job.isFinished {
                pipeline.decoder.step([job])
                latents = job.takePreview()
            }
            guard let latents else { throw ValidationError("no preview was made") }
            func median(_ body: () throws -> Void) rethrows -> Double {
                var times: [Double] = []
                for _ in 0..<max(repeats, 1) {
                    let t0 = Date()
                    try body()
                    times.append(Date().timeIntervalSince(t0) * 1000)
                }
                return times.sorted()[times.count / 2]
            }
            var pixels = latents
            let decodeMs = try median { pixels = try pipeline.decoder.pixels(latents) }
            let rgb = pixels.pixelBytes()
            var members: [(String, JSONValue)] = [("size", .int(size)), ("vq_decode_ms", .number(String(format: "%.1f", decodeMs)))]
            for format in ImageFormat.allCases {
                let encoder = ImageEncoder(format: format, compression: nil)
                let ms = try median { _ = try encoder.encode(rgb: rgb, width: size, height: size, metadata: nil) }
                members.append(("\(format.rawValue)_encode_ms", .number(String(format: "%.1f", ms))))
            }
            print(JSONValue.object(members).serialized)
        }
    }
}
