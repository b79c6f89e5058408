import Foundation
import HTTP1
import Logging
import Tensor

/// The HTTP API (ARCHITECTURE.md "HTTP (v1)"): routing, API keys, readiness, and the image routes.
///
/// | route | methods | auth |
/// | --- | --- | --- |
/// | `/healthz` | GET, HEAD | never |
/// | `/readyz` | GET, HEAD | never |
/// | `/metrics` | GET, HEAD | if `metrics_require_auth` |
/// | `/v1/models` | GET, HEAD | if keys are configured |
/// | `/v1/images` | POST | if keys are configured |
/// | `/v1/images/generations` | POST | if keys are configured |
/// | `/v1/jobs`, `/v1/jobs/{id}[/cancel, /images/{i}, /events]` | see `JobRoutes.swift` | if keys are configured |
///
/// Unknown paths answer 404, other methods 405 with `Allow` (OPTIONS 204 with `Allow`).
public final class ServingHandler: HTTPHandler, @unchecked Sendable {
    /// A route: its path, methods, and whether it needs an API key.
    struct Route {
        let path: String
        let methods: [String]
        let isProtected: Bool
    }

    let configuration: ServerConfiguration
    let state: ServingState
    let metrics: ServingMetrics
    let logger: Logger
    let limits: RequestLimits
    /// The precision that runs (`precision` after the CPU's fallback), recorded in every image.
    let precisionName: String
    /// The jobs of `POST /v1/jobs`.
    let jobManager: JobManager
    /// Signs and sends job callbacks; nil when `jobs.callback_hosts` is empty (`callback_url` refused).
    let callbacks: CallbackSender?
    private let apiKeys: [[UInt8]]
    private let routes: [Route]
    private let startTime = Int(Date().timeIntervalSince1970)

    /// Routes over `state`, with keys, limits and PNG settings from `configuration`.
    public init(configuration: ServerConfiguration, state: ServingState, metrics: ServingMetrics, logger: Logger) {
        self.configuration = configuration
        self.state = state
        self.metrics = metrics
        self.logger = logger
        limits = RequestLimits(configuration)
        precisionName = limits.precision
        apiKeys = configuration.apiKeys.map { Array($0.utf8) }
        let callbacks = configuration.jobs.callbackHosts.isEmpty ? nil
            : CallbackSender(hosts: configuration.jobs.callbackHosts, secret: configuration.jobs.callbackSecret ?? "", metrics: metrics, logger: logger)
        self.callbacks = callbacks
        jobManager = JobManager(limits: configuration.jobStoreLimits, metrics: metrics, logger: logger, callbacks: callbacks)
        let keys = !configuration.apiKeys.isEmpty
        routes = [
            Route(path: "/healthz", methods: ["GET", "HEAD"], isProtected: false),
            Route(path: "/readyz", methods: ["GET", "HEAD"], isProtected: false),
            Route(path: "/metrics", methods: ["GET", "HEAD"], isProtected: keys && configuration.metricsRequireAuth),
            Route(path: "/v1/models", methods: ["GET", "HEAD"], isProtected: keys),
            Route(path: "/v1/images", methods: ["POST"], isProtected: keys),
            Route(path: "/v1/images/generations", methods: ["POST"], isProtected: keys),
        ]
    }

    /// Routes one request (see the table above); blocks for image requests until they are answered.
    public func handle(_ request: HTTPRequest, _ response: HTTPResponseWriter) {
        metrics.inFlight.increment()
        defer { metrics.inFlight.decrement() }
        let exchange = Exchange(request: request, writer: response, metrics: metrics, logger: logger)
        if let jobRoute = JobPath(request.path) {
            jobs(jobRoute, exchange)
            return
        }
        guard let route = routes.first(where: { $0.path == request.path }) else {
            exchange.error(ServingError(status: 404, message: "no route \(request.method) \(request.rawPath)", code: "not_found"))
            return
        }
        exchange.route = route.path
        guard acceptsMethod(of: route.methods, exchange) else { return }
        if route.isProtected, !isAuthorized(request.headers["Authorization"]) {
            exchange.error(.unauthorized)
            return
        }
        switch route.path {
        case "/healthz": exchange.json(200, .object([("status", .string("ok"))]))
        case "/readyz": readiness(exchange)
        case "/metrics":
            jobManager.refreshMetrics()
            exchange.respond(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                             body: Array(metrics.exposition().utf8))
        case "/v1/models": models(exchange)
        default: images(exchange, openAI: route.path == "/v1/images/generations")
        }
    }

