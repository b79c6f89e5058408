import HTTP1
import Wuerstchen

/// Everything `wuerstchen serve` can be told, with the defaults of `Config/server.json`.
/// Field names are the JSON keys (snake_case); `WUERSTCHEN_<KEY>` environment variables override the
/// file (nested keys joined by `_`: `WUERSTCHEN_LIMITS_MAX_BODY_BYTES`, `WUERSTCHEN_TLS_CERTIFICATE`),
/// and command-line flags override both (see `ServerConfiguration+Loading.swift`).
public struct ServerConfiguration: Sendable, Equatable {
    // Deliberate parallel of HTTP1/HTTPLimits.swift:HTTPLimits: documented fields with their defaults, each
    // struct its own module's settings.
    /// `host`: numeric address to bind (`127.0.0.1`, `0.0.0.0`, `::`).
    public var host = "127.0.0.1"
    /// `port`: TCP port, 0 picks a free one (printed at startup).
    public var port = 8080
    /// `api_keys`: accepted `Authorization: Bearer` keys; empty means no authentication.
    public var apiKeys: [String] = []
    /// `metrics_require_auth`: whether `/metrics` needs a key too (health and readiness never do).
    public var metricsRequireAuth = false
    /// `max_queue`: requests that may wait for admission; more answer 429 with `Retry-After`.
    public var maxQueue = 16
    /// `scheduler`: batching (`mode`, `max_batch_rows`, `max_batch_pixels`, `max_active_requests`, `batch_wait_ms`,
    /// `idle_release_ms`, `request_timeout_seconds`; `SchedulerPolicy`, whose `maxQueue` is the top-level `max_queue`).
    public var scheduler = SchedulerPolicy()
    /// `max_images_per_request`: upper bound of `num_images` / `n`.
    public var maxImagesPerRequest = 4
    /// `max_prompt_chars`: longest `prompt` / `negative_prompt` in characters.
    public var maxPromptChars = 10_000
    /// `max_prompt_bytes`: longest `prompt` / `negative_prompt` in UTF-8 bytes (a `Character` can hold any
    /// number of combining marks, so characters alone do not bound the text the tokenizer works through).
    public var maxPromptBytes = 40_000
    /// `max_image_side`: largest `width` / `height` in pixels (at most the model's 2048).
    public var maxImageSide = 2048
    /// `max_steps`: upper bound of `prior_steps` and `decoder_steps`.
    public var maxSteps = 200
    /// `png_compression`: zlib level of the PNGs, 0 (fastest) ... 9 (smallest).
    public var pngCompression = 6
    /// `image_metadata`: whether every image carries its generation parameters (PNG text chunks, JPEG/WebP
    /// Exif and XMP; `GenerationParameters`). Off for privacy: the prompt then leaves only in the answer.
    public var imageMetadata = true
    /// `model_id`: the model's name in `/v1/models` and in the images' parameters; null for the loaded
    /// model's own id (`servedModelID`).
    public var modelID: String?
    /// `model_aliases`: further names a request's `model` may give for the one served model (ids that
    /// clients hard-code); the served id is always accepted besides them. Any other name is a 404.
    public var modelAliases = ServerConfiguration.defaultModelAliases

    /// The default `model_aliases`: our ids and OpenAI's image-model ids that clients send unchanged.
    public static let defaultModelAliases = ["wuerstchen-v2", "wuerstchen-v2-demo", "gpt-image-1", "gpt-image-1-mini", "dall-e-2", "dall-e-3"]

    /// The served model's id: `model_id`, else the loaded model's own (`wuerstchen-v2-demo` for the
    /// embedded demo model, `wuerstchen-v2` for pipeline folders; `DemoModel.modelID`).
    public var servedModelID: String { modelID ?? DemoModel.modelID(isDemo: prior == nil && decoder == nil) }

    /// The names a request's `model` may give: the served id, then `model_aliases`.
    public var acceptedModelNames: [String] { [servedModelID] + modelAliases.filter { $0 != servedModelID } }
    /// `limits`: the HTTP server's size, count and time limits (`HTTPLimits`, snake_case keys, seconds).
    public var limits = HTTPLimits()
    /// `tls`: `{certificate, private_key}` PEM paths to serve HTTPS; null serves plain HTTP.
    public var tls: HTTPTLSConfiguration?
    /// `drain_seconds`: on SIGTERM/SIGINT, how long in-flight requests may take to finish.
    public var drainSeconds = 30.0
    /// `prior`: prior pipeline folder; null (with `decoder` null) uses the embedded demo model.
    public var prior: String?
    /// `decoder`: decoder pipeline folder.
    public var decoder: String?
    /// `precision`: `fp32`, `bf16` (GEMM weights in bfloat16 through oneDNN; fp32 with a logged message on
    /// CPUs without AVX512-BF16) or `int8` (Linear, 1x1-conv and attention-projection GEMMs in int8 through
    /// oneDNN; fp32 with a logged message on CPUs without AVX2).
    public var precision = "fp32"
    /// `threads`: threads for OpenBLAS and the op pool, 0 for every core.
    public var threads = 0
    /// `log_level`: `trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical`.
    public var logLevel = "info"
    /// `jobs`: the job store of `POST /v1/jobs` (`ttl_seconds`, `max_bytes`, `callback_hosts`, `callback_secret`).
    public var jobs = JobsConfiguration()

    /// The defaults.
    public init() {}

    /// The scheduler's policy with the queue bound.
    public var schedulerPolicy: SchedulerPolicy {
        var policy = scheduler
        policy.maxQueue = maxQueue
        return policy
    }

    /// What an operator should hear at start: serving beyond loopback with no API keys.
    public var startupWarnings: [String] {
        guard apiKeys.isEmpty, !Self.isLoopback(host) else { return [] }
        return ["listening on \(host) (beyond loopback) without api_keys: anyone who can reach the port can generate; "
                + "set api_keys (or WUERSTCHEN_API_KEYS) or bind 127.0.0.1"]
    }

    /// Whether `host` is a loopback address (`127.0.0.0/8`, `::1`, `localhost`).
    static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let v4 = h.hasPrefix("::ffff:") ? String(h.dropFirst(7)) : h
        let parts = v4.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// The job store's limits.
    var jobStoreLimits: JobStore.Limits {
        JobStore.Limits(ttl: jobs.ttlSeconds, maxBytes: jobs.maxBytes)
    }

    /// The HTTP server's part.
    public var httpConfiguration: HTTPServerConfiguration {
        HTTPServerConfiguration(host: host, port: port, limits: limits, tls: tls)
    }
}

/// The `jobs` object: how long and how much the job store keeps (in memory only), and where callbacks may go.
public struct JobsConfiguration: Sendable, Equatable {
    /// `jobs.ttl_seconds`: how long a finished job (status and images) stays readable.
    public var ttlSeconds = 3600.0
    /// `jobs.max_bytes`: memory for all jobs' images and event logs; past it the oldest finished are evicted.
    public var maxBytes = 268_435_456
    /// `jobs.callback_hosts`: hosts an `http://` or `https://` `callback_url` may name (exact, case-insensitive; `*.example.com`
    /// for its subdomains); empty refuses every `callback_url`.
    public var callbackHosts: [String] = []
    /// `jobs.callback_secret`: the HMAC-SHA256 key callbacks are signed with (at least 16 bytes); needed
    /// when `callback_hosts` names any host.
    public var callbackSecret: String?

    /// The defaults.
    public init() {}
}
