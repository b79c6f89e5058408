/// Dimension permutations, for the few places where PyTorch's NCHW order meets the engine's NHWC:
/// noise drawn in NCHW order (to match torch's generator stream), embeddings written as diffusers does.
extension Tensor {
    /// `torch.permute`: output dimension i is input dimension `dims[i]`; a contiguous copy.
    public func permuted(_ dims: [Int]) -> Tensor {
        precondition(dims.count == rank && Set(dims) == Set(0..<rank), "permutation \(dims) does not fit rank \(rank)")
        let outShape = dims.map { shape[$0] }
        let out = Tensor(uninitialized: outShape)
        guard count > 0 else { return out }
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] }
        let strides = dims.map { inStrides[$0] }  // input stride of each output dimension
        // Walk the output in order; the innermost output dimension is a strided gather.
        let inner = outShape[rank - 1], innerStride = strides[rank - 1]
        let outer = count / inner
        let src = data, dst = out.data
        Compute.pool.parallelFor(outer, grain: 64) { range in
            var index = [Int](repeating: 0, count: rank)
            for o in range {
                var rem = o, offset = 0
                for d in stride(from: rank - 2, through: 0, by: -1) {
                    index[d] = rem % outShape[d]
                    rem /= outShape[d]
                    offset += index[d] * strides[d]
                }
                let row = dst + o * inner
                for i in 0..<inner { row[i] = src[offset + i * innerStride] }
            }
        }
        return out
    }

    /// [N, C, H, W] -> [N, H, W, C]
    public func nchwToNHWC() -> Tensor {
        precondition(rank == 4, "nchwToNHWC needs a 4-D tensor, got \(shape)")
        return permuted([0, 2, 3, 1])
    }

    /// [N, H, W, C] -> [N, C, H, W]
    public func nhwcToNCHW() -> Tensor {
        precondition(rank == 4, "nhwcToNCHW needs a 4-D tensor, got \(shape)")
        return permuted([0, 3, 1, 2])
    }
}
