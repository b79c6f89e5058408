#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only (POSIX `mmap`), unmapped when the last reference goes.
///
/// The mapping is `PROT_READ`: views into it (borrowed tensors) must never be written. If the
/// file is truncated by someone else while mapped, reading the lost pages raises SIGBUS: the
/// format cannot protect against that, so weights should not be replaced in place while served.
final class MappedFile: @unchecked Sendable {
    /// First byte (nil for an empty file, which is never mapped).
    let base: UnsafeRawPointer?
    /// File size in bytes.
    let size: Int

    /// Maps `path`; throws `SafeTensorsError` naming the file on any failure.
    init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw SafeTensorsError(file: path, reason: "cannot open: \(Self.errnoText())")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw SafeTensorsError(file: path, reason: "cannot stat: \(Self.errnoText())")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError(file: path, reason: "not a regular file")
        }
        size = Int(st.st_size)
        guard size > 0 else {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw SafeTensorsError(file: path, reason: "cannot map \(size) bytes: \(Self.errnoText())")
        }
        base = UnsafeRawPointer(p)
    }

    /// Hints the kernel about the coming access pattern (`MADV_SEQUENTIAL` etc.); advisory only.
    func advise(_ advice: Int32, range: Range<Int>? = nil) {
        guard let base, size > 0 else { return }
        let r = range ?? 0..<size
        // madvise wants a page-aligned start.
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = r.lowerBound / page * page
        guard r.upperBound > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), r.upperBound - start, advice)
    }

    /// Drops the resident pages wholly inside `range` from this process (`MADV_DONTNEED`; the data
    /// stays in the page cache and a later read faults it back in). Called once a tensor has been
    /// copied out, so that loading a model does not hold the whole file resident on top of the
    /// converted weights.
    func dropPages(_ range: Range<Int>) {
        guard let base, size > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound + page - 1) / page * page
        let end = range.upperBound / page * page
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }

    /// The bytes as a buffer.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: base == nil ? 0 : size) }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
