import Foundation
import HTTP1
import Imaging
import JSON
import Testing
import Tensor
import Wuerstchen
@testable import Serving
#if canImport(Glibc)
import Glibc
#endif

/// `POST /v1/images/generations` as OpenAI's Images API is now (issue 13 item 3): the fields, their
/// errors, `usage`, `model_aliases`, and `stream` with real previews, parsed without a server first,
/// then over loopback sockets against the demo model.
@Suite(.serialized) struct OpenAIImagesTests {
    static let model = ServedModel(pipeline: Demo.pipeline)
    static let limits = RequestLimits(ServerConfiguration())

    static func openAI(_ body: String, limits: RequestLimits = limits) throws(ServingError) -> ImageJob {
        let value: JSONValue
        do { value = try JSONValue.parse(Array(body.utf8)) } catch { preconditionFailure("test body is not JSON: \(body)") }
        return try ImageRequests.openAI(value, model: model, limits: limits, randomSeed: { 1 })
    }

    static func native(_ body: String, limits: RequestLimits = limits) throws(ServingError) -> ImageJob {
        let value: JSONValue
        do { value = try JSONValue.parse(Array(body.utf8)) } catch { preconditionFailure("test body is not JSON: \(body)") }
        return try ImageRequests.native(value, model: model, limits: limits, randomSeed: { 1 })
    }

    /// The error a body gets, nil when it is accepted.
    static func error(_ body: String, native: Bool = false, limits: RequestLimits = limits) -> ServingError? {
        do {
            _ = native ? try Self.native(body, limits: limits) : try openAI(body, limits: limits)
            return nil
        } catch { return error }
    }

    // MARK: - Fields

