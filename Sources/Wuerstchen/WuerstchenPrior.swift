import Foundation
import SafeTensors
import Tensor

// Stage C of Würstchen v2: diffusers `WuerstchenPrior`
// (src/diffusers/pipelines/deprecated/wuerstchen/modeling_wuerstchen_prior.py), in NHWC.
// A 1x1 projection to c channels, `depth` x (ResBlock, TimestepBlock, AttnBlock) at one resolution
// (24 x 24 at 1024 px), LayerNorm + 1x1 conv to (a, b), and `(x_in - a) / (|1 - b| + 1e-5)`.

/// `WuerstchenPrior`'s `config.json`; every default is diffusers' `WuerstchenPrior.__init__` default.
public struct WuerstchenPriorConfig: Codable, Sendable, Equatable {
    // Deliberate parallel of CLIP/CLIPTextModel.swift, PaellaVQModel.swift and
    // WuerstchenDiffNeXt.swift's configs (fields, CodingKeys, init, init(from:)):
    // each is its own checkpoint's config.json, field by field as it is written
    // (STYLE.md: one model family per file with its Codable config), so they are not shared.
    /// Channels of the image embeddings (the effnet latents).
    public var cIn: Int
    /// Width of the residual stream.
    public var c: Int
    /// Width of the CLIP text embeddings (`last_hidden_state`).
    public var cCond: Int
    /// Width of the sinusoidal noise-ratio embedding.
    public var cR: Int
    /// Number of (ResBlock, TimestepBlock, AttnBlock) triples.
    public var depth: Int
    /// Attention heads.
    public var nhead: Int
    /// Training-time dropout; ignored at inference.
    public var dropout: Float

    enum CodingKeys: String, CodingKey {
        case cIn = "c_in"
        case c
        case cCond = "c_cond"
        case cR = "c_r"
        case depth
        case nhead
        case dropout
    }

    /// A configuration; every default is diffusers'.
    public init(cIn: Int = 16, c: Int = 1280, cCond: Int = 1024, cR: Int = 64, depth: Int = 16, nhead: Int = 16, dropout: Float = 0.1) {
        self.cIn = cIn
        self.c = c
        self.cCond = cCond
        self.cR = cR
        self.depth = depth
        self.nhead = nhead
        self.dropout = dropout
    }

    /// Decodes `config.json`, taking the default for every missing key.
    public init(from decoder: Decoder) throws {
        let k = try decoder.container(keyedBy: CodingKeys.self)
        let d = WuerstchenPriorConfig()
        cIn = try k.decodeIfPresent(Int.self, forKey: .cIn) ?? d.cIn
        c = try k.decodeIfPresent(Int.self, forKey: .c) ?? d.c
        cCond = try k.decodeIfPresent(Int.self, forKey: .cCond) ?? d.cCond
        cR = try k.decodeIfPresent(Int.self, forKey: .cR) ?? d.cR
        depth = try k.decodeIfPresent(Int.self, forKey: .depth) ?? d.depth
        nhead = try k.decodeIfPresent(Int.self, forKey: .nhead) ?? d.nhead
        dropout = try k.decodeIfPresent(Float.self, forKey: .dropout) ?? d.dropout
    }

    /// The configuration of `warp-ai/wuerstchen-prior` (993,636,896 parameters).
    public static let v2 = WuerstchenPriorConfig(cIn: 16, c: 1536, cCond: 1280, cR: 64, depth: 32, nhead: 24, dropout: 0.1)

    /// Nil when the configuration can be built, else what is wrong with it.
    public var problem: String? {
        if cIn < 1 || c < 1 || cCond < 1 || depth < 0 { return "c_in \(cIn), c \(c), c_cond \(cCond) and depth \(depth) must be positive" }
        if nhead < 1 || c % nhead != 0 { return "c \(c) is not divisible into nhead \(nhead) heads" }
        // gen_r_embedding divides by c_r // 2 - 1.
        if cR < 4 { return "c_r \(cR) must be at least 4 (gen_r_embedding divides by c_r // 2 - 1)" }
        return nil
    }
}