    /// Health and readiness answer from memory in microseconds: HTTP1 runs them inline on the
    /// connection's event loop instead of hopping to a handler queue (`wrk` on /healthz: 63% -> 103-108%
    /// of nginx's rate on this machine, see BENCHMARKS.md).
    public func isQuick(_ request: HTTPRequest) -> Bool {
        request.method == "GET" && (request.path == "/healthz" || request.path == "/readyz")
    }

    /// Refuses a `100-continue` body early when the key is wrong or the content type is not JSON.
    public func checkExpectation(_ head: HTTPRequestHead) -> HTTPError? {
        // The decoded path, as routing will see it (`/v1/%69mages` is `/v1/images`).
        let path = head.path
        if let jobRoute = JobPath(path), jobRoute.methods.contains(head.method) {
            if isKeyed, authorizedKey(head.headers["Authorization"]) == nil {
                return HTTPError(status: 401, code: "invalid_api_key", message: ServingError.unauthorized.message)
            }
            if head.method == "POST", jobRoute.kind == .create, let error = Self.contentTypeError(head.headers["Content-Type"]) {
                return HTTPError(status: error.status, code: error.code ?? "unsupported_media_type", message: error.message)
            }
            return nil
        }
        guard let route = routes.first(where: { $0.path == path }), route.methods.contains(head.method) else { return nil }
        if route.isProtected, !isAuthorized(head.headers["Authorization"]) {
            return HTTPError(status: 401, code: "invalid_api_key", message: ServingError.unauthorized.message)
        }
        if head.method == "POST", let error = Self.contentTypeError(head.headers["Content-Type"]) {
            return HTTPError(status: error.status, code: error.code ?? "unsupported_media_type", message: error.message)
        }
        return nil
    }

    // MARK: - Routes

    private func readiness(_ exchange: Exchange) {
        if let error = state.unavailability {
            exchange.error(error)
        } else {
            exchange.json(200, .object([("status", .string("ready"))]))
        }
    }

    private func models(_ exchange: Exchange) {
        exchange.json(200, .object([
            ("object", .string("list")),
            ("data", .array([.object([
                ("id", .string(configuration.servedModelID)), ("object", .string("model")),
                ("created", .int(startTime)), ("owned_by", .string("wuerstchen")),
            ])])),
        ]))
    }

    // MARK: - Checks

    /// Whether the request's method is one of `methods`; otherwise answers it (OPTIONS: 204 with `Allow`;
    /// anything else: 405 naming what the path accepts, with `Allow`) and returns false.
    func acceptsMethod(of methods: [String], _ exchange: Exchange) -> Bool {
        let request = exchange.request
        guard !methods.contains(request.method) else { return true }
        let allow = (methods + ["OPTIONS"]).joined(separator: ", ")
        if request.method == "OPTIONS" {
            exchange.respond(status: 204, headers: [("Allow", allow)], body: [])
        } else {
            exchange.error(ServingError(status: 405, message: "\(request.path) accepts \(methods.joined(separator: ", ")), not \(request.method)",
                                        code: "method_not_allowed"), headers: [("Allow", allow)])
        }
        return false
    }

    /// `Authorization: Bearer <key>` against every configured key in constant time (the time depends
    /// only on the configured keys' lengths, not on how much of a key matched).
    func isAuthorized(_ header: String?) -> Bool {
        guard isKeyed else { return true }
        return authorizedKey(header) != nil
    }

    /// Whether API keys are configured.
    var isKeyed: Bool { !apiKeys.isEmpty }

    /// The index of the configured key that `Authorization: Bearer <key>` names, nil when none does;
    /// every key is compared, in constant time, whichever matches.
    func authorizedKey(_ header: String?) -> Int? {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return nil }
        let given = Array(header.utf8.dropFirst(7))
        var matched: Int? = nil
        for (index, key) in apiKeys.enumerated() {
            var diff: UInt8 = given.count == key.count ? 0 : 1
            for i in 0..<key.count {
                diff |= key[i] ^ (given.isEmpty ? 0 : given[i % given.count])
            }
            if diff == 0 { matched = index }
        }
        return matched
    }

    /// 415 unless the content type is `application/json` (parameters such as charset allowed).
    static func contentTypeError(_ header: String?) -> ServingError? {
        let media = header?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard media == "application/json" else {
            return ServingError(status: 415, message: "the body must be application/json, got \(header.map { "'\($0)'" } ?? "no Content-Type")",
                                code: "unsupported_media_type")
        }
        return nil
    }
}
