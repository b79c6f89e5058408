import Foundation
import HTTP1
import Imaging
import JSON
import Testing
import Wuerstchen
@testable import Serving

/// Issue 12 items 1, 5, 6 and 7 as a client (or an operator starting the server) sees them.
@Suite(.serialized) struct HardeningTests {
    // MARK: - Item 6: configuration that fails open or dead

    @Test func emptyAPIKeysVariableIsRefusedNotAuthenticationOff() throws {
        let file = try ConfigurationTests.temporaryFile(#"{"api_keys": ["secret"]}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        for value in ["", " ", " , "] {
            do {
                let c = try ServerConfiguration.load(file: file, environment: ["WUERSTCHEN_API_KEYS": value])
                Issue.record("WUERSTCHEN_API_KEYS='\(value)' was accepted: keys \(c.apiKeys)")
            } catch let e as ConfigurationError {
                #expect(e.field == "api_keys" && e.source.contains("WUERSTCHEN_API_KEYS") && e.message.contains("authentication off"), "\(e)")
            }
        }
        #expect(try ServerConfiguration.load(file: file, environment: ["WUERSTCHEN_API_KEYS": "a,b"]).apiKeys == ["a", "b"])
    }

    @Test func zeroPipelinedRequestsIsRefused() {
        for load in [{ try ServerConfiguration.parse(json: Array(#"{"limits": {"max_pipelined_requests": 0}}"#.utf8), source: "f.json") },
                     { try ServerConfiguration.load(file: nil, environment: ["WUERSTCHEN_LIMITS_MAX_PIPELINED_REQUESTS": "0"]) }] {
            do {
                _ = try load()
                Issue.record("max_pipelined_requests 0 was accepted")
            } catch let e as ConfigurationError {
                #expect(e.field == "limits.max_pipelined_requests" && e.message.contains("answer nothing") && e.message.contains("use 1"), "\(e)")
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    @Test func warnsWhenListeningBeyondLoopbackWithoutKeys() throws {
        var c = ServerConfiguration()
        #expect(c.startupWarnings.isEmpty)
        for host in ["0.0.0.0", "::", "10.1.2.3"] {
            c.host = host
            #expect(c.startupWarnings.count == 1 && c.startupWarnings[0].contains("api_keys"), "\(host)")
        }
        c.apiKeys = ["k"]
        #expect(c.startupWarnings.isEmpty)
        c.apiKeys = []
        for host in ["127.0.0.1", "127.0.0.53", "::1", "localhost"] {
            c.host = host
            #expect(c.startupWarnings.isEmpty, "\(host)")
        }
        // And the server logs it.
        try withServer({ $0.host = "0.0.0.0" }, loaded: false) { s in
            #expect(s.logs.all.contains { $0.hasPrefix("warning") && $0.contains("without api_keys") }, "\(s.logs.all)")
        }
    }

    // MARK: - Item 5: memory admission

    @Test func requestsLargerThanTheMemoryBoundAre400NamingTheField() throws {
        try withServer { s in
            let cases: [(String, String, String)] = [
                ("/v1/images", #"{"prompt": "x", "width": 2048, "height": 2048, "num_images": 4, "decoder_guidance_scale": 2}"#, "decoder_guidance_scale"),
                ("/v1/images", #"{"prompt": "x", "width": 1024, "height": 1024, "num_images": 4}"#, "num_images"),
                ("/v1/images/generations", #"{"prompt": "x", "size": "1024x1024", "n": 4}"#, "n"),
            ]
            for (path, body, param) in cases {
                let r = try RawClient.request(s.port, "POST", path, body: body)
                #expect(r.status == 400 && r.errorParam == param, "\(body): \(r.text)")
                #expect(r.text.contains("max_batch_pixels 4194304"), "\(r.text)")
            }
            // The engine refuses it from any caller, not only the HTTP layer.
            let service = try #require(s.service)
            #expect(throws: ServingError.self) {
                _ = try service.submit(GenerationRequest(prompt: "x", width: 2048, height: 2048, numImages: 4, decoderGuidance: 2),
                                       id: "big", timeout: nil) { _ in }
            }
        }
        try withServer({ $0.scheduler.maxBatchPixels = 128 * 128 }) { s in
            let r = try RawClient.request(s.port, "POST", "/v1/images", body: #"{"prompt": "x", "width": 256, "height": 128}"#)
            #expect(r.status == 400 && r.errorParam == "width" && r.text.contains("max_batch_pixels 16384"), "\(r.text)")
        }
    }

    @Test func largestSideIsConfigurable() throws {
        try withServer({ $0.maxImageSide = 512 }) { s in
            let r = try RawClient.request(s.port, "POST", "/v1/images", body: #"{"prompt": "x", "width": 640, "height": 512}"#)
            #expect(r.status == 400 && r.errorParam == "width" && r.text.contains("512"), "\(r.text)")
        }
        #expect(try ServerConfiguration.load(file: nil, environment: ["WUERSTCHEN_MAX_IMAGE_SIDE": "1024"]).maxImageSide == 1024)
    }

    // MARK: - Item 1: prompts bounded in bytes and combining marks

    @Test func oneCharacterOfAQuarterMegabyteIsRefused() throws {
        try withServer { s in
            let huge = "a" + String(repeating: "\u{301}", count: 60_000) + String(repeating: "\u{316}", count: 60_000)
            #expect(huge.count == 1)
            let body = JSONValue.object([("prompt", .string("x")), ("negative_prompt", .string(huge)), ("width", .int(128)), ("height", .int(128))])
            let r = try RawClient.request(s.port, "POST", "/v1/images", body: body.serialized)
            #expect(r.status == 400 && r.errorParam == "negative_prompt" && r.text.contains("negative_prompt has") && r.text.contains("max_prompt_bytes"),
                    "\(r.text.prefix(300))")

            // Under the byte bound, a run of more than 30 marks is refused too.
            let marks = "a" + String(repeating: "\u{301}", count: 31)
            let r2 = try RawClient.request(s.port, "POST", "/v1/images", body: JSONValue.object([("prompt", .string(marks))]).serialized)
            #expect(r2.status == 400 && r2.errorParam == "prompt" && r2.text.contains("combining"), "\(r2.text)")

            // 700 characters of 30 marks each: few characters, 42,700 bytes.
            let heavy = String(repeating: "a" + String(repeating: "\u{301}", count: 30), count: 700)
            let r3 = try RawClient.request(s.port, "POST", "/v1/images", body: JSONValue.object([("prompt", .string(heavy))]).serialized)
            #expect(r3.status == 400 && r3.errorParam == "prompt" && r3.text.contains("bytes"), "\(r3.text.prefix(300))")
        }
    }

    /// The run bound counts what the normalizer works on (canonical decompositions), holds under the byte
    /// bound, and applies to every text field; a run of exactly 30 marks is served.
    @Test func combiningRunsAreCountedDecomposedInEveryTextField() throws {
        try withServer { s in
            func post(_ path: String, _ fields: [(String, JSONValue)]) throws -> Response {
                try RawClient.request(s.port, "POST", path, body: JSONValue.object(fields).serialized)
            }
            func expectRefused(_ r: Response, _ field: String, _ words: [String], sourceLocation: SourceLocation = #_sourceLocation) {
                var message = ""
                if case .string(let m)? = r.json?["error"]?["message"] { message = m }
                #expect(r.status == 400 && r.errorParam == field && message.hasPrefix(field + " ") && words.allSatisfy(message.contains),
                        "\(r.status) \(r.text.prefix(400))", sourceLocation: sourceLocation)
            }
            let small: [(String, JSONValue)] = [("width", .int(128)), ("height", .int(128)), ("prior_steps", .int(2)), ("decoder_steps", .int(2))]

            // The issue's run at 9,000 + 9,000 marks: 36,001 bytes, under max_prompt_bytes, one character.
            let long = "a" + String(repeating: "\u{301}", count: 9_000) + String(repeating: "\u{316}", count: 9_000)
            expectRefused(try post("/v1/images", [("prompt", .string("x")), ("negative_prompt", .string(long))] + small),
                          "negative_prompt", ["18000 combining marks", "at most 30", "UAX #15"])
            expectRefused(try post("/v1/images/generations", [("prompt", .string(long))]), "prompt", ["18000 combining marks"])

            // U+0F73 has class 0 but is two marks once decomposed; U+00C0 ends in one.
            expectRefused(try post("/v1/images", [("prompt", .string("a" + String(repeating: "\u{F73}", count: 16)))] + small),
                          "prompt", ["32 combining marks"])
            expectRefused(try post("/v1/images", [("prompt", .string("\u{C0}" + String(repeating: "\u{301}", count: 30)))] + small),
                          "prompt", ["31 combining marks"])

            // Every other text field is bounded too (bytes, runs), and echoed values are cut short.
            expectRefused(try post("/v1/images/generations", [("prompt", .string("x")), ("user", .string(String(repeating: "u", count: 40_001)))]),
                          "user", ["40001 bytes", "max_prompt_bytes"])
            expectRefused(try post("/v1/images/generations", [("prompt", .string("x")), ("model", .string("m" + String(repeating: "\u{301}", count: 31)))]),
                          "model", ["31 combining marks"])
            let size = try post("/v1/images/generations", [("prompt", .string("x")), ("size", .string(String(repeating: "9", count: 9_000)))])
            expectRefused(size, "size", ["WIDTHxHEIGHT", "9000 bytes"])
            #expect(size.body.count < 1_000, "the 9,000-byte size is not echoed whole: \(size.body.count) bytes")

            // Exactly 30 marks in a row (after a decomposed starter: 29 + 1) is stream-safe and served.
            let thirty = "a cat \u{C0}" + String(repeating: "\u{301}", count: 29)
            let ok = try post("/v1/images", [("prompt", .string(thirty)), ("seed", .int(1))] + small)
            #expect(ok.status == 200 && ok.headers["Content-Type"] == "image/png", "\(ok.status) \(ok.text.prefix(300))")
        }
    }

    // MARK: - Item 7: the smaller ones

    /// `Expect: 100-continue` is checked against the decoded path, the one routing uses.
    @Test func percentEncodedPathGetsNoContinueWithoutAKey() throws {
        try withServer({ $0.apiKeys = ["k"] }) { s in
            let c = try RawClient(port: s.port, timeout: 5)
            c.send(Array("POST /v1/%69mages HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 20\r\nExpect: 100-continue\r\n\r\n".utf8))
            let (status, _) = try c.readHead()
            #expect(status == 401)
        }
    }

    /// Readiness after a failed load does not show the reason (a file path) to unauthenticated clients.
    @Test func failedLoadIsNotEchoedToClients() throws {
        try withServer(loaded: false) { s in
            s.server.state.fail("cannot open /srv/secret/models/prior/model.safetensors")
            let r = try RawClient.request(s.port, "GET", "/readyz")
            #expect(r.status == 503 && !r.text.contains("/srv/secret"), "\(r.text)")
        }
    }

    /// A 500 carries a generic message with the request id; the details go to the log.
    @Test func internalErrorsAreLoggedNotEchoed() throws {
        final class Failing: GenerationService, @unchecked Sendable {
            let model = ServedModel(pipeline: Demo.pipeline)
            struct Broken: Error, CustomStringConvertible { var description: String { "cannot mmap /srv/secret/x" } }
            func submit(_ request: GenerationRequest, id: String, timeout: Double?,
                        events: @escaping @Sendable (GenerationEvent) -> Void) throws -> GenerationTicket { throw Broken() }
            var queueLength: Int { 0 }
            func summary(of id: String) -> GenerationJobSummary? { nil }
            func shutdown(completion: @escaping @Sendable () -> Void) { completion() }
        }
        try withServer(loaded: false) { s in
            s.server.use(Failing())
            let r = try RawClient.request(s.port, "POST", "/v1/images", headers: [("X-Request-Id", "r-500")], body: smallRequest())
            #expect(r.status == 500 && !r.text.contains("/srv/secret") && r.text.contains("r-500"), "\(r.text)")
            #expect(s.logs.all.contains { $0.contains("/srv/secret") && $0.contains("r-500") })
        }
    }

    /// An image that cannot be encoded is an error, never a 200 with an empty image.
    @Test(arguments: ImageFormat.allCases) func base64ThrowsInsteadOfAnEmptyImage(_ format: ImageFormat) {
        let bad = ServingHandler.RGBImage(width: 0, height: 0, bytes: [])
        let output = ServingHandler.ImageOutput(encoder: ImageEncoder(format: format), parameters: nil)
        #expect(throws: (any Error).self) { _ = try output.base64(bad, index: 0) }
        #expect(throws: (any Error).self) { _ = try output.file(bad, index: 0) }
    }
}
