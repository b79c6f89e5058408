import Foundation
import Tensor
import Testing
import Wuerstchen
@testable import Serving

/// The service over the demo model, without sockets. Serialised: each test measures its own engine.
@Suite(.serialized) struct BatchingSchedulerTests {
    static func request(_ size: (Int, Int) = (128, 128), seed: UInt64, priorSteps: Int = 3, decoderSteps: Int = 2,
                        priorGuidance: Float = 4, decoderGuidance: Float = 0, images: Int = 1) -> GenerationRequest {
        GenerationRequest(prompt: "a photo of a dog number \(seed)", width: size.0, height: size.1, numImages: images, seed: seed,
                          priorSteps: priorSteps, priorGuidance: priorGuidance, decoderSteps: decoderSteps, decoderGuidance: decoderGuidance)
    }

    static func alone(_ r: GenerationRequest) throws -> Tensor {
        guard case .success(let output) = try Demo.pipeline.generate([r])[0] else { throw ClientError(description: "failed alone") }
        return output.images
    }

    static func maxLevelDifference(_ a: Tensor, _ b: Tensor) -> Float {
        precondition(a.shape == b.shape, "\(a.shape) vs \(b.shape)")
        var worst: Float = 0
        for i in 0..<a.count { worst = max(worst, abs(a.data[i] - b.data[i]) * 255) }
        return worst
    }

    /// Mixed resolutions, guidance, step counts and image counts in flight together: every image
    /// equals the same request run alone (at most 1 level of 255), and the forward passes were shared.
    @Test func batchedImagesEqualImagesAlone() throws {
        let requests = [
            Self.request(seed: 1),
            Self.request(seed: 2, priorSteps: 5, decoderSteps: 3, decoderGuidance: 2.5),
            Self.request((256, 128), seed: 3, priorGuidance: 1),
            Self.request(seed: 4, priorSteps: 2, priorGuidance: 0, images: 2),
            Self.request((256, 128), seed: 5, priorSteps: 4, decoderSteps: 4, decoderGuidance: 3),
            Self.request(seed: 6, priorSteps: 6, decoderSteps: 1),
        ]
        var policy = SchedulerPolicy()
        policy.batchWait = 0.5  // all six start together
        let service = BatchingGenerationService(pipeline: Demo.pipeline, policy: policy)
        let recorders = requests.map { _ in EventRecorder() }
        for (i, r) in requests.enumerated() { _ = try service.submit(r, id: "mix-\(i)", timeout: nil, events: recorders[i].callback) }
        for (i, r) in requests.enumerated() {
            let batched = try #require(recorders[i].images, "request \(i): \(String(describing: recorders[i].result()))")
            let difference = Self.maxLevelDifference(batched, try Self.alone(r))
            print("request \(i) (\(r.width)x\(r.height), guidance \(r.priorGuidance)/\(r.decoderGuidance)): max difference \(difference) levels (tolerance 1)")
            #expect(difference <= 1, "request \(i)")
            let steps = (r.priorSteps ?? 0) + r.decoderSteps
            #expect(recorders[i].progressCount == steps)
        }
        let stats = service.statistics
        let steps = requests.reduce(0) { $0 + ($1.priorSteps ?? 0) + $1.decoderSteps }
        print("statistics: \(stats) for \(steps) request steps")
        #expect(stats.requestSteps == steps)
        #expect(stats.forwardPasses < steps * 2 / 3, "steps must share forward passes (one at a time: \(steps) passes)")
        #expect(stats.largestBatch >= 4)
    }

