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

    @Test func capacityBoundsWhatIsKept() {
        Compute.setBufferCacheCapacity(bytes: 0)
        defer { Compute.setBufferCacheCapacity(bytes: 2 << 30) }
        do { _ = Tensor(zeros: [1 << 20]) }
        #expect(Compute.bufferCacheBytes == 0)
    }
}
