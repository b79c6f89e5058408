import CBLAS
import Dispatch
import Foundation
import Testing

@testable import Tensor

/// `BLASThreads`: a float32 product gives the same bits while attention on another thread changes OpenBLAS's
/// thread count (CI, 2026-12-04: the test suite's parallel pipelines gave other pixels for the same request).
@Suite(.enabled(if: ProcessInfo.processInfo.activeProcessorCount > 1, "attention uses one worker on one core"))
struct BLASThreadsTests {
    /// The shape where one OpenBLAS thread and two give different bits on Zen 3 (38% of the elements).
    static let m = 1024, n = 32, k = 288

    static func random(_ count: Int, seed: UInt64) -> Tensor {
        var g = SplitMix(seed: seed)
        return Tensor(shape: [count], values: (0..<count).map { _ in g.nextFloat() })
    }

    static func product(_ a: Tensor, _ b: Tensor) -> [Float] {
        let c = Tensor(uninitialized: [m * n])
        GEMM.sgemm(m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: n, c: c.data, ldc: n)
        return (0..<c.count).map { c[flat: $0] }
    }

    @Test func productsKeepTheirBitsWhileAttentionRunsElsewhere() {
        let a = Self.random(Self.m * Self.k, seed: 1), b = Self.random(Self.k * Self.n, seed: 2)
        let threads = Int(openblas_get_num_threads())
        let reference = Self.product(a, b)
        // The test can fail only where the thread count changes the bits: one thread computed inside the section.
        let oneThread = BLASThreads.exclusive(threads: 1) { () -> [Float] in
            let c = Tensor(uninitialized: [Self.m * Self.n])
            GEMM.sgemmInExclusiveSection(m: Self.m, n: Self.n, k: Self.k, a: a.data, lda: Self.k, b: b.data, ldb: Self.n,
                                         c: c.data, ldc: Self.n)
            return (0..<c.count).map { c[flat: $0] }
        }
        let differing = zip(reference, oneThread).filter { $0 != $1 }.count
        print("sgemm \(Self.m)x\(Self.n)x\(Self.k): \(threads) OpenBLAS threads vs 1 differ in \(differing) of \(reference.count) elements")
        if threads == 1 || differing == 0 { return }  // nothing this test could see on this machine

        // Attention with several workers (it sets OpenBLAS to one thread) on another thread, over and over.
        let q = Self.random(2 * 576 * 256, seed: 3), kv = Self.random(2 * 653 * 256, seed: 4)
        let stop = Locked(false), rounds = Locked(0)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            while !stop.get {
                _ = scaledDotProductAttention(q: q.reshaped([2, 576, 256]), k: kv.reshaped([2, 653, 256]),
                                              v: kv.reshaped([2, 653, 256]), heads: 4)
                rounds.withValue { $0 += 1 }
            }
            done.signal()
        }
        var mismatches = 0, products = 0
        let start = Date()
        while rounds.get < 20 && Date().timeIntervalSince(start) < 60 {
            if Self.product(a, b) != reference { mismatches += 1 }
            products += 1
        }
        stop.withValue { $0 = true }
        done.wait()
        print("\(products) products during \(rounds.get) attention rounds: \(mismatches) with other bits")
        #expect(rounds.get > 0 && products > 0)
        #expect(mismatches == 0)
        #expect(Int(openblas_get_num_threads()) == threads)  // restored
    }
}
