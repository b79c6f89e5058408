import Foundation
import HTTP1
import Imaging
import JSON
import Logging
import Testing
@testable import Serving
#if canImport(Glibc)
import Glibc
#endif

/// The job routes as a client uses them, over loopback sockets.
@Suite(.serialized) struct JobAPITests {
    /// A request that runs for a while on the demo model (hundreds of small steps), to be cancelled.
    static let long = #"{"prompt": "x", "width": 256, "height": 256, "prior_steps": 2000, "decoder_steps": 10, "seed": 1}"#

    static func create(_ port: Int, _ body: String, key: String? = nil) throws -> (Response, String) {
        let r = try RawClient.request(port, "POST", "/v1/jobs", headers: key.map { [("Authorization", "Bearer \($0)")] } ?? [], body: body)
        guard r.status == 202, case .string(let id)? = r.json?["id"] else { throw ClientError(description: "create: \(r.status) \(r.text)") }
        return (r, id)
    }

    static func status(_ port: Int, _ id: String, key: String? = nil) throws -> Response {
        try RawClient.request(port, "GET", "/v1/jobs/\(id)", headers: key.map { [("Authorization", "Bearer \($0)")] } ?? [])
    }

    /// Polls until the job has `status` (or has finished otherwise).
    static func wait(_ port: Int, _ id: String, for status: String, key: String? = nil) throws -> Response {
        var last: Response?
        _ = eventually(timeout: 120) {
            last = try? Self.status(port, id, key: key)
            guard let s = last?.json?["status"] else { return false }
            return s == .string(status) || ["succeeded", "failed", "cancelled", "expired"].contains { s == .string($0) }
        }
        return try #require(last)
    }