    /// A request arriving while another of its shape runs joins the running batch at the next step
    /// (whatever step the other is at) and leaves the stage when its own steps are done.
    @Test func arrivalsJoinARunningBatch() throws {
        let service = BatchingGenerationService(pipeline: Demo.pipeline)
        let long = EventRecorder(), short = EventRecorder()
        // Unguided: 150 guided prior steps of the trained demo model amplify rounding into another picture
        // (the same request with 1 and 2 OpenBLAS threads: 255 levels apart, mean 73; unguided: 1 level, and
        // guided at 20 steps: 3), and batching changes the GEMMs' shapes, so rounding, for the steps it shares.
        let longRequest = Self.request((512, 512), seed: 10, priorSteps: 150, decoderSteps: 2, priorGuidance: 1)
        let shortRequest = Self.request((512, 512), seed: 11, priorSteps: 5, decoderSteps: 2)
        _ = try service.submit(longRequest, id: "long", timeout: nil, events: long.callback)
        #expect(eventually { (service.summary(of: "long")?.stepsRun ?? 0) >= 3 })
        _ = try service.submit(shortRequest, id: "short", timeout: nil, events: short.callback)
        #expect(eventually { (service.summary(of: "short")?.stepsRun ?? 0) == 5 })
        let longSteps = service.summary(of: "long")?.stepsRun ?? 0
        #expect(longSteps < 150, "the short request's prior steps ran while the long one was in its prior (\(longSteps) steps)")
        let shortImages = try #require(short.images)
        let longImages = try #require(long.images)
        let shortDifference = Self.maxLevelDifference(shortImages, try Self.alone(shortRequest))
        let longDifference = Self.maxLevelDifference(longImages, try Self.alone(longRequest))
        #expect(shortDifference <= 1)
        #expect(longDifference <= 1)
        let stats = service.statistics
        print("short joined after \(longSteps) steps; \(stats); max difference from alone: short \(shortDifference), long \(longDifference) levels (tolerance 1)")
        // 150 prior passes carry the short request's 5; both decode their 2 steps together.
        #expect(stats.requestSteps == 159 && stats.forwardPasses == 152 && stats.largestBatch == 2, "\(stats)")
    }

