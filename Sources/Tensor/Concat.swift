extension Tensor {
    // tensors: [A..., Di, B...] with equal A and B -> [A..., sum Di, B...]

    /// `torch.cat(tensors, dim: axis)`; negative `axis` counts from the end. Channel concatenation of
    /// NHWC tensors is `axis: -1` (Würstchen's skip and effnet inputs, `torch.cat(..., dim=1)` in NCHW);
    /// sequences `[B, L1, C]` + `[B, L2, C]` use `axis: 1`.
    public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concat: no tensors")
        let first = tensors[0]
        let a = axis < 0 ? first.rank + axis : axis
        precondition(a >= 0 && a < first.rank, "concat: axis \(axis) out of range for \(first.shape)")
        for t in tensors {
            precondition(
                t.rank == first.rank
                    && t.shape.enumerated().allSatisfy { $0.offset == a || $0.element == first.shape[$0.offset] },
                "concat along \(axis): \(t.shape) does not match \(first.shape) outside that axis")
        }
        var shape = first.shape
        shape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
        let out = Tensor(uninitialized: shape)
        let outer = first.shape[..<a].reduce(1, *)
        let inner = first.shape[(a + 1)...].reduce(1, *)
        // Per tensor: the contiguous block it contributes to each outer row, and where it starts.
        let blocks = tensors.map { $0.shape[a] * inner }
        var offsets = [Int](repeating: 0, count: tensors.count)
        for i in 1..<Swift.max(1, tensors.count) where i < tensors.count { offsets[i] = offsets[i - 1] + blocks[i - 1] }
        let rowLength = shape[a] * inner
        let sources = tensors.map { UnsafePointer($0.data) }
        let o = out.data
        blocks.withUnsafeBufferPointer { blocks in
            offsets.withUnsafeBufferPointer { offsets in
                sources.withUnsafeBufferPointer { sources in
                    ElementwiseSplit.rows(outer, cols: rowLength) { range in
                        for r in range {
                            for t in 0..<blocks.count where blocks[t] > 0 {
                                (o + r * rowLength + offsets[t]).update(from: sources[t] + r * blocks[t], count: blocks[t])
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