/// An error in a Stage C model's configuration.
public struct WuerstchenPriorError: Error, CustomStringConvertible {
    /// What is wrong, naming the file or field.
    public let description: String
}

/// Stage C (diffusers `WuerstchenPrior`): noisy image embeddings, noise ratio and CLIP text
/// embeddings in, predicted noise out.
public struct WuerstchenPrior: @unchecked Sendable {
    /// The configuration the model was built from.
    public let config: WuerstchenPriorConfig
    private let projection: Conv2d  // 1x1, c_in -> c
    private let cond_mapper_0: Linear  // c_cond -> c, then LeakyReLU(0.2)
    private let cond_mapper_2: Linear  // c -> c
    private let blocks: [Triple]  // blocks.{3i}, blocks.{3i+1}, blocks.{3i+2}
    private let out_1: Conv2d  // after LayerNorm: 1x1, c -> 2 c_in

    private struct Triple {
        let res: ResBlock
        let timestep: TimestepBlock
        let attn: AttnBlock
    }

    /// The conditioning of a forward pass: for every AttnBlock, the keys and values of the text tokens,
    /// `to_k` / `to_v` of `kv_mapper(cond_mapper(clip))`.
    ///
    /// It depends on the text embeddings only, so a caller may compute it once per request and reuse it
    /// at every denoising step (`WuerstchenPrior.condition(clip:)`), and batch requests with `batched`;
    /// that saves `6 B L c^2` FLOPs per block and step (about a tenth of a step at 512 px).
    public struct Conditioning: @unchecked Sendable {
        /// Per AttnBlock `[B, L, c]`.
        let keys: [Tensor]
        /// Per AttnBlock `[B, L, c]`.
        let values: [Tensor]
        /// Batch size B.
        public var batch: Int { keys.first?.dim(0) ?? 0 }

        /// The rows of `parts` one after the other (torch.cat along the batch), for a batch of requests.
        public static func batched(_ parts: [Conditioning]) -> Conditioning {
            precondition(!parts.isEmpty, "Conditioning.batched needs at least one part")
            let depth = parts[0].keys.count
            precondition(parts.allSatisfy { $0.keys.count == depth }, "Conditioning.batched: parts come from different models")
            if parts.count == 1 { return parts[0] }
            return Conditioning(
                keys: (0..<depth).map { i in Tensor.concat(parts.map { $0.keys[i] }, axis: 0) },
                values: (0..<depth).map { i in Tensor.concat(parts.map { $0.values[i] }, axis: 0) })
        }
    }

    /// Every parameter, named and shaped as diffusers' state dict (`real-prior-tensors.tsv` for `.v2`).
    public static func parameters(_ cfg: WuerstchenPriorConfig) -> [ParameterSpec] {
        let c = cfg.c
        var specs = Declare.conv("projection", cfg.cIn, c, kernel: 1)
            + Declare.linear("cond_mapper.0", cfg.cCond, c) + Declare.linear("cond_mapper.2", c, c)
        for i in 0..<cfg.depth {
            specs += ResBlock.parameters("blocks.\(3 * i)", c: c)
            specs += TimestepBlock.parameters("blocks.\(3 * i + 1)", c: c, cR: cfg.cR)
            // AttnBlock(c, c, nhead): its conditioning is cond_mapper's output, c wide.
            specs += AttnBlock.parameters("blocks.\(3 * i + 2)", c: c, cCond: c)
        }
        specs += Declare.conv("out.1", c, 2 * cfg.cIn, kernel: 1)
        return specs
    }

    /// The model over `weights` (PyTorch layout, names from `parameters(config)`), GEMM weights in `precision`.
    public init(config cfg: WuerstchenPriorConfig, weights: consuming [String: Tensor], precision: Precision = .fp32) throws {
        try self.init(config: cfg, parameters: Weights(tensors: consume weights, precision: precision))
    }

