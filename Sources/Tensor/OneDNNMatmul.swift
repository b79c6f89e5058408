import CDNNL
import Foundation

/// The bfloat16 and int8 backend of the GEMM seam: oneDNN's matmul primitive (the library PyTorch runs its
/// CPU bfloat16 matmuls on), `dst[m, n] (f32) = src[m, k] (bf16) x weights[k, n] (bf16) + bias[n] (f32)`,
/// optionally `+ dst` (a sum post-op), float32 accumulation; or `dst (s32) = src (u8) x weights (s8)`, int32
/// accumulation, no scales or zero points (the seam applies those, see `GEMM.linear`).
///
/// The weights are PyTorch's `[n, k]` rows read through strides `(1, ldw)` (oneDNN's `ba` layout of a
/// `[k, n]` matrix), so nothing is transposed or copied here. Primitives are created once per shape and
/// kept in a bounded dictionary: a denoising loop repeats the same few dozen shapes at every step.
///
/// Threads: Debian's oneDNN runs on OpenMP (libgomp), whose idle workers spin after every parallel region
/// and took a third of the CPU from the element-wise ops between GEMMs (measured with perf on 2 cores).
/// So every primitive runs single-threaded (OpenMP's thread count 1 on the calling thread: no OpenMP
/// team at all), and `run` splits the product into column (or row) blocks over `Compute.pool`, one
/// primitive call per worker, each with its own scratchpad (user scratchpad mode).
final class OneDNNMatmul: @unchecked Sendable {
    /// The process-wide instance (one CPU engine).
    static let shared = OneDNNMatmul()

    /// What a primitive depends on besides the data pointers.
    private struct Key: Hashable {
        var m: Int, n: Int, k: Int, ldw: Int, ldc: Int
        var bias: Bool, accumulate: Bool
        var types: Types = .bfloat16
    }

    /// Element types of a product.
    enum Types: Hashable {
        /// bf16 x bf16 -> f32.
        case bfloat16
        /// u8 x s8 -> s32.
        case int8

        /// Bytes of a source and weight element, of an output element.
        var inputBytes: Int { self == .bfloat16 ? 2 : 1 }
        var outputBytes: Int { 4 }
    }

    /// A created primitive, destroyed when the last user lets go (eviction cannot pull it from under a call).
    private final class Primitive {
        let handle: dnnl_primitive_t
        let src: dnnl_memory_desc_t, weights: dnnl_memory_desc_t, bias: dnnl_memory_desc_t?, dst: dnnl_memory_desc_t
        let scratchpad: dnnl_memory_desc_t
        let scratchpadBytes: Int
        let implementation: String

        init(handle: dnnl_primitive_t, src: dnnl_memory_desc_t, weights: dnnl_memory_desc_t, bias: dnnl_memory_desc_t?,
             dst: dnnl_memory_desc_t, scratchpad: dnnl_memory_desc_t, implementation: String) {
            self.handle = handle
            self.src = src
            self.weights = weights
            self.bias = bias
            self.dst = dst
            self.scratchpad = scratchpad
            var d = scratchpad
            scratchpadBytes = dnnl_memory_desc_get_size(&d)
            self.implementation = implementation
        }

        deinit { dnnl_primitive_destroy(handle) }
    }

    /// Shapes kept at most; beyond that the cache starts over (shapes change with batch size and resolution).
    static let capacity = 256

    private let engine: dnnl_engine_t
    private let lock = NSLock()
    private var cache: [Key: Primitive] = [:]

    private init() {
        var e: dnnl_engine_t?
        OneDNNMatmul.check(dnnl_engine_create(&e, dnnl_cpu, 0), "dnnl_engine_create(cpu)")
        engine = e!
    }

    /// oneDNN's name for the kernel it runs for this shape (for example `brg:avx512_core_bf16`).
    func implementation(m: Int, n: Int, k: Int, types: Types = .bfloat16) -> String {
        primitive(Key(m: m, n: n, k: k, ldw: k, ldc: n, bias: false, accumulate: false, types: types)).implementation
    }

