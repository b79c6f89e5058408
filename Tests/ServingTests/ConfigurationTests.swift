import Foundation
import Imaging
import HTTP1
import JSON
import Testing
@testable import Serving

@Suite struct ConfigurationTests {
    static let repoConfig = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Config/server.json").standardized.path

    static func temporaryFile(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wuerstchen-config-\(UUID()).json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func theShippedFileHoldsTheDefaultsAndEveryField() throws {
        let parsed = try ServerConfiguration.load(file: Self.repoConfig)
        #expect(parsed == ServerConfiguration())
        let text = try String(contentsOfFile: Self.repoConfig, encoding: .utf8)
        for key in ServerConfiguration.keys where !key.hasPrefix("tls.") {  // tls is null by default
            #expect(text.contains("\"\(key.split(separator: ".").last!)\""), "Config/server.json lacks \(key)")
        }
    }

    /// Every HTTP limit can be set from the configuration (a limit added to `HTTPLimits` without its
    /// `limits.*` key could only be set in code), and a value from the file reaches the HTTP server's own
    /// configuration unchanged.
    @Test func everyHTTPLimitIsAConfigurationKey() throws {
        let defaults = HTTPLimits()
        var members: [String: String] = [:]
        for child in Mirror(reflecting: defaults).children {
            let label = try #require(child.label)
            let snake = label.reduce(into: "") { out, c in out += c.isUppercase ? "_" + c.lowercased() : String(c) }
            #expect(ServerConfiguration.keys.contains("limits.\(snake)"), "HTTPLimits.\(label) has no configuration key limits.\(snake)")
            // A value other than the default, of the member's type.
            members[snake] = child.value is Double ? "\((child.value as! Double) + 1.5)" : "\((child.value as! Int) + 3)"
        }
        #expect(members.count == 15)
        let json = "{\"limits\": {" + members.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}}"
        let limits = try ServerConfiguration.parse(json: Array(json.utf8), source: "t.json").httpConfiguration.limits
        for (child, original) in zip(Mirror(reflecting: limits).children, Mirror(reflecting: defaults).children) {
            #expect("\(child.value)" != "\(original.value)", "limits.\(child.label!) from the file did not reach HTTPServerConfiguration")
        }
    }

    @Test func fileThenEnvironmentThenFlags() throws {
        let file = try Self.temporaryFile(#"""
            {"port": 9000, "host": "0.0.0.0", "max_queue": 3, "api_keys": ["a"], "limits": {"max_body_bytes": 4096, "idle_timeout": 5},
             "log_level": "debug"}
            """#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let fileOnly = try ServerConfiguration.load(file: file)
        #expect(fileOnly.port == 9000 && fileOnly.host == "0.0.0.0" && fileOnly.maxQueue == 3 && fileOnly.apiKeys == ["a"])
        #expect(fileOnly.limits.maxBodyBytes == 4096 && fileOnly.limits.idleTimeout == 5 && fileOnly.logLevel == "debug")
        #expect(fileOnly.limits.maxHeaderCount == HTTPLimits().maxHeaderCount)

        let env = ["WUERSTCHEN_PORT": "9100", "WUERSTCHEN_MAX_QUEUE": "7", "WUERSTCHEN_API_KEYS": "x, y",
                   "WUERSTCHEN_LIMITS_MAX_BODY_BYTES": "8192", "WUERSTCHEN_METRICS_REQUIRE_AUTH": "true", "UNRELATED": "1"]
        let withEnv = try ServerConfiguration.load(file: file, environment: env)
        #expect(withEnv.port == 9100 && withEnv.maxQueue == 7 && withEnv.apiKeys == ["x", "y"] && withEnv.metricsRequireAuth)
        #expect(withEnv.limits.maxBodyBytes == 8192 && withEnv.host == "0.0.0.0")

        let withFlags = try ServerConfiguration.load(file: file, environment: env,
                                                     flags: [("port", "--port", "9200"), ("threads", "--threads", "2")])
        #expect(withFlags.port == 9200 && withFlags.threads == 2 && withFlags.maxQueue == 7)
    }

    /// `model_aliases` from the file and the environment (comma-separated); `model_id` null is the loaded
    /// model's own id (the demo's without folders), a name replaces it.
    @Test func modelAliasesAndModelID() throws {
        #expect(ServerConfiguration().modelAliases.contains("gpt-image-1") && ServerConfiguration().modelAliases.contains("dall-e-3"))
        #expect(ServerConfiguration().servedModelID == "wuerstchen-v2-demo")
        let file = try Self.temporaryFile(#"{"model_aliases": ["a", "b"], "model_id": "house"}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let fromFile = try ServerConfiguration.load(file: file)
        #expect(fromFile.modelAliases == ["a", "b"] && fromFile.servedModelID == "house" && fromFile.acceptedModelNames == ["house", "a", "b"])
        let fromEnv = try ServerConfiguration.load(file: file, environment: ["WUERSTCHEN_MODEL_ALIASES": "gpt-image-1, dall-e-2", "WUERSTCHEN_MODEL_ID": "null"])
        #expect(fromEnv.modelAliases == ["gpt-image-1", "dall-e-2"] && fromEnv.modelID == nil)
        #expect(fromEnv.acceptedModelNames == ["wuerstchen-v2-demo", "gpt-image-1", "dall-e-2"])
    }

    /// `precision` takes bf16 from each source, in the usual order (the CLI resolves it against the CPU).
    @Test func precisionBF16FromFileEnvironmentAndFlags() throws {
        let file = try Self.temporaryFile(#"{"precision": "bf16"}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(try ServerConfiguration.load(file: file).precision == "bf16")
        #expect(try ServerConfiguration.load(file: nil, environment: ["WUERSTCHEN_PRECISION": "bf16"]).precision == "bf16")
        #expect(try ServerConfiguration.load(file: file, environment: ["WUERSTCHEN_PRECISION": "fp32"]).precision == "fp32")
        #expect(try ServerConfiguration.load(
            file: file, environment: ["WUERSTCHEN_PRECISION": "fp32"], flags: [("precision", "--precision", "bf16")]).precision == "bf16")
    }

    /// `precision` takes int8 from each source; other names are refused with the accepted ones listed. A
    /// deliberate parallel of the bf16 test above (the same sources, another value and other overrides).
    @Test func precisionInt8FromFileEnvironmentAndFlags() throws {
        let file = try Self.temporaryFile(#"{"precision": "int8"}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(try ServerConfiguration.load(file: file).precision == "int8")
        #expect(try ServerConfiguration.load(file: nil, environment: ["WUERSTCHEN_PRECISION": "int8"]).precision == "int8")
        #expect(try ServerConfiguration.load(file: file, environment: ["WUERSTCHEN_PRECISION": "bf16"]).precision == "bf16")
        #expect(try ServerConfiguration.load(
            file: nil, environment: ["WUERSTCHEN_PRECISION": "fp32"], flags: [("precision", "--precision", "int8")]).precision == "int8")
        do {
            _ = try ServerConfiguration.load(file: nil, environment: ["WUERSTCHEN_PRECISION": "int4"])
            Issue.record("WUERSTCHEN_PRECISION=int4 was accepted")
        } catch let error as ConfigurationError {
            #expect(error.description.contains("int8") && error.description.contains("WUERSTCHEN_PRECISION"), "\(error)")
        }
    }

    @Test func tlsTakesBothPaths() throws {
        let c = try ServerConfiguration.parse(json: Array(#"{"tls": {"certificate": "/c.pem", "private_key": "/k.pem"}}"#.utf8))
        #expect(c.tls == HTTPTLSConfiguration(certificatePath: "/c.pem", keyPath: "/k.pem"))
        #expect(try ServerConfiguration.parse(json: Array(#"{"tls": null}"#.utf8)).tls == nil)
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.parse(json: Array(#"{"tls": {"certificate": "/c.pem"}}"#.utf8)) }
    }

    /// Each bad value names its field and where it came from.
    @Test func jobsFieldsFromFileAndEnvironment() throws {
        let c = try ServerConfiguration.parse(json: Array(#"""
            {"jobs": {"ttl_seconds": 5, "max_bytes": 1048576, "callback_hosts": ["Hooks.Example.com"], "callback_secret": "0123456789abcdef"}}
            """#.utf8))
        #expect(c.jobs.ttlSeconds == 5 && c.jobs.maxBytes == 1_048_576 && c.jobs.callbackHosts == ["hooks.example.com"])
        #expect(c.jobStoreLimits.ttl == 5 && c.jobStoreLimits.maxBytes == 1_048_576)
        let env = try ServerConfiguration.load(file: nil, environment: ["WUERSTCHEN_JOBS_TTL_SECONDS": "2.5",
                                                                         "WUERSTCHEN_JOBS_CALLBACK_HOSTS": "127.0.0.1, localhost",
                                                                         "WUERSTCHEN_JOBS_CALLBACK_SECRET": "a-secret-of-16-bytes"])
        #expect(env.jobs.ttlSeconds == 2.5 && env.jobs.callbackHosts == ["127.0.0.1", "localhost"] && env.jobs.callbackSecret == "a-secret-of-16-bytes")
    }

    @Test func invalidValuesNameTheFieldAndTheSource() throws {
        func error(_ body: () throws -> ServerConfiguration) -> ConfigurationError? {
            do {
                _ = try body()
                return nil
            } catch let e as ConfigurationError {
                return e
            } catch {
                return nil
            }
        }
        let cases: [(ConfigurationError?, String?, String)] = [
            (error { try ServerConfiguration.parse(json: Array(#"{"port": "80"}"#.utf8), source: "f.json") }, "port", "f.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"port": 70000}"#.utf8), source: "f.json") }, "port", "f.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"max_queue": 0}"#.utf8), source: "f.json") }, "max_queue", "f.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"prot": 80}"#.utf8), source: "f.json") }, "prot", "f.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"limits": {"max_body_bytes": -1}}"#.utf8), source: "f.json") }, "limits.max_body_bytes", "f.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"log_level": "loud"}"#.utf8), source: "f.json") }, "log_level", "f.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"api_keys": "abc"}"#.utf8), source: "f.json") }, "api_keys", "f.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"port": 80,}"#.utf8), source: "f.json") }, nil, "f.json"),
            (error { try ServerConfiguration.load(file: nil, environment: ["WUERSTCHEN_PORT": "eighty"]) }, "port", "WUERSTCHEN_PORT"),
            (error { try ServerConfiguration.load(file: nil, environment: ["WUERSTCHEN_DRAIN_SECONDS": "-1"]) }, "drain_seconds", "WUERSTCHEN_DRAIN_SECONDS"),
            (error { try ServerConfiguration.load(file: nil, flags: [("threads", "--threads", "-2")]) }, "threads", "--threads"),
            (error { try ServerConfiguration.load(file: nil, flags: [("prior", "--prior", "/nonexistent")]) }, "decoder", "--prior"),
            (error { try ServerConfiguration.load(file: nil, flags: [("precision", "--precision", "fp8")]) }, "precision", "--precision"),
            (error { try ServerConfiguration.load(file: "/nonexistent/server.json") }, nil, "/nonexistent/server.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"jobs": {"ttl_seconds": 0}}"#.utf8), source: "f.json") }, "jobs.ttl_seconds", "f.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"jobs": {"max_bytes": 10}}"#.utf8), source: "f.json") }, "jobs.max_bytes", "f.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"jobs": {"ttl": 5}}"#.utf8), source: "f.json") }, "jobs.ttl", "f.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"jobs": 5}"#.utf8), source: "f.json") }, "jobs", "f.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"jobs": {"callback_hosts": ["a.example"]}}"#.utf8), source: "f.json") },
             "jobs.callback_secret", "defaults"),
            (error { try ServerConfiguration.load(file: nil, environment: ["WUERSTCHEN_JOBS_MAX_BYTES": "lots"]) }, "jobs.max_bytes", "WUERSTCHEN_JOBS_MAX_BYTES"),
            (error { try ServerConfiguration.parse(json: Array(#"{"model_aliases": "dall-e-3"}"#.utf8), source: "f.json") }, "model_aliases", "f.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"model_aliases": ["ok", ""]}"#.utf8), source: "f.json") }, "model_aliases", "f.json"),
            (error { try ServerConfiguration.parse(json: Array(#"{"model_id": 3}"#.utf8), source: "f.json") }, "model_id", "f.json"),
        ]
        for (e, field, source) in cases {
            guard let e else {
                Issue.record("expected an error for \(field ?? "the file") from \(source)")
                continue
            }
            #expect(e.field == field, "\(e)")
            #expect(e.source.contains(source) && e.description.contains(source), "\(e)")
            if let field { #expect(e.description.contains(field)) }
        }
    }
}

@Suite struct ImageResponseModeTests {
    @Test func negotiatesAccept() {
        func mode(_ accept: String?, _ format: ImageFormat? = nil) -> ImageResponseMode? { ImageResponseMode.negotiate(accept, format: format)?.mode }
        func image(_ accept: String?, _ format: ImageFormat? = nil) -> ImageFormat? { ImageResponseMode.negotiate(accept, format: format)?.format }
        #expect(mode(nil) == .image && image(nil) == .png)
        #expect(mode("*/*") == .image && image("*/*") == .png)
        #expect(mode("application/json") == .json)
        #expect(mode("text/event-stream") == .eventStream)
        #expect(mode("image/png;q=0.5, application/json") == .json)
        #expect(mode("image/*, multipart/mixed;q=0.9") == .image && image("image/*") == .png)
        #expect(mode("*/*;q=0.1, text/*") == .eventStream)
        #expect(mode("image/png;q=0") == nil)
        // JPEG and WebP by Accept, with q-values deciding between image types.
        #expect(image("image/jpeg") == .jpeg && image("image/webp") == .webp)
        #expect(image("image/webp;q=0.9, image/jpeg;q=0.5") == .webp)
        #expect(image("image/png;q=0.2, image/jpeg;q=0.8, image/webp;q=0.5") == .jpeg)
        #expect(image("image/*;q=0.5, image/webp") == .webp)
        #expect(mode("image/gif") == nil && mode("image/jpeg;q=0") == nil)
        // output_format leaves one image type: image/* and */* mean it, another image type cannot be met.
        #expect(image(nil, .webp) == .webp && image("*/*", .jpeg) == .jpeg && image("image/*", .webp) == .webp)
        #expect(mode("image/png", .jpeg) == nil)
        #expect(mode("image/png, application/json;q=0.5", .jpeg) == .json)
    }
}