    /// The model over parameters read from `w`, GEMM weights in `w.precision`.
    init(config cfg: WuerstchenPriorConfig, parameters w: Weights) throws {
        if let problem = cfg.problem { throw WuerstchenPriorError(description: "WuerstchenPrior config: \(problem)") }
        config = cfg
        projection = w.conv("projection")
        cond_mapper_0 = w.linear("cond_mapper.0")
        cond_mapper_2 = w.linear("cond_mapper.2")
        blocks = (0..<cfg.depth).map { i in
            Triple(
                res: ResBlock(w, "blocks.\(3 * i)"), timestep: TimestepBlock(w, "blocks.\(3 * i + 1)"),
                attn: AttnBlock(w, "blocks.\(3 * i + 2)", heads: cfg.nhead))
        }
        out_1 = w.conv("out.1")
    }

    /// Loads `config.json` and the weights of a `prior` folder (diffusers or Paddle layout, fp32 or fp16).
    /// Tensors are read one at a time and converted to `precision` as the modules take them.
    public init(folder: URL, variant: WeightsVariant = .preferFull, precision: Precision = .fp32) throws {
        let cfg = try loadConfig(WuerstchenPriorConfig.self, from: folder)
        if let problem = cfg.problem {
            throw WuerstchenPriorError(description: "\(folder.appendingPathComponent("config.json").path): \(problem)")
        }
        let parameters = try ModelFolder.locateWeights(in: folder, variant: variant).lazy(Self.parameters(cfg))
        try self.init(config: cfg, parameters: Weights(lazy: parameters, precision: precision))
    }

    /// `cond_mapper(clip)` and every AttnBlock's `kv_mapper` of it (`SiLU` shared, then one GEMM per block).
    /// clip: [B, L, c_cond] CLIP `last_hidden_state`
    public func condition(clip: Tensor) -> Conditioning {
        precondition(
            clip.rank == 3 && clip.dim(2) == config.cCond,
            "WuerstchenPrior: clip embeddings must be [B, L, \(config.cCond)], got \(clip.shape)")
        let h = cond_mapper_0(clip).leakyRelu(negativeSlope: 0.2)  // [B, L, c]
        let cEmbed = cond_mapper_2(h)  // [B, L, c]
        // kv_mapper = Sequential(SiLU, Linear): the SiLU is the same for every block.
        cEmbed.siluInPlace()
        var keys: [Tensor] = [], values: [Tensor] = []
        for block in blocks {
            let kv = block.attn.kvMapper(cEmbed)  // [B, L, c]
            keys.append(PriorAttention.project(kv, block.attn.attention, part: 1))
            values.append(PriorAttention.project(kv, block.attn.attention, part: 2))
        }
        return Conditioning(keys: keys, values: values)
    }

    /// The predicted noise for image embeddings `x` at noise ratios `r` (one per row) under `clip`.
    /// x: [B, h, w, c_in] (NHWC), r: [B], clip: [B, 77, c_cond] -> [B, h, w, c_in]
    public func callAsFunction(_ x: Tensor, r: [Float], clip: Tensor) -> Tensor {
        self(x, r: r, conditioning: condition(clip: clip))
    }

    /// As `callAsFunction(_:r:clip:)` with the conditioning already computed by `condition(clip:)`.
    /// x: [B, h, w, c_in] -> [B, h, w, c_in]
    public func callAsFunction(_ xIn: Tensor, r: [Float], conditioning: Conditioning) -> Tensor {
        let cIn = config.cIn
        precondition(xIn.rank == 4 && xIn.dim(3) == cIn, "WuerstchenPrior: x must be [B, h, w, \(cIn)], got \(xIn.shape)")
        let b = xIn.dim(0)
        precondition(r.count == b, "WuerstchenPrior: r has \(r.count) values for a batch of \(b)")
        precondition(conditioning.batch == b, "WuerstchenPrior: conditioning batch \(conditioning.batch) differs from x batch \(b)")
        let rEmbed = rEmbedding(r, cR: config.cR)  // [B, c_r]
        var x = projection(xIn)  // [B, h, w, c]
        for (i, block) in blocks.enumerated() {
            x = block.res(x)
            block.timestep.apply(x, rEmbed)
            x = PriorAttention.apply(block.attn.attention, x, textKeys: conditioning.keys[i], textValues: conditioning.values[i])
        }
        wuerstchenLayerNorm.applyInPlace(x)
        let ab = out_1(x)  // [B, h, w, 2 c_in]: a = channels 0..<c_in, b = c_in..<2 c_in
        // (x_in - a) / ((1 - b).abs() + 1e-5), one float32 rounding per torch op.
        let out = Tensor(uninitialized: xIn.shape)
        let pixels = xIn.count / cIn
        let src = xIn.data, abp = ab.data, dst = out.data
        let eps: Float = 1e-5
        for p in 0..<pixels {
            let xi = src + p * cIn, a = abp + p * 2 * cIn, o = dst + p * cIn
            for j in 0..<cIn {
                let num = xi[j] - a[j]
                let den = Swift.abs(1 - a[cIn + j]) + eps
                o[j] = num / den
            }
        }
        return out
    }
}