    @Test func qualityMapsToDocumentedSteps() throws {
        func steps(_ quality: String?, _ extra: String = "") throws -> (Int?, Int, ImageQuality) {
            let q = quality.map { #", "quality": "\#($0)""# } ?? ""
            let job = try Self.openAI(#"{"prompt": "a cat"\#(q)\#(extra)}"#)
            return (job.generation.priorSteps, job.generation.decoderSteps, job.openAI!.quality)
        }
        #expect(try steps("low") == (10, 4, .low))
        #expect(try steps("medium") == (20, 8, .medium))
        #expect(try steps("high") == (nil, 12, .high))
        #expect(try steps("auto") == (nil, 12, .high), "auto: the model card's defaults")
        #expect(try steps(nil) == (nil, 12, .high))
        #expect(try steps("standard") == (20, 8, .medium) && steps("hd") == (nil, 12, .high), "dall-e-3's names")
        // The extension fields override the level's counts; the reported quality stays the level.
        #expect(try steps("low", #", "prior_steps": 3"#) == (3, 4, .low))
        #expect(try steps("low", #", "decoder_steps": 7"#) == (10, 7, .low))
        #expect(Self.error(#"{"prompt": "x", "quality": "ultra"}"#)?.param == "quality")
        // A level above max_steps is cut to it rather than refused (the client named no step count).
        var small = Self.limits
        small.maxSteps = 6
        let cut = try Self.openAI(#"{"prompt": "x", "quality": "medium"}"#, limits: small)
        #expect(cut.generation.priorSteps == 6 && cut.generation.decoderSteps == 6)
    }

    @Test func sizeBackgroundModerationAndN() throws {
        let auto = try Self.openAI(#"{"prompt": "x", "size": "auto"}"#)
        #expect(auto.generation.width == 1024 && auto.generation.height == 1024)
        let tall = try Self.openAI(#"{"prompt": "x", "size": "256x512"}"#)
        #expect(tall.generation.width == 256 && tall.generation.height == 512)
        #expect(Self.error(#"{"prompt": "x", "size": "100x100"}"#)?.param == "size")
        #expect(Self.error(#"{"prompt": "x", "size": "big"}"#)?.param == "size")

        for background in ["opaque", "auto"] {
            #expect(Self.error(#"{"prompt": "x", "background": "\#(background)"}"#) == nil)
        }
        let transparent = try #require(Self.error(#"{"prompt": "x", "background": "transparent"}"#))
        #expect(transparent.status == 400 && transparent.param == "background" && transparent.message.contains("transparent"))
        #expect(Self.error(#"{"prompt": "x", "background": "green"}"#)?.param == "background")

        #expect(Self.error(#"{"prompt": "x", "moderation": "low"}"#) == nil && Self.error(#"{"prompt": "x", "moderation": "auto"}"#) == nil)
        #expect(Self.error(#"{"prompt": "x", "moderation": "strict"}"#)?.param == "moderation")
        #expect(Self.error(#"{"prompt": "x", "user": "u1", "safety_identifier": "hashed-user"}"#) == nil)
        #expect(Self.error(#"{"prompt": "x", "safety_identifier": 7}"#)?.param == "safety_identifier")

        #expect(try Self.openAI(#"{"prompt": "x", "size": "128x128", "n": 4}"#).generation.numImages == 4)
        let many = try #require(Self.error(#"{"prompt": "x", "size": "128x128", "n": 5}"#))
        #expect(many.status == 400 && many.param == "n" && many.message.contains("4"), "\(many.message)")
        #expect(Self.error(#"{"prompt": "x", "n": 0}"#)?.param == "n")

        let format = try Self.openAI(#"{"prompt": "x", "output_format": "jpeg", "output_compression": 80}"#)
        #expect(format.outputFormat == .jpeg && format.outputCompression == 80)
        #expect(Self.error(#"{"prompt": "x", "output_format": "gif"}"#)?.param == "output_format")
        #expect(Self.error(#"{"prompt": "x", "output_compression": 101}"#)?.param == "output_compression")
    }

    @Test func streamAndPartialImages() throws {
        let plain = try Self.openAI(#"{"prompt": "x"}"#)
        #expect(plain.openAI?.stream == false && plain.generation.previewCount == 0)
        let stream = try Self.openAI(#"{"prompt": "x", "stream": true, "partial_images": 3}"#)
        #expect(stream.openAI?.stream == true && stream.openAI?.partialImages == 3 && stream.generation.previewCount == 3)
        // Without stream there is nothing to send previews on: none are computed.
        #expect(try Self.openAI(#"{"prompt": "x", "partial_images": 2}"#).generation.previewCount == 0)
        #expect(Self.error(#"{"prompt": "x", "stream": true, "partial_images": 4}"#)?.param == "partial_images")
        #expect(Self.error(#"{"prompt": "x", "stream": true, "partial_images": -1}"#)?.param == "partial_images")
        #expect(Self.error(#"{"prompt": "x", "stream": "yes"}"#)?.param == "stream")
    }

    @Test func modelAliases() throws {
        for name in ["wuerstchen-v2", "wuerstchen-v2-demo", "gpt-image-1", "gpt-image-1-mini", "dall-e-2", "dall-e-3"] {
            #expect(Self.error(#"{"prompt": "x", "model": "\#(name)"}"#) == nil, "\(name)")
            #expect(Self.error(#"{"prompt": "x", "model": "\#(name)"}"#, native: true) == nil, "\(name)")
        }
        let unknown = try #require(Self.error(#"{"prompt": "x", "model": "stable-diffusion-xl"}"#))
        #expect(unknown.status == 404 && unknown.param == "model" && unknown.code == "model_not_found" && unknown.type == "invalid_request_error")
        #expect(unknown.json["error"]?["message"] != nil)
        #expect(Self.error(#"{"prompt": "x", "model": "gpt-4o"}"#, native: true)?.code == "model_not_found")

        // Configured aliases replace the defaults; the served id stays accepted.
        var config = ServerConfiguration()
        config.modelAliases = ["my-model"]
        let limits = RequestLimits(config)
        #expect(limits.modelNames == [DemoModel.id, "my-model"])
        #expect(Self.error(#"{"prompt": "x", "model": "my-model"}"#, limits: limits) == nil)
        #expect(Self.error(#"{"prompt": "x", "model": "wuerstchen-v2-demo"}"#, limits: limits) == nil)
        #expect(Self.error(#"{"prompt": "x", "model": "dall-e-3"}"#, limits: limits)?.status == 404)
        config.modelID = "house-model"
        #expect(RequestLimits(config).modelNames == ["house-model", "my-model"])
        config.prior = "/p"
        config.decoder = "/d"
        config.modelID = nil
        #expect(config.servedModelID == "wuerstchen-v2", "pipeline folders: the published id")
    }

    /// `POST /v1/images` takes what `inspect` prints: `model` checked, `precision` must be the server's,
    /// `version` and `image_index` informational.
    @Test func nativeEndpointChecksInspectKeys() throws {
        let base = #""prompt": "x", "width": 128, "height": 128, "num_images": 2"#
        #expect(Self.error(#"{\#(base), "precision": "fp32", "version": "0.0.1", "image_index": 1, "model": "wuerstchen-v2-demo"}"#, native: true) == nil)
        let precision = try #require(Self.error(#"{\#(base), "precision": "bf16"}"#, native: true))
        #expect(precision.status == 400 && precision.param == "precision" && precision.message.contains("fp32"))
        #expect(Self.error(#"{\#(base), "precision": "fp64"}"#, native: true)?.param == "precision")
        var bf16 = ServerConfiguration()
        bf16.precision = "int8"
        let int8Limits = RequestLimits(bf16)
        // The server's precision is what runs after the CPU's fallback (int8 needs AVX2).
        #expect(Self.error(#"{\#(base), "precision": "\#(int8Limits.precision)"}"#, native: true, limits: int8Limits) == nil)
        #expect(Self.error(#"{\#(base), "image_index": 2}"#, native: true)?.param == "image_index")
        #expect(Self.error(#"{\#(base), "model": "nope"}"#, native: true)?.param == "model")
    }

    @Test func usageCountsTokensAndLatentPositions() throws {
        let job = try Self.openAI(#"{"prompt": "a red circle", "size": "1024x1024", "n": 2}"#)
        let usage = ImageUsage(job.generation, model: Self.model)
        // BOS + "a red circle" (3 tokens) + EOS.
        #expect(usage.inputTokens == 5)
        // Per image: prior latent ceil(1024 / 42.67)^2 = 24^2, decoder latent int(24 * 10.67)^2 = 256^2.
        #expect(usage.outputTokens == 2 * (24 * 24 + 256 * 256))
        #expect(usage.totalTokens == 5 + 2 * 66112)
        #expect(usage.json["input_tokens_details"]?["text_tokens"]?.intValue == 5)
        #expect(usage.json["input_tokens_details"]?["image_tokens"]?.intValue == 0)
        // A prompt beyond CLIP's 77 tokens counts the 77 the encoder reads.
        let long = try Self.openAI(#"{"prompt": "\#(Array(repeating: "cat", count: 100).joined(separator: " "))"}"#)
        #expect(ImageUsage(long.generation, model: Self.model).inputTokens == 77)
    }

    // MARK: - Over sockets

    @Test func responseCarriesSettingsAndUsage() throws {
        try withServer { s in
            let r = try RawClient.request(s.port, "POST", "/v1/images/generations", body: #"""
                {"model": "gpt-image-1", "prompt": "a red circle", "size": "128x128", "quality": "low", "background": "auto",
                 "moderation": "low", "output_format": "webp", "seed": 3, "decoder_steps": 2}
                """#)
            #expect(r.status == 200, "\(r.text)")
            let json = try #require(r.json)
            guard case .object(let members) = json else { Issue.record("not an object"); return }
            #expect(members.map(\.0) == ["created", "background", "data", "output_format", "quality", "size", "usage"])
            #expect(json["background"] == .string("opaque") && json["output_format"] == .string("webp"))
            #expect(json["quality"] == .string("low") && json["size"] == .string("128x128"))
            #expect(json["usage"]?["input_tokens"]?.intValue == 5)
            // 128 px: prior latent ceil(128 / 42.67) = 3, decoder latent int(3 * 10.67) = 32.
            #expect(json["usage"]?["output_tokens"]?.intValue == 3 * 3 + 32 * 32)
            #expect(json["usage"]?["total_tokens"]?.intValue == 5 + 9 + 1024)
            guard case .array(let data)? = json["data"], case .string(let b64)? = data.first?["b64_json"], let bytes = Data(base64Encoded: b64) else {
                Issue.record("no data[0].b64_json")
                return
            }
            #expect(try ImageDecoder.decode(bytes).format == .webp)

            let unknown = try RawClient.request(s.port, "POST", "/v1/images/generations", body: #"{"prompt": "x", "model": "midjourney"}"#)
            #expect(unknown.status == 404 && unknown.errorParam == "model")
            #expect(unknown.json?["error"]?["code"] == .string("model_not_found") && unknown.json?["error"]?["type"] == .string("invalid_request_error"))
            let transparent = try RawClient.request(s.port, "POST", "/v1/images/generations", body: #"{"prompt": "x", "background": "transparent"}"#)
            #expect(transparent.status == 400 && transparent.errorParam == "background")
        }
    }

    /// Reads an OpenAI stream to its end: the events in order, with their JSON.
    static func readStream(_ client: RawClient) throws -> [(event: String, data: JSONValue)] {
        var reader = EventReader(client: client)
        var events: [(String, JSONValue)] = []
        while let e = try reader.next() { events.append(e) }
        return events
    }

    static func image(_ data: JSONValue) throws -> DecodedImage {
        guard case .string(let b64)? = data["b64_json"], let bytes = Data(base64Encoded: b64) else {
            throw ClientError(description: "event without b64_json: \(data.serialized.prefix(200))")
        }
        return try ImageDecoder.decode(bytes)
    }

    /// Two images, three previews over 8 decoder steps (after steps 2, 4 and 6): per preview one partial
    /// event per image, then one completed event per image, last, with the usage; the previews decode as
    /// JPEG of the size and differ from the final images (and from each other).
    @Test func streamSendsPartialImagesThenCompleted() throws {
        try withServer { s in
            let client = try RawClient(port: s.port)
            client.send("POST", "/v1/images/generations", headers: [("X-Request-Id", "oai-stream")], body: #"""
                {"model": "gpt-image-1", "prompt": "a red circle on a blue background", "size": "128x128", "n": 2, "stream": true,
                 "partial_images": 3, "output_format": "jpeg", "quality": "medium", "seed": 5, "prior_steps": 2, "decoder_steps": 8}
                """#)
            let (status, headers) = try client.readHead()
            #expect(status == 200)
            #expect(headers["Content-Type"] == "text/event-stream" && headers["X-Seed"] == "5")
            let events = try Self.readStream(client)
            #expect(events.map(\.event) == Array(repeating: "image_generation.partial_image", count: 6)
                    + Array(repeating: "image_generation.completed", count: 2), "\(events.map(\.event))")
            let partials = events.filter { $0.event == "image_generation.partial_image" }
            #expect(partials.map { $0.data["partial_image_index"]?.intValue } == [0, 0, 1, 1, 2, 2])
            for (event, data) in events {
                #expect(data["type"] == .string(event))
                #expect(data["created_at"]?.intValue != nil)
                #expect(data["size"] == .string("128x128") && data["quality"] == .string("medium"))
                #expect(data["background"] == .string("opaque") && data["output_format"] == .string("jpeg"))
                let image = try Self.image(data)
                #expect(image.format == .jpeg && image.width == 128 && image.height == 128)
            }
            let completed = events.filter { $0.event == "image_generation.completed" }
            for (_, data) in completed {
                let usage = try #require(data["usage"])
                #expect(usage["input_tokens"]?.intValue == 9, "BOS + 7 tokens + EOS")
                #expect(usage["input_tokens_details"]?["text_tokens"]?.intValue == 9)
                #expect(usage["output_tokens"]?.intValue == 2 * (9 + 1024) && usage["total_tokens"]?.intValue == 9 + 2 * 1033)
            }
            #expect(partials.allSatisfy { $0.data["usage"] == nil })
            // Previews are real: each differs from the final image of its index and from the next preview.
            let finals = try completed.map { try Self.image($0.data).rgb }
            let previews = try partials.map { try Self.image($0.data).rgb }
            #expect(finals.count == 2 && finals[0] != finals[1])
            for (k, preview) in previews.enumerated() {
                let meanDifference = zip(preview, finals[k % 2]).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) } / max(preview.count, 1)
                #expect(preview != finals[k % 2], "preview \(k) equals its final image")
                print("preview \(k): mean difference from the final image \(meanDifference) levels")
            }
            #expect(previews[0] != previews[2] && previews[2] != previews[4])
            #expect(s.service?.summary(of: "oai-stream")?.status == .done)
        }
    }

    @Test func streamWithoutPartialImagesSendsOneCompletedEvent() throws {
        try withServer { s in
            let client = try RawClient(port: s.port)
            client.send("POST", "/v1/images/generations",
                        body: #"{"prompt": "x", "size": "128x128", "stream": true, "seed": 1, "prior_steps": 2, "decoder_steps": 4}"#)
            #expect(try client.readHead().0 == 200)
            let events = try Self.readStream(client)
            #expect(events.map(\.event) == ["image_generation.completed"])
            #expect(try Self.image(events[0].data).format == .png)
            #expect(events[0].data["output_format"] == .string("png") && events[0].data["quality"] == .string("high"))

            // Fewer decoder steps than previews asked for: one per step but the last.
            let short = try RawClient(port: s.port)
            short.send("POST", "/v1/images/generations",
                       body: #"{"prompt": "x", "size": "128x128", "stream": true, "partial_images": 3, "seed": 1, "prior_steps": 2, "decoder_steps": 2}"#)
            #expect(try short.readHead().0 == 200)
            #expect(try Self.readStream(short).map(\.event) == ["image_generation.partial_image", "image_generation.completed"])
        }
    }

    /// A generation that fails ends the stream with an `error` event holding OpenAI's error object (the
    /// SDK raises it), and no completed event.
    @Test func failureEndsTheStreamWithAnErrorEvent() throws {
        try withServer { s in
            let client = try RawClient(port: s.port)
            client.send("POST", "/v1/images/generations", body: #"""
                {"prompt": "x", "size": "512x512", "stream": true, "partial_images": 2, "prior_steps": 200, "decoder_steps": 200,
                 "timeout_seconds": 0.5}
                """#)
            #expect(try client.readHead().0 == 200)
            let events = try Self.readStream(client)
            #expect(events.last?.event == "error" && !events.contains { $0.event == "image_generation.completed" }, "\(events.map(\.event))")
            #expect(events.last?.data["error"]?["code"] == .string("deadline_exceeded"))
        }
    }

    /// A client that leaves a stream cancels its generation (the probe and close machinery of every image route).
    @Test func clientLeavingTheStreamCancels() throws {
        try withServer { s in
            let client = try RawClient(port: s.port)
            client.send("POST", "/v1/images/generations", headers: [("X-Request-Id", "oai-gone")],
                        body: #"{"prompt": "x", "size": "512x512", "stream": true, "partial_images": 1, "prior_steps": 200, "decoder_steps": 200}"#)
            #expect(try client.readHead().0 == 200)
            #expect(eventually { (s.service?.summary(of: "oai-gone")?.stepsRun ?? 0) >= 2 }, "the job must start")
            client.disconnect()
            #expect(eventually { s.service?.summary(of: "oai-gone")?.status == .cancelled })
            let summary = try #require(s.service?.summary(of: "oai-gone"))
            #expect(summary.stepsRun < summary.stepsTotal)
        }
    }

    // MARK: - The engine's preview hook

    /// In one batch, only the request that asked gets previews (its rows only), and previews change
    /// nothing of either request's images.
    @Test func previewsOnlyForTheRequestsThatAsk() throws {
        let service = BatchingGenerationService(pipeline: Demo.pipeline, policy: SchedulerPolicy())
        defer {
            let done = DispatchSemaphore(value: 0)
            service.shutdown { done.signal() }
            _ = done.wait(timeout: .now() + 30)
        }
        final class Events: @unchecked Sendable {
            let lock = NSLock()
            var previews: [Int] = []
            var images: Tensor?
            let done = DispatchSemaphore(value: 0)
            func take(_ e: GenerationEvent) {
                lock.lock()
                defer { lock.unlock() }
                switch e {
                case .preview(let index, let images):
                    previews.append(index)
                    precondition(images.dim(0) == 2 && images.dim(1) == 128)
                case .completed(let out):
                    images = out.images
                    done.signal()
                case .failed: done.signal()
                default: break
                }
            }
        }
        func request(previews: Int) -> GenerationRequest {
            var g = GenerationRequest(prompt: "a red circle", width: 128, height: 128, numImages: 2, seed: 9, priorSteps: 2, decoderSteps: 6)
            g.previewCount = previews
            return g
        }
        let asking = Events(), plain = Events(), alone = Events()
        _ = try service.submit(request(previews: 2), id: "asks", timeout: nil) { asking.take($0) }
        _ = try service.submit(request(previews: 0), id: "plain", timeout: nil) { plain.take($0) }
        for e in [asking, plain] { #expect(e.done.wait(timeout: .now() + 120 * testTimeScale) == .success) }
        #expect(service.statistics.largestBatch >= 2, "the two requests must have shared forward passes")
        #expect(asking.previews == [0, 1] && plain.previews.isEmpty)
        _ = try service.submit(request(previews: 0), id: "alone", timeout: nil) { alone.take($0) }
        #expect(alone.done.wait(timeout: .now() + 120 * testTimeScale) == .success)
        let a = try #require(asking.images).pixelBytes(), p = try #require(plain.images).pixelBytes(), o = try #require(alone.images).pixelBytes()
        // Batched or alone, images agree within one level (the scheduler's contract); the previews add nothing.
        func maxDifference(_ x: [UInt8], _ y: [UInt8]) -> Int { zip(x, y).map { abs(Int($0) - Int($1)) }.max() ?? 0 }
        #expect(a.count == p.count && maxDifference(a, p) <= 1 && maxDifference(a, o) <= 1,
                "previews must not change the images: \(maxDifference(a, p)), \(maxDifference(a, o)) levels")
    }
}
