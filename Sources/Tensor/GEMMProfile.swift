import Foundation

/// What the GEMM seam did while a benchmark watched: operations (2 m n k per product) and the wall time spent
/// in products, so that `wuerstchen bench` can say per stage how close it runs to this machine's GEMM rate and how
/// much of its time goes to everything else (issue 16, item 1).
///
/// `record { ... }` counts the products made inside its body by the calling thread and by the `ThreadPool`
/// workers of the regions that body starts, nothing else (other threads' products, other tests' products). Each
/// outermost `GEMM.sgemm` / `GEMM.linear` call counts once: a product inside another (the float32 `linear`'s
/// `sgemm`) is not counted twice. Wall time: a product called on the recording thread runs on all cores
/// (OpenBLAS's or the pool's threads) and counts its whole duration; one called by each of k workers of a
/// `parallelFor` region (attention's per-head products) counts 1/k of its duration, the share of the region's
/// wall time it takes. So `seconds` is the part of the body's wall time spent in products when regions split
/// their work evenly.
public final class GEMMProfile: @unchecked Sendable {
    /// Counts so far.
    public struct Totals: Sendable, Equatable {
        /// Multiply-adds times 2 (integer operations for int8 products).
        public var operations: Double = 0
        /// Wall-clock seconds in products, weighted as the type's documentation says.
        public var seconds: Double = 0
        /// Outermost product calls.
        public var calls: Int = 0

        public init(operations: Double = 0, seconds: Double = 0, calls: Int = 0) {
            self.operations = operations
            self.seconds = seconds
            self.calls = calls
        }

        public static func + (a: Totals, b: Totals) -> Totals {
            Totals(operations: a.operations + b.operations, seconds: a.seconds + b.seconds, calls: a.calls + b.calls)
        }

        public static func - (a: Totals, b: Totals) -> Totals {
            Totals(operations: a.operations - b.operations, seconds: a.seconds - b.seconds, calls: a.calls - b.calls)
        }
    }

    private let lock = NSLock()
    private var counted = Totals()

    public init() {}

    /// What was counted so far.
    public var totals: Totals {
        lock.withLock { counted }
    }

    /// Runs `body`, counting its products (see the type's documentation). Nests: an inner profile takes over
    /// for its body.
    public func record<T>(_ body: () throws -> T) rethrows -> T {
        let outer = start()
        defer { stop(restoring: outer) }
        return try body()
    }

    /// Counts the calling thread's products from here until `stop(restoring:)` with what this returned (for code
    /// that cannot be one closure); `record` is the same, scoped.
    public func start() -> GEMMProfile? {
        let state = ThreadState.current
        defer { state.profile = self }
        return state.profile
    }

    public func stop(restoring outer: GEMMProfile?) {
        ThreadState.current.profile = outer
    }

    /// Runs `body` (one product of `operations`), counting it into the calling thread's profile if there is one
    /// and no product encloses it.
    @inlinable
    public static func measure(operations: @autoclosure () -> Double, _ body: () -> Void) {
        guard let state = ThreadState.existing, state.profile != nil, state.depth == 0 else { return body() }
        measureOutermost(state, operations: operations(), body)
    }

    @usableFromInline
    static func measureOutermost(_ state: ThreadState, operations: Double, _ body: () -> Void) {
        state.depth = 1
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 / Double(max(1, state.regionWorkers))
        state.depth = 0
        guard let profile = state.profile else { return }
        profile.lock.lock()
        profile.counted.operations += operations
        profile.counted.seconds += seconds
        profile.counted.calls += 1
        profile.lock.unlock()
    }

    /// The calling thread's profile (for `ThreadPool.parallelFor` to hand to its workers).
    static var current: GEMMProfile? { ThreadState.existing?.profile }

    /// Runs `body` as one of `workers` threads of a `parallelFor` region started under `profile`.
    static func inRegion(_ profile: GEMMProfile?, workers: Int, _ body: () -> Void) {
        guard let profile else { return body() }
        let state = ThreadState.current
        let (outerProfile, outerWorkers) = (state.profile, state.regionWorkers)
        (state.profile, state.regionWorkers) = (profile, workers)
        body()
        (state.profile, state.regionWorkers) = (outerProfile, outerWorkers)
    }

    /// Per-thread bookkeeping, kept in a pthread key (Dispatch's workers carry no Swift task locals).
    @usableFromInline
    final class ThreadState {
        @usableFromInline var profile: GEMMProfile?
        @usableFromInline var depth = 0
        var regionWorkers = 1

        private static let key: pthread_key_t = {
            var key = pthread_key_t()
            let status = pthread_key_create(&key) { raw in
                if let raw { Unmanaged<ThreadState>.fromOpaque(raw).release() }
            }
            precondition(status == 0, "pthread_key_create failed: \(status)")
            return key
        }()

        /// This thread's state if it ever had one (no allocation).
        @usableFromInline
        static var existing: ThreadState? {
            pthread_getspecific(key).map { Unmanaged<ThreadState>.fromOpaque($0).takeUnretainedValue() }
        }

        static var current: ThreadState {
            if let state = existing { return state }
            let state = ThreadState()
            pthread_setspecific(key, Unmanaged.passRetained(state).toOpaque())
            return state
        }
    }
}
