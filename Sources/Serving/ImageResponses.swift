import Foundation
import HTTP1
import Imaging
import JSON
import Tensor
import Wuerstchen

/// How the images go back, from the route and `Accept`.
enum ImageResponseMode: Equatable {
    /// One PNG, streamed with chunked encoding as libpng writes it.
    case png
    /// `multipart/mixed`, one `image/png` part per image, streamed.
    case multipart
    /// `{"created", "seed", "data": [{"b64_json"}]}`.
    case json
    /// Server-sent events: `queued`, `progress`, then `image` per image and `done` (or `error`).
    case eventStream
    /// OpenAI's `{"created", "data": [{"b64_json"}]}`.
    case openAI

    /// The media types `/v1/images` offers, in the server's order of preference.
    static let offered: [(String, ImageResponseMode)] = [
        ("image/png", .png), ("multipart/mixed", .multipart), ("application/json", .json), ("text/event-stream", .eventStream),
    ]

    /// The best offered type for an `Accept` header (RFC 9110 §12.5.1: the most specific range sets a
    /// type's q; highest q wins, ties go to the server's order); nil when none is acceptable (406).
    static func negotiate(_ accept: String?) -> ImageResponseMode? {
        guard let accept, !accept.trimmingCharacters(in: .whitespaces).isEmpty else { return .png }
        var ranges: [(type: String, q: Double)] = []
        for item in accept.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let type = parts.first, !type.isEmpty else { continue }
            var q = 1.0
            for p in parts.dropFirst() where p.hasPrefix("q=") { q = Double(p.dropFirst(2)) ?? 0 }
            ranges.append((type, min(max(q, 0), 1)))
        }
        var best: (ImageResponseMode, Double)?
        for (type, mode) in offered {
            let major = type.split(separator: "/")[0]
            let q = ranges.first { $0.type == type }?.q ?? ranges.first { $0.type == "\(major)/*" }?.q ?? ranges.first { $0.type == "*/*" }?.q ?? 0
            if q > 0, q > (best?.1 ?? 0) { best = (mode, q) }
        }
        return best?.0
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
    /// `POST /v1/images` and `POST /v1/images/generations`.
    func images(_ exchange: Exchange, openAI: Bool) {
        let request = exchange.request
        guard request.headers.contains("Content-Length") || request.headers.contains("Transfer-Encoding") else {
            exchange.error(ServingError(status: 411, message: "a JSON body with Content-Length (or chunked) is required", code: "length_required"))
            return
        }
        if let error = Self.contentTypeError(request.headers["Content-Type"]) {
            exchange.error(error)
            return
        }
        let body: JSONValue
        do { body = try JSONValue.parse(request.body) } catch {
            exchange.error(.invalid(nil, "the body is not valid JSON: \(error.description)", code: "invalid_json"))
            return
        }
        let mode: ImageResponseMode
        if openAI {
            mode = .openAI
        } else if let negotiated = ImageResponseMode.negotiate(request.headers["Accept"]) {
            mode = negotiated
        } else {
            exchange.error(ServingError(
                status: 406, message: "Accept '\(request.headers["Accept"] ?? "")' allows none of image/png, multipart/mixed, application/json, text/event-stream",
                code: "not_acceptable"))
            return
        }
        if let error = state.unavailability {
            exchange.error(error)
            return
        }
        guard let service = state.service else {
            exchange.error(ServingError(status: 503, message: "the models are not loaded", type: "server_error", code: "loading"))
            return
        }
        let job: ImageJob
        do {
            job = try openAI ? ImageRequests.openAI(body, model: service.model, limits: limits)
                : ImageRequests.native(body, model: service.model, limits: limits)
        } catch {
            exchange.error(error)
            return
        }
        let resolved = mode == .png && job.generation.numImages > 1 ? .multipart : mode
        run(job, on: service, mode: resolved, output: imageOutput(for: job), exchange)
    }

    /// How `job`'s images are written: the one place every image route (`/v1/images`, the OpenAI
    /// endpoint, `GET /v1/jobs/{id}/images/{i}`) gets its encoder from.
    func imageOutput(for job: ImageJob) -> ImageOutput {
        ImageOutput(encoder: PNGEncoder(compressionLevel: configuration.pngCompression))
    }

    /// How images are written: the encoder and the media type it produces.
    struct ImageOutput: Sendable {
        let encoder: PNGEncoder
        /// The files' media type.
        var mediaType: String { "image/png" }
        /// The files' extension.
        var fileExtension: String { "png" }

        /// The whole file of image `index`; throws when encoding fails (never an empty image in a 200).
        func file(_ image: RGBImage, index: Int) throws -> [UInt8] {
            [UInt8](try encoder.encode(rgb: image.bytes, width: image.width, height: image.height))
        }

