import Foundation

/// Keeps freed large tensor buffers for reuse by the next allocation of the same size.
///
/// A denoising loop allocates the same shapes at every step. Without this, glibc hands each
/// large block back to the kernel on free and every new 80 MB activation is page-faulted in again,
/// which costs more than the op that fills it (measured: LayerNorm at [1,256,256,320] 73 ms into
/// a fresh buffer vs 5 ms in place). Only blocks of at least `minimumBytes` are cached, at most
/// `capacityBytes` in all; beyond that a freed block goes back to the system.
final class BufferCache: @unchecked Sendable {
    static let shared = BufferCache()

    /// Smallest block worth caching (smaller ones are cheap for malloc).
    let minimumBytes = 1 << 20
    private let lock = NSLock()
    private var capacityBytes = 2 << 30
    private var cachedBytes = 0
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]

    /// A 64-byte aligned block of `bytes`, recycled when one of that size is cached.
    func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        if bytes >= minimumBytes {
            lock.lock()
            if var list = free[bytes], let p = list.popLast() {
                free[bytes] = list.isEmpty ? nil : list
                cachedBytes -= bytes
                lock.unlock()
                return p
            }
            lock.unlock()
        }
        return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
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
        lock.lock()
        defer { lock.unlock() }
        return capacityBytes
    }

    /// Bytes currently held for reuse.
    var heldBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return cachedBytes
    }
}
