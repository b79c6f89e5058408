import CBLAS
import Foundation

/// OpenBLAS's thread count is process state, and OpenBLAS's results depend on it: on AMD EPYC Zen 3 with
/// OpenBLAS 0.3.21 (Haswell kernels) one thread and two give different bits in 38% of the elements of a
/// 1024 x 32 x 288 sgemm (and in 0 of a 64 x 4 x 32 one, below its threading threshold). Attention sets it to
/// 1 while its workers run their per-head products and restores it; without a rule, a product computed at
/// the same time on another thread (a second pipeline in the same process: the test suite's parallel
/// suites) ran at whatever count was set at that moment, and the same request gave other pixels
/// (CI, 2026-12-04: Int8ParityTests' float32 VQ-GAN, BatchingSchedulerTests.arrivalsJoinARunningBatch,
/// ImageFormatAPITests.parametersInsideReproduceTheImage).
///
/// The rule: every float32 product (`GEMM.sgemm`) holds this lock shared; a change of the count holds it
/// exclusively for as long as the changed count is in use (`exclusive`), and products inside that section
/// go straight to OpenBLAS (`GEMM.sgemmInExclusiveSection`). Uncontended, a shared hold costs two atomic
/// operations per product.
@usableFromInline
enum BLASThreads {
    private static let lock: UnsafeMutablePointer<pthread_rwlock_t> = {
        let p = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
        // Not inside `precondition`: release builds are -Ounchecked, which drops its condition, call included.
        let rc = pthread_rwlock_init(p, nil)
        if rc != 0 { fatalError("pthread_rwlock_init failed: \(rc)") }
        return p
    }()

    /// Runs `body` while OpenBLAS's thread count cannot change.
    @usableFromInline
    static func shared<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    /// Runs `body` with OpenBLAS at `threads` and no product outside `body` running; restores the previous
    /// count unless `keep`. Products inside `body` (on any thread) must use `GEMM.sgemmInExclusiveSection`:
    /// the lock is not reentrant.
    static func exclusive<T>(threads: Int, keep: Bool = false, _ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        let before = openblas_get_num_threads()
        if before != Int32(threads) { openblas_set_num_threads(Int32(threads)) }
        defer { if !keep && before != Int32(threads) { openblas_set_num_threads(before) } }
        return try body()
    }
}
