import Foundation
import JSON
import Testing
@testable import Serving

/// `JobStore`'s rules (see its documentation), without threads or sockets.
@Suite struct JobStoreTests {
    static func store(ttl: Double = 60, maxBytes: Int = 1 << 20, maxTombstones: Int = 100) -> JobStore {
        JobStore(limits: JobStore.Limits(ttl: ttl, maxBytes: maxBytes, maxTombstones: maxTombstones))
    }

    static func record(_ store: JobStore, _ id: String, owner: Int? = nil) -> JobRecord? {
        if case .found(let r) = store.lookup(id, owner: owner) { return r }
        return nil
    }

    @Test func idsAre128RandomBitsInHex() {
        let ids = (0..<200).map { _ in JobStore.newID() }
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isHexDigit) })
    }

    @Test func queuedRunningSucceededWithNumberedEvents() throws {
        var s = Self.store()
        s.create(id: "a", owner: nil, created: 100, seed: 7, numImages: 1, callbackURL: nil)
        #expect(Self.record(s, "a")?.status == .queued)
        s.queued("a", position: 2)
        s.queued("a", position: 0)
        #expect(Self.record(s, "a")?.queuePosition == 0)
        s.progress("a", stage: "prior", step: 1, total: 2)
        #expect(Self.record(s, "a")?.status == .running && Self.record(s, "a")?.queuePosition == nil)
        s.progress("a", stage: "decoder", step: 1, total: 2)
        let actions = s.succeeded("a", images: [[1, 2, 3]], mediaType: "image/png", now: 10, unix: 110)
        let done = try #require(Self.record(s, "a"))
        #expect(actions == [.finished(done)])
        #expect(done.status == .succeeded && done.images == [[1, 2, 3]] && done.progress == JobProgress(stage: "decoder", step: 1, total: 2))
        #expect(s.events("a", after: nil).map(\.name) == ["queued", "queued", "progress", "progress", "succeeded"])
        #expect(s.events("a", after: nil).map(\.id) == [1, 2, 3, 4, 5])
        #expect(s.events("a", after: 3).map(\.id) == [4, 5])
        #expect(s.events("a", after: 5).isEmpty)
        let doc = done.document(ttl: 60)
        #expect(doc["images"] == .array([.string("/v1/jobs/a/images/0")]))
        #expect(doc["expires_at"]?.intValue == 170 && doc["queue_position"] == .null)
        // Rule 1: nothing changes a finished job.
        s.progress("a", stage: "decoder", step: 2, total: 2)
        #expect(s.ended("a", error: .cancelled, now: 11, unix: 111).isEmpty)
        #expect(Self.record(s, "a") == done)
    }

    @Test func endingsByErrorCode() {
        var s = Self.store()
        for id in ["f", "c", "e", "d"] { s.create(id: id, owner: nil, created: 0, seed: 0, numImages: 1, callbackURL: nil) }
        _ = s.ended("f", error: ServingError(status: 500, message: "boom", code: "generation_failed"), now: 1, unix: 1)
        _ = s.ended("c", error: .cancelled, now: 1, unix: 1)
        _ = s.ended("e", error: .deadlineExceeded(timeout: 1, stepsRun: 0, stepsTotal: 4), now: 1, unix: 1)
        _ = s.ended("d", error: .draining, now: 1, unix: 1)
        #expect(Self.record(s, "f")?.status == .failed && Self.record(s, "c")?.status == .cancelled)
        #expect(Self.record(s, "e")?.status == .expired && Self.record(s, "d")?.status == .cancelled)
        #expect(Self.record(s, "f")?.document(ttl: 1)["error"]?["code"] == .string("generation_failed"))
        #expect(s.counts[.failed] == 1 && s.counts[.cancelled] == 2 && s.counts[.expired] == 1 && s.counts[.queued] == 0)
    }

    @Test func cancelQueuedOrRunningButNotFinished() {
        var s = Self.store()
        s.create(id: "q", owner: nil, created: 0, seed: 0, numImages: 1, callbackURL: nil)
        s.create(id: "r", owner: nil, created: 0, seed: 0, numImages: 1, callbackURL: nil)
        s.progress("r", stage: "prior", step: 1, total: 3)
        for id in ["q", "r"] {
            let (lookup, actions) = s.cancel(id, owner: nil, now: 1, unix: 1)
            guard case .found(let r) = lookup else { Issue.record("\(id) not found"); continue }
            #expect(r.status == .cancelled)
            #expect(actions.first == .cancelTicket(id: id) && actions.count == 2)
        }
        // The engine's late report changes nothing; a second cancel answers the same state, no ticket.
        #expect(s.succeeded("r", images: [[0]], mediaType: "image/png", now: 2, unix: 2).isEmpty)
        #expect(Self.record(s, "r")?.images == [])
        let again = s.cancel("r", owner: nil, now: 3, unix: 3)
        #expect(again.1.isEmpty && Self.record(s, "r")?.status == .cancelled)
        #expect(s.cancel("nope", owner: nil, now: 3, unix: 3).0 == .unknown)
    }

    @Test func ttlEvictsFinishedJobsOnlyAndAnswersEvicted() {
        var s = Self.store(ttl: 10)
        s.create(id: "old", owner: nil, created: 0, seed: 0, numImages: 1, callbackURL: nil)
        s.create(id: "new", owner: nil, created: 0, seed: 0, numImages: 1, callbackURL: nil)
        s.create(id: "waiting", owner: nil, created: 0, seed: 0, numImages: 1, callbackURL: nil)
        _ = s.succeeded("old", images: [[1]], mediaType: "image/png", now: 0, unix: 0)
        _ = s.succeeded("new", images: [[1]], mediaType: "image/png", now: 5, unix: 5)
        #expect(s.sweep(now: 9.9).isEmpty)
        #expect(s.sweep(now: 10) == [.evicted(id: "old")])
        #expect(s.lookup("old", owner: nil) == .evicted)
        #expect(Self.record(s, "new") != nil)
        #expect(s.sweep(now: 1000) == [.evicted(id: "new")])
        #expect(Self.record(s, "waiting")?.status == .queued, "unfinished jobs are never evicted")
        #expect(s.lookup("never", owner: nil) == .unknown)
    }

    @Test func maxBytesEvictsOldestFinishedFirst() {
        // Each record holds its image bytes + its event log + 512.
        var s = Self.store(maxBytes: 12_000)
        for id in ["a", "b", "c"] { s.create(id: id, owner: nil, created: 0, seed: 0, numImages: 1, callbackURL: nil) }
        _ = s.succeeded("a", images: [[UInt8](repeating: 1, count: 4000)], mediaType: "image/png", now: 1, unix: 1)
        _ = s.succeeded("b", images: [[UInt8](repeating: 2, count: 4000)], mediaType: "image/png", now: 2, unix: 2)
        #expect(s.totalBytes <= 12_000)
        let actions = s.succeeded("c", images: [[UInt8](repeating: 3, count: 4000)], mediaType: "image/png", now: 3, unix: 3)
        #expect(actions.contains(.evicted(id: "a")) && !actions.contains(.evicted(id: "b")))
        #expect(s.lookup("a", owner: nil) == .evicted && Self.record(s, "b") != nil && Self.record(s, "c") != nil)
        #expect(s.totalBytes <= 12_000)
        // One job larger than the whole budget is evicted as it finishes.
        s.create(id: "huge", owner: nil, created: 0, seed: 0, numImages: 1, callbackURL: nil)
        let huge = s.succeeded("huge", images: [[UInt8](repeating: 4, count: 20_000)], mediaType: "image/png", now: 4, unix: 4)
        #expect(huge.contains(.evicted(id: "huge")))
        #expect(s.lookup("huge", owner: nil) == .evicted)
    }

    @Test func ownersSeeOnlyTheirJobs() {
        var s = Self.store(ttl: 1)
        s.create(id: "k0", owner: 0, created: 0, seed: 0, numImages: 1, callbackURL: nil)
        #expect(Self.record(s, "k0", owner: 0) != nil)
        #expect(s.lookup("k0", owner: 1) == .unknown)
        #expect(s.lookup("k0", owner: nil) == .unknown)
        #expect(s.cancel("k0", owner: 1, now: 0, unix: 0).0 == .unknown)
        #expect(Self.record(s, "k0", owner: 0)?.status == .queued, "another key's cancel does nothing")
        _ = s.ended("k0", error: .cancelled, now: 0, unix: 0)
        _ = s.sweep(now: 5)
        #expect(s.lookup("k0", owner: 0) == .evicted)
        #expect(s.lookup("k0", owner: 1) == .unknown, "evicted ids are not probeable either")
    }

    @Test func tombstonesAreBounded() {
        var s = Self.store(ttl: 0.5, maxTombstones: 2)
        for id in ["a", "b", "c"] {
            s.create(id: id, owner: nil, created: 0, seed: 0, numImages: 1, callbackURL: nil)
            _ = s.ended(id, error: .cancelled, now: 0, unix: 0)
        }
        #expect(s.sweep(now: 1).count == 3)
        #expect(s.lookup("a", owner: nil) == .unknown && s.lookup("b", owner: nil) == .evicted && s.lookup("c", owner: nil) == .evicted)
    }

    @Test func drainCancelsQueuedJobsAndLeavesRunningOnes() {
        var s = Self.store()
        s.create(id: "q", owner: nil, created: 0, seed: 0, numImages: 1, callbackURL: nil)
        s.create(id: "r", owner: nil, created: 0, seed: 0, numImages: 1, callbackURL: nil)
        s.progress("r", stage: "prior", step: 1, total: 3)
        let actions = s.drain(now: 1, unix: 1)
        #expect(actions.first == .cancelTicket(id: "q"))
        #expect(Self.record(s, "q")?.status == .cancelled && Self.record(s, "q")?.error?.code == "draining")
        #expect(Self.record(s, "r")?.status == .running)
    }
}
