import Foundation
import Testing
import Wuerstchen
@testable import Serving

/// `scheduler.idle_release_ms`: the idle engine gives the memory it keeps for reuse back, once per idle
/// period (issue 12 soak: RSS after a run of 2,000 requests against RSS after 200).
@Suite(.serialized) struct IdleMemoryReleaseTests {
    /// Counts the engine's calls of its release hook and the figures it reports.
    final class Releases: @unchecked Sendable {
        private let lock = NSLock()
        private var calls = 0
        private var measured = 0

        var count: Int { lock.withLock { calls } }
        var reported: Int { lock.withLock { measured } }
        func release() -> Int { lock.withLock { calls += 1 }; return 4096 }
        func record(_ m: SchedulerMeasurement) {
            if case .idleMemoryReleased(let bytes) = m {
                #expect(bytes == 4096)
                lock.withLock { measured += 1 }
            }
        }
    }

    static func request(seed: UInt64) -> GenerationRequest {
        GenerationRequest(prompt: "a red circle on a blue background", width: 128, height: 128, numImages: 1, seed: seed,
                          priorSteps: 2, priorGuidance: 4, decoderSteps: 2, decoderGuidance: 0)
    }

    /// Each idle period after work releases once, and only after work: a service that has computed nothing
    /// holds nothing to give back (the release after the first request is the first one).
    @Test func theIdleEngineReleasesOncePerIdlePeriod() throws {
        var policy = SchedulerPolicy()
        policy.idleRelease = 0.05
        let releases = Releases()
        let service = BatchingGenerationService(pipeline: Demo.pipeline, policy: policy, logger: .init(label: "test"),
                                                releaseIdleMemory: { releases.release() }, measure: { releases.record($0) })
        #expect(releases.count == 0, "nothing computed yet")
        for round in 1...2 {
            let recorder = EventRecorder()
            _ = try service.submit(Self.request(seed: UInt64(round)), id: "r\(round)", timeout: nil, events: recorder.callback)
            #expect(recorder.images != nil, "round \(round): \(String(describing: recorder.result()))")
            #expect(eventually { releases.count == round }, "round \(round): one release after the request, got \(releases.count)")
            #expect(releases.count == round && releases.reported == round)
        }
        service.shutdown {}
    }

    /// With the real hook (`Compute.releaseIdleMemory`, whose effect on the process-wide cache other suites
    /// running at the same time would blur: `BufferCacheTests.drainFreesEveryBlock`), the metric counts the release.
    @Test func theReleaseIsCountedInTheMetrics() throws {
        var policy = SchedulerPolicy()
        policy.idleRelease = 0.05
        let metrics = ServingMetrics()
        let service = BatchingGenerationService(pipeline: Demo.pipeline, policy: policy, metrics: metrics)
        let recorder = EventRecorder()
        _ = try service.submit(Self.request(seed: 9), id: "real", timeout: nil, events: recorder.callback)
        #expect(recorder.images != nil)
        #expect(eventually { metrics.exposition().contains("wuerstchen_idle_memory_releases_total 1") },
                "the release must be counted once")
        service.shutdown {}
    }

    @Test func configurationKeyFromFileAndEnvironment() throws {
        #expect(ServerConfiguration().scheduler.idleRelease == 2)
        let file = try ServerConfiguration.parse(json: Array(#"{"scheduler": {"idle_release_ms": 0}}"#.utf8))
        #expect(file.scheduler.idleRelease == 0)
        let env = try ServerConfiguration.load(file: nil, environment: ["WUERSTCHEN_SCHEDULER_IDLE_RELEASE_MS": "250"])
        #expect(env.scheduler.idleRelease == 0.25)
        do {
            _ = try ServerConfiguration.parse(json: Array(#"{"scheduler": {"idle_release_ms": -1}}"#.utf8), source: "f.json")
            Issue.record("a negative idle_release_ms must be refused")
        } catch let e as ConfigurationError {
            #expect(e.field == "scheduler.idle_release_ms" && e.source == "f.json", "\(e)")
        }
    }
}