    /// Oldest first across shape groups: a request of another resolution waits for the older ones
    /// only, not for younger ones of the running shape.
    @Test func anotherShapeIsNotStarved() throws {
        let service = BatchingGenerationService(pipeline: Demo.pipeline)
        let a = EventRecorder(), b = EventRecorder(), c = EventRecorder()
        _ = try service.submit(Self.request(seed: 20, priorSteps: 60), id: "a", timeout: nil, events: a.callback)
        #expect(eventually { (service.summary(of: "a")?.stepsRun ?? 0) >= 2 })
        _ = try service.submit(Self.request((256, 128), seed: 21, priorSteps: 5), id: "b", timeout: nil, events: b.callback)
        _ = try service.submit(Self.request(seed: 22, priorSteps: 60), id: "c", timeout: nil, events: c.callback)
        for r in [a, b, c] { #expect(r.images != nil) }
        let (fa, fb, fc) = (try #require(a.finished), try #require(b.finished), try #require(c.finished))
        #expect(fa < fb && fb < fc, "completion order must be a, b, c")
    }

    /// A cancelled request leaves the batch at the next step; the others finish unchanged.
    @Test func cancellingOneLeavesTheOthersIntact() throws {
        let service = BatchingGenerationService(pipeline: Demo.pipeline)
        let keep = EventRecorder(), drop = EventRecorder()
        let kept = Self.request(seed: 30, priorSteps: 40)
        _ = try service.submit(kept, id: "keep", timeout: nil, events: keep.callback)
        let ticket = try service.submit(Self.request((512, 512), seed: 31, priorSteps: 1000), id: "drop", timeout: nil, events: drop.callback)
        #expect(eventually { (service.summary(of: "drop")?.stepsRun ?? 0) >= 2 })
        ticket.cancel()
        #expect(drop.error?.code == "cancelled")
        let steps = service.summary(of: "drop")!.stepsRun
        #expect(steps < 1002)
        #expect(Self.maxLevelDifference(try #require(keep.images), try Self.alone(kept)) <= 1)
        #expect(service.summary(of: "drop")?.stepsRun == steps, "no step after the cancel")
    }

    /// Deadlines: a request that cannot finish in time fails with 504 `deadline_exceeded` (also while
    /// queued), and the engine goes on with the rest.
    @Test func deadlinesFailOnlyTheLateRequest() throws {
        var policy = SchedulerPolicy()
        policy.maxActiveRequests = 1
        let service = BatchingGenerationService(pipeline: Demo.pipeline, policy: policy)
        let late = EventRecorder(), queuedLate = EventRecorder(), fine = EventRecorder()
        _ = try service.submit(Self.request((512, 512), seed: 40, priorSteps: 1000), id: "late", timeout: 0.5, events: late.callback)
        _ = try service.submit(Self.request(seed: 41), id: "queued-late", timeout: 0.2, events: queuedLate.callback)
        _ = try service.submit(Self.request(seed: 42), id: "fine", timeout: nil, events: fine.callback)
        let error = try #require(late.error)
        #expect(error.status == 504 && error.code == "deadline_exceeded", "\(error)")
        #expect(error.message.contains("0.5 s"), "\(error.message)")
        #expect(queuedLate.error?.code == "deadline_exceeded")
        #expect(service.summary(of: "queued-late")?.stepsRun == 0)
        #expect(fine.images != nil)
    }

    /// A full queue: 429 with a Retry-After; queue positions count down as requests are admitted.
    @Test func fullQueueAndPositions() throws {
        var policy = SchedulerPolicy()
        policy.maxActiveRequests = 1
        policy.maxQueue = 2
        let service = BatchingGenerationService(pipeline: Demo.pipeline, policy: policy)
        let first = EventRecorder(), second = EventRecorder(), third = EventRecorder()
        // Long enough to hold its slot while the others queue; cancelled once they have (it need not finish).
        let firstHandle = try service.submit(Self.request((512, 512), seed: 50, priorSteps: 300), id: "first", timeout: nil,
                                             events: first.callback)
        #expect(eventually { service.summary(of: "first")?.status == .running })
        _ = try service.submit(Self.request(seed: 51), id: "second", timeout: nil, events: second.callback)
        _ = try service.submit(Self.request(seed: 52), id: "third", timeout: nil, events: third.callback)
        #expect(service.queueLength == 2)
        do {
            _ = try service.submit(Self.request(seed: 53), id: "fourth", timeout: nil) { _ in }
            Issue.record("the fourth request must be refused")
        } catch let error as ServingError {
            #expect(error.status == 429 && error.code == "queue_full")
            #expect((error.retryAfterSeconds ?? 0) >= 1)
        }
        firstHandle.cancel()
        #expect(first.error?.code == "cancelled", "\(String(describing: first.error))")
        #expect(third.images != nil)
        let positions = third.events.compactMap { if case .queued(let p) = $0 { p } else { nil } }
        #expect(positions == [1, 0], "\(positions)")
    }

    /// The pixel budget: two guided 1024 x 1024 requests fill the default 16 x 512 x 512, a third waits
    /// for one of them to finish although rows and request slots are left.
    @Test func largeImagesAreAdmittedByPixels() throws {
        let service = BatchingGenerationService(pipeline: Demo.pipeline)
        let recorders = (0..<3).map { _ in EventRecorder() }
        for (i, r) in recorders.enumerated() {
            _ = try service.submit(Self.request((1024, 1024), seed: 70 + UInt64(i), priorSteps: 40, decoderSteps: 1),
                                   id: "big-\(i)", timeout: nil, events: r.callback)
        }
        #expect(eventually { service.activeCount == 2 })
        #expect(service.queueLength == 1 && service.summary(of: "big-2")?.status == .queued)
        for r in recorders { #expect(r.images != nil) }
        #expect(service.statistics.largestBatch == 2)
    }

    /// Serial mode computes one request at a time: no forward pass is shared.
    @Test func serialModeDoesNotBatch() throws {
        var policy = SchedulerPolicy()
        policy.mode = .serial
        let service = BatchingGenerationService(pipeline: Demo.pipeline, policy: policy)
        let recorders = (0..<3).map { _ in EventRecorder() }
        for (i, r) in recorders.enumerated() { _ = try service.submit(Self.request(seed: 60 + UInt64(i)), id: "s\(i)", timeout: nil, events: r.callback) }
        for r in recorders { #expect(r.images != nil) }
        let stats = service.statistics
        #expect(stats.largestBatch == 1 && stats.forwardPasses == stats.requestSteps)
    }

    /// Invalid requests are refused at submission with the field named, never reaching the engine.
    @Test func invalidRequestsAreRefused() throws {
        let service = BatchingGenerationService(pipeline: Demo.pipeline)
        #expect(throws: ServingError.self) { _ = try service.submit(Self.request((130, 128), seed: 1), id: "bad", timeout: nil) { _ in } }
        do {
            _ = try service.submit(Self.request((130, 128), seed: 1), id: "bad", timeout: nil) { _ in }
        } catch let error as ServingError {
            #expect(error.status == 400 && error.param == "width")
        }
    }
}
