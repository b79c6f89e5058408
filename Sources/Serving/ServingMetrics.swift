import CoreMetrics
import Foundation
import Metrics
import Prometheus
import Tensor

/// The service's metrics, recorded through swift-metrics into a Prometheus registry of its own (no
/// global `MetricsSystem.bootstrap`, so tests can make as many as they like). Names follow Prometheus
/// conventions: base units, `_total` for counters, `_seconds` / `_bytes` suffixes.
///
/// | name | type | labels |
/// | --- | --- | --- |
/// | `wuerstchen_http_requests_total` | counter | `route`, `status` |
/// | `wuerstchen_http_request_duration_seconds` | histogram | `route` |
/// | `wuerstchen_http_requests_in_flight` | gauge | |
/// | `wuerstchen_queue_depth` | gauge | |
/// | `wuerstchen_queue_wait_seconds` | histogram | |
/// | `wuerstchen_active_requests` | gauge | (admitted, being computed) |
/// | `wuerstchen_generation_duration_seconds` | histogram | |
/// | `wuerstchen_step_duration_seconds` | histogram | `stage` (`prior`, `decoder`) |
/// | `wuerstchen_batch_size` | histogram | |
/// | `wuerstchen_images_generated_total` | counter | |
/// | `wuerstchen_requests_cancelled_total` | counter | |
/// | `wuerstchen_requests_rejected_total` | counter | `reason` (`queue_full`) |
/// | `wuerstchen_requests_expired_total` | counter | (deadline exceeded) |
/// | `wuerstchen_model_load_seconds` | gauge | |
/// | `wuerstchen_jobs` | gauge | `status` (`queued`, `running`, `succeeded`, `failed`, `cancelled`, `expired`: jobs held now) |
/// | `wuerstchen_jobs_evicted_total` | counter | (finished jobs dropped by `jobs.ttl_seconds` or `jobs.max_bytes`) |
/// | `wuerstchen_job_callbacks_total` | counter | `outcome` (`delivered`, `failed`: given up after every retry) |
/// | `process_resident_memory_bytes` | gauge | (read from /proc at scrape time) |
/// | `process_open_fds` | gauge | (read from /proc at scrape time) |
/// | `wuerstchen_buffer_cache_bytes` | gauge | (freed tensor buffers kept for reuse, at scrape time) |
public final class ServingMetrics: Sendable {
    /// The registry the metrics live in; `exposition()` renders it.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    let inFlight: Meter
    let queueDepth: Meter
    let queueWait: Metrics.Timer
    let activeRequests: Meter
    let deadlineExceeded: CoreMetrics.Counter
    let generationDuration: Metrics.Timer
    let priorStep: Metrics.Timer
    let decoderStep: Metrics.Timer
    let batchSize: Recorder
    let imagesGenerated: CoreMetrics.Counter
    let cancelled: CoreMetrics.Counter
    let queueFull: CoreMetrics.Counter
    let modelLoad: Meter
    let residentMemory: Meter
    let jobs: [JobStatus: Meter]
    let jobsEvicted: CoreMetrics.Counter
    let jobCallbacksDelivered: CoreMetrics.Counter
    let jobCallbacksFailed: CoreMetrics.Counter
    let openFDs: Meter
    let bufferCache: Meter
    let idleMemoryReleases: CoreMetrics.Counter

    /// Metrics in a fresh registry.
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        let seconds: [Duration] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300].map { .milliseconds(Int($0 * 1000)) }
        factory.defaultDurationHistogramBuckets = seconds
        factory.valueHistogramBuckets["wuerstchen_batch_size"] = [1, 2, 4, 8, 16, 32]
        self.factory = factory
        inFlight = Meter(label: "wuerstchen_http_requests_in_flight", factory: factory)
        queueDepth = Meter(label: "wuerstchen_queue_depth", factory: factory)
        queueWait = Metrics.Timer(label: "wuerstchen_queue_wait_seconds", factory: factory)
        activeRequests = Meter(label: "wuerstchen_active_requests", factory: factory)
        deadlineExceeded = CoreMetrics.Counter(label: "wuerstchen_requests_expired_total", factory: factory)
        generationDuration = Metrics.Timer(label: "wuerstchen_generation_duration_seconds", factory: factory)
        priorStep = Metrics.Timer(label: "wuerstchen_step_duration_seconds", dimensions: [("stage", "prior")], factory: factory)
        decoderStep = Metrics.Timer(label: "wuerstchen_step_duration_seconds", dimensions: [("stage", "decoder")], factory: factory)
        batchSize = Recorder(label: "wuerstchen_batch_size", aggregate: true, factory: factory)
        imagesGenerated = CoreMetrics.Counter(label: "wuerstchen_images_generated_total", factory: factory)
        cancelled = CoreMetrics.Counter(label: "wuerstchen_requests_cancelled_total", factory: factory)
        queueFull = CoreMetrics.Counter(label: "wuerstchen_requests_rejected_total", dimensions: [("reason", "queue_full")], factory: factory)
        modelLoad = Meter(label: "wuerstchen_model_load_seconds", factory: factory)
        residentMemory = Meter(label: "process_resident_memory_bytes", factory: factory)
        openFDs = Meter(label: "process_open_fds", factory: factory)
        bufferCache = Meter(label: "wuerstchen_buffer_cache_bytes", factory: factory)
        idleMemoryReleases = CoreMetrics.Counter(label: "wuerstchen_idle_memory_releases_total", factory: factory)
        jobs = Dictionary(uniqueKeysWithValues: JobStatus.allCases.map {
            ($0, Meter(label: "wuerstchen_jobs", dimensions: [("status", $0.rawValue)], factory: factory))
        })
        jobsEvicted = CoreMetrics.Counter(label: "wuerstchen_jobs_evicted_total", factory: factory)
        jobCallbacksDelivered = CoreMetrics.Counter(label: "wuerstchen_job_callbacks_total", dimensions: [("outcome", "delivered")], factory: factory)
        jobCallbacksFailed = CoreMetrics.Counter(label: "wuerstchen_job_callbacks_total", dimensions: [("outcome", "failed")], factory: factory)
    }

    /// Counts one answered request and its duration.
    func recordRequest(route: String, status: Int, seconds: Double) {
        CoreMetrics.Counter(label: "wuerstchen_http_requests_total", dimensions: [("route", route), ("status", String(status))], factory: factory)
            .increment()
        Metrics.Timer(label: "wuerstchen_http_request_duration_seconds", dimensions: [("route", route)], factory: factory)
            .recordSeconds(seconds)
    }

    /// The Prometheus text exposition (version 0.0.4), with the process gauges read now.
    public func exposition() -> String {
        let stats = ProcessStats.read()
        if let rss = stats.residentBytes { residentMemory.set(Double(rss)) }
        if let fds = stats.openFileDescriptors { openFDs.set(Double(fds)) }
        bufferCache.set(Double(Compute.bufferCacheBytes))
        return registry.emitToString()
    }
}

/// Process figures from /proc (Linux); nil where unavailable.
struct ProcessStats {
    var residentBytes: Int?
    var openFileDescriptors: Int?

    static func read() -> ProcessStats {
        var stats = ProcessStats()
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
           let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") {
            stats.residentBytes = kb * 1024
        }
        // Listing the directory opens one descriptor of its own.
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            stats.openFileDescriptors = max(entries.count - 1, 0)
        }
        return stats
    }
}