    /// `c[m, n] (int32) = a[m, k] (u8) w^T (s8)`, `w` rows `ldw` apart (`[n, k]`), `c` rows `ldc` apart, on the
    /// calling thread (the int8 seam splits the work itself, quantising and scaling around each block).
    func runInt8Block(m: Int, n: Int, k: Int, a: UnsafePointer<UInt8>, w: UnsafePointer<Int8>, ldw: Int,
                      c: UnsafeMutablePointer<Int32>, ldc: Int) {
        runBlock(Key(m: m, n: n, k: k, ldw: ldw, ldc: ldc, bias: false, accumulate: false, types: .int8),
                 a: UnsafeRawPointer(a), w: UnsafeRawPointer(w), bias: nil, c: UnsafeMutableRawPointer(c))
    }

    /// `c[m, n] = a[m, k] w^T (+ bias) (+ c)` with `a` and `w` bfloat16 (`a` packed `[m, k]`, `w` rows `ldw`
    /// apart, `[n, k]`), `c` rows `ldc` apart, split over the pool: column blocks (weights and bias rows)
    /// when n is wide enough, else row blocks.
    func run(m: Int, n: Int, k: Int, a: UnsafePointer<UInt16>, w: UnsafePointer<UInt16>, ldw: Int,
             bias: UnsafePointer<Float>?, accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let threads = Compute.pool.threadCount
        let byColumns = n >= 128 * threads
        let extent = byColumns ? n : m
        // Blocks of whole 16-wide tiles (oneDNN's AVX-512 register blocking), at least 32 rows or columns.
        let parts = max(1, min(threads, extent / 32))
        let step = ((extent + parts - 1) / parts + 15) / 16 * 16
        Compute.pool.parallelFor(parts) { range in
            for part in range {
                let lo = part * step, hi = min(extent, lo + step)
                guard lo < hi else { continue }
                if byColumns {
                    runBlock(Key(m: m, n: hi - lo, k: k, ldw: ldw, ldc: ldc, bias: bias != nil, accumulate: accumulate),
                             a: a, w: w + lo * ldw, bias: bias.map { $0 + lo }, c: c + lo)
                } else {
                    runBlock(Key(m: hi - lo, n: n, k: k, ldw: ldw, ldc: ldc, bias: bias != nil, accumulate: accumulate),
                             a: a + lo * k, w: w, bias: bias, c: c + lo * ldc)
                }
            }
        }
    }

