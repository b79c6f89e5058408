import Foundation
import HTTP1
import Imaging
import JSON
import Testing
import Wuerstchen
@testable import Serving

/// The HTTP API over real loopback sockets against the demo model (128x128, 2+2 steps).
/// Serialised: the demo pipeline runs one generation at a time.
@Suite(.serialized) struct ImageAPITests {
    @Test func pngIsStreamedWithSeedAndRequestID() throws {
        try withServer { s in
            let r = try RawClient.request(s.port, "POST", "/v1/images", headers: [("X-Request-Id", "client-id-1")], body: smallRequest())
            #expect(r.status == 200, "\(r.text)")
            #expect(r.headers["Content-Type"] == "image/png")
            #expect(r.headers["Transfer-Encoding"] == "chunked")
            #expect(r.headers["X-Seed"] == "7")
            #expect(r.headers["X-Request-Id"] == "client-id-1")
            let png = try PNGDecoder.decode(Data(r.body))
            #expect(png.width == 128 && png.height == 128)

            // Same seed, same image; no seed: a random one, reported.
            let again = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest())
            #expect(again.body == r.body, "seed 7 must give the same PNG twice")
            let random = try RawClient.request(s.port, "POST", "/v1/images",
                                               body: #"{"prompt": "x", "width": 128, "height": 256, "prior_steps": 1, "decoder_steps": 1}"#)
            #expect(random.status == 200)
            #expect(UInt64(random.headers["X-Seed"] ?? "") != nil)
            #expect(random.headers["X-Request-Id"]?.count == 32, "a generated request id")
            let tall = try PNGDecoder.decode(Data(random.body))
            #expect(tall.width == 128 && tall.height == 256)
        }
    }

