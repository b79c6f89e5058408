extension GEMM {
    /// The int8 path of `linear`: `c[m, n] = a[m, k] W[rows]^T + bias (+ c)` with `W` held as `Int8Weights`.
    ///
    /// 1. Every row of `a` is quantised to u8 with its own scale `sa[i]` and zero point `za[i]`
    ///    (`ActivationQuantizer`).
    /// 2. The product is split into blocks as the bf16 path splits it (column blocks when n is wide enough,
    ///    else row blocks), one per pool worker; each worker runs its block in chunks of rows through
    ///    oneDNN (`u8 x s8 -> s32`, single-threaded) into an int32 tile and applies, while the tile is in
    ///    cache, `c[i, j] = sa[i] sw[j] (acc[i, j] - za[i] sum_k W[j, k]) + bias[j] (+ c[i, j])`: the
    ///    zero point undone exactly in integers, the scales and bias in float32.
    static func linearInt8(
        m: Int, a: UnsafePointer<Float>, lda: Int, weight q: Int8Weights, rows: Range<Int>,
        bias: UnsafePointer<Float>?, accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let n = rows.count, k = q.cols
        let qBytes = max(m * k, 64), sBytes = m * 8
        let rawQ = BufferCache.shared.allocate(bytes: qBytes), rawS = BufferCache.shared.allocate(bytes: sBytes)
        defer {
            BufferCache.shared.release(rawQ, bytes: qBytes)
            BufferCache.shared.release(rawS, bytes: sBytes)
        }
        let a8 = rawQ.bindMemory(to: UInt8.self, capacity: m * k)
        let scales = rawS.bindMemory(to: Float.self, capacity: m)
        let zeros = (rawS + m * 4).bindMemory(to: Int32.self, capacity: m)
        let levels = Precision.int8ActivationLevels
        Compute.pool.parallelFor(m, grain: max(1, 16384 / max(k, 1))) { r in
            ActivationQuantizer.quantize(a, lda: lda, k: k, rows: r, levels: levels, into: a8, scales: scales, zeros: zeros)
        }

        let threads = Compute.pool.threadCount
        let byColumns = n >= 128 * threads
        let extent = byColumns ? n : m
        let parts = max(1, min(threads, extent / 32))
        let step = ((extent + parts - 1) / parts + 15) / 16 * 16
        let w = q.values + rows.lowerBound * k, ws = q.scales + rows.lowerBound, sums = q.rowSums + rows.lowerBound
        Compute.pool.parallelFor(parts) { range in
            for part in range {
                let lo = part * step, hi = min(extent, lo + step)
                guard lo < hi else { continue }
                let cols = byColumns ? lo..<hi : 0..<n, rowSpan = byColumns ? 0..<m : lo..<hi
                let nc = cols.count
                // Chunks of rows whose int32 tile fits in L2 (about 1 MB), but at least 256 rows, which keeps
                // oneDNN's per-call packing of the weight block (nc x k bytes) small next to its arithmetic.
                let chunk = min(rowSpan.count, max(256, (1 << 20) / (4 * nc)) / 16 * 16)
                let tileBytes = chunk * nc * 4
                let tile = BufferCache.shared.allocate(bytes: tileBytes).bindMemory(to: Int32.self, capacity: chunk * nc)
                defer { BufferCache.shared.release(UnsafeMutableRawPointer(tile), bytes: tileBytes) }
                var r0 = rowSpan.lowerBound
                while r0 < rowSpan.upperBound {
                    let r1 = min(rowSpan.upperBound, r0 + chunk)
                    OneDNNMatmul.shared.runInt8Block(
                        m: r1 - r0, n: nc, k: k, a: a8 + r0 * k, w: w + cols.lowerBound * k, ldw: k, c: tile, ldc: nc)
                    for i in r0..<r1 {
                        dequantizeRow(
                            tile + (i - r0) * nc, count: nc, scale: scales[i], zero: zeros[i], weightScales: ws + cols.lowerBound,
                            weightSums: sums + cols.lowerBound, bias: bias.map { $0 + cols.lowerBound }, accumulate: accumulate,
                            into: c + i * ldc + cols.lowerBound)
                    }
                    r0 = r1
                }
            }
        }
    }

    /// One output row from its int32 accumulators: `out[j] (+)= scale sw[j] (acc[j] - zero sums[j]) + bias[j]`.
    @inline(__always)
    private static func dequantizeRow(
        _ acc: UnsafePointer<Int32>, count: Int, scale: Float, zero: Int32, weightScales sw: UnsafePointer<Float>,
        weightSums sums: UnsafePointer<Int32>, bias: UnsafePointer<Float>?, accumulate: Bool,
        into out: UnsafeMutablePointer<Float>
    ) {
        switch (bias, accumulate) {
        case (let b?, false):
            for j in 0..<count { out[j] = scale * sw[j] * Float(acc[j] &- zero &* sums[j]) + b[j] }
        case (let b?, true):
            for j in 0..<count { out[j] += scale * sw[j] * Float(acc[j] &- zero &* sums[j]) + b[j] }
        case (nil, false):
            for j in 0..<count { out[j] = scale * sw[j] * Float(acc[j] &- zero &* sums[j]) }
        case (nil, true):
            for j in 0..<count { out[j] += scale * sw[j] * Float(acc[j] &- zero &* sums[j]) }
        }
    }

    /// The oneDNN implementation an int8 `[m, k] x [k, n]` product runs on (e.g. `brg:avx512_core_vnni`).
    public static func int8Implementation(m: Int, n: Int, k: Int) -> String {
        OneDNNMatmul.shared.implementation(m: m, n: n, k: k, types: .int8)
    }
}