    /// One single-threaded primitive call (`a` packed `[m, k]`, `w` and `c` strided as `key` says).
    private func runBlock(_ key: Key, a: UnsafeRawPointer, w: UnsafeRawPointer, bias: UnsafePointer<Float>?,
                          c: UnsafeMutableRawPointer) {
        let p = primitive(key)
        // OpenMP keeps the thread count per calling thread: 1 on every thread that calls in.
        if omp_get_max_threads() != 1 { omp_set_num_threads(1) }

        var memories: [dnnl_memory_t?] = []
        defer { for mem in memories { dnnl_memory_destroy(mem) } }
        func memory(_ desc: dnnl_memory_desc_t, _ pointer: UnsafeRawPointer) -> dnnl_memory_t {
            var d = desc
            var mem: dnnl_memory_t?
            OneDNNMatmul.check(dnnl_memory_create(&mem, &d, engine, UnsafeMutableRawPointer(mutating: pointer)), "dnnl_memory_create")
            memories.append(mem)
            return mem!
        }
        let scratchBytes = max(p.scratchpadBytes, 64)
        let scratch = BufferCache.shared.allocate(bytes: scratchBytes)
        defer { BufferCache.shared.release(scratch, bytes: scratchBytes) }
        var args = [
            dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: memory(p.src, a)),
            dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: memory(p.weights, w)),
            dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: memory(p.dst, c)),
            dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: memory(p.scratchpad, scratch)),
        ]
        if let bias, let desc = p.bias { args.append(dnnl_exec_arg_t(arg: DNNL_ARG_BIAS, memory: memory(desc, bias))) }
        var stream: dnnl_stream_t?
        OneDNNMatmul.check(dnnl_stream_create(&stream, engine, UInt32(dnnl_stream_default_flags.rawValue)), "dnnl_stream_create")
        defer { dnnl_stream_destroy(stream) }
        OneDNNMatmul.check(dnnl_primitive_execute(p.handle, stream, Int32(args.count), &args), "matmul \(key)")
        OneDNNMatmul.check(dnnl_stream_wait(stream), "dnnl_stream_wait")
    }

    private func primitive(_ key: Key) -> Primitive {
        lock.lock()
        if let p = cache[key] {
            lock.unlock()
            return p
        }
        lock.unlock()
        let p = create(key)
        lock.lock()
        defer { lock.unlock() }
        if let existing = cache[key] { return existing }
        if cache.count >= OneDNNMatmul.capacity { cache.removeAll() }
        cache[key] = p
        return p
    }

    private func create(_ key: Key) -> Primitive {
        func desc(_ dims: [Int], _ strides: [Int], _ type: dnnl_data_type_t) -> dnnl_memory_desc_t {
            var d = dnnl_memory_desc_t()
            OneDNNMatmul.check(
                dnnl_memory_desc_init_by_strides(&d, Int32(dims.count), dims.map(Int64.init), type, strides.map(Int64.init)),
                "memory descriptor \(dims) strides \(strides)")
            return d
        }
        let int8 = key.types == .int8
        var src = desc([key.m, key.k], [key.k, 1], int8 ? dnnl_u8 : dnnl_bf16)
        var weights = desc([key.k, key.n], [1, key.ldw], int8 ? dnnl_s8 : dnnl_bf16)  // `ba`: PyTorch's [n, k] rows
        var dst = desc([key.m, key.n], [key.ldc, 1], int8 ? dnnl_s32 : dnnl_f32)
        var bias = key.bias ? desc([1, key.n], [key.n, 1], dnnl_f32) : nil
        var op = dnnl_matmul_desc_t()
        let status: dnnl_status_t
        if bias != nil {
            status = dnnl_matmul_desc_init(&op, &src, &weights, &bias!, &dst)
        } else {
            status = dnnl_matmul_desc_init(&op, &src, &weights, nil, &dst)
        }
        OneDNNMatmul.check(status, "dnnl_matmul_desc_init \(key)")

        var attr: dnnl_primitive_attr_t?
        OneDNNMatmul.check(dnnl_primitive_attr_create(&attr), "dnnl_primitive_attr_create")
        defer { dnnl_primitive_attr_destroy(attr) }
        OneDNNMatmul.check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode")
        if key.accumulate {
            var ops: dnnl_post_ops_t?
            OneDNNMatmul.check(dnnl_post_ops_create(&ops), "dnnl_post_ops_create")
            defer { dnnl_post_ops_destroy(ops) }
            OneDNNMatmul.check(dnnl_post_ops_append_sum(ops, 1), "dnnl_post_ops_append_sum")
            OneDNNMatmul.check(dnnl_primitive_attr_set_post_ops(attr, ops), "dnnl_primitive_attr_set_post_ops")
        }
        var pd: dnnl_primitive_desc_t?
        OneDNNMatmul.check(dnnl_primitive_desc_create(&pd, &op, attr, engine, nil), "matmul primitive descriptor \(key)")
        defer { dnnl_primitive_desc_destroy(pd) }
        var name: UnsafePointer<CChar>?
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name)
        let scratchpad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0).pointee
        var handle: dnnl_primitive_t?
        OneDNNMatmul.check(dnnl_primitive_create(&handle, pd), "matmul primitive \(key)")
        return Primitive(
            handle: handle!, src: src, weights: weights, bias: bias, dst: dst, scratchpad: scratchpad,
            implementation: name.map { String(cString: $0) } ?? "unknown")
    }

    private static func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) {
        guard status != dnnl_success else { return }
        fatalError("oneDNN: \(what()) failed with status \(status.rawValue)")
    }
}
