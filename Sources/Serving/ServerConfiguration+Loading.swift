import Foundation
import HTTP1
import JSON

/// A configuration value that cannot be used: names the field, where the value came from and why.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    // Deliberate parallel of CLIP/CLIPTokenizerError.swift:CLIPTokenizerError and
    // SafeTensors/SafeTensorsError.swift:SafeTensorsError (fields, init, description): each module's
    // own error names its own thing (file, line, tensor, field, source); a shared type would couple the targets.
    /// The field (`port`, `limits.max_body_bytes`), or nil for a problem with the file as a whole.
    public let field: String?
    /// Where the value came from: `config file /x/server.json`, `environment WUERSTCHEN_PORT`, `flag --port`.
    public let source: String
    /// What is wrong and what is accepted.
    public let message: String

    /// An error about `field` from `source`.
    public init(field: String?, source: String, message: String) {
        self.field = field
        self.source = source
        self.message = message
    }

    /// `invalid configuration: field (from source): message`.
    public var description: String {
        if let field { return "invalid configuration: \(field) (from \(source)): \(message)" }
        return "invalid configuration (\(source)): \(message)"
    }
}

/// One value on its way in: JSON from the file, text from the environment or a flag.
private enum RawValue {
    case json(JSONValue)
    case text(String)
}

/// The configuration being assembled, with TLS paths kept apart until both are known.
private struct Draft {
    var config = ServerConfiguration()
    var tlsCertificate: String?
    var tlsKey: String?
    /// Where each field's value came from (for cross-field errors).
    var sources: [String: String] = [:]
}

/// A field: its dotted key and how to read a value into the draft (throws a message).
private struct Field: Sendable {
    let key: String
    let apply: @Sendable (inout Draft, RawValue) throws(FieldProblem) -> Void
}

private struct FieldProblem: Error {
    let message: String
}

extension ServerConfiguration {
    /// The environment variable of `key`: `WUERSTCHEN_` + the key upper-cased with `.` as `_`.
    public static func environmentName(_ key: String) -> String {
        "WUERSTCHEN_" + key.replacingOccurrences(of: ".", with: "_").uppercased()
    }

    /// Every configurable key (dotted for nested objects), in documentation order.
    public static var keys: [String] { fields.map(\.key) }

