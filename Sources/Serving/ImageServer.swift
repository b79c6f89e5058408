import Foundation
import HTTP1
import Logging
import Tensor
import Wuerstchen

/// The service as a whole: the HTTP server with the API routes, the model loading behind it and
/// graceful shutdown.
///
/// ```swift
/// let server = ImageServer(configuration: config, logger: logger)
/// try server.start()                      // listening: /healthz answers, /readyz is 503
/// try server.loadModel { try DemoModel.pipeline() }   // /readyz turns 200
/// server.shutdown { exit(0) }             // on SIGTERM: /readyz 503 at once, in-flight requests finish
/// ```
public final class ImageServer: @unchecked Sendable {
    /// The configuration given at creation.
    public let configuration: ServerConfiguration
    /// Readiness and the generation service.
    public let state = ServingState()
    /// The metrics the server records and `/metrics` renders.
    public let metrics: ServingMetrics
    private let logger: Logger
    private let http: HTTPServer
    /// The routes (and the job store they keep).
    let handler: ServingHandler

    /// A server for `configuration` (not listening yet).
    public init(configuration: ServerConfiguration, logger: Logger, metrics: ServingMetrics = ServingMetrics()) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        handler = ServingHandler(configuration: configuration, state: state, metrics: metrics, logger: logger)
        http = HTTPServer(configuration: configuration.httpConfiguration, handler: handler)
    }

    /// Binds and starts answering (health at once; image routes 503 until a model is loaded).
    public func start() throws {
        try http.start()
        for warning in configuration.startupWarnings { logger.warning("\(warning)") }
        logger.notice("listening on \(configuration.tls == nil ? "http" : "https")://\(configuration.host):\(http.port)")
    }

    /// The bound port (the real one when 0 was configured).
    public var port: Int { http.port }

    /// Runs `load` (blocking), timing it, and serves its pipeline through a `BatchingGenerationService`
    /// with the configured scheduler policy.
    /// On failure readiness reports the error and the error is rethrown.
    public func loadModel(_ load: () throws -> WuerstchenPipeline) throws {
        let started = Date()
        do {
            let pipeline = try load()
            let seconds = Date().timeIntervalSince(started)
            metrics.modelLoad.set(seconds)
            let policy = configuration.schedulerPolicy
            logger.notice("""
                models loaded in \(String(format: "%.2f", seconds)) s; ready (scheduler \(policy.mode.rawValue): \
                \(policy.activeLimit) requests / \(policy.maxBatchRows) rows at once, queue \(policy.maxQueue); \
                compute: \(Compute.pool.threadCount) threads, OpenBLAS core \(Compute.blasCoreName))
                """)
            use(BatchingGenerationService(pipeline: pipeline, policy: policy, metrics: metrics, logger: logger))
        } catch {
            state.fail("\(error)")
            logger.critical("loading the models failed: \(error)")
            throw error
        }
    }

    /// Serves requests with `service` from now on (readiness turns 200 unless draining).
    public func use(_ service: any GenerationService) {
        state.becomeReady(service)
    }

    /// Graceful shutdown: readiness 503 at once, no new connections, generations or jobs, requests in
    /// flight finish within `drain_seconds` (then their connections drop), and `completion` runs when every
    /// connection is closed and the service is idle. Jobs: queued ones are cancelled at once (status
    /// `cancelled`, error code `draining`: their results, kept in memory only, could not outlive the
    /// process), running ones finish, store their images and send their callbacks (within `drain_seconds`
    /// more) before `completion`.
    public func shutdown(completion: @escaping @Sendable () -> Void = {}) {
        state.beginDraining()
        handler.jobManager.drain()
        logger.notice("draining: finishing requests in flight (at most \(configuration.drainSeconds) s)")
        let service = state.service
        let jobs = handler.jobManager, drainSeconds = configuration.drainSeconds
        http.shutdown(deadline: drainSeconds) { [logger] in
            if let service {
                service.shutdown {
                    // Jobs that just finished computing still have their images to store and callbacks to send.
                    jobs.finishPending(within: drainSeconds) {
                        logger.notice("drained; stopping")
                        completion()
                    }
                }
            } else {
                logger.notice("drained; stopping")
                completion()
            }
        }
    }
}
