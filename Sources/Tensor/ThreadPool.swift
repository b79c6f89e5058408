import CBLAS
import Dispatch
import CKernels
import Foundation

/// Splits loops of the non-BLAS ops across a fixed number of workers.
///
/// Work runs on libdispatch's worker threads through `concurrentPerform`, never more chunks than
/// `threadCount`. Float32 GEMMs run on OpenBLAS's own threads; the two never oversubscribe the cores
/// because every op is synchronous: an op either calls BLAS with its threads or splits its loop here. The
/// exceptions run single-threaded library calls on the pool's workers, so there are still never more busy
/// threads than `threadCount`: attention, whose workers each call OpenBLAS with its thread count set to 1
/// for the duration (see `AttentionKernel`; `BLASThreads.exclusive` keeps other threads' products out
/// meanwhile), and the bfloat16 GEMMs, whose workers each run a
/// single-threaded oneDNN primitive on a block of the product (see `OneDNNMatmul`).
public final class ThreadPool: @unchecked Sendable {
    /// Number of chunks a loop is split into at most.
    public let threadCount: Int

    /// A pool of `threadCount` workers (at least 1).
    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
    }

    /// Calls `body` on disjoint ranges that cover `0..<count`, in parallel, each range holding
    /// at least `grain` indices (except possibly the last). Returns when all ranges are done.
    public func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(threadCount, max(1, count / max(grain, 1)))
        if chunks == 1 {
            body(0..<count)
            return
        }
        let step = (count + chunks - 1) / chunks
        let profile = GEMMProfile.current
        withoutActuallyEscaping(body) { body in
            // concurrentPerform returns only when every iteration has run, so body never escapes.
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = c * step
                let hi = min(count, lo + step)
                if lo < hi { GEMMProfile.inRegion(profile, workers: chunks) { body(lo..<hi) } }
            }
        }
    }
}

/// Process-wide compute settings: the thread count shared by OpenBLAS and the op pool.
///
/// OpenBLAS keeps its thread count in process-global state, so the pool mirrors it here;
/// `configure` is called once at start-up by the executable (`--threads`).
public enum Compute {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var current = ThreadPool(threadCount: ProcessInfo.processInfo.activeProcessorCount)

    /// The pool the ops split their loops over.
    public static var pool: ThreadPool {
        lock.withLock { current }
    }

    /// Sets the number of threads for both OpenBLAS and the op pool (0 or less: all cores).
    public static func configure(threads: Int) {
        let n = threads > 0 ? threads : ProcessInfo.processInfo.activeProcessorCount
        BLASThreads.exclusive(threads: n, keep: true) {}
        lock.lock()
        current = ThreadPool(threadCount: n)
        lock.unlock()
    }

    /// Sets how many bytes of freed large tensor buffers are kept for reuse (default 2 GiB).
    public static func setBufferCacheCapacity(bytes: Int) {
        BufferCache.shared.setCapacity(bytes)
    }

    /// Runs `body` with the buffer cache off (and emptied), then restores its capacity. For loading
    /// weights: the conversions free many weight-sized blocks that no later allocation reuses, and
    /// caching them would only raise the peak resident memory.
    public static func withBufferCacheDisabled<T>(_ body: () throws -> T) rethrows -> T {
        let capacity = BufferCache.shared.capacity
        BufferCache.shared.setCapacity(0)
        defer { BufferCache.shared.setCapacity(capacity) }
        return try body()
    }

    /// Gives memory an idle process holds back to the system: frees the buffer cache's blocks and asks
    /// glibc to return the free pages of every malloc arena (`malloc_trim`). Returns the cache's bytes
    /// freed. The next computation faults its blocks in again (one step's worth of page faults).
    @discardableResult
    public static func releaseIdleMemory() -> Int {
        let bytes = BufferCache.shared.drain()
        ck_malloc_trim()
        return bytes
    }

    /// Bytes of freed tensor buffers currently kept for reuse.
    public static var bufferCacheBytes: Int { BufferCache.shared.heldBytes }

    /// The name of the OpenBLAS kernel family in use (e.g. "Haswell", "Cooperlake").
    public static var blasCoreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// Number of threads OpenBLAS uses.
    public static var blasThreads: Int { Int(openblas_get_num_threads()) }
}
