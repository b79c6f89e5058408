import Foundation
import HTTP1
import Imaging
import JSON
import Tensor
import Wuerstchen

/// How the images go back, from the route and `Accept`.
enum ImageResponseMode: Equatable {
    /// One image file, streamed with chunked encoding as it is encoded (PNG, JPEG) or once encoded (WebP).
    case image
    /// `multipart/mixed`, one image part per image, streamed.
    case multipart
    /// `{"created", "seed", "output_format", "data": [{"b64_json"}]}`.
    case json
    /// Server-sent events: `queued`, `progress`, then `image` per image and `done` (or `error`).
    case eventStream
    /// OpenAI's `{"created", "background", "data": [{"b64_json"}], "output_format", "quality", "size", "usage"}`.
    case openAI
    /// OpenAI's `stream: true`: `image_generation.partial_image` events, then `image_generation.completed` per image.
    case openAIStream

    /// The media types `/v1/images` offers, in the server's order of preference: the image types (only
    /// the one of `output_format` when the body names one), then the containers.
    static func offered(format: ImageFormat?) -> [(String, ImageResponseMode, ImageFormat?)] {
        let images = (format.map { [$0] } ?? ImageFormat.allCases).map { ($0.mediaType, ImageResponseMode.image, Optional($0)) }
        return images + [("multipart/mixed", .multipart, nil), ("application/json", .json, nil), ("text/event-stream", .eventStream, nil)]
    }

    /// The best offered type for an `Accept` header (RFC 9110 §12.5.1: the most specific range sets a
    /// type's q; highest q wins, ties go to the server's order, so `image/*` and `*/*` give PNG unless
    /// `output_format` says otherwise) with the image format it names; nil when none is acceptable (406).
    static func negotiate(_ accept: String?, format: ImageFormat? = nil) -> (mode: ImageResponseMode, format: ImageFormat?)? {
        let offered = offered(format: format)
        guard let accept, !accept.trimmingCharacters(in: .whitespaces).isEmpty else { return (.image, format ?? .png) }
        var ranges: [(type: String, q: Double)] = []
        for item in accept.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let type = parts.first, !type.isEmpty else { continue }
            var q = 1.0
            for p in parts.dropFirst() where p.hasPrefix("q=") { q = Double(p.dropFirst(2)) ?? 0 }
            ranges.append((type, min(max(q, 0), 1)))
        }
        var best: (ImageResponseMode, ImageFormat?, Double)?
        for (type, mode, imageFormat) in offered {
            let major = type.split(separator: "/")[0]
            let q = ranges.first { $0.type == type }?.q ?? ranges.first { $0.type == "\(major)/*" }?.q ?? ranges.first { $0.type == "*/*" }?.q ?? 0
            if q > 0, q > (best?.2 ?? 0) { best = (mode, imageFormat, q) }
        }
        return best.map { ($0.0, $0.1) }
    }
}

/// Events from the service's thread to the handler's, which may block on writes.
final class EventInbox: @unchecked Sendable {
    private let condition = NSCondition()
    private var events: [GenerationEvent] = []

    func post(_ event: GenerationEvent) {
        condition.lock()
        events.append(event)
        condition.signal()
        condition.unlock()
    }

    /// The next event, waiting for it.
    func next() -> GenerationEvent {
        condition.lock()
        defer { condition.unlock() }
        while events.isEmpty { condition.wait() }
        return events.removeFirst()
    }
}

extension ServingHandler {
    /// The request's JSON body (`POST /v1/images`, `/v1/images/generations`, `/v1/jobs`), or nil after answering
    /// why not: 411 without a length, 415 for another content type, 400 `invalid_json`.
    func jsonBody(_ exchange: Exchange) -> JSONValue? {
        let request = exchange.request
        guard request.headers.contains("Content-Length") || request.headers.contains("Transfer-Encoding") else {
            exchange.error(ServingError(status: 411, message: "a JSON body with Content-Length (or chunked) is required", code: "length_required"))
            return nil
        }
        if let error = Self.contentTypeError(request.headers["Content-Type"]) {
            exchange.error(error)
            return nil
        }
        do { return try JSONValue.parse(request.body) } catch {
            exchange.error(.invalid(nil, "the body is not valid JSON: \(error.description)", code: "invalid_json"))
            return nil
        }
    }

    /// The generation service, or nil after answering why there is none (loading, failed load, draining: 503).
    func loadedService(_ exchange: Exchange) -> (any GenerationService)? {
        if let error = state.unavailability {
            exchange.error(error)
            return nil
        }
        guard let service = state.service else {
            exchange.error(ServingError(status: 503, message: "the models are not loaded", type: "server_error", code: "loading"))
            return nil
        }
        return service
    }