    /// The configuration: defaults, overridden by `file` (JSON, if given), by `WUERSTCHEN_*` variables
    /// of `environment`, then by `flags` (`(key, flag name as typed, value)`). Throws a
    /// `ConfigurationError` naming the first bad field and where its value came from.
    public static func load(file: String?, environment: [String: String] = [:],
                            flags: [(key: String, flag: String, value: String)] = []) throws -> ServerConfiguration {
        var draft = Draft()
        if let file {
            let source = "config file \(file)"
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ConfigurationError(field: nil, source: source, message: "cannot read the file")
            }
            try applyFile([UInt8](data), source: source, to: &draft)
        }
        for field in fields {
            let name = environmentName(field.key)
            if let value = environment[name] { try apply(field, .text(value), source: "environment \(name)", to: &draft) }
        }
        for (key, flag, value) in flags {
            guard let field = fields.first(where: { $0.key == key }) else {
                throw ConfigurationError(field: key, source: "flag \(flag)", message: "not a configuration field")
            }
            try apply(field, .text(value), source: "flag \(flag)", to: &draft)
        }
        return try finish(draft)
    }

    /// Parses a configuration file's bytes over the defaults (no environment, no flags).
    public static func parse(json bytes: [UInt8], source: String = "config") throws -> ServerConfiguration {
        var draft = Draft()
        try applyFile(bytes, source: source, to: &draft)
        return try finish(draft)
    }

    private static func applyFile(_ bytes: [UInt8], source: String, to draft: inout Draft) throws {
        let root: JSONValue
        do { root = try JSONValue.parse(bytes) } catch {
            throw ConfigurationError(field: nil, source: source, message: error.description)
        }
        guard case .object(let members) = root else {
            throw ConfigurationError(field: nil, source: source, message: "the file must hold one JSON object")
        }
        func walk(_ members: [(String, JSONValue)], prefix: String) throws {
            for (name, value) in members {
                let key = prefix + name
                if key == "limits" || key == "tls" || key == "scheduler" || key == "jobs" {
                    if key == "tls", value == .null {
                        draft.tlsCertificate = nil
                        draft.tlsKey = nil
                        draft.sources["tls"] = source
                        continue
                    }
                    guard case .object(let inner) = value else {
                        throw ConfigurationError(field: key, source: source, message: "expected an object, got \(value.kindDescription)")
                    }
                    try walk(inner, prefix: key + ".")
                    continue
                }
                guard let field = fields.first(where: { $0.key == key }) else {
                    throw ConfigurationError(field: key, source: source, message: "unknown field (known: \(keys.joined(separator: ", ")))")
                }
                try apply(field, .json(value), source: source, to: &draft)
            }
        }
        try walk(members, prefix: "")
    }

    private static func apply(_ field: Field, _ value: RawValue, source: String, to draft: inout Draft) throws {
        do {
            try field.apply(&draft, value)
            draft.sources[field.key] = source
        } catch {
            throw ConfigurationError(field: field.key, source: source, message: error.message)
        }
    }

    /// Cross-field checks.
    private static func finish(_ draft: Draft) throws -> ServerConfiguration {
        var config = draft.config
        func source(_ key: String) -> String { draft.sources[key] ?? "defaults" }
        if (config.prior == nil) != (config.decoder == nil) {
            let given = config.prior == nil ? "decoder" : "prior"
            throw ConfigurationError(field: given == "prior" ? "decoder" : "prior", source: source(given),
                                     message: "prior and decoder go together: set both pipeline folders, or neither for the demo model")
        }
        for key in ["prior", "decoder"] {
            let path = key == "prior" ? config.prior : config.decoder
            var isDirectory: ObjCBool = false
            if let path, !(FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue) {
                throw ConfigurationError(field: key, source: source(key), message: "\(path) is not a directory")
            }
        }
        switch (draft.tlsCertificate, draft.tlsKey) {
        case (nil, nil): config.tls = nil
        case (let c?, let k?): config.tls = HTTPTLSConfiguration(certificatePath: c, keyPath: k)
        case (nil, _): throw ConfigurationError(field: "tls.certificate", source: source("tls.private_key"), message: "tls needs both certificate and private_key")
        case (_, nil): throw ConfigurationError(field: "tls.private_key", source: source("tls.certificate"), message: "tls needs both certificate and private_key")
        }
        if !config.jobs.callbackHosts.isEmpty, (config.jobs.callbackSecret?.utf8.count ?? 0) < 16 {
            throw ConfigurationError(field: "jobs.callback_secret", source: source("jobs.callback_secret"),
                                     message: "jobs.callback_hosts allows callbacks, which are signed with this key: set at least 16 bytes "
                                        + "(e.g. `openssl rand -hex 32`)")
        }
        return config
    }

    // MARK: - The fields

    private static let fields: [Field] = [
        string("host") { $0.config.host = $1 },
        int("port", 0...65535) { $0.config.port = $1 },
        stringList("api_keys", emptyTextMeans: "would turn authentication off (the file's keys replaced by none); "
                   + "leave the variable unset to keep them, or set \"api_keys\": [] in the file to serve without keys") { $0.config.apiKeys = $1 },
        bool("metrics_require_auth") { $0.config.metricsRequireAuth = $1 },
        int("max_queue", 1...100_000) { $0.config.maxQueue = $1 },
        int("max_images_per_request", 1...64) { $0.config.maxImagesPerRequest = $1 },
        int("max_prompt_chars", 1...1_000_000) { $0.config.maxPromptChars = $1 },
        int("max_prompt_bytes", 1...4_000_000) { $0.config.maxPromptBytes = $1 },
        int("max_image_side", 128...2048) { $0.config.maxImageSide = $1 },
        int("max_steps", 1...10_000) { $0.config.maxSteps = $1 },
        int("png_compression", 0...9) { $0.config.pngCompression = $1 },
        bool("image_metadata") { $0.config.imageMetadata = $1 },
        optionalString("model_id") { $0.config.modelID = $1 },
        stringList("model_aliases") { $0.config.modelAliases = $1 },
        int("limits.max_request_line_bytes", 64...(1 << 20)) { $0.config.limits.maxRequestLineBytes = $1 },
        int("limits.max_header_bytes", 256...(1 << 24)) { $0.config.limits.maxHeaderBytes = $1 },
        int("limits.max_header_count", 1...10_000) { $0.config.limits.maxHeaderCount = $1 },
        int("limits.max_body_bytes", 1...(1 << 30)) { $0.config.limits.maxBodyBytes = $1 },
        double("limits.header_timeout", 0.001...86_400) { $0.config.limits.headerTimeout = $1 },
        double("limits.body_timeout", 0.001...86_400) { $0.config.limits.bodyTimeout = $1 },
        double("limits.body_deadline", 0.001...86_400) { $0.config.limits.bodyDeadline = $1 },
        double("limits.idle_timeout", 0.001...86_400) { $0.config.limits.idleTimeout = $1 },
        double("limits.write_timeout", 0.001...86_400) { $0.config.limits.writeTimeout = $1 },
        int("limits.max_connections", 1...1_000_000) { $0.config.limits.maxConnections = $1 },
        int("limits.max_requests_per_connection", 1...Int(Int32.max)) { $0.config.limits.maxRequestsPerConnection = $1 },
        // The queue counts the request being answered: at 0 no request is ever read.
        int("limits.max_pipelined_requests", 1...10_000,
            belowMinimum: "below 1 no request is ever read: the server would accept connections and answer nothing; "
                + "use 1 to answer each connection's requests one at a time") { $0.config.limits.maxPipelinedRequests = $1 },
        int("limits.write_high_water_mark", 1024...(1 << 30)) { $0.config.limits.writeHighWaterMark = $1 },
        int("limits.max_chunk_line_bytes", 16...(1 << 20)) { $0.config.limits.maxChunkLineBytes = $1 },
        double("limits.linger_timeout", 0...600) { $0.config.limits.lingerTimeout = $1 },
        oneOf("scheduler.mode", SchedulerPolicy.Mode.allCases.map(\.rawValue)) { $0.config.scheduler.mode = SchedulerPolicy.Mode(rawValue: $1)! },
        int("scheduler.max_batch_rows", 1...4096) { $0.config.scheduler.maxBatchRows = $1 },
        int("scheduler.max_batch_pixels", 0...(1 << 40)) { $0.config.scheduler.maxBatchPixels = $1 },
        int("scheduler.max_active_requests", 1...4096) { $0.config.scheduler.maxActiveRequests = $1 },
        int("scheduler.batch_wait_ms", 0...60_000) { $0.config.scheduler.batchWait = Double($1) / 1000 },
        int("scheduler.idle_release_ms", 0...86_400_000) { $0.config.scheduler.idleRelease = Double($1) / 1000 },
        double("scheduler.request_timeout_seconds", 1...86_400) { $0.config.scheduler.requestTimeout = $1 },
        string("tls.certificate") { $0.tlsCertificate = $1 },
        string("tls.private_key") { $0.tlsKey = $1 },
        double("drain_seconds", 0...86_400) { $0.config.drainSeconds = $1 },
        optionalString("prior") { $0.config.prior = $1 },
        optionalString("decoder") { $0.config.decoder = $1 },
        oneOf("precision", ["fp32", "bf16", "int8"]) { $0.config.precision = $1 },
        int("threads", 0...4096) { $0.config.threads = $1 },
        oneOf("log_level", ["trace", "debug", "info", "notice", "warning", "error", "critical"]) { $0.config.logLevel = $1 },
        double("jobs.ttl_seconds", 0.1...2_592_000) { $0.config.jobs.ttlSeconds = $1 },
        int("jobs.max_bytes", 65_536...(1 << 40)) { $0.config.jobs.maxBytes = $1 },
        stringList("jobs.callback_hosts") { $0.config.jobs.callbackHosts = $1.map { $0.lowercased() } },
        optionalString("jobs.callback_secret") { $0.config.jobs.callbackSecret = $1 },
    ]

    /// An integer in `range`; `belowMinimum` says, in the message for a value under it, why the lower bound is there.
    private static func int(_ key: String, _ range: ClosedRange<Int>, belowMinimum: String? = nil,
                            _ set: @escaping @Sendable (inout Draft, Int) -> Void) -> Field {
        Field(key: key) { draft, raw throws(FieldProblem) in
            let value: Int?
            switch raw {
            case .json(let j):
                guard case .number = j else { throw FieldProblem(message: "expected an integer, got \(j.kindDescription)") }
                value = j.intValue
                if value == nil { throw FieldProblem(message: "expected an integer, got \(j.serialized)") }
            case .text(let t):
                value = Int(t.trimmingCharacters(in: .whitespaces))
                if value == nil { throw FieldProblem(message: "expected an integer, got '\(t)'") }
            }
            guard let v = value, range.contains(v) else {
                let why = value! < range.lowerBound ? belowMinimum.map { ": " + $0 } ?? "" : ""
                throw FieldProblem(message: "\(value!) is outside \(range.lowerBound)...\(range.upperBound)" + why)
            }
            set(&draft, v)
        }
    }

    private static func double(_ key: String, _ range: ClosedRange<Double>, _ set: @escaping @Sendable (inout Draft, Double) -> Void) -> Field {
        Field(key: key) { draft, raw throws(FieldProblem) in
            let value: Double
            switch raw {
            case .json(let j):
                guard let d = j.doubleValue else { throw FieldProblem(message: "expected a number, got \(j.kindDescription)") }
                value = d
            case .text(let t):
                guard let d = Double(t.trimmingCharacters(in: .whitespaces)) else { throw FieldProblem(message: "expected a number, got '\(t)'") }
                value = d
            }
            guard value.isFinite, range.contains(value) else {
                throw FieldProblem(message: "\(value) is outside \(range.lowerBound)...\(range.upperBound) seconds")
            }
            set(&draft, value)
        }
    }

    private static func bool(_ key: String, _ set: @escaping @Sendable (inout Draft, Bool) -> Void) -> Field {
        Field(key: key) { draft, raw throws(FieldProblem) in
            switch raw {
            case .json(.bool(let b)): set(&draft, b)
            case .json(let j): throw FieldProblem(message: "expected true or false, got \(j.kindDescription)")
            case .text(let t):
                switch t.lowercased() {
                case "true", "1", "yes": set(&draft, true)
                case "false", "0", "no": set(&draft, false)
                default: throw FieldProblem(message: "expected true or false, got '\(t)'")
                }
            }
        }
    }

    private static func string(_ key: String, _ set: @escaping @Sendable (inout Draft, String) -> Void) -> Field {
        Field(key: key) { draft, raw throws(FieldProblem) in
            switch raw {
            case .json(.string(let s)), .text(let s):
                guard !s.isEmpty else { throw FieldProblem(message: "must not be empty") }
                set(&draft, s)
            case .json(let j): throw FieldProblem(message: "expected a string, got \(j.kindDescription)")
            }
        }
    }

    private static func oneOf(_ key: String, _ options: [String], _ set: @escaping @Sendable (inout Draft, String) -> Void) -> Field {
        Field(key: key) { draft, raw throws(FieldProblem) in
            switch raw {
            case .json(.string(let s)), .text(let s):
                guard options.contains(s) else {
                    throw FieldProblem(message: "'\(s)' is not one of \(options.joined(separator: ", "))")
                }
                set(&draft, s)
            case .json(let j): throw FieldProblem(message: "expected one of \(options.joined(separator: ", ")), got \(j.kindDescription)")
            }
        }
    }

    /// A string or null (`""` or `null` in the environment or a flag).
    private static func optionalString(_ key: String, _ set: @escaping @Sendable (inout Draft, String?) -> Void) -> Field {
        Field(key: key) { draft, raw throws(FieldProblem) in
            switch raw {
            case .json(.null): set(&draft, nil)
            case .json(.string(let s)), .text(let s): set(&draft, s.isEmpty || s == "null" ? nil : s)
            case .json(let j): throw FieldProblem(message: "expected a string or null, got \(j.kindDescription)")
            }
        }
    }

    /// An array of non-empty strings (comma-separated in the environment or a flag). `emptyTextMeans`:
    /// refuse a text value naming no item, with this reason (an empty variable is easy to set by mistake).
    private static func stringList(_ key: String, emptyTextMeans: String? = nil,
                                   _ set: @escaping @Sendable (inout Draft, [String]) -> Void) -> Field {
        Field(key: key) { draft, raw throws(FieldProblem) in
            switch raw {
            case .json(.array(let items)):
                var out: [String] = []
                for (i, item) in items.enumerated() {
                    guard case .string(let s) = item, !s.isEmpty else {
                        throw FieldProblem(message: "item \(i) must be a non-empty string, got \(item.kindDescription)")
                    }
                    out.append(s)
                }
                set(&draft, out)
            case .json(let j): throw FieldProblem(message: "expected an array of strings, got \(j.kindDescription)")
            case .text(let t):
                let items = t.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                if items.isEmpty, let reason = emptyTextMeans {
                    throw FieldProblem(message: "'\(t)' names no key: an empty list \(reason)")
                }
                set(&draft, items)
            }
        }
    }
}
