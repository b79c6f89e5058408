import ArgumentParser
import Foundation
import Imaging
import JSON
import Serving
import Tensor
import Wuerstchen

/// `wuerstchen bench formats`: one demo-model image encoded in every output format at several
/// `output_compression` values, with its parameters inside: median encode time, file size and the
/// decoded pixels' mean and largest error against the PNG (one JSON object per line).
struct BenchFormats: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "formats", abstract: "Time PNG, JPEG and WebP encoding of one image.")

    // Deliberate parallel of BenchCLIP.swift:BenchCLIP's options (and the other bench commands'): ArgumentParser
    // declarations, each command with its own help and defaults.
    @Option(help: "Image side in pixels (the demo model draws it).")
    var size: Int = 1024

    @Option(help: "Timed repetitions (the median is reported).")
    var repeats: Int = 3

    func run() throws {
        let pipeline = try DemoModel.pipeline()
        let request = GenerationRequest(prompt: "a large red circle on a blue background", width: size, height: size, seed: 0)
        let out = try pipeline.generate([request]) { _ in true }[0].get()
        let rgb = out.images.pixelBytes()
        let metadata = GenerationParameters(request: request, model: DemoModel.id, precision: "fp32").metadata
        let cases: [(ImageFormat, Int?)] = [(.png, nil), (.png, 0), (.png, 100), (.jpeg, 100), (.jpeg, 90), (.jpeg, 75), (.jpeg, 50),
                                            (.webp, 100), (.webp, 90), (.webp, 75), (.webp, 50)]
        for (format, compression) in cases {
            let encoder = ImageEncoder(format: format, compression: compression)
            var times: [Double] = []
            var file = Data()
            for _ in 0..<max(repeats, 1) {
                let t0 = Date()
                file = try encoder.encode(rgb: rgb, width: size, height: size, metadata: metadata)
                times.append(Date().timeIntervalSince(t0))
            }
            times.sort()
            let decoded = try ImageDecoder.decode(file).rgb
            var sum = 0, worst = 0
            for i in 0..<rgb.count {
                let d = abs(Int(decoded[i]) - Int(rgb[i]))
                sum += d
                worst = max(worst, d)
            }
            print(JSONValue.object([
                ("format", .string(format.rawValue)), ("output_compression", compression.map { .int($0) } ?? .null),
                ("size", .int(size)), ("encode_ms", .number(String(format: "%.1f", times[times.count / 2] * 1000))),
                ("bytes", .int(file.count)), ("mean_error", .number(String(format: "%.3f", Double(sum) / Double(rgb.count)))),
                ("max_error", .int(worst)),
            ]).serialized)
        }
    }
}
