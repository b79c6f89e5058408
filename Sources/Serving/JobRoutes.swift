import Foundation
import HTTP1
import JSON

/// The job routes (ARCHITECTURE.md "HTTP (v1)", Jobs; the shape of stable-diffusion.cpp's server and Cog):
///
/// | route | methods | answers |
/// | --- | --- | --- |
/// | `/v1/jobs` | POST | 202 `{id, status, queue_position, ...}` + `Location` |
/// | `/v1/jobs/{id}` | GET, DELETE | the status document; DELETE cancels |
/// | `/v1/jobs/{id}/cancel` | POST | cancels, answers the status document |
/// | `/v1/jobs/{id}/images/{i}` | GET | image `i` (the job's format) once `succeeded` |
/// | `/v1/jobs/{id}/events` | GET | SSE of the job's events with `id:` lines, resumable with `Last-Event-ID` |
///
/// All need a key when keys are configured, and a job is found only with the key that created it (any
/// other key gets the 404 of an id never issued). An evicted job answers 410.
extension ServingHandler {
    /// A job route: its label for metrics, methods, and the id and image index it names.
    struct JobPath: Equatable {
        enum Kind: Equatable { case create, status, cancel, image(String), events }
        let kind: Kind
        let id: String

        var label: String {
            switch kind {
            case .create: "/v1/jobs"
            case .status: "/v1/jobs/{id}"
            case .cancel: "/v1/jobs/{id}/cancel"
            case .image: "/v1/jobs/{id}/images/{i}"
            case .events: "/v1/jobs/{id}/events"
            }
        }

        var methods: [String] {
            switch kind {
            case .create, .cancel: ["POST"]
            case .status: ["GET", "DELETE"]
            case .image, .events: ["GET"]
            }
        }

        /// The route of `path`, or nil when it is not one (404).
        init?(_ path: String) {
            guard path == "/v1/jobs" || path.hasPrefix("/v1/jobs/") else { return nil }
            let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst(3).map(String.init)
            guard let first = parts.first else {
                kind = .create
                id = ""
                return
            }
            guard !first.isEmpty else { return nil }
            switch (parts.count, parts.count > 1 ? parts[1] : "") {
            case (1, _): kind = .status
            case (2, "cancel"): kind = .cancel
            case (2, "events"): kind = .events
            case (3, "images"): kind = .image(parts[2])
            default: return nil
            }
            id = first
        }
    }

    /// Answers a request whose path is a job route (`JobPath`).
    func jobs(_ route: JobPath, _ exchange: Exchange) {
        let request = exchange.request
        exchange.route = route.label
        guard acceptsMethod(of: route.methods, exchange) else { return }
        guard let owner = owner(request.headers["Authorization"]) else {
            exchange.error(.unauthorized)
            return
        }
        switch route.kind {
        case .create: createJob(owner: owner.key, exchange)
        case .status where request.method == "DELETE", .cancel:
            answer(jobManager.cancel(route.id, owner: owner.key), id: route.id, exchange) { record in
                guard record.status == .cancelled else {
                    exchange.error(ServingError(status: 409, message: "job \(route.id) already \(record.status.rawValue); only queued or running jobs can be cancelled",
                                                code: "job_finished"))
                    return
                }
                exchange.json(200, record.document(ttl: jobManager.limits.ttl))
            }
        case .status:
            answer(jobManager.lookup(route.id, owner: owner.key), id: route.id, exchange) { record in
                exchange.json(200, record.document(ttl: jobManager.limits.ttl))
            }
        case .image(let index):
            answer(jobManager.lookup(route.id, owner: owner.key), id: route.id, exchange) { record in
                image(record, index: index, exchange)
            }
        case .events:
            streamJobEvents(route.id, owner: owner.key, exchange)
        }
    }

    /// Who is asking: the index of the API key (nil with keys off).
    private struct JobOwner {
        let key: Int?
    }

    /// The owner when authorized, nil when not (401).
    private func owner(_ header: String?) -> JobOwner? {
        if !isKeyed { return JobOwner(key: nil) }
        return authorizedKey(header).map { JobOwner(key: $0) }
    }

    /// `found` for a job the key may see; 410 for an evicted one, 404 otherwise.
    private func answer(_ lookup: JobStore.Lookup, id: String, _ exchange: Exchange, found: (JobRecord) -> Void) {
        switch lookup {
        case .found(let record): found(record)
        case .evicted:
            exchange.error(ServingError(
                status: 410, message: "job \(id) is gone: finished jobs are kept \(jobManager.limits.ttl) s (jobs.ttl_seconds) "
                    + "within \(jobManager.limits.maxBytes) bytes (jobs.max_bytes)", param: "id", code: "job_evicted"))
        case .unknown:
            exchange.error(ServingError(status: 404, message: "no job \(id.count > 64 ? String(id.prefix(64)) + "..." : id)", param: "id", code: "job_not_found"))
        }
    }

    // MARK: - POST /v1/jobs

