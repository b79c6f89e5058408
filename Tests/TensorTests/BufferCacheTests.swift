import Testing
@testable import Tensor

@Suite(.serialized) struct BufferCacheTests {
    @Test func recycledBuffersAreReusedAndZeroedWhenAsked() {
        let shape = [1, 513, 1031]  // about 2 MiB: cached, and a size no other test allocates
        var first: UnsafeMutablePointer<Float>?
        do {
            let t = Tensor(shape: shape, repeating: 7)
            first = t.data
        }
        let again = Tensor(zeros: shape)
        // The block freed above comes back (nothing else of that size is allocated in between
        // on this path), and `zeros` must not leak the old contents.
        #expect(again.data == first)
        #expect(again.maxAbs() == 0)
    }

    @Test func capacityBoundsWhatIsKept() {
        Compute.setBufferCacheCapacity(bytes: 0)
        defer { Compute.setBufferCacheCapacity(bytes: 2 << 30) }
        do { _ = Tensor(zeros: [1 << 20]) }
        #expect(Compute.bufferCacheBytes == 0)
    }
}
