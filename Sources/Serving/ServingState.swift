import Foundation

/// Whether the server can take work: models loading, ready with a service, failed to load, or draining.
/// Shared by the routes (readiness, admission) and the server's lifecycle.
public final class ServingState: @unchecked Sendable {
    /// Where the server is.
    public enum Phase: Sendable {
        /// Models loading (the server already answers health checks).
        case loading
        /// Serving through this service.
        case ready(any GenerationService)
        /// Loading failed with this message.
        case failed(String)
    }

    private let lock = NSLock()
    private var phase = Phase.loading
    private var drainingFlag = false

    /// A state that is loading.
    public init() {}

    /// The current phase.
    public var current: Phase {
        lock.withLock { phase }
    }

    /// True once shutdown began: `/readyz` answers 503 and no new generation is accepted.
    public var isDraining: Bool {
        lock.withLock { drainingFlag }
    }

    /// The service when ready and not draining.
    public var service: (any GenerationService)? {
        lock.lock()
        defer { lock.unlock() }
        if case .ready(let s) = phase { return s }
        return nil
    }

    /// Models loaded: requests go to `service`.
    public func becomeReady(_ service: any GenerationService) {
        lock.lock()
        phase = .ready(service)
        lock.unlock()
    }

    /// Loading failed with `message`.
    public func fail(_ message: String) {
        lock.lock()
        phase = .failed(message)
        lock.unlock()
    }

    /// Shutdown began.
    public func beginDraining() {
        lock.lock()
        drainingFlag = true
        lock.unlock()
    }

    /// Why the server is not ready (nil when it is): a 503 error.
    public var unavailability: ServingError? {
        lock.lock()
        defer { lock.unlock() }
        if drainingFlag {
            return .draining
        }
        switch phase {
        case .loading:
            return ServingError(status: 503, message: "the models are still loading", type: "server_error", code: "loading", retryAfterSeconds: 5)
        case .failed:
            // The reason (often a file path) is in the server log (`ImageServer.loadModel`), not for
            // unauthenticated clients.
            return ServingError(status: 503, message: "the models failed to load; the reason is in the server log", type: "server_error", code: "load_failed")
        case .ready:
            return nil
        }
    }
}
