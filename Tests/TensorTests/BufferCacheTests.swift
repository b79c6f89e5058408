import Foundation
import Testing
@testable import Tensor

@Suite(.serialized) struct BufferCacheTests {
    @Test func recycledBuffersAreReusedAndZeroedWhenAsked() {
        let shape = [1, 513, 1031]  // about 2 MiB: cached, and a size no other test allocates
        // The cache is process-wide and other suites run at the same time: model loading turns it
        // off for a while (`Compute.withBufferCacheDisabled`), so try a few times for the reuse.
        var reused = false
        for _ in 0..<100 where !reused {
            var first: UnsafeMutablePointer<Float>?
            do {
                let t = Tensor(shape: shape, repeating: 7)
                first = t.data
            }
            let again = Tensor(zeros: shape)
            reused = again.data == first
            // Reused or not, `zeros` must not leak old contents.
            #expect(again.maxAbs() == 0)
            if !reused { usleep(20_000) }
        }
        #expect(reused, "a freed block of this size must come back from the cache")
    }

    /// `drain` (the idle engine's release, `Compute.releaseIdleMemory`) frees every block and says how many
    /// bytes; the capacity stays, so blocks are cached again afterwards.
    @Test func drainFreesEveryBlock() {
        let cache = BufferCache()
        let a = cache.minimumBytes, b = cache.minimumBytes + 4096
        let blocks = [(cache.allocate(bytes: a), a), (cache.allocate(bytes: a), a), (cache.allocate(bytes: b), b)]
        for (p, n) in blocks { cache.release(p, bytes: n) }
        #expect(cache.heldBytes == 2 * a + b)
        #expect(cache.drain() == 2 * a + b)
        #expect(cache.heldBytes == 0 && cache.drain() == 0)
        cache.release(cache.allocate(bytes: b), bytes: b)
        #expect(cache.heldBytes == b, "still caching after a drain")
    }

    /// Blocks of a size nobody asks for any more (a batch shape that stopped running) are dropped after
    /// `staleAfter` allocations of other sizes; a size in steady use stays cached (issue 12 soak).
    @Test func sizesNotAskedForAreDropped() {
        let cache = BufferCache(staleAfter: 64)
        let old = cache.minimumBytes + 64, live = cache.minimumBytes + 128
        cache.release(cache.allocate(bytes: old), bytes: old)
        #expect(cache.heldBytes == old)
        for _ in 0..<(64 + 8) {
            let p = cache.allocate(bytes: live)
            cache.release(p, bytes: live)
        }
        #expect(cache.heldBytes == live, "the old size must be dropped, the live one kept")
        // The live block is the same one each time: still reused.
        let first = cache.allocate(bytes: live)
        cache.release(first, bytes: live)
        let again = cache.allocate(bytes: live)
        #expect(again == first)
        cache.release(again, bytes: live)
        cache.setCapacity(0)
        #expect(cache.heldBytes == 0)
    }

    @Test func capacityBoundsWhatIsKept() {
        Compute.setBufferCacheCapacity(bytes: 0)
        defer { Compute.setBufferCacheCapacity(bytes: 2 << 30) }
        do { _ = Tensor(zeros: [1 << 20]) }
        #expect(Compute.bufferCacheBytes == 0)
    }
}
