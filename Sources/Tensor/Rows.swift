/// Rows of a batch: the first dimension of a `[B, ...]` tensor taken, stacked, repeated and written
/// back, as the pipelines batch requests and the VQ-GAN walks an image band by band
/// (`x[a:b]`, `torch.cat(xs, dim=0)`, `repeat_interleave(n, dim=0)` in the reference pipelines).
///
/// The `...View` functions share this tensor's storage (no copy): writing through the view writes
/// into this tensor, and the view keeps the storage alive. The others return new storage.
extension Tensor {
    /// Elements per row: the product of every dimension after the first (1 for a rank-1 tensor).
    public var rowLength: Int { Tensor.elementCount(Array(shape.dropFirst())) }

    /// `x[range]` along the first dimension, copied. x: [B, ...] -> [range.count, ...]
    public func rows(_ range: Range<Int>) -> Tensor {
        let view = rowsView(range)
        let out = Tensor(uninitialized: view.shape)
        out.data.update(from: view.data, count: view.count)
        return out
    }

    /// `x[range]` along the first dimension over this tensor's storage. x: [B, ...] -> [range.count, ...]
    public func rowsView(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= dim(0),
                     "rows \(range) out of range for a tensor of shape \(shape)")
        return view(offset: range.lowerBound * rowLength, shape: [range.count] + Array(shape.dropFirst()))
    }

    /// Row `i` without the batch dimension, over this tensor's storage. x: [B, ...] -> [...]
    public func row(_ i: Int) -> Tensor {
        precondition(rank >= 2 && i >= 0 && i < dim(0), "row \(i) out of range for a tensor of shape \(shape)")
        return view(offset: i * rowLength, shape: Array(shape.dropFirst()))
    }

    /// The `elementCount(shape)` elements from flat index `offset` on as a tensor of `shape`, over this
    /// tensor's storage.
    public func view(offset: Int, shape newShape: [Int]) -> Tensor {
        let n = Tensor.elementCount(newShape)
        precondition(offset >= 0 && offset + n <= count,
                     "a view of \(newShape) at element \(offset) does not fit in \(shape) (\(count) elements)")
        return Tensor(shape: newShape, storage: TensorStorage(borrowing: data + offset, count: n, owner: storage))
    }

    // xs: [B_i, ...] with equal trailing shapes -> [sum B_i, ...]

    /// `torch.cat(xs, dim=0)`: the rows of every tensor one after the other. A single tensor is returned
    /// as it is (its storage shared).
    public static func stacked(_ xs: [Tensor]) -> Tensor { xs.count == 1 ? xs[0] : Tensor.concat(xs, axis: 0) }

    /// `repeat_interleave(times, dim=0)`: each row repeated `times` times in place.
    /// x: [B, ...] -> [B * times, ...]
    public func repeatingRows(_ times: Int) -> Tensor {
        precondition(rank >= 1 && times >= 0, "repeatingRows(\(times)) of a tensor of shape \(shape)")
        let per = rowLength
        let out = Tensor(uninitialized: [dim(0) * times] + Array(shape.dropFirst()))
        for b in 0..<dim(0) {
            for k in 0..<times { (out.data + (b * times + k) * per).update(from: data + b * per, count: per) }
        }
        return out
    }

    /// Writes the rows of `source` into this tensor's rows `row..<(row + source.dim(0))`.
    /// self: [B, ...], source: [n, ...] with the same trailing shape.
    public func updateRowsInPlace(from source: Tensor, at row: Int) {
        precondition(source.rank == rank && source.shape.dropFirst() == shape.dropFirst(),
                     "updateRowsInPlace: rows of \(source.shape) do not fit rows of \(shape)")
        let target = rowsView(row..<(row + source.dim(0)))
        target.data.update(from: source.data, count: source.count)
    }
}
