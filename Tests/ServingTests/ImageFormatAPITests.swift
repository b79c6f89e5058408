import Foundation
import HTTP1
import Imaging
import JSON
import Testing
import Wuerstchen
@testable import Serving

/// Output formats (`output_format`, `output_compression`, `Accept`) and the parameters inside every image,
/// over real loopback sockets against the demo model. Serialised: one generation at a time.
@Suite(.serialized) struct ImageFormatAPITests {
    /// The decoded pixels of a response body, with its format.
    static func decode(_ body: [UInt8]) throws -> DecodedImage { try ImageDecoder.decode(Data(body)) }

    static func meanError(_ a: [UInt8], _ b: [UInt8]) -> Double {
        zip(a, b).reduce(0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(max(a.count, 1))
    }

    static func b64(_ r: Response) throws -> [UInt8] {
        guard case .array(let data)? = r.json?["data"], case .string(let s)? = data.first?["b64_json"], let bytes = Data(base64Encoded: s) else {
            throw ClientError(description: "no b64_json in \(r.text.prefix(200))")
        }
        return [UInt8](bytes)
    }

    /// Each format on both endpoints decodes to the PNG's pixels: exactly for PNG at any level and WebP at
    /// 100 (lossless), within JPEG's loss otherwise; `Content-Type` names the format.
    @Test func formatsOnBothEndpointsMatchThePNGPixels() throws {
        try withServer { s in
            let png = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest())
            #expect(png.status == 200 && png.headers["Content-Type"] == "image/png")
            let reference = try Self.decode(png.body).rgb
            let cases: [(String, ImageFormat, Double)] = [
                (#", "output_format": "png", "output_compression": 0"#, .png, 0),
                (#", "output_format": "webp""#, .webp, 0), (#", "output_format": "webp", "output_compression": 100"#, .webp, 0),
                (#", "output_format": "webp", "output_compression": 60"#, .webp, 6),
                (#", "output_format": "jpeg""#, .jpeg, 2), (#", "output_format": "jpeg", "output_compression": 40"#, .jpeg, 6),
            ]
            for (extra, format, bound) in cases {
                let r = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest(extra))
                #expect(r.status == 200 && r.headers["Content-Type"] == format.mediaType, "\(extra): \(r.status) \(r.headers["Content-Type"] ?? "")")
                let image = try Self.decode(r.body)
                #expect(image.format == format && image.width == 128 && image.height == 128)
                let e = Self.meanError(image.rgb, reference)
                #expect(e <= bound, "\(extra): mean error \(e) against the PNG, bound \(bound)")
                if bound == 0 { #expect(image.rgb == reference, "\(extra) must be lossless") }
                // OpenAI's endpoint: the same file in b64_json (created differs nowhere in the image).
                let openAI = smallRequest(extra).replacingOccurrences(of: #""width": 128, "height": 128"#, with: #""size": "128x128""#)
                let o = try RawClient.request(s.port, "POST", "/v1/images/generations", body: openAI)
                #expect(o.status == 200, "\(o.text)")
                let file = try Self.b64(o)
                #expect(try Self.decode(file).rgb == image.rgb, "\(extra): the OpenAI endpoint's pixels differ")
            }
            // Compression changes size: JPEG 40 is smaller than JPEG 100.
            let small = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest(#", "output_format": "jpeg", "output_compression": 40"#))
            let large = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest(#", "output_format": "jpeg", "output_compression": 100"#))
            #expect(small.body.count < large.body.count)
        }
    }

    @Test func acceptPicksTheFormatAnd406sWhatWeCannotMake() throws {
        try withServer { s in
            for (accept, type) in [("image/jpeg", "image/jpeg"), ("image/webp", "image/webp"), ("image/webp;q=0.4, image/jpeg;q=0.6", "image/jpeg"),
                                   ("image/*", "image/png"), ("image/png;q=0.1, image/webp", "image/webp")] {
                let r = try RawClient.request(s.port, "POST", "/v1/images", headers: [("Accept", accept)], body: smallRequest())
                #expect(r.status == 200 && r.headers["Content-Type"] == type, "\(accept): \(r.status) \(r.headers["Content-Type"] ?? "")")
                #expect(try Self.decode(r.body).format.mediaType == type)
            }
            // JSON and multipart carry the format too.
            let json = try RawClient.request(s.port, "POST", "/v1/images", headers: [("Accept", "application/json")],
                                             body: smallRequest(#", "output_format": "webp""#))
            #expect(json.json?["output_format"] == .string("webp"))
            #expect(try Self.decode(Self.b64(json)).format == .webp)
            let multi = try RawClient.request(s.port, "POST", "/v1/images", headers: [("Accept", "image/jpeg")], body: smallRequest(#", "num_images": 2"#))
            let type = try #require(multi.headers["Content-Type"])
            let parts = ImageAPITests.multipartParts(multi.body, boundary: String(type.split(separator: "=", maxSplits: 1)[1]))
            #expect(parts.count == 2 && parts.allSatisfy { $0.headers.contains("Content-Type: image/jpeg") && $0.headers.contains(".jpg") })
            #expect(try parts.allSatisfy { try Self.decode($0.body).format == .jpeg })
            // Nothing we make: 406 with a JSON error.
            for (accept, extra) in [("image/gif", ""), ("image/png", #", "output_format": "jpeg""#), ("image/jpeg;q=0, text/html", "")] {
                let r = try RawClient.request(s.port, "POST", "/v1/images", headers: [("Accept", accept)], body: smallRequest(extra))
                #expect(r.status == 406 && r.json?["error"]?["code"] == .string("not_acceptable"), "\(accept) \(extra): \(r.status) \(r.text)")
                #expect(r.headers["Content-Type"] == "application/json")
            }
        }
    }

    @Test(arguments: [
        (#", "output_format": "gif""#, "output_format"), (#", "output_format": 3"#, "output_format"),
        (#", "output_format": "PNG""#, "output_format"),
        (#", "output_compression": 101"#, "output_compression"), (#", "output_compression": -1"#, "output_compression"),
        (#", "output_compression": "high""#, "output_compression"), (#", "output_compression": 50.5"#, "output_compression"),
    ])
    func badValuesAre400NamingTheField(_ extra: String, _ param: String) throws {
        try withServer { s in
            let native = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest(extra))
            #expect(native.status == 400 && native.errorParam == param, "\(extra): \(native.text)")
            let openAI = try RawClient.request(s.port, "POST", "/v1/images/generations", body: #"{"prompt": "x"\#(extra)}"#)
            #expect(openAI.status == 400 && openAI.errorParam == param, "\(extra): \(openAI.text)")
        }
    }

    /// The image carries its parameters with the seed that was drawn; posting them back (as `inspect`
    /// prints them) gives the same pixels, also for the second image of a batch and for JPEG and WebP.
    @Test func parametersInsideReproduceTheImage() throws {
        try withServer { s in
            let body = #"{"prompt": "a red circle on a blue background", "negative_prompt": "green", "width": 128, "height": 256, "prior_steps": 2, "decoder_steps": 2, "prior_guidance_scale": 2.5}"#
            for format in ImageFormat.allCases {
                let first = try RawClient.request(s.port, "POST", "/v1/images", headers: [("Accept", format.mediaType)], body: body)
                #expect(first.status == 200)
                let seed = try #require(first.headers["X-Seed"])
                let params = try GenerationParameters.read(from: Data(first.body))
                #expect(String(params.request.seed) == seed, "the drawn seed must be the recorded one")
                #expect(params.request.prompt == "a red circle on a blue background" && params.request.negativePrompt == "green")
                #expect(params.request.width == 128 && params.request.height == 256 && params.request.priorSteps == 2
                        && params.request.priorGuidance == 2.5 && params.request.decoderSteps == 2)
                #expect(params.model == DemoModel.id && params.version == WuerstchenVersion.current && params.precision == "fp32")
                #expect(params.outputFormat == format)
                let decoded = try Self.decode(first.body)
                #expect(decoded.text?.contains("Seed: \(seed)") == true && decoded.text?.hasPrefix("a red circle") == true)
                // Post inspect's JSON as it is.
                let again = try RawClient.request(s.port, "POST", "/v1/images", body: params.json.serialized)
                #expect(again.status == 200, "\(again.text)")
                #expect(again.headers["Content-Type"] == format.mediaType)
                #expect(try Self.decode(again.body).rgb == decoded.rgb, "\(format): the parameters must reproduce the pixels")
            }
            // Image 1 of 2: its own index, and the same request gives it back as image 1.
            let multi = try RawClient.request(s.port, "POST", "/v1/images", headers: [("Accept", "application/json")],
                                              body: smallRequest(#", "num_images": 2"#))
            guard case .array(let data)? = multi.json?["data"], data.count == 2, case .string(let b64)? = data[1]["b64_json"] else {
                Issue.record("no two images: \(multi.text.prefix(200))")
                return
            }
            let second = Data(base64Encoded: b64)!
            let params = try GenerationParameters.read(from: second)
            #expect(params.imageIndex == 1 && params.request.numImages == 2 && params.request.seed == 7)
            let again = try RawClient.request(s.port, "POST", "/v1/images", headers: [("Accept", "application/json")], body: params.json.serialized)
            guard case .array(let data2)? = again.json?["data"], data2.count == 2, case .string(let b64b)? = data2[1]["b64_json"] else {
                Issue.record("no two images again: \(again.text.prefix(200))")
                return
            }
            #expect(try ImageDecoder.decode(Data(base64Encoded: b64b)!).rgb == ImageDecoder.decode(second).rgb)
            // The provenance fields are checked like the others.
            let bad = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest(#", "image_index": 1"#))
            #expect(bad.status == 400 && bad.errorParam == "image_index", "\(bad.text)")
            let badPrecision = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest(#", "precision": "fp8""#))
            #expect(badPrecision.status == 400 && badPrecision.errorParam == "precision")
        }
    }

    @Test func metadataOffWritesNone() throws {
        try withServer({ $0.imageMetadata = false }) { s in
            for format in ImageFormat.allCases {
                let r = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest(#", "output_format": "\#(format.rawValue)""#))
                #expect(r.status == 200)
                let image = try Self.decode(r.body)
                #expect(image.json == nil && image.text == nil, "\(format) carries metadata with image_metadata off")
                #expect(!String(decoding: r.body, as: UTF8.self).contains("a photo of a cat"), "\(format): the prompt is in the file")
                #expect(throws: (any Error).self) { try GenerationParameters.read(from: Data(r.body)) }
            }
        }
    }

    /// A prompt too long for a JPEG metadata segment: 400 naming the prompt before anything runs; PNG takes it.
    @Test func jpegRefusesParametersItCannotHold() throws {
        try withServer({ $0.maxPromptChars = 40_000 }) { s in
            let long = String(repeating: "cat ", count: 9000)
            let body = #"{"prompt": "\#(long)", "width": 128, "height": 128, "prior_steps": 1, "decoder_steps": 1, "output_format": "jpeg"}"#
            let r = try RawClient.request(s.port, "POST", "/v1/images", body: body)
            #expect(r.status == 400 && r.errorParam == "prompt" && r.json?["error"]?["code"] == .string("metadata_too_large"), "\(r.text.prefix(300))")
            let png = try RawClient.request(s.port, "POST", "/v1/images", body: body.replacingOccurrences(of: "jpeg", with: "png"))
            #expect(png.status == 200)
            #expect(try GenerationParameters.read(from: Data(png.body)).request.prompt == long)
        }
    }
}

/// The parameters' JSON and AUTOMATIC1111 text, without a server.
@Suite struct GenerationParametersTests {
    static let sample = GenerationParameters(
        request: GenerationRequest(prompt: "a \"cat\" & <dog>\nline two ✓", negativePrompt: "blur", width: 256, height: 384, numImages: 3,
                                   seed: UInt64(Int64.max), priorSteps: nil, priorGuidance: 0.1, decoderSteps: 7, decoderGuidance: 1.5),
        imageIndex: 2, model: "m", precision: "bf16", outputFormat: .webp, outputCompression: 80)

    @Test func jsonRoundTripsWithTheAPIsFieldNames() throws {
        let json = Self.sample.json
        guard case .object(let members) = json else { Issue.record("not an object"); return }
        #expect(members.map(\.0) == GenerationParameters.keys)
        // Every key but the four provenance ones is a POST /v1/images field.
        #expect(Set(GenerationParameters.keys).isSubset(of: Set(ImageRequests.nativeFields)))
        #expect(json["prior_steps"] == .null && json["prior_guidance_scale"] == .number("0.1"))
        let back = try GenerationParameters(json: JSONValue.parse(Array(json.serialized.utf8)))
        #expect(back == Self.sample)
    }

    @Test func a1111Text() {
        let text = Self.sample.a1111Text
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 4 && lines[2] == "Negative prompt: blur")
        #expect(lines[3].hasPrefix("Steps: 29, Sampler: DDPMWuerstchenScheduler, CFG scale: 0.1, Seed: 9223372036854775807, Size: 256x384, Model: m"))
        #expect(lines[3].contains("Batch size: 3, Batch pos: 2") && lines[3].hasSuffix("Version: \(WuerstchenVersion.current)"))
    }

    @Test(arguments: [
        (#"{"seed": 1}"#, "prompt"), (#"{"prompt": "x"}"#, "seed"), (#"{"prompt": "x", "seed": -1}"#, "seed"),
        (#"{"prompt": "x", "seed": 1, "width": "1"}"#, "width"), (#"{"prompt": "x", "seed": 1, "output_format": "gif"}"#, "output_format"),
        (#"{"prompt": "x", "seed": 1, "num_images": 2, "image_index": 2}"#, "image_index"),
        (#"{"prompt": "x", "seed": 1, "colour": "red"}"#, "colour"),
        (#"{"prompt": "x", "seed": 1, "prior_guidance_scale": "4"}"#, "prior_guidance_scale"),
    ])
    func badParametersNameTheField(_ text: String, _ field: String) throws {
        do {
            _ = try GenerationParameters(json: JSONValue.parse(Array(text.utf8)))
            Issue.record("\(text) was accepted")
        } catch let error as GenerationError {
            #expect(error.field == field, "\(text): \(error)")
        }
    }
}