    /// `POST /v1/images` and `POST /v1/images/generations`.
    func images(_ exchange: Exchange, openAI: Bool) {
        let request = exchange.request
        guard let body = jsonBody(exchange) else { return }
        let requestedFormat: ImageFormat?
        do { requestedFormat = try ImageRequests.outputFormat(body) } catch {
            exchange.error(error)
            return
        }
        let mode: ImageResponseMode
        var acceptFormat: ImageFormat?
        if openAI {
            mode = .openAI
        } else if let negotiated = ImageResponseMode.negotiate(request.headers["Accept"], format: requestedFormat) {
            (mode, acceptFormat) = negotiated
        } else {
            let offered = ImageResponseMode.offered(format: requestedFormat).map(\.0).joined(separator: ", ")
            let why = requestedFormat.map { " (output_format \($0.rawValue) leaves \($0.mediaType) as the one image type)" } ?? ""
            exchange.error(ServingError(
                status: 406, message: "Accept '\(request.headers["Accept"] ?? "")' allows none of \(offered)\(why)",
                code: "not_acceptable"))
            return
        }
        guard let service = loadedService(exchange) else { return }
        let job: ImageJob
        do {
            job = try openAI ? ImageRequests.openAI(body, model: service.model, limits: limits)
                : ImageRequests.native(body, model: service.model, limits: limits)
        } catch {
            exchange.error(error)
            return
        }
        let output: ImageOutput
        do { output = try imageOutput(for: job, accept: acceptFormat) } catch {
            exchange.error(error)
            return
        }
        let resolved = mode == .image && job.generation.numImages > 1 ? .multipart
            : mode == .openAI && job.openAI?.stream == true ? .openAIStream : mode
        run(job, on: service, mode: resolved, output: output, exchange)
    }

    /// How `job`'s images are written: the one place every image route (`/v1/images`, the OpenAI endpoint,
    /// `GET /v1/jobs/{id}/images/{i}`) gets its encoder and metadata from. The format is the body's
    /// `output_format`, else `accept` (negotiated from `Accept`), else PNG. Throws a 400 when the parameters do
    /// not fit the format's metadata (JPEG's segment bound depends only on the request's text: refused before
    /// generating).
    func imageOutput(for job: ImageJob, accept: ImageFormat? = nil) throws(ServingError) -> ImageOutput {
        let format = job.outputFormat ?? accept ?? .png
        let output = ImageOutput(
            encoder: ImageEncoder(format: format, compression: job.outputCompression, defaultPNGLevel: configuration.pngCompression),
            parameters: configuration.imageMetadata
                ? GenerationParameters(request: job.generation, model: configuration.servedModelID, precision: precisionName,
                                       outputFormat: format, outputCompression: job.outputCompression) : nil)
        if let parameters = output.parameters {
            do { try output.encoder.check(parameters.metadata) } catch {
                let field = job.generation.negativePrompt.utf8.count > job.generation.prompt.utf8.count ? "negative_prompt" : "prompt"
                throw .invalid(field, "\(error.description) (or ask the operator for image_metadata off)", code: "metadata_too_large")
            }
        }
        return output
    }

    /// How images are written: the encoder, and the parameters they carry (nil with `image_metadata` off).
    struct ImageOutput: Sendable {
        let encoder: ImageEncoder
        let parameters: GenerationParameters?

        /// The files' media type.
        var mediaType: String { encoder.format.mediaType }

        /// The metadata of image `index`.
        func metadata(_ index: Int) -> ImageMetadata? {
            guard var p = parameters else { return nil }
            p.imageIndex = index
            return p.metadata
        }

        /// The whole file of image `index`; throws when encoding fails (never an empty image in a 200).
        func file(_ image: RGBImage, index: Int) throws -> [UInt8] {
            [UInt8](try encoder.encode(rgb: image.bytes, width: image.width, height: image.height, metadata: metadata(index)))
        }

        /// `file` as base64.
        func base64(_ image: RGBImage, index: Int) throws -> String {
            Data(try file(image, index: index)).base64EncodedString()
        }
    }