        /// `file` as base64.
        func base64(_ image: RGBImage, index: Int) throws -> String {
            Data(try file(image, index: index)).base64EncodedString()
        }

        /// Streams image `index` into `sink` as it is encoded (`sink` returns false to stop).
        func stream(_ image: RGBImage, index: Int, into sink: (UnsafeRawBufferPointer) -> Bool) throws {
            try encoder.encode(rgb: image.bytes, width: image.width, height: image.height, sink: sink)
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
        while true {
            switch inbox.next() {
            case .queued, .progress: continue
            case .failed(let error):
                exchange.error(error, headers: headers)
                return
            case .completed(let generated):
                deliver(generated, job: job, mode: mode, output: output, headers: headers, exchange)
                return
            }
        }
    }

    /// Writes finished images in `mode` (not `eventStream`).
    private func deliver(_ generated: GenerationOutput, job: ImageJob, mode: ImageResponseMode, output: ImageOutput,
                         headers: [(String, String)], _ exchange: Exchange) {
        let images = Self.rgbImages(generated.images)
        let created = JSONValue.int(Int(Date().timeIntervalSince1970))
        switch mode {
        case .png:
            exchange.head(status: 200, headers: [("Content-Type", output.mediaType)] + headers)
            let ok = stream(images[0], index: 0, output: output, exchange)
            exchange.finish(complete: ok)
        case .multipart:
            let boundary = "wuerstchen-" + Exchange.requestID(from: nil)
            exchange.head(status: 200, headers: [("Content-Type", "multipart/mixed; boundary=\(boundary)")] + headers)
            for (i, image) in images.enumerated() {
                let partHead = "--\(boundary)\r\nContent-Type: \(output.mediaType)\r\nContent-Disposition: inline; filename=\"image-\(i).\(output.fileExtension)\"\r\n\r\n"
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
                exchange.error(ServingError(status: 500, message: "PNG encoding failed: \(error)", type: "server_error"), headers: headers)
                return
            }
            let data = JSONValue.array(encoded.map { .object([("b64_json", .string($0))]) })
            var members: [(String, JSONValue)] = [("created", created)]
            if mode == .json {
                members += [("seed", .int(job.generation.seed)), ("prompt_truncated", .bool(job.promptTruncated))]
            }
            members.append(("data", data))
            exchange.json(200, .object(members), headers: headers)
        case .eventStream:
            preconditionFailure("event streams are written by streamEvents")
        }
    }

    /// Server-sent events: every queue move and step as it happens, then the images.
    private func streamEvents(_ job: ImageJob, inbox: EventInbox, ticket: GenerationTicket, output: ImageOutput,
                              headers: [(String, String)], _ exchange: Exchange) {
        exchange.head(status: 200, headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                                             ("X-Accel-Buffering", "no")] + headers)
        var connected = true
        func send(_ event: String, _ data: JSONValue) {
            guard connected else { return }
            if (try? exchange.write(Array("event: \(event)\ndata: \(data.serialized)\n\n".utf8))) == nil {
                connected = false
                ticket.cancel()
            }
        }
        while true {
            switch inbox.next() {
            case .queued(let position):
                send("queued", .object([("position", .int(position))]))
            case .progress(let stage, let step, let total):
                send("progress", .object([("stage", .string(stage.rawValue)), ("step", .int(step)), ("total", .int(total))]))
            case .failed(let error):
                send("error", exchange.publicError(error).json)
                exchange.finish(complete: connected)
                return
            case .completed(let generated):
                for (i, image) in Self.rgbImages(generated.images).enumerated() {
                    guard let png = try? output.base64(image, index: i) else {
                        send("error", exchange.publicError(ServingError(status: 500, message: "PNG encoding of image \(i) failed", type: "server_error")).json)
                        exchange.finish(complete: connected)
                        return
                    }
                    send("image", .object([("index", .int(i)), ("b64_json", .string(png))]))
                }
                send("done", .object([("created", .int(Int(Date().timeIntervalSince1970))), ("seed", .int(job.generation.seed)),
                                      ("num_images", .int(generated.images.dim(0))), ("prompt_truncated", .bool(job.promptTruncated))]))
                exchange.finish(complete: connected)
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

    /// Streams image `index` into the response as it is encoded; false if the client went away.
    private func stream(_ image: RGBImage, index: Int, output: ImageOutput, _ exchange: Exchange) -> Bool {
        do {
            try output.stream(image, index: index) { chunk in
                (try? exchange.write(Array(chunk))) != nil
            }
            return true
        } catch {
            return false
        }
    }
}
