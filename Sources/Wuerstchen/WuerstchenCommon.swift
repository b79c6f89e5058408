import Foundation
import SafeTensors
import Tensor

// Blocks shared by Stage C (WuerstchenPrior) and Stage B (WuerstchenDiffNeXt), ported from diffusers
// src/diffusers/pipelines/deprecated/wuerstchen/modeling_wuerstchen_common.py to NHWC: the
// permutes around WuerstchenLayerNorm and the channelwise MLPs vanish because channels are last.

/// `WuerstchenLayerNorm(c, elementwise_affine=False, eps=1e-6)`: LayerNorm over channels.
let wuerstchenLayerNorm = LayerNorm(weight: nil, bias: nil, eps: 1e-6)

/// `gen_r_embedding` of both models: sinusoidal embedding of the noise ratio r.
/// r: [B] -> [B, c_r] (sin half, then cos half, zero-padded when c_r is odd)
func rEmbedding(_ r: [Float], cR: Int, maxPositions: Float = 10000) -> Tensor {
    let half = cR / 2
    let out = Tensor(zeros: [r.count, cR])
    // torch: emb = log(max_positions) / (half_dim - 1) in double, then arange.float().mul(-emb).exp()
    // in float32: the double scalar is rounded to float before the product.
    let step = Float(-(log(Double(maxPositions)) / Double(half - 1)))
    let freqs = (0..<half).map { Foundation.exp(Float($0) * step) }
    for (b, rb) in r.enumerated() {
        let scaled = rb * maxPositions
        for i in 0..<half {
            let v = scaled * freqs[i]
            out.data[b * cR + i] = Foundation.sin(v)
            out.data[b * cR + half + i] = Foundation.cos(v)
        }
    }
    return out
}

/// `TimestepBlock(c, c_timestep)`: `x * (1 + a) + b` with `a, b = mapper(t).chunk(2)`.
struct TimestepBlock {
    let mapper: Linear  // [2c, c_r]

    static func parameters(_ prefix: String, c: Int, cR: Int) -> [ParameterSpec] {
        Declare.linear(prefix + ".mapper", cR, 2 * c)
    }

    init(_ w: Weights, _ prefix: String) { mapper = w.linear(prefix + ".mapper") }

    /// x: [B, H, W, C] (modulated in place), t: [B, c_r]
    func apply(_ x: Tensor, _ t: Tensor) {
        x.modulateInPlace(scaleShift: mapper(t))
    }
}

/// Stage C's `ResBlock(c, c_skip=0)`: depthwise conv, LayerNorm, then the ConvNeXt-V2 MLP
/// `Linear(c, 4c) -> GELU -> GlobalResponseNorm(4c) -> Linear(4c, c)`, plus the residual.
struct ResBlock {
    let depthwise: DepthwiseConv2d
    let channelwise0: Linear
    let channelwise2: GlobalResponseNorm
    let channelwise4: Linear

    static func parameters(_ prefix: String, c: Int, kernelSize: Int = 3) -> [ParameterSpec] {
        Declare.conv(prefix + ".depthwise", c, c, kernel: kernelSize, groups: c)
            + Declare.linear(prefix + ".channelwise.0", c, 4 * c)
            + [ParameterSpec(prefix + ".channelwise.2.gamma", [1, 1, 1, 4 * c]),
               ParameterSpec(prefix + ".channelwise.2.beta", [1, 1, 1, 4 * c])]
            + Declare.linear(prefix + ".channelwise.4", 4 * c, c)
    }

    init(_ w: Weights, _ prefix: String) {
        depthwise = DepthwiseConv2d(weight: w.take(prefix + ".depthwise.weight"), bias: w[prefix + ".depthwise.bias"], paddingMode: .zeros)
        channelwise0 = w.linear(prefix + ".channelwise.0")
        channelwise2 = GlobalResponseNorm(gamma: w[prefix + ".channelwise.2.gamma"], beta: w[prefix + ".channelwise.2.beta"])
        channelwise4 = w.linear(prefix + ".channelwise.4")
    }

    /// x: [B, H, W, C] -> [B, H, W, C]
    func callAsFunction(_ x: Tensor) -> Tensor {
        let h = depthwise(x)
        wuerstchenLayerNorm.applyInPlace(h)
        let y = channelwise0(h)  // [B, H, W, 4C]
        y.geluInPlace()
        channelwise2.applyInPlace(y)
        let out = channelwise4(y)
        out.addInPlace(x)
        return out
    }
}

/// `AttnBlock(c, c_cond, nhead, self_attn=True)`: LayerNorm, then diffusers `Attention` (to_q, to_k,
/// to_v, to_out.0) with keys and values `cat([norm_x, kv_mapper(cond)])`, plus the residual.
struct AttnBlock {
    let kvMapper: Linear  // kv_mapper.1, after SiLU
    let attention: MultiheadAttention

    static func parameters(_ prefix: String, c: Int, cCond: Int) -> [ParameterSpec] {
        Declare.linear(prefix + ".kv_mapper.1", cCond, c)
            + Declare.linear(prefix + ".attention.to_q", c, c) + Declare.linear(prefix + ".attention.to_k", c, c)
            + Declare.linear(prefix + ".attention.to_v", c, c) + Declare.linear(prefix + ".attention.to_out.0", c, c)
    }

    init(_ w: Weights, _ prefix: String, heads: Int) {
        kvMapper = w.linear(prefix + ".kv_mapper.1")
        // q, k and v are stacked into one [3c, c] projection: the separate ones are taken and freed.
        attention = MultiheadAttention(
            query: w.takeLinear(prefix + ".attention.to_q"), key: w.takeLinear(prefix + ".attention.to_k"),
            value: w.takeLinear(prefix + ".attention.to_v"), out: w.linear(prefix + ".attention.to_out.0"), heads: heads
        ).converted(to: w.precision)
    }

    /// `kv_mapper(cond)`, computed once per forward for every block that shares `cond`.
    /// cond: [B, L, c_cond] -> [B, L, C]
    func mapCondition(_ cond: Tensor) -> Tensor { kvMapper(cond.silu()) }

    /// x: [B, H, W, C], kv: [B, L, C] already mapped -> [B, H, W, C]
    func callAsFunction(_ x: Tensor, mappedKV kv: Tensor) -> Tensor {
        let b = x.dim(0), c = x.dim(3)
        let normX = wuerstchenLayerNorm(x).reshaped([b, x.count / (b * c), c])
        let out = attention(normX, keyValue: kv, selfAttention: true)
        out.addInPlace(x.reshaped(out.shape))
        return out.reshaped(x.shape)
    }
}
