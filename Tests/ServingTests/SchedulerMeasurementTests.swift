import Testing
@testable import Serving

/// The scheduler's one metrics hook: every figure lands in its Prometheus metric.
@Suite struct SchedulerMeasurementTests {
    @Test func everyMeasurementReachesItsMetric() {
        let metrics = ServingMetrics()
        let measurements: [SchedulerMeasurement] = [
            .depth(queued: 3, active: 2), .queueWait(nanoseconds: 20_000_000), .queueFull,
            .step(.prior, nanoseconds: 1_000_000, batch: 4), .step(.decoder, nanoseconds: 2_000_000, batch: 1),
            .completed(nanoseconds: 3_000_000_000, images: 2), .cancelled, .expired, .expired,
        ]
        for m in measurements { metrics.record(m) }
        let text = metrics.exposition()
        for line in [
            "wuerstchen_queue_depth 3", "wuerstchen_active_requests 2", "wuerstchen_queue_wait_seconds_count 1",
            #"wuerstchen_requests_rejected_total{reason="queue_full"} 1"#,
            #"wuerstchen_step_duration_seconds_count{stage="prior"} 1"#, #"wuerstchen_step_duration_seconds_count{stage="decoder"} 1"#,
            "wuerstchen_batch_size_count 2", "wuerstchen_batch_size_sum 5", "wuerstchen_generation_duration_seconds_count 1",
            "wuerstchen_images_generated_total 2", "wuerstchen_requests_cancelled_total 1", "wuerstchen_requests_expired_total 2",
        ] {
            #expect(text.contains(line), "\(line) missing from:\n\(text)")
        }
    }
}