    private func run(_ job: ImageJob, on service: any GenerationService, mode: ImageResponseMode, output: ImageOutput, _ exchange: Exchange) {
        var headers = [("X-Seed", String(job.generation.seed))]
        if job.promptTruncated { headers.append(("X-Prompt-Truncated", "true")) }
        let inbox = EventInbox()
        let ticket: GenerationTicket
        do {
            ticket = try service.submit(job.generation, id: exchange.requestID, timeout: job.timeout) { inbox.post($0) }
        } catch let error as ServingError {
            exchange.error(error, headers: headers)
            return
        } catch {
            exchange.error(ServingError(status: 500, message: "\(error)", type: "server_error"), headers: headers)
            return
        }
        exchange.writer.onClose { ticket.cancel() }

        if mode == .eventStream {
            streamEvents(job, inbox: inbox, ticket: ticket, output: output, headers: headers, exchange)
            return
        }
        let usage = ImageUsage(job.generation, model: service.model)
        if mode == .openAIStream {
            streamOpenAI(job, usage: usage, inbox: inbox, ticket: ticket, output: output, headers: headers, exchange)
            return
        }
        while true {
            switch inbox.next() {
            case .queued, .progress, .preview: continue
            case .failed(let error):
                exchange.error(error, headers: headers)
                return
            case .completed(let generated):
                deliver(generated, job: job, mode: mode, output: output, usage: usage, headers: headers, exchange)
                return
            }
        }
    }

    /// Writes finished images in `mode` (not the event streams).
    private func deliver(_ generated: GenerationOutput, job: ImageJob, mode: ImageResponseMode, output: ImageOutput,
                         usage: ImageUsage, headers: [(String, String)], _ exchange: Exchange) {
        let images = Self.rgbImages(generated.images)
        let format = output.encoder.format
        let created = JSONValue.int(Int(Date().timeIntervalSince1970))
        switch mode {
        case .image:
            exchange.head(status: 200, headers: [("Content-Type", format.mediaType)] + headers)
            let ok = stream(images[0], index: 0, output: output, exchange)
            exchange.finish(complete: ok)
        case .multipart:
            let boundary = "wuerstchen-" + Exchange.requestID(from: nil)
            exchange.head(status: 200, headers: [("Content-Type", "multipart/mixed; boundary=\(boundary)")] + headers)
            for (i, image) in images.enumerated() {
                let partHead = "--\(boundary)\r\nContent-Type: \(format.mediaType)\r\nContent-Disposition: inline; filename=\"image-\(i).\(format.fileExtension)\"\r\n\r\n"
                guard (try? exchange.write(Array(partHead.utf8))) != nil, stream(image, index: i, output: output, exchange),
                      (try? exchange.write(Array("\r\n".utf8))) != nil else {
                    exchange.finish(complete: false)
                    return
                }
            }
            let ok = (try? exchange.write(Array("--\(boundary)--\r\n".utf8))) != nil
            exchange.finish(complete: ok)
        case .json, .openAI:
            let encoded: [String]
            do { encoded = try images.enumerated().map { try output.base64($1, index: $0) } } catch {
                exchange.error(ServingError(status: 500, message: "\(format.rawValue.uppercased()) encoding failed: \(error)", type: "server_error"), headers: headers)
                return
            }
            let data = JSONValue.array(encoded.map { .object([("b64_json", .string($0))]) })
            var members: [(String, JSONValue)] = [("created", created)]
            if mode == .json {
                members += [("seed", .int(job.generation.seed)), ("prompt_truncated", .bool(job.promptTruncated)),
                            ("output_format", .string(format.rawValue)), ("data", data)]
            } else {
                // OpenAI's ImagesResponse order: created, background, data, output_format, quality, size, usage.
                let settings = job.openAISettings(format: format.rawValue)
                members += [settings[0], ("data", data)] + settings.dropFirst() + [("usage", usage.json)]
            }
            exchange.json(200, .object(members), headers: headers)
        case .eventStream, .openAIStream:
            preconditionFailure("event streams are written by streamEvents and streamOpenAI")
        }
    }

    /// Server-sent events: every queue move and step as it happens, then the images.
    private func streamEvents(_ job: ImageJob, inbox: EventInbox, ticket: GenerationTicket, output: ImageOutput,
                              headers: [(String, String)], _ exchange: Exchange) {
        let stream = EventStream(exchange, headers: headers) { ticket.cancel() }
        func send(_ event: String, _ data: JSONValue) { stream.send(event, data) }
        while true {
            switch inbox.next() {
            case .queued(let position):
                send("queued", .object([("position", .int(position))]))
            case .progress(let stage, let step, let total):
                send("progress", .object([("stage", .string(stage.rawValue)), ("step", .int(step)), ("total", .int(total))]))
            case .failed(let error):
                send("error", exchange.publicError(error).json)
                stream.finish()
                return
            case .completed(let generated):
                let format = output.encoder.format.rawValue
                for (i, image) in Self.rgbImages(generated.images).enumerated() {
                    guard let file = try? output.base64(image, index: i) else {
                        send("error", exchange.publicError(ServingError(status: 500, message: "\(format.uppercased()) encoding of image \(i) failed", type: "server_error")).json)
                        stream.finish()
                        return
                    }
                    send("image", .object([("index", .int(i)), ("output_format", .string(format)), ("b64_json", .string(file))]))
                }
                send("done", .object([("created", .int(Int(Date().timeIntervalSince1970))), ("seed", .int(job.generation.seed)),
                                      ("num_images", .int(generated.images.dim(0))), ("prompt_truncated", .bool(job.promptTruncated))]))
                stream.finish()
                return
            case .preview:
                continue  // asked for on the OpenAI endpoint only
            }
        }
    }

