import Foundation

/// Keeps freed large tensor buffers for reuse by the next allocation of the same size.
///
/// A denoising loop allocates the same shapes at every step. Without this, glibc hands each
/// large block back to the kernel on free and every new 80 MB activation is page-faulted in again,
/// which costs more than the op that fills it (measured: LayerNorm at [1,256,256,320] 73 ms into
/// a fresh buffer vs 5 ms in place). Only blocks of at least `minimumBytes` are cached, at most
/// `capacityBytes` in all; beyond that a freed block goes back to the system.
///
/// Sizes are exact, so every batch composition and image size a server runs has sizes of its own. A
/// size not asked for in `staleAfter` allocations (of cached sizes, hit or miss) is dropped: its shape
/// is no longer running. Without that the cache keeps one set of blocks for every shape ever seen until
/// `capacityBytes` (2 GB) is full: a service taking many sizes would hold up to 2 GB beyond its working
/// set. (The issue 12 soak, two sizes on the demo model, plateaus at 72 MB cached either way.)
final class BufferCache: @unchecked Sendable {
    static let shared = BufferCache()

    /// Smallest block worth caching (smaller ones are cheap for malloc).
    let minimumBytes = 1 << 20
    /// Allocations of cached sizes after which a size not asked for since is dropped. A prior step of the
    /// real model at 1024 px asks for about 600 (an estimate: 32 blocks of about 20 ops), so a whole prior
    /// schedule (30 steps, about 18,000) passes before the decoder's sizes are asked for again; the
    /// default leaves a margin of 3-4x over that, so one request's decoder keeps its blocks.
    let staleAfter: Int
    private let lock = NSLock()
    private var capacityBytes = 2 << 30
    private var cachedBytes = 0
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    /// Counts allocations of at least `minimumBytes`; `lastUse[size]` is its value when `size` was last asked for.
    private var clock = 0
    private var lastUse: [Int: Int] = [:]

    /// A cache that drops sizes not asked for in `staleAfter` allocations.
    init(staleAfter: Int = 65_536) {
        self.staleAfter = staleAfter
    }

    /// A 64-byte aligned block of `bytes`, recycled when one of that size is cached.
    func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        if bytes >= minimumBytes {
            lock.lock()
            clock += 1
            lastUse[bytes] = clock
            // A sweep every staleAfter / 16 allocations: a stale size lives at most 1/16 longer.
            let stale = clock % max(staleAfter / 16, 1) == 0 ? takeStale() : []
            let reused: UnsafeMutableRawPointer?
            if var list = free[bytes], let p = list.popLast() {
                free[bytes] = list.isEmpty ? nil : list
                cachedBytes -= bytes
                reused = p
            } else {
                reused = nil
            }
            lock.unlock()
            stale.forEach { $0.deallocate() }
            if let reused { return reused }
        }
        return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    }

    /// Removes the blocks of sizes not asked for in `staleAfter` allocations (under `lock`; the caller
    /// frees them after unlocking), and forgets those sizes.
    private func takeStale() -> [UnsafeMutableRawPointer] {
        var dropped: [UnsafeMutableRawPointer] = []
        for (size, last) in lastUse where clock - last > staleAfter {
            if let list = free.removeValue(forKey: size) {
                cachedBytes -= size * list.count
                dropped += list
            }
            lastUse[size] = nil
        }
        return dropped
    }

    /// Returns a block obtained from `allocate(bytes:)`.
    func release(_ p: UnsafeMutableRawPointer, bytes: Int) {
        if bytes >= minimumBytes {
            lock.lock()
            if cachedBytes + bytes <= capacityBytes {
                free[bytes, default: []].append(p)
                cachedBytes += bytes
                lock.unlock()
                return
            }
            lock.unlock()
        }
        p.deallocate()
    }

    /// Frees every cached block (the capacity stays) and returns how many bytes that was: for an idle
    /// service, whose next request may have other sizes and pays only the page faults of its first step.
    @discardableResult
    func drain() -> Int {
        lock.lock()
        let dropped = free.values.flatMap { $0 }
        let bytes = cachedBytes
        free = [:]
        cachedBytes = 0
        lock.unlock()
        dropped.forEach { $0.deallocate() }
        return bytes
    }

    /// Sets the most bytes kept cached, freeing cached blocks beyond it.
    func setCapacity(_ bytes: Int) {
        lock.lock()
        capacityBytes = max(0, bytes)
        var drop: [UnsafeMutableRawPointer] = []
        while cachedBytes > capacityBytes, let size = free.keys.max(), var list = free[size], let p = list.popLast() {
            free[size] = list.isEmpty ? nil : list
            cachedBytes -= size
            drop.append(p)
        }
        lock.unlock()
        drop.forEach { $0.deallocate() }
    }

    /// The current capacity.
    var capacity: Int {
        lock.withLock { capacityBytes }
    }

    /// Bytes currently held for reuse.
    var heldBytes: Int {
        lock.withLock { cachedBytes }
    }
}