    @Test func createPollAndFetchTheSameImageAsPostImages() throws {
        try withServer { s in
            let (created, id) = try Self.create(s.port, smallRequest())
            #expect(created.headers["Location"] == "/v1/jobs/\(id)")
            #expect(id.count == 32 && id.allSatisfy(\.isHexDigit))
            #expect(created.json?["status"] == .string("queued") || created.json?["status"] == .string("running"))
            #expect(created.json?["queue_position"] != nil, "\(created.text)")
            #expect(created.headers["X-Seed"] == "7")

            let done = try Self.wait(s.port, id, for: "succeeded")
            #expect(done.json?["status"] == .string("succeeded"), "\(done.text)")
            #expect(done.json?["images"] == .array([.string("/v1/jobs/\(id)/images/0")]))
            #expect(done.json?["progress"]?["stage"] == .string("decoder") && done.json?["progress"]?["step"] == done.json?["progress"]?["total"])
            #expect(done.json?["expires_at"]?.intValue != nil && done.json?["seed"]?.intValue == 7)

            let image = try RawClient.request(s.port, "GET", "/v1/jobs/\(id)/images/0")
            #expect(image.status == 200 && image.headers["Content-Type"] == "image/png")
            let direct = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest())
            let a = try PNGDecoder.decode(Data(image.body)), b = try PNGDecoder.decode(Data(direct.body))
            #expect(a.width == 128 && a.height == 128 && a.rgb == b.rgb, "the job's image has the pixels of POST /v1/images with the same body")
            #expect(image.body == direct.body, "and the same file: one encoder for both routes")

            let metrics = try RawClient.request(s.port, "GET", "/metrics").text
            #expect(metrics.contains(#"wuerstchen_jobs{status="succeeded"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"wuerstchen_jobs{status="queued"} 0"#))
        }
    }

    @Test func cancelAQueuedAndARunningJob() throws {
        try withServer({ $0.scheduler.maxActiveRequests = 1; $0.maxSteps = 5000 }) { s in
            let (_, running) = try Self.create(s.port, Self.long)
            #expect(try Self.wait(s.port, running, for: "running").json?["status"] == .string("running"))
            let (queuedAnswer, queued) = try Self.create(s.port, Self.long)
            #expect(queuedAnswer.json?["status"] == .string("queued") && queuedAnswer.json?["queue_position"]?.intValue == 0, "\(queuedAnswer.text)")

            let deleted = try RawClient.request(s.port, "DELETE", "/v1/jobs/\(queued)")
            #expect(deleted.status == 200 && deleted.json?["status"] == .string("cancelled"), "\(deleted.text)")
            #expect(eventually { s.service?.summary(of: "job-\(queued)")?.status == .cancelled }, "the scheduler dropped it")

            let cancelled = try RawClient.request(s.port, "POST", "/v1/jobs/\(running)/cancel")
            #expect(cancelled.status == 200 && cancelled.json?["status"] == .string("cancelled"), "\(cancelled.text)")
            #expect(eventually { s.service?.summary(of: "job-\(running)")?.status == .cancelled }, "the engine stopped computing it")
            #expect(try Self.status(s.port, running).json?["status"] == .string("cancelled"))
            #expect(try Self.status(s.port, running).json?["error"]?["code"] == .string("cancelled"))

            // Cancelling again answers the same state; a finished job cannot be cancelled.
            #expect(try RawClient.request(s.port, "DELETE", "/v1/jobs/\(queued)").json?["status"] == .string("cancelled"))
            let (_, small) = try Self.create(s.port, smallRequest())
            _ = try Self.wait(s.port, small, for: "succeeded")
            let late = try RawClient.request(s.port, "POST", "/v1/jobs/\(small)/cancel")
            #expect(late.status == 409 && late.json?["error"]?["code"] == .string("job_finished"), "\(late.text)")
            #expect(try RawClient.request(s.port, "GET", "/metrics").text.contains(#"wuerstchen_jobs{status="cancelled"} 2"#))
        }
    }

    @Test func aClientThatGoesAwayCancelsNothing() throws {
        try withServer { s in
            let client = try RawClient(port: s.port)
            client.send("POST", "/v1/jobs", body: smallRequest())
            let answer = try client.readResponse()
            guard case .string(let id)? = answer.json?["id"] else { throw ClientError(description: answer.text) }
            client.disconnect()
            // A stream that goes away mid-job cancels nothing either.
            let watcher = try RawClient(port: s.port)
            watcher.send("GET", "/v1/jobs/\(id)/events")
            _ = try watcher.readHead()
            watcher.disconnect()
            #expect(try Self.wait(s.port, id, for: "succeeded").json?["status"] == .string("succeeded"))
        }
    }

    /// Reads SSE blocks `(id, event, data)` until the job's final event.
    static func readEvents(_ client: RawClient, until stop: (String) -> Bool) throws -> [(id: Int, event: String, data: JSONValue)] {
        var out: [(Int, String, JSONValue)] = []
        var pending = ""
        while true {
            while let range = pending.range(of: "\n\n") {
                let block = String(pending[..<range.lowerBound])
                pending = String(pending[range.upperBound...])
                var id = -1, event = "message", data = ""
                for line in block.split(separator: "\n") {
                    if line.hasPrefix("id: ") { id = Int(line.dropFirst(4)) ?? -1 }
                    if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
                    if line.hasPrefix("data: ") { data += line.dropFirst(6) }
                }
                guard !data.isEmpty else { continue }  // a keep-alive comment
                out.append((id, event, try JSONValue.parse(Array(data.utf8))))
                if stop(event) { return out }
            }
            let chunk = try client.readChunk()
            if chunk.isEmpty { return out }
            pending += String(decoding: chunk, as: UTF8.self)
        }
    }

    @Test func eventsResumeWithLastEventID() throws {
        try withServer({ $0.maxSteps = 5000 }) { s in
            let body = #"{"prompt": "x", "width": 128, "height": 128, "prior_steps": 30, "decoder_steps": 4, "seed": 3}"#
            let (_, id) = try Self.create(s.port, body)
            let first = try RawClient(port: s.port)
            first.send("GET", "/v1/jobs/\(id)/events")
            let (status, headers) = try first.readHead()
            #expect(status == 200 && headers["Content-Type"] == "text/event-stream")
            var progressSeen = 0
            let early = try Self.readEvents(first) { event in
                if event == "progress" { progressSeen += 1 }
                return progressSeen == 2 || event == "succeeded"
            }
            #expect(early.map(\.id) == Array(1...early.count), "ids count from 1")
            first.disconnect()
            let lastSeen = early.last!.id

            let resumed = try RawClient(port: s.port)
            resumed.send("GET", "/v1/jobs/\(id)/events", headers: [("Last-Event-ID", String(lastSeen))])
            #expect(try resumed.readHead().0 == 200)
            let rest = try Self.readEvents(resumed) { $0 == "succeeded" }
            #expect(rest.first?.id == lastSeen + 1, "replay starts right after Last-Event-ID")
            #expect(rest.map(\.id) == Array((lastSeen + 1)...(lastSeen + rest.count)))
            #expect(rest.last?.event == "succeeded" && rest.last?.data["status"] == .string("succeeded"))
            #expect(rest.contains { $0.event == "progress" && $0.data["stage"] == .string("decoder") })
            #expect(try resumed.readChunk().isEmpty, "the stream ends after the final event")

            // After the end: a full replay from the start, and the final event alone.
            let all = try RawClient(port: s.port)
            all.send("GET", "/v1/jobs/\(id)/events")
            _ = try all.readHead()
            let replay = try Self.readEvents(all) { $0 == "succeeded" }
            #expect(replay.count == early.count + rest.count)
            let tail = try RawClient(port: s.port)
            tail.send("GET", "/v1/jobs/\(id)/events", headers: [("Last-Event-ID", String(replay.count - 1))])
            _ = try tail.readHead()
            #expect(try Self.readEvents(tail) { $0 == "succeeded" }.map(\.event) == ["succeeded"])
            let past = try RawClient(port: s.port)
            past.send("GET", "/v1/jobs/\(id)/events", headers: [("Last-Event-ID", String(replay.count + 10))])
            #expect(try past.readHead().0 == 200)
            #expect(try past.readChunk().isEmpty, "resuming after the final event ends the stream at once")
        }
    }

    @Test func finishedJobsAreEvictedAfterTheTTL() throws {
        try withServer({ $0.jobs.ttlSeconds = 1.5 }) { s in
            let (_, id) = try Self.create(s.port, smallRequest())
            #expect(try Self.wait(s.port, id, for: "succeeded").json?["status"] == .string("succeeded"))
            // Evicted once the TTL has passed (when exactly: JobStoreTests, on an injected clock).
            #expect(eventually { (try? Self.status(s.port, id).status) == 410 })
            let gone = try Self.status(s.port, id)
            #expect(gone.status == 410 && gone.json?["error"]?["code"] == .string("job_evicted") && gone.errorParam == "id", "\(gone.text)")
            #expect(try RawClient.request(s.port, "GET", "/v1/jobs/\(id)/images/0").status == 410)
            #expect(try RawClient.request(s.port, "GET", "/v1/jobs/\(id)/events").status == 410)
            let metrics = try RawClient.request(s.port, "GET", "/metrics").text
            #expect(metrics.contains("wuerstchen_jobs_evicted_total 1") && metrics.contains(#"wuerstchen_jobs{status="succeeded"} 0"#), "\(metrics)")
        }
    }

    @Test func maxBytesEvictsTheOldestFinishedJob() throws {
        var pngBytes = 0
        try withServer { s in pngBytes = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest()).body.count }
        #expect(pngBytes > 1000)
        // Room for two records (image + event log + 512 each) but not three.
        try withServer({ $0.jobs.maxBytes = 2 * pngBytes + 5000 }) { s in
            var ids: [String] = []
            for _ in 0..<3 {
                let (_, id) = try Self.create(s.port, smallRequest())
                #expect(try Self.wait(s.port, id, for: "succeeded").json?["status"] == .string("succeeded"))
                ids.append(id)
            }
            #expect(try Self.status(s.port, ids[0]).status == 410)
            #expect(try Self.status(s.port, ids[1]).status == 200 && Self.status(s.port, ids[2]).status == 200)
            #expect(try RawClient.request(s.port, "GET", "/v1/jobs/\(ids[2])/images/0").status == 200)
        }
    }

    @Test func aJobIsVisibleOnlyToTheKeyThatMadeIt() throws {
        try withServer({ $0.apiKeys = ["key-a", "key-b"] }) { s in
            #expect(try RawClient.request(s.port, "POST", "/v1/jobs", body: smallRequest()).status == 401)
            let (_, id) = try Self.create(s.port, smallRequest(), key: "key-a")
            let other = try Self.status(s.port, id, key: "key-b")
            let never = try Self.status(s.port, String(repeating: "0", count: 32), key: "key-b")
            #expect(other.status == 404 && never.status == 404 && other.json?["error"]?["code"] == never.json?["error"]?["code"],
                    "another key's job looks like no job at all")
            #expect(try Self.status(s.port, id).status == 401)
            #expect(try RawClient.request(s.port, "DELETE", "/v1/jobs/\(id)", headers: [("Authorization", "Bearer key-b")]).status == 404)
            #expect(try RawClient.request(s.port, "GET", "/v1/jobs/\(id)/events", headers: [("Authorization", "Bearer key-b")]).status == 404)
            let done = try Self.wait(s.port, id, for: "succeeded", key: "key-a")
            #expect(done.json?["status"] == .string("succeeded"), "key-b's cancel did nothing")
            #expect(try RawClient.request(s.port, "GET", "/v1/jobs/\(id)/images/0", headers: [("Authorization", "Bearer key-b")]).status == 404)
            #expect(try RawClient.request(s.port, "GET", "/v1/jobs/\(id)/images/0", headers: [("Authorization", "Bearer key-a")]).status == 200)
        }
    }

    @Test func badInputsAreJSONErrorsNamingTheField() throws {
        try withServer({ $0.scheduler.maxActiveRequests = 1; $0.maxSteps = 5000 }) { s in
            let unknown = try Self.status(s.port, "feedface")
            #expect(unknown.status == 404 && unknown.errorParam == "id" && unknown.json?["error"]?["code"] == .string("job_not_found"))
            let width = try RawClient.request(s.port, "POST", "/v1/jobs", body: #"{"prompt": "x", "width": 100}"#)
            #expect(width.status == 400 && width.errorParam == "width", "\(width.text)")
            let prompt = try RawClient.request(s.port, "POST", "/v1/jobs", body: #"{"width": 128}"#)
            #expect(prompt.status == 400 && prompt.errorParam == "prompt")
            let extra = try RawClient.request(s.port, "POST", "/v1/jobs", body: #"{"prompt": "x", "colour": 1}"#)
            #expect(extra.status == 400 && extra.errorParam == "colour")
            let json = try RawClient.request(s.port, "POST", "/v1/jobs", body: "{")
            #expect(json.status == 400 && json.json?["error"]?["code"] == .string("invalid_json"))
            let media = try RawClient.request(s.port, "POST", "/v1/jobs", headers: [("Content-Type", "text/plain")], body: "{}")
            #expect(media.status == 415)
            let callback = try RawClient.request(s.port, "POST", "/v1/jobs", body: smallRequest(#", "callback_url": "http://127.0.0.1:9/x""#))
            #expect(callback.status == 400 && callback.errorParam == "callback_url", "\(callback.text)")
            let method = try RawClient.request(s.port, "PUT", "/v1/jobs/abc")
            #expect(method.status == 405 && method.headers["Allow"] == "GET, DELETE, OPTIONS")
            #expect(try RawClient.request(s.port, "GET", "/v1/jobs").status == 405)
            #expect(try RawClient.request(s.port, "GET", "/v1/jobs/abc/other").status == 404)

            let (_, running) = try Self.create(s.port, Self.long)
            let early = try RawClient.request(s.port, "GET", "/v1/jobs/\(running)/images/0")
            #expect(early.status == 409 && early.json?["error"]?["code"] == .string("job_not_succeeded"), "\(early.text)")
            let resume = try RawClient.request(s.port, "GET", "/v1/jobs/\(running)/events", headers: [("Last-Event-ID", "abc")])
            #expect(resume.status == 400 && resume.errorParam == "Last-Event-ID")
            _ = try RawClient.request(s.port, "DELETE", "/v1/jobs/\(running)")

            let (_, id) = try Self.create(s.port, smallRequest())
            _ = try Self.wait(s.port, id, for: "succeeded")
            let index = try RawClient.request(s.port, "GET", "/v1/jobs/\(id)/images/1")
            #expect(index.status == 404 && index.errorParam == "index", "\(index.text)")
            let notNumber = try RawClient.request(s.port, "GET", "/v1/jobs/\(id)/images/first")
            #expect(notNumber.status == 400 && notNumber.errorParam == "index")
        }
    }

    /// Draining (SIGTERM): queued jobs are cancelled at once with code `draining`, the running one finishes.
    @Test func drainCancelsQueuedJobsAndFinishesRunningOnes() throws {
        var config = ServerConfiguration()
        config.port = 0
        config.drainSeconds = 60
        config.scheduler.maxActiveRequests = 1
        config.maxSteps = 5000
        let logs = LogCapture()
        let server = ImageServer(configuration: config, logger: logs.logger)
        try server.start()
        let service = BatchingGenerationService(pipeline: Demo.pipeline, policy: config.schedulerPolicy, metrics: server.metrics, logger: logs.logger)
        server.use(service)
        let body = #"{"prompt": "x", "width": 128, "height": 128, "prior_steps": 300, "decoder_steps": 4, "seed": 2}"#
        let (_, running) = try Self.create(server.port, body)
        _ = try Self.wait(server.port, running, for: "running")
        let (_, queued) = try Self.create(server.port, body)
        let done = DispatchSemaphore(value: 0)
        server.shutdown { done.signal() }
        guard case .found(let q) = server.handler.jobManager.lookup(queued, owner: nil) else {
            Issue.record("queued job missing")
            return
        }
        #expect(q.status == .cancelled && q.error?.code == "draining")
        #expect(done.wait(timeout: .now() + 120) == .success)
        guard case .found(let r) = server.handler.jobManager.lookup(running, owner: nil) else {
            Issue.record("running job missing")
            return
        }
        #expect(r.status == .succeeded && r.images.count == 1, "the running job finished before the service stopped")
    }
}

/// Job callbacks: the signature, the allowed hosts, and delivery with a retry to a loopback receiver.
@Suite(.serialized) struct JobCallbackTests {
    /// `printf '1700000000.{"id":"abc","status":"succeeded"}' | openssl dgst -sha256 -hmac 'a-callback-secret-for-tests'`
    @Test func signatureMatchesOpenSSLsCommandLine() {
        let sig = CallbackSender.signature(body: Array(#"{"id":"abc","status":"succeeded"}"#.utf8), timestamp: 1_700_000_000,
                                           secret: Array("a-callback-secret-for-tests".utf8))
        #expect(sig == "t=1700000000,v1=9374d538ebee160e937f315accce94a2855dbae4f297b7ffb5428491491bb261")
    }

    @Test func onlyAllowedHostsAndHTTPURLs() {
        let sender = CallbackSender(hosts: ["127.0.0.1", "*.hooks.example"], secret: "0123456789abcdef", metrics: ServingMetrics(),
                                    logger: Logger(label: "test"))
        #expect(throws: Never.self) { try sender.validate("http://127.0.0.1:8080/done") }
        #expect(throws: Never.self) { try sender.validate("http://a.hooks.example/x?y=1") }
        #expect(throws: Never.self) { try sender.validate("https://b.hooks.example/x") }
        for bad in ["http://hooks.example/x", "http://evil.example/", "https://evil.example/x", "ftp://127.0.0.1/", "http://user@127.0.0.1/",
                    "http://127.0.0.1.evil.example/", "http://127.0.0.1:0/", "127.0.0.1/x"] {
            do {
                try sender.validate(bad)
                Issue.record("\(bad) was accepted")
            } catch {
                #expect(error.param == "callback_url" && error.status == 400, "\(bad): \(error)")
            }
        }
        #expect(HTTPClient.parse("http://[::1]:9000/a")?.host == "::1" && HTTPClient.parse("http://[::1]:9000/a")?.port == 9000)
        #expect(HTTPClient.parse("http://Example.com")?.path == "/")
    }

    @Test func aFinishedJobIsPostedSignedAndRetried() throws {
        let receiver = try CallbackReceiver(statuses: [500, 200])
        let secret = "a-callback-secret-for-tests"
        try withServer({ $0.jobs.callbackHosts = ["127.0.0.1"]; $0.jobs.callbackSecret = secret }) { s in
            let (_, id) = try JobAPITests.create(s.port, smallRequest(#", "callback_url": "http://127.0.0.1:\#(receiver.port)/hooks/done?x=1""#))
            #expect(receiver.wait(for: 2, timeout: 60), "two attempts: the first answered 500")
            let requests = receiver.requests
            for request in requests {
                #expect(request.line == "POST /hooks/done?x=1 HTTP/1.1")
                #expect(request.headers["content-type"] == "application/json" && request.headers["wuerstchen-job-id"] == id)
                let signature = try #require(request.headers["wuerstchen-signature"])
                let t = try #require(signature.split(separator: ",").first.flatMap { Int($0.dropFirst(2)) })
                #expect(signature == CallbackSender.signature(body: request.body, timestamp: t, secret: Array(secret.utf8)), "the signature verifies")
                #expect(abs(Int(Date().timeIntervalSince1970) - t) < 600)
                let doc = try JSONValue.parse(request.body)
                #expect(doc["id"] == .string(id) && doc["status"] == .string("succeeded"))
            }
            let tampered = Array(requests[0].body.dropLast()) + Array(" }".utf8)
            let t = Int(requests[0].headers["wuerstchen-signature"]!.split(separator: ",")[0].dropFirst(2))!
            #expect(CallbackSender.signature(body: tampered, timestamp: t, secret: Array(secret.utf8)) != requests[0].headers["wuerstchen-signature"])
            #expect(eventually { (try? RawClient.request(s.port, "GET", "/metrics").text.contains(#"wuerstchen_job_callbacks_total{outcome="delivered"} 1"#)) == true })
        }
    }
}

/// A loopback HTTP receiver: answers each request with the next of `statuses` and keeps what it got.
final class CallbackReceiver: @unchecked Sendable {
    struct Request {
        var line: String
        var headers: [String: String]
        var body: [UInt8]
    }

    let port: Int
    private let fd: Int32
    private let lock = NSCondition()
    private var received: [Request] = []

    init(statuses: [Int]) throws {
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok, listen(sock, 8) == 0 else {
            close(sock)
            throw ClientError(description: "receiver bind failed: errno \(errno)")
        }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &len) } }
        port = Int(UInt16(bigEndian: bound.sin_port))
        fd = sock
        let thread = Thread { [self] in serve(statuses) }
        thread.start()
    }

    deinit { close(fd) }

    var requests: [Request] {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    func wait(for count: Int, timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        lock.lock()
        defer { lock.unlock() }
        while received.count < count { if !lock.wait(until: deadline) { return received.count >= count } }
        return true
    }

    private func serve(_ statuses: [Int]) {
        for status in statuses {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            var data: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            var request: Request?
            while request == nil {
                let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                data += buffer[..<n]
                guard let end = String(decoding: data, as: UTF8.self).range(of: "\r\n\r\n") else { continue }
                let headEnd = String(decoding: data, as: UTF8.self)[..<end.lowerBound].utf8.count + 4
                let lines = String(decoding: data[..<(headEnd - 4)], as: UTF8.self).components(separatedBy: "\r\n")
                var headers: [String: String] = [:]
                for line in lines.dropFirst() {
                    if let colon = line.firstIndex(of: ":") {
                        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                    }
                }
                let length = Int(headers["content-length"] ?? "0") ?? 0
                if data.count - headEnd >= length {
                    request = Request(line: lines[0], headers: headers, body: Array(data[headEnd..<(headEnd + length)]))
                }
            }
            let answer = "HTTP/1.1 \(status) X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            _ = answer.withCString { Glibc.send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            close(client)
            if let request {
                lock.lock()
                received.append(request)
                lock.broadcast()
                lock.unlock()
            }
        }
    }
}