    private func createJob(owner: Int?, _ exchange: Exchange) {
        guard let parsed = jsonBody(exchange) else { return }
        // `callback_url` is the one field beyond the `/v1/images` body; the rest is read by the same reader.
        var body = parsed
        var callbackURL: String?
        if case .object(let members) = parsed, let value = members.first(where: { $0.0 == "callback_url" })?.1 {
            body = .object(members.filter { $0.0 != "callback_url" })
            switch value {
            case .null: break
            case .string(let url):
                guard let callbacks else {
                    exchange.error(.invalid("callback_url", "callback_url is not accepted: this server allows no callback hosts (jobs.callback_hosts is empty)",
                                            code: "callback_host_not_allowed"))
                    return
                }
                do { try callbacks.validate(url) } catch {
                    exchange.error(error)
                    return
                }
                callbackURL = url
            default:
                exchange.error(.invalid("callback_url", "callback_url must be a string, got \(value.kindDescription)", code: "invalid_type"))
                return
            }
        }
        guard let service = loadedService(exchange) else { return }
        let job: ImageJob
        do { job = try ImageRequests.native(body, model: service.model, limits: limits) } catch {
            exchange.error(error)
            return
        }
        let output: ImageOutput
        do { output = try imageOutput(for: job) } catch {
            exchange.error(error)
            return
        }
        let record: JobRecord
        do {
            record = try jobManager.submit(job, owner: owner, callbackURL: callbackURL, service: service, mediaType: output.mediaType) { generated in
                try Self.rgbImages(generated.images).enumerated().map { try output.file($1, index: $0) }
            }
        } catch let error as ServingError {
            exchange.error(error)
            return
        } catch {
            exchange.error(ServingError(status: 500, message: "\(error)", type: "server_error"))
            return
        }
        var headers = [("Location", "/v1/jobs/\(record.id)"), ("X-Seed", String(job.generation.seed))]
        if job.promptTruncated { headers.append(("X-Prompt-Truncated", "true")) }
        exchange.json(202, record.document(ttl: jobManager.limits.ttl), headers: headers)
    }

    // MARK: - GET /v1/jobs/{id}/images/{i}

    private func image(_ record: JobRecord, index text: String, _ exchange: Exchange) {
        guard let index = Int(text), text.allSatisfy(\.isASCII), !text.hasPrefix("+"), !text.hasPrefix("-") else {
            exchange.error(.invalid("index", "the image index must be a non-negative integer, got '\(text.prefix(64))'", code: "invalid_type"))
            return
        }
        guard record.status == .succeeded else {
            exchange.error(ServingError(status: 409, message: "job \(record.id) is \(record.status.rawValue); images are served once it has succeeded",
                                        param: "id", code: "job_not_succeeded"))
            return
        }
        guard record.images.indices.contains(index) else {
            exchange.error(ServingError(status: 404, message: "job \(record.id) has \(record.images.count) images (0...\(record.images.count - 1)), not \(index)",
                                        param: "index", code: "image_not_found"))
            return
        }
        exchange.respond(status: 200, headers: [("Content-Type", record.mediaType), ("X-Seed", String(record.seed)), ("Cache-Control", "private")],
                         body: record.images[index])
    }

    // MARK: - GET /v1/jobs/{id}/events

    /// The job's events from the first (or after `Last-Event-ID`), then live until its final event.
    /// The client going away ends the stream only, never the job.
    private func streamJobEvents(_ id: String, owner: Int?, _ exchange: Exchange) {
        var last: Int?
        if let header = exchange.request.headers["Last-Event-ID"]?.trimmingCharacters(in: .whitespaces), !header.isEmpty {
            guard let n = Int(header), n >= 0, header.allSatisfy(\.isASCII) else {
                exchange.error(.invalid("Last-Event-ID", "Last-Event-ID must be the id: of an event of this job (a non-negative integer), got '\(header.prefix(64))'"))
                return
            }
            last = n
        }
        let lookup = jobManager.lookup(id, owner: owner)
        guard case .found = lookup else {
            answer(lookup, id: id, exchange) { _ in }
            return
        }
        let stream = EventStream(exchange, probes: false)
        var quiet = 0.0
        while !exchange.writer.isClosed {
            guard let (events, finished) = jobManager.events(id, owner: owner, after: last, timeout: 1) else { break }  // evicted meanwhile
            if events.isEmpty, finished { break }  // resumed after the final event: nothing more will come
            if events.isEmpty {
                quiet += 1
                // A comment line now and then keeps proxies from closing an idle stream.
                if quiet >= 15 {
                    quiet = 0
                    guard stream.write(": keep-alive\n\n") else { break }
                }
                continue
            }
            quiet = 0
            guard stream.write(events.map(\.serialized).joined()) else { break }
            last = events.last!.id
            if finished {
                exchange.finish()
                return
            }
        }
        exchange.finish(complete: !exchange.writer.isClosed)
    }
}