/// `AttnBlock.forward` (self_attn=True) with the text tokens' keys and values already projected:
/// keys/values are `cat([norm_x, kv])` projected row by row, so the text rows' projections can be
/// computed once (`WuerstchenPrior.condition`) and only the image rows' are computed here, straight into
/// place. Same arithmetic as `AttnBlock.callAsFunction(_:mappedKV:)` up to GEMM summation order.
enum PriorAttention {
    /// Rows `part * E ..< (part + 1) * E` of the stacked projection (0 query, 1 key, 2 value) applied
    /// to x. x: [B, L, E] -> [B, L, E]
    static func project(_ x: Tensor, _ attn: MultiheadAttention, part: Int) -> Tensor {
        let e = attn.embedDim
        let y = Tensor(uninitialized: x.shape)
        project(x.data, rows: x.count / e, attn, part: part, into: y.data)
        return y
    }

    /// `rows` rows of E at `x` through projection `part`, written to `rows` consecutive rows at `out`.
    static func project(_ x: UnsafePointer<Float>, rows: Int, _ attn: MultiheadAttention, part: Int, into out: UnsafeMutablePointer<Float>) {
        let e = attn.embedDim
        GEMM.linear(
            m: rows, a: x, lda: e, weight: attn.in_proj_weight, rows: (part * e)..<((part + 1) * e),
            bias: attn.in_proj_bias.data + part * e, c: out, ldc: e)
    }

    /// x: [B, h, w, E], textKeys / textValues: [B, L, E] -> x + attention(norm(x)), [B, h, w, E]
    static func apply(_ attn: MultiheadAttention, _ x: Tensor, textKeys: Tensor, textValues: Tensor) -> Tensor {
        let b = x.dim(0), e = x.dim(3), n = x.count / (b * e), l = textKeys.dim(1)
        let normX = wuerstchenLayerNorm(x)  // [B*n, E]
        // One GEMM for the image rows' queries, keys and values: [B*n, 3E].
        let qkv = Tensor(uninitialized: [b * n, 3 * e])
        GEMM.linear(
            m: b * n, a: normX.data, lda: e, weight: attn.in_proj_weight, bias: attn.in_proj_bias.data,
            c: qkv.data, ldc: 3 * e)
        // Split into q [B, n, E] and k, v [B, n + L, E] (image rows, then the text rows).
        let q = Tensor(uninitialized: [b, n, e])
        let k = Tensor(uninitialized: [b, n + l, e]), v = Tensor(uninitialized: [b, n + l, e])
        Compute.pool.parallelFor(b * (n + l), grain: 32) { r in
            for row in r {
                let i = row / (n + l), j = row % (n + l)
                let kd = k.data + row * e, vd = v.data + row * e
                if j < n {
                    let src = qkv.data + (i * n + j) * 3 * e
                    (q.data + (i * n + j) * e).update(from: src, count: e)
                    kd.update(from: src + e, count: e)
                    vd.update(from: src + 2 * e, count: e)
                } else {
                    kd.update(from: textKeys.data + (i * l + j - n) * e, count: e)
                    vd.update(from: textValues.data + (i * l + j - n) * e, count: e)
                }
            }
        }
        let o = attn.out_proj(scaledDotProductAttention(q: q, k: k, v: v, heads: attn.heads))  // [B, n, E]
        o.addInPlace(x.reshaped(o.shape))
        return o.reshaped(x.shape)
    }
}
