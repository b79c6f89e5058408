import Foundation
import Imaging
import JSON
import Tensor
import Testing
import Wuerstchen
@testable import Serving

/// The batching scheduler end to end over HTTP: concurrent mixed requests, cancellations by
/// disconnecting, and a full queue. Serialised: each test owns the engine's time.
@Suite(.serialized) struct SchedulerHTTPTests {
    /// Concurrent requests of two resolutions, with and without guidance, different step counts:
    /// every PNG equals the same request generated alone (at most 1 level), and forward passes were shared.
    @Test func concurrentMixedRequestsGetTheirOwnImages() throws {
        try withServer({ $0.scheduler.batchWait = 0.3 }) { s in
            let bodies = [
                #"{"prompt": "a red fox", "width": 128, "height": 128, "seed": 1, "prior_steps": 4, "decoder_steps": 2}"#,
                #"{"prompt": "a blue car", "width": 256, "height": 128, "seed": 2, "prior_steps": 3, "decoder_steps": 3, "decoder_guidance_scale": 2}"#,
                #"{"prompt": "a green tree", "width": 128, "height": 128, "seed": 3, "prior_steps": 6, "decoder_steps": 2, "prior_guidance_scale": 1}"#,
                #"{"prompt": "a cat", "width": 256, "height": 128, "seed": 4, "prior_steps": 3, "decoder_steps": 1, "num_images": 2}"#,
                #"{"prompt": "a yellow boat", "width": 128, "height": 128, "seed": 5, "prior_steps": 5, "decoder_steps": 4}"#,
            ]
            let results = ResultBox(count: bodies.count)
            let done = DispatchGroup()
            for i in bodies.indices {
                done.enter()
                Thread.detachNewThread {
                    results.set(i, Result { try RawClient.request(s.port, "POST", "/v1/images", headers: [("Accept", "multipart/mixed")], body: bodies[i]) })
                    done.leave()
                }
            }
            done.wait()
            for (i, body) in bodies.enumerated() {
                let response = try results.get(i).get()
                #expect(response.status == 200, "request \(i): \(response.text.prefix(300))")
                guard response.status == 200, let boundary = response.headers["Content-Type"]?.components(separatedBy: "boundary=").last else { continue }
                let request = try ImageRequests.native(JSONValue.parse(Array(body.utf8)), model: s.service!.model,
                                                       limits: RequestLimits(ServerConfiguration())).generation
                guard case .success(let alone) = try Demo.pipeline.generate([request])[0] else {
                    Issue.record("request \(i) failed alone")
                    continue
                }
                let expected = alone.images.pixelBytes()
                let parts = ImageAPITests.multipartParts(response.body, boundary: boundary)
                #expect(parts.count == request.numImages)
                var got: [UInt8] = []
                for part in parts { got += try PNGDecoder.decode(Data(part.body)).rgb }
                #expect(got.count == expected.count)
                let worst = zip(got, expected).map { abs(Int($0) - Int($1)) }.max() ?? 255
                print("HTTP request \(i): max difference to the request alone \(worst) levels (tolerance 1)")
                #expect(worst <= 1, "request \(i)")
            }
            let stats = s.service!.statistics
            print("HTTP mixed: \(stats)")
            #expect(stats.forwardPasses < stats.requestSteps, "forward passes must be shared: \(stats)")
            let metrics = try RawClient.request(s.port, "GET", "/metrics").text
            #expect(metrics.contains("wuerstchen_batch_size_count") && metrics.contains("wuerstchen_active_requests 0"))
        }
    }

    /// Two long requests run, a third waits (its stream says position 0), a fourth is refused with
    /// 429 and Retry-After; a running client that disconnects is cancelled at the next step, which
    /// admits the waiting one; the queue depth is in /metrics.
    @Test func cancellationsAndAFullQueue() throws {
        try withServer({ $0.maxQueue = 1; $0.scheduler.maxActiveRequests = 2; $0.maxSteps = 5000 }) { s in
            let long = #"{"prompt": "x", "width": 512, "height": 512, "prior_steps": 1000, "decoder_steps": 10}"#
            func open(_ id: String) throws -> (RawClient, EventReader) {
                let client = try RawClient(port: s.port)
                client.send("POST", "/v1/images", headers: [("Accept", "text/event-stream"), ("X-Request-Id", id)], body: long)
                #expect(try client.readHead().0 == 200)
                return (client, EventReader(client: client))
            }
            let (a, ea0) = try open("run-a")
            var ea = ea0
            while let (event, _) = try ea.next(), event != "progress" {}
            let (b, eb0) = try open("run-b")
            var eb = eb0
            while let (event, _) = try eb.next(), event != "progress" {}
            let (c, ec0) = try open("wait-c")
            var ec = ec0
            let queued = try ec.next()
            #expect(queued?.event == "queued" && queued?.data["position"]?.intValue == 0)
            #expect(try RawClient.request(s.port, "GET", "/metrics").text.contains("wuerstchen_queue_depth 1"))

            let refused = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest())
            #expect(refused.status == 429 && refused.json?["error"]?["code"] == .string("queue_full"), "\(refused.text)")
            #expect(Int(refused.headers["Retry-After"] ?? "").map { $0 >= 1 } == true)

            a.disconnect()
            #expect(eventually { s.service?.summary(of: "run-a")?.status == .cancelled })
            // The waiting request is admitted and computes.
            while let (event, _) = try ec.next(), event != "progress" {}
            #expect(s.service?.summary(of: "wait-c")?.status == .running)
            #expect(s.service?.summary(of: "run-b")?.status == .running, "the other running request goes on")
            let stepsOfA = s.service?.summary(of: "run-a")?.stepsRun ?? -1
            b.disconnect()
            c.disconnect()
            #expect(eventually { s.service?.summary(of: "wait-c")?.status == .cancelled && s.service?.summary(of: "run-b")?.status == .cancelled })
            #expect(s.service?.summary(of: "run-a")?.stepsRun == stepsOfA)
            #expect(try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest()).status == 200)
        }
    }

    /// `timeout_seconds`: a request that cannot finish in time ends with 504 `deadline_exceeded`.
    @Test func deadlineOverHTTP() throws {
        try withServer({ $0.maxSteps = 5000 }) { s in
            let late = try RawClient.request(
                s.port, "POST", "/v1/images",
                body: #"{"prompt": "x", "width": 512, "height": 512, "prior_steps": 1000, "timeout_seconds": 0.3}"#)
            #expect(late.status == 504 && late.json?["error"]?["code"] == .string("deadline_exceeded"), "\(late.text)")
            let invalid = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest(#", "timeout_seconds": 0"#))
            #expect(invalid.status == 400 && invalid.errorParam == "timeout_seconds", "\(invalid.text)")
            let tooLong = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest(#", "timeout_seconds": 100000"#))
            #expect(tooLong.status == 400 && tooLong.errorParam == "timeout_seconds")
        }
    }
}

/// Results written by concurrent workers.
final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Result<Response, Error>?]

    init(count: Int) { items = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ r: Result<Response, Error>) {
        lock.lock()
        items[i] = r
        lock.unlock()
    }

    func get(_ i: Int) -> Result<Response, Error> {
        lock.lock()
        defer { lock.unlock() }
        return items[i] ?? .failure(ClientError(description: "no result"))
    }
}
