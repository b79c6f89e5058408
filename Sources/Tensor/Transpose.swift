/// Cache-blocked 2-D transpose: Paddle's `[in, out]` Linear weights to PyTorch's `[out, in]` at load
/// (SafeTensors' `WeightLoader`), and `transposed()` for matrices.
public enum Transpose {
    /// Tile edge: 32 x 32 floats (4 KB) of source and destination stay in L1 together.
    public static let tile = 32

    /// `dst[c, r] = src[r, c]`; `src: [rows, cols]`, `dst: [cols, rows]`, row-major, not overlapping.
    /// Splits destination row-tiles across `Compute.pool`.
    public static func matrix(_ src: UnsafePointer<Float>, rows: Int, cols: Int, into dst: UnsafeMutablePointer<Float>) {
        guard rows > 0, cols > 0 else { return }
        let tile = Self.tile
        let colTiles = (cols + tile - 1) / tile
        Compute.pool.parallelFor(colTiles, grain: max(1, (1 << 16) / max(rows * tile, 1))) { range in
            for ct in range {
                let c0 = ct * tile, c1 = min(cols, c0 + tile)
                var r0 = 0
                while r0 < rows {
                    let r1 = min(rows, r0 + tile)
                    for c in c0..<c1 {
                        let d = dst + c * rows
                        var s = src + r0 * cols + c
                        for r in r0..<r1 {
                            d[r] = s.pointee
                            s += cols
                        }
                    }
                    r0 = r1
                }
            }
        }
    }
}

extension Tensor {
    /// The transpose of a matrix (`x.T`), copied. x: [R, C] -> [C, R]
    public func transposed() -> Tensor {
        precondition(rank == 2, "transposed() needs a matrix, got \(shape)")
        let out = Tensor(uninitialized: [dim(1), dim(0)])
        Transpose.matrix(data, rows: dim(0), cols: dim(1), into: out.data)
        return out
    }
}