    /// OpenAI's image stream (`stream: true`): at each preview (`partial_images`, decoder steps evenly
    /// spaced), one `image_generation.partial_image` event per image, in image order, with the preview's
    /// `partial_image_index`; then one `image_generation.completed` per image, in order, each with the
    /// request's `usage`. A preview that cannot be encoded is skipped, the completed events come whatever
    /// happened to previews; a failure ends the stream with an `error` event (`{"error": {...}}`, which the
    /// SDK raises). A client that goes away cancels the generation (the ticket, as every image route).
    private func streamOpenAI(_ job: ImageJob, usage: ImageUsage, inbox: EventInbox, ticket: GenerationTicket, output: ImageOutput,
                              headers: [(String, String)], _ exchange: Exchange) {
        let stream = EventStream(exchange, headers: headers) { ticket.cancel() }
        // The head goes out now (it is buffered until body bytes): the first event can be many steps away,
        // and a client's read timeout should see the answer start. SSE parsers skip comment lines.
        stream.write(":\n\n")
        let settings = job.openAISettings(format: output.encoder.format.rawValue)
        func event(_ type: String, _ b64: String, _ extra: [(String, JSONValue)]) -> JSONValue {
            .object([("type", .string(type)), ("b64_json", .string(b64)), ("created_at", .int(Int(Date().timeIntervalSince1970)))]
                    + settings + extra)
        }
        while true {
            switch inbox.next() {
            case .queued, .progress: continue
            case .preview(let index, let images):
                for (i, image) in Self.rgbImages(images).enumerated() {
                    // Previews carry no parameters: they are not the image the parameters reproduce.
                    guard let file = try? output.encoder.encode(rgb: image.bytes, width: image.width, height: image.height, metadata: nil) else {
                        logger.warning("preview encoding failed", metadata: ["request_id": "\(exchange.requestID)", "image": "\(i)", "preview": "\(index)"])
                        continue
                    }
                    let b64 = Data(file).base64EncodedString()
                    stream.send("image_generation.partial_image", event("image_generation.partial_image", b64, [("partial_image_index", .int(index))]))
                }
            case .failed(let error):
                stream.send("error", exchange.publicError(error).json)
                stream.finish()
                return
            case .completed(let generated):
                for (i, image) in Self.rgbImages(generated.images).enumerated() {
                    guard let b64 = try? output.base64(image, index: i) else {
                        let format = output.encoder.format.rawValue.uppercased()
                        stream.send("error", exchange.publicError(ServingError(status: 500, message: "\(format) encoding of image \(i) failed", type: "server_error")).json)
                        stream.finish()
                        return
                    }
                    stream.send("image_generation.completed", event("image_generation.completed", b64, [("usage", usage.json)]))
                }
                stream.finish()
                return
            }
        }
    }

    /// One image's RGB bytes with its size.
    struct RGBImage {
        let width: Int, height: Int
        let bytes: [UInt8]
    }

    /// images: [n, H, W, 3] in [0, 1] -> n RGB8 images.
    static func rgbImages(_ images: Tensor) -> [RGBImage] {
        let n = images.dim(0), h = images.dim(1), w = images.dim(2)
        let all = images.pixelBytes()
        let per = h * w * 3
        return (0..<n).map { RGBImage(width: w, height: h, bytes: Array(all[($0 * per)..<(($0 + 1) * per)])) }
    }

    /// Streams image `index` into the response as its encoder produces it; false if the client went away
    /// or encoding failed (the response is then cut short).
    private func stream(_ image: RGBImage, index: Int, output: ImageOutput, _ exchange: Exchange) -> Bool {
        do {
            try output.encoder.encode(rgb: image.bytes, width: image.width, height: image.height, metadata: output.metadata(index)) { chunk in
                (try? exchange.write(Array(chunk))) != nil
            }
            return true
        } catch {
            return false
        }
    }
}
