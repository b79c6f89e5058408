import ArgumentParser
import Foundation
import Serving

/// `wuerstchen inspect IMAGE`: the generation parameters an image we wrote carries, as one JSON object
/// (the `POST /v1/images` field names, plus `image_index`, `precision`, `model` and `version`).
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the generation parameters stored in an image (PNG, JPEG or WebP) as one JSON object.")

    @Argument(help: "An image written by `wuerstchen generate` or `serve`.")
    var image: String

    func run() throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: image)) } catch {
            throw InspectError(description: "cannot read \(image): \(error.localizedDescription)")
        }
        do {
            print(try GenerationParameters.read(from: data).json.serialized)
        } catch {
            throw InspectError(description: "\(image): \(error)")
        }
    }
}