    @Test func severalImagesComeAsMultipart() throws {
        try withServer { s in
            for accept in ["image/png", "multipart/mixed"] {
                let r = try RawClient.request(s.port, "POST", "/v1/images", headers: [("Accept", accept)],
                                              body: smallRequest(#", "num_images": 2"#))
                #expect(r.status == 200)
                let type = try #require(r.headers["Content-Type"])
                #expect(type.hasPrefix("multipart/mixed; boundary="))
                let boundary = String(type.split(separator: "=", maxSplits: 1)[1])
                let parts = Self.multipartParts(r.body, boundary: boundary)
                #expect(parts.count == 2)
                for part in parts {
                    #expect(part.headers.contains("Content-Type: image/png"))
                    let png = try PNGDecoder.decode(Data(part.body))
                    #expect(png.width == 128 && png.height == 128)
                }
                #expect(parts.count == 2 && parts[0].body != parts[1].body, "two different images")
            }
        }
    }

    @Test func jsonCarriesBase64Images() throws {
        try withServer { s in
            let r = try RawClient.request(s.port, "POST", "/v1/images", headers: [("Accept", "application/json")],
                                          body: smallRequest(#", "num_images": 2"#))
            #expect(r.status == 200)
            #expect(r.headers["Content-Type"] == "application/json")
            let json = try #require(r.json)
            #expect(json["seed"]?.intValue == 7)
            #expect(json["created"]?.intValue != nil)
            guard case .array(let data)? = json["data"] else { Issue.record("no data array: \(r.text.prefix(200))"); return }
            #expect(data.count == 2)
            for item in data {
                guard case .string(let b64)? = item["b64_json"], let bytes = Data(base64Encoded: b64) else {
                    Issue.record("no b64_json")
                    continue
                }
                let png = try PNGDecoder.decode(bytes)
                #expect(png.width == 128 && png.height == 128)
            }
        }
    }

    /// Events arrive while the request runs: the first progress event is read while the service still
    /// reports the job running, and every progress event comes before the image.
    @Test func eventStreamArrivesIncrementally() throws {
        try withServer { s in
            let client = try RawClient(port: s.port)
            client.send("POST", "/v1/images", headers: [("Accept", "text/event-stream"), ("X-Request-Id", "sse-1")],
                        body: smallRequest().replacingOccurrences(of: #""decoder_steps": 2"#, with: #""decoder_steps": 60"#))
            let (status, headers) = try client.readHead()
            #expect(status == 200)
            #expect(headers["Content-Type"] == "text/event-stream")
            #expect(headers["X-Seed"] == "7")
            var reader = EventReader(client: client)
            var names: [String] = []
            var sawRunning = false
            while let (event, data) = try reader.next() {
                names.append(event)
                if event == "progress", names.filter({ $0 == "progress" }).count == 1 {
                    sawRunning = s.service?.summary(of: "sse-1")?.status == .running
                    #expect(data["stage"] == .string("prior") && data["step"]?.intValue == 1 && data["total"]?.intValue == 2)
                }
                if event == "image" {
                    guard case .string(let b64)? = data["b64_json"], let bytes = Data(base64Encoded: b64) else {
                        Issue.record("image event without b64_json")
                        continue
                    }
                    #expect(try PNGDecoder.decode(bytes).width == 128)
                    #expect(data["index"]?.intValue == 0)
                }
                if event == "done" { #expect(data["seed"]?.intValue == 7) }
            }
            #expect(sawRunning, "the first progress event must arrive while the generation is still running")
            #expect(names.first == "queued")
            #expect(names.filter { $0 == "progress" }.count == 62)
            #expect(names.suffix(2) == ["image", "done"], "\(names)")
            let lastProgress = try #require(names.lastIndex(of: "progress")), image = try #require(names.firstIndex(of: "image"))
            #expect(lastProgress < image)
        }
    }

    @Test func openAIEndpointShape() throws {
        try withServer { s in
            let r = try RawClient.request(s.port, "POST", "/v1/images/generations", body: #"""
                {"model": "dall-e-2", "prompt": "a cat", "n": 1, "size": "128x128", "response_format": "b64_json",
                 "user": "u1", "quality": "standard", "style": "vivid", "seed": 3, "prior_steps": 2, "decoder_steps": 2}
                """#)
            #expect(r.status == 200, "\(r.text)")
            let json = try #require(r.json)
            guard case .object(let members) = json else { Issue.record("not an object"); return }
            #expect(members.map(\.0) == ["created", "background", "data", "output_format", "quality", "size", "usage"])
            #expect(json["created"]?.intValue != nil)
            guard case .array(let data)? = json["data"], case .string(let b64)? = data.first?["b64_json"] else {
                Issue.record("no data[0].b64_json")
                return
            }
            #expect(try PNGDecoder.decode(Data(base64Encoded: b64)!).height == 128)
            #expect(r.headers["X-Seed"] == "3")

            let url = try RawClient.request(s.port, "POST", "/v1/images/generations",
                                            body: #"{"prompt": "a cat", "size": "128x128", "response_format": "url"}"#)
            #expect(url.status == 400 && url.errorParam == "response_format")
            #expect(url.json?["error"]?["type"] == .string("invalid_request_error"))
        }
    }

    @Test func healthReadinessModelsAndMetrics() throws {
        try withServer(loaded: false) { s in
            #expect(try RawClient.request(s.port, "GET", "/healthz").status == 200)
            let loading = try RawClient.request(s.port, "GET", "/readyz")
            #expect(loading.status == 503 && loading.json?["error"]?["code"] == .string("loading"))
            let early = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest())
            #expect(early.status == 503)
            s.server.use(BatchingGenerationService(pipeline: Demo.pipeline, metrics: s.server.metrics))
            #expect(try RawClient.request(s.port, "GET", "/readyz").status == 200)
            #expect(try RawClient.request(s.port, "HEAD", "/readyz").status == 200)

            let models = try RawClient.request(s.port, "GET", "/v1/models")
            #expect(models.json?["object"] == .string("list"))
            guard case .array(let list)? = models.json?["data"] else { Issue.record("no data"); return }
            #expect(list.first?["id"] == .string("wuerstchen-v2-demo") && list.first?["object"] == .string("model"))

            #expect(try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest()).status == 200)
            // The request is counted once its last byte is written, which can be just after the client has
            // read it: look again until it is counted before judging.
            let counted = [#"wuerstchen_http_requests_total{route="/v1/images",status="200"} 1"#,
                           #"wuerstchen_http_requests_total{status="200",route="/v1/images"} 1"#]
            var metrics = try RawClient.request(s.port, "GET", "/metrics")
            _ = eventually {
                if counted.contains(where: { metrics.text.contains($0) }) { return true }
                metrics = (try? RawClient.request(s.port, "GET", "/metrics")) ?? metrics
                return false
            }
            #expect(metrics.status == 200)
            #expect(metrics.headers["Content-Type"]?.hasPrefix("text/plain; version=0.0.4") == true)
            for name in ["wuerstchen_http_requests_total{", "wuerstchen_http_request_duration_seconds_bucket{", "wuerstchen_http_requests_in_flight",
                         "wuerstchen_queue_depth", "wuerstchen_queue_wait_seconds_bucket", "wuerstchen_images_generated_total 1",
                         "wuerstchen_step_duration_seconds_bucket{stage=\"prior\"", "wuerstchen_step_duration_seconds_bucket{stage=\"decoder\"",
                         "wuerstchen_batch_size_bucket", "wuerstchen_generation_duration_seconds_count 1", "wuerstchen_model_load_seconds",
                         "process_resident_memory_bytes", "process_open_fds", "wuerstchen_buffer_cache_bytes", "# TYPE wuerstchen_http_requests_total counter"] {
                #expect(metrics.text.contains(name), "metrics lack \(name)")
            }
            #expect(counted.contains(where: { metrics.text.contains($0) }), "\(metrics.text)")
            let rss = metrics.text.split(separator: "\n").first { $0.hasPrefix("process_resident_memory_bytes ") }
            #expect((rss.flatMap { Double($0.split(separator: " ")[1]) } ?? 0) > 1e6)

            // One access line per request: id, method, path, status, bytes, duration (written once the answer
            // is sent, which may be after the metrics counted it: seen in a full run under load).
            let accessLines = { s.logs.all.filter { $0.contains("path=/v1/images ") && $0.contains("status=200") } }
            _ = eventually { !accessLines().isEmpty }
            let access = accessLines()
            #expect(access.count == 1, "\(s.logs.all)")
            #expect(access.first.map { $0.contains("request_id=") && $0.contains("method=POST") && $0.contains("bytes=") && $0.contains("duration_ms=") } == true)
        }
    }

    @Test func routingErrors() throws {
        try withServer { s in
            let missing = try RawClient.request(s.port, "GET", "/nope")
            #expect(missing.status == 404 && missing.json?["error"]?["code"] == .string("not_found"))
            #expect(missing.headers["X-Request-Id"] != nil)
            let wrongMethod = try RawClient.request(s.port, "GET", "/v1/images")
            #expect(wrongMethod.status == 405 && wrongMethod.headers["Allow"] == "POST, OPTIONS")
            #expect(try RawClient.request(s.port, "DELETE", "/healthz").status == 405)
            let options = try RawClient.request(s.port, "OPTIONS", "/v1/images")
            #expect(options.status == 204 && options.headers["Allow"] == "POST, OPTIONS")
            let text = try RawClient.request(s.port, "POST", "/v1/images", headers: [("Content-Type", "text/plain")], body: smallRequest())
            #expect(text.status == 415)
            let noLength = try RawClient.request(s.port, "POST", "/v1/images", headers: [("Content-Type", "application/json")])
            #expect(noLength.status == 411)
            let badJSON = try RawClient.request(s.port, "POST", "/v1/images", body: #"{"prompt": "x",}"#)
            #expect(badJSON.status == 400 && badJSON.json?["error"]?["code"] == .string("invalid_json"))
            let notAcceptable = try RawClient.request(s.port, "POST", "/v1/images", headers: [("Accept", "image/gif")], body: smallRequest())
            #expect(notAcceptable.status == 406)
            let tooBig = try RawClient.request(s.port, "POST", "/v1/images", body: String(repeating: " ", count: 2 << 20))
            #expect(tooBig.status == 413)
            let truncated = try RawClient.request(s.port, "POST", "/v1/images",
                                                  body: smallRequest().replacingOccurrences(of: "a photo of a cat", with: String(repeating: "cat ", count: 100)))
            #expect(truncated.status == 200 && truncated.headers["X-Prompt-Truncated"] == "true")
            // The server kept serving through all of that.
            #expect(try RawClient.request(s.port, "GET", "/healthz").status == 200)
        }
    }

    /// Every field's type and range errors: status 400 and `param` naming the field. (A table of cases: its
    /// rows are alike by design.)
    @Test(arguments: [
        (#"{"width": 128}"#, "prompt"),
        (#"{"prompt": 5}"#, "prompt"),
        (#"{"prompt": "   "}"#, "prompt"),
        (#"{"prompt": "x", "negative_prompt": []}"#, "negative_prompt"),
        (#"{"prompt": "x", "width": "128"}"#, "width"),
        (#"{"prompt": "x", "width": 128.5}"#, "width"),
        (#"{"prompt": "x", "width": 100}"#, "width"),
        (#"{"prompt": "x", "width": 1100}"#, "width"),
        (#"{"prompt": "x", "height": 4096}"#, "height"),
        (#"{"prompt": "x", "num_images": 0}"#, "num_images"),
        (#"{"prompt": "x", "num_images": 5}"#, "num_images"),
        (#"{"prompt": "x", "seed": -1}"#, "seed"),
        (#"{"prompt": "x", "seed": 9223372036854775808}"#, "seed"),
        (#"{"prompt": "x", "seed": 1.5}"#, "seed"),
        (#"{"prompt": "x", "seed": "1"}"#, "seed"),
        (#"{"prompt": "x", "prior_steps": 0}"#, "prior_steps"),
        (#"{"prompt": "x", "prior_steps": 201}"#, "prior_steps"),
        (#"{"prompt": "x", "decoder_steps": true}"#, "decoder_steps"),
        (#"{"prompt": "x", "prior_guidance_scale": -1}"#, "prior_guidance_scale"),
        (#"{"prompt": "x", "decoder_guidance_scale": 51}"#, "decoder_guidance_scale"),
        (#"{"prompt": "x", "decoder_guidance_scale": "high"}"#, "decoder_guidance_scale"),
        (#"{"prompt": "x", "widht": 128}"#, "widht"),
    ])
    func nativeValidation(_ body: String, _ param: String) throws {
        try withServer { s in
            let r = try RawClient.request(s.port, "POST", "/v1/images", body: body)
            #expect(r.status == 400, "\(body): \(r.text)")
            #expect(r.errorParam == param, "\(body): \(r.text)")
            #expect(r.json?["error"]?["type"] == .string("invalid_request_error"))
            if param == "width", body.contains("1100") {
                #expect(r.text.contains("1024") && r.text.contains("1110"), "the nearest valid sizes must be named: \(r.text)")
            }
        }
    }

    @Test(arguments: [
        (#"{"n": 1}"#, "prompt"),
        (#"{"prompt": "x", "n": 0}"#, "n"),
        (#"{"prompt": "x", "n": "2"}"#, "n"),
        (#"{"prompt": "x", "size": "big"}"#, "size"),
        (#"{"prompt": "x", "size": "100x100"}"#, "size"),
        (#"{"prompt": "x", "response_format": "jpeg"}"#, "response_format"),
        (#"{"prompt": "x", "quality": "ultra"}"#, "quality"),
        (#"{"prompt": "x", "style": "weird"}"#, "style"),
        (#"{"prompt": "x", "output_format": "gif"}"#, "output_format"),
        (#"{"prompt": "x", "output_compression": 101}"#, "output_compression"),
        (#"{"prompt": "x", "model": 3}"#, "model"),
        (#"{"prompt": "x", "stream": 1}"#, "stream"),
        (#"{"prompt": "x", "stream": true, "partial_images": 4}"#, "partial_images"),
        (#"{"prompt": "x", "background": "transparent"}"#, "background"),
        (#"{"prompt": "x", "n": 5}"#, "n"),
        (#"{"prompt": "x", "width": 128}"#, "width"),
    ])
    func openAIValidation(_ body: String, _ param: String) throws {
        try withServer { s in
            let r = try RawClient.request(s.port, "POST", "/v1/images/generations", body: body)
            #expect(r.status == 400, "\(body): \(r.text)")
            #expect(r.errorParam == param, "\(body): \(r.text)")
        }
    }

    @Test func promptLengthIsLimited() throws {
        try withServer({ $0.maxPromptChars = 20 }) { s in
            let r = try RawClient.request(s.port, "POST", "/v1/images", body: #"{"prompt": "\#(String(repeating: "a", count: 21))"}"#)
            #expect(r.status == 400 && r.errorParam == "prompt" && r.text.contains("at most 20"))
        }
    }

    @Test func apiKeys() throws {
        try withServer({ $0.apiKeys = ["k-one", "second-key"]; $0.metricsRequireAuth = true }) { s in
            let none = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest())
            #expect(none.status == 401 && none.headers["WWW-Authenticate"] == "Bearer")
            #expect(none.json?["error"]?["code"] == .string("invalid_api_key"))
            for wrong in ["Bearer k-on", "Bearer k-onee", "Bearer K-ONE", "Basic k-one", "Bearer "] {
                #expect(try RawClient.request(s.port, "GET", "/v1/models", headers: [("Authorization", wrong)]).status == 401, "\(wrong)")
            }
            #expect(try RawClient.request(s.port, "GET", "/v1/models", headers: [("Authorization", "Bearer second-key")]).status == 200)
            #expect(try RawClient.request(s.port, "POST", "/v1/images", headers: [("Authorization", "Bearer k-one")], body: smallRequest()).status == 200)
            #expect(try RawClient.request(s.port, "GET", "/healthz").status == 200)
            #expect(try RawClient.request(s.port, "GET", "/readyz").status == 200)
            #expect(try RawClient.request(s.port, "GET", "/metrics").status == 401)
            #expect(try RawClient.request(s.port, "GET", "/metrics", headers: [("Authorization", "bearer k-one")]).status == 200)
            // Expect: 100-continue with a wrong key is refused before the body is sent.
            let client = try RawClient(port: s.port)
            client.send(Array("POST /v1/images HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n".utf8))
            #expect(try client.readResponse().status == 401)
        }
        try withServer({ $0.apiKeys = ["k"] }) { s in
            let metrics = try RawClient.request(s.port, "GET", "/metrics")
            #expect(metrics.status == 200, "metrics open unless metrics_require_auth")
        }
    }

    /// With `max_queue` 1 and one request computed at a time: one running, one waiting, the third
    /// gets 429 with Retry-After; a waiting request whose client leaves is dropped from the queue.
    @Test func fullQueueAnswers429() throws {
        try withServer({ $0.maxQueue = 1; $0.scheduler.maxActiveRequests = 1 }) { s in
            let long = #"{"prompt": "x", "width": 512, "height": 512, "prior_steps": 200, "decoder_steps": 200}"#
            let a = try RawClient(port: s.port)
            a.send("POST", "/v1/images", headers: [("Accept", "text/event-stream"), ("X-Request-Id", "q-a")], body: long)
            #expect(try a.readHead().0 == 200)
            var ea = EventReader(client: a)
            while let (event, _) = try ea.next(), event != "progress" {}
            let b = try RawClient(port: s.port)
            b.send("POST", "/v1/images", headers: [("Accept", "text/event-stream"), ("X-Request-Id", "q-b")], body: long)
            #expect(try b.readHead().0 == 200)
            var eb = EventReader(client: b)
            let queued = try eb.next()
            #expect(queued?.event == "queued" && queued?.data["position"]?.intValue == 0)

            let c = try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest())
            #expect(c.status == 429, "\(c.text)")
            #expect(c.json?["error"]?["type"] == .string("rate_limit_error"))
            #expect(Int(c.headers["Retry-After"] ?? "").map { $0 >= 1 } == true, "Retry-After: \(c.headers["Retry-After"] ?? "none")")

            b.disconnect()
            #expect(eventually { s.service?.summary(of: "q-b")?.status == .cancelled })
            #expect(s.service?.summary(of: "q-b")?.stepsRun == 0)
            a.disconnect()
            #expect(eventually { s.service?.summary(of: "q-a")?.status == .cancelled })
        }
    }

    /// A client that half-closes once it sent its request (`curl`, `nc -N`) gets the whole event stream,
    /// though its FIN arrives while the answer streams (issue 12 item 3): only a reset cancels. The
    /// streaming probes it is sent meanwhile are SSE comments, which dispatch no event.
    @Test func halfClosedEventStreamGetsTheWholeAnswer() throws {
        try withServer { s in
            let client = try RawClient(port: s.port)
            client.send("POST", "/v1/images", headers: [("Accept", "text/event-stream"), ("X-Request-Id", "half-1")],
                        body: smallRequest().replacingOccurrences(of: #""decoder_steps": 2"#, with: #""decoder_steps": 40"#))
            #expect(try client.readHead().0 == 200)
            var reader = EventReader(client: client)
            var names: [String] = []
            // The head and the first step are out: the answer streams, and the generation runs on.
            while let (event, _) = try reader.next() {
                names.append(event)
                if event == "progress" { break }
            }
            shutdown(client.fd, Int32(SHUT_WR))
            while let (event, _) = try reader.next() { names.append(event) }
            #expect(names.filter { $0 == "progress" }.count >= 40 && names.contains("image") && names.last == "done", "\(names)")
            #expect(s.service?.summary(of: "half-1")?.status == .done)
        }
    }

    /// A client that disconnects mid-generation: the job is cancelled and computes no further step.
    @Test func disconnectCancelsTheGeneration() throws {
        try withServer { s in
            let client = try RawClient(port: s.port)
            client.send("POST", "/v1/images", headers: [("X-Request-Id", "gone-1")],
                        body: #"{"prompt": "x", "width": 512, "height": 512, "prior_steps": 200, "decoder_steps": 200}"#)
            #expect(eventually { (s.service?.summary(of: "gone-1")?.stepsRun ?? 0) >= 2 }, "the job must start")
            client.disconnect()
            #expect(eventually { s.service?.summary(of: "gone-1")?.status == .cancelled })
            let summary = try #require(s.service?.summary(of: "gone-1"))
            print("disconnect: \(summary.stepsRun) of \(summary.stepsTotal) steps computed before the cancel took effect")
            #expect(summary.stepsRun < summary.stepsTotal)
            // The worker is free again; once it has computed the next request it is done with the
            // cancelled one, so its step count is final (no sleep standing in for "nothing happened").
            #expect(try RawClient.request(s.port, "POST", "/v1/images", body: smallRequest()).status == 200)
            #expect(s.service?.summary(of: "gone-1")?.stepsRun == summary.stepsRun, "no step after the cancel")
        }
    }

    /// Parts of a multipart body.
    static func multipartParts(_ body: [UInt8], boundary: String) -> [(headers: String, body: [UInt8])] {
        let delimiter = Array("--\(boundary)".utf8)
        var starts: [Int] = []
        var i = 0
        while i + delimiter.count <= body.count {
            if Array(body[i..<(i + delimiter.count)]) == delimiter {
                starts.append(i)
                i += delimiter.count
            } else {
                i += 1
            }
        }
        var parts: [(String, [UInt8])] = []
        for (k, start) in starts.enumerated() where k + 1 < starts.count {
            let section = Array(body[(start + delimiter.count + 2)..<(starts[k + 1] - 2)])  // after CRLF, before CRLF
            guard let split = (0..<(section.count - 3)).first(where: { section[$0..<($0 + 4)] == [13, 10, 13, 10] }) else { continue }
            parts.append((String(decoding: section[..<split], as: UTF8.self), Array(section[(split + 4)...])))
        }
        return parts
    }
}
