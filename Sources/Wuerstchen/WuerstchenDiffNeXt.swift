import Foundation
import SafeTensors
import Tensor

// Stage B of Würstchen v2: diffusers `WuerstchenDiffNeXt`
// (src/diffusers/pipelines/deprecated/wuerstchen/modeling_wuerstchen_diffnext.py), ported to NHWC.
// A U-Net over the VQ-GAN latent: PixelUnshuffle + 1x1 conv embedding, levels of ResBlockStageB /
// TimestepBlock / AttnBlock going down (2x2 stride-2 convs between levels) and up (2x2 stride-2
// transposed convs), skip connections into the first block of every level but the deepest, the
// Stage C image embeddings ("effnet") resized to every level and injected through 1x1 conv mappers,
// CLIP text embeddings as extra keys and values of every attention block. It predicts noise:
// `(x - a) / (sigmoid(b) * (1 - 2 eps) + eps)` with `a, b` from the head.
//
// One rearrangement that changes rounding only: an effnet mapper is a 1x1 conv `M` (16 -> c_cond)
// whose output only ever enters the first Linear `W` of a ResBlockStageB, so
// `W_e (M e + b_M) = (W_e M) e + W_e b_M`. The product `W_e M` ([4c, 16]) is formed once at load and
// the block's Linear reads the 16 resized effnet channels instead of c_cond mapped ones: 1024 of its
// 1664 (level 1) or 2304 (level 2) input columns disappear, about a quarter of Stage B's FLOPs.

/// `WuerstchenDiffNeXt`'s configuration as diffusers writes it to `config.json`; defaults are
/// diffusers' `__init__` defaults, which are also the published `warp-ai/wuerstchen` decoder.
public struct WuerstchenDiffNeXtConfig: Codable, Sendable, Equatable {
    // Deliberate parallel of CLIP/CLIPTextModel.swift, PaellaVQModel.swift and
    // WuerstchenPrior.swift's configs (fields, CodingKeys, init, init(from:)):
    // each is its own checkpoint's config.json, field by field as it is written
    // (STYLE.md: one model family per file with its Codable config), so they are not shared.
    /// `dropout`: one rate for every level, or one per level (training only; kept for round trips).
    public enum Dropout: Codable, Sendable, Equatable {
        /// The same rate at every level (`dropout=0.1`).
        case uniform(Float)
        /// One rate per level (`dropout=[0.1, 0.1, 0.2, 0.2]`).
        case perLevel([Float])

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let v = try? c.decode(Float.self) { self = .uniform(v) } else { self = .perLevel(try c.decode([Float].self)) }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .uniform(let v): try c.encode(v)
            case .perLevel(let v): try c.encode(v)
            }
        }
    }

    /// Latent channels in.
    public var cIn: Int
    /// Latent channels out (the predicted noise; must equal `cIn`).
    public var cOut: Int
    /// Width of the noise-level embedding `gen_r_embedding`.
    public var cR: Int
    /// PixelUnshuffle factor of the embedding (and PixelShuffle of the head).
    public var patchSize: Int
    /// Width of the conditioning: CLIP tokens after `clip_mapper`, effnet after its mappers.
    public var cCond: Int
    /// Channels per level, finest first.
    public var cHidden: [Int]
    /// Attention heads per level (`-1` where the level has no attention).
    public var nhead: [Int]
    /// Repetitions of the level's block pattern, per level.
    public var blocks: [Int]
    /// Block pattern per level: `C` ResBlockStageB, `T` TimestepBlock, `A` AttnBlock.
    public var levelConfig: [String]
    /// Whether the level's ResBlocks receive the resized image embeddings, per level.
    public var injectEffnet: [Bool]
    /// Channels of the image embeddings (Stage C's output).
    public var effnetEmbd: Int
    /// Width of the CLIP text embeddings.
    public var clipEmbd: Int
    /// Depthwise kernel size of the ResBlocks.
    public var kernelSize: Int
    /// Dropout rates (unused in inference).
    public var dropout: Dropout

    enum CodingKeys: String, CodingKey {
        case cIn = "c_in"
        case cOut = "c_out"
        case cR = "c_r"
        case patchSize = "patch_size"
        case cCond = "c_cond"
        case cHidden = "c_hidden"
        case nhead
        case blocks
        case levelConfig = "level_config"
        case injectEffnet = "inject_effnet"
        case effnetEmbd = "effnet_embd"
        case clipEmbd = "clip_embd"
        case kernelSize = "kernel_size"
        case dropout
    }

    /// A configuration; every default is diffusers' `WuerstchenDiffNeXt.__init__` default.
    public init(
        cIn: Int = 4, cOut: Int = 4, cR: Int = 64, patchSize: Int = 2, cCond: Int = 1024,
        cHidden: [Int] = [320, 640, 1280, 1280], nhead: [Int] = [-1, 10, 20, 20], blocks: [Int] = [4, 4, 14, 4],
        levelConfig: [String] = ["CT", "CTA", "CTA", "CTA"], injectEffnet: [Bool] = [false, true, true, true],
        effnetEmbd: Int = 16, clipEmbd: Int = 1024, kernelSize: Int = 3, dropout: Dropout = .uniform(0.1)
    ) {
        self.cIn = cIn
        self.cOut = cOut
        self.cR = cR
        self.patchSize = patchSize
        self.cCond = cCond
        self.cHidden = cHidden
        self.nhead = nhead
        self.blocks = blocks
        self.levelConfig = levelConfig
        self.injectEffnet = injectEffnet
        self.effnetEmbd = effnetEmbd
        self.clipEmbd = clipEmbd
        self.kernelSize = kernelSize
        self.dropout = dropout
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = WuerstchenDiffNeXtConfig()
        cIn = try c.decodeIfPresent(Int.self, forKey: .cIn) ?? d.cIn
        cOut = try c.decodeIfPresent(Int.self, forKey: .cOut) ?? d.cOut
        cR = try c.decodeIfPresent(Int.self, forKey: .cR) ?? d.cR
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? d.patchSize
        cCond = try c.decodeIfPresent(Int.self, forKey: .cCond) ?? d.cCond
        cHidden = try c.decodeIfPresent([Int].self, forKey: .cHidden) ?? d.cHidden
        nhead = try c.decodeIfPresent([Int].self, forKey: .nhead) ?? d.nhead
        blocks = try c.decodeIfPresent([Int].self, forKey: .blocks) ?? d.blocks
        levelConfig = try c.decodeIfPresent([String].self, forKey: .levelConfig) ?? d.levelConfig
        injectEffnet = try c.decodeIfPresent([Bool].self, forKey: .injectEffnet) ?? d.injectEffnet
        effnetEmbd = try c.decodeIfPresent(Int.self, forKey: .effnetEmbd) ?? d.effnetEmbd
        clipEmbd = try c.decodeIfPresent(Int.self, forKey: .clipEmbd) ?? d.clipEmbd
        kernelSize = try c.decodeIfPresent(Int.self, forKey: .kernelSize) ?? d.kernelSize
        dropout = try c.decodeIfPresent(Dropout.self, forKey: .dropout) ?? d.dropout
    }

    /// The decoder of `warp-ai/wuerstchen` (diffusers' defaults).
    public static let wuerstchenV2 = WuerstchenDiffNeXtConfig()

    /// Number of levels.
    public var levels: Int { cHidden.count }

    /// Latent heights and widths must be multiples of this: the patch, then a halving per level.
    public var latentMultiple: Int { patchSize << max(0, levels - 1) }

    /// Checks what diffusers would only find out by crashing (or by silently producing NaN).
    public func validate() throws {
        func fail(_ reason: String) -> WuerstchenDiffNeXtError { WuerstchenDiffNeXtError(description: "config: \(reason)") }
        let n = cHidden.count
        guard n > 0 else { throw fail("c_hidden is empty") }
        for (name, count) in [("nhead", nhead.count), ("blocks", blocks.count), ("level_config", levelConfig.count),
                              ("inject_effnet", injectEffnet.count)] where count != n {
            throw fail("\(name) has \(count) entries, c_hidden has \(n)")
        }
        if case .perLevel(let rates) = dropout, rates.count != n {
            throw fail("dropout has \(rates.count) entries, c_hidden has \(n)")
        }
        for (name, v) in [("c_in", cIn), ("c_out", cOut), ("patch_size", patchSize), ("c_cond", cCond),
                          ("effnet_embd", effnetEmbd), ("clip_embd", clipEmbd)] where v < 1 {
            throw fail("\(name) must be positive, got \(v)")
        }
        guard cIn == cOut else {
            throw fail("c_out \(cOut) differs from c_in \(cIn); the decoder returns the noise (x - a) / b, which needs them equal")
        }
        guard cR >= 4 else { throw fail("c_r must be at least 4 (gen_r_embedding divides by c_r / 2 - 1), got \(cR)") }
        guard kernelSize >= 1 && kernelSize % 2 == 1 else {
            throw fail("kernel_size must be odd (padding kernel_size // 2 keeps the size), got \(kernelSize)")
        }
        for i in 0..<n {
            guard cHidden[i] >= 1 else { throw fail("c_hidden[\(i)] must be positive, got \(cHidden[i])") }
            guard blocks[i] >= 0 else { throw fail("blocks[\(i)] must not be negative, got \(blocks[i])") }
            if let bad = levelConfig[i].first(where: { !"CTA".contains($0) }) {
                throw fail("level_config[\(i)] '\(levelConfig[i])' has block type '\(bad)'; only C, T and A exist")
            }
            if levelConfig[i].contains("A") {
                guard nhead[i] >= 1 && cHidden[i] % nhead[i] == 0 else {
                    throw fail("nhead[\(i)] \(nhead[i]) must be positive and divide c_hidden[\(i)] \(cHidden[i]) (level \(i) has attention)")
                }
            }
        }
    }
}

/// An error in a WuerstchenDiffNeXt configuration or weights.
public struct WuerstchenDiffNeXtError: Error, CustomStringConvertible {
    /// What is wrong, naming the field or tensor.
    public let description: String
}

/// diffusers' `WuerstchenDiffNeXt` (Stage B): predicts the noise of a VQ-GAN latent from its noise
/// level, the Stage C image embeddings and the CLIP text embeddings.
public struct WuerstchenDiffNeXt: @unchecked Sendable {
    /// The configuration the model was built from.
    public let config: WuerstchenDiffNeXtConfig
    private let clip_mapper: Linear
    private let embedding: Conv2d  // embedding.1, between PixelUnshuffle and LayerNorm
    private let down_blocks: [DiffNeXtLevel]  // finest first
    private let up_blocks: [DiffNeXtLevel]  // deepest first
    private let clf: Conv2d  // clf.1, between LayerNorm and PixelShuffle

    /// Every parameter the model declares, with diffusers' names and PyTorch shapes.
    public static func parameters(_ c: WuerstchenDiffNeXtConfig) -> [ParameterSpec] {
        let n = c.levels
        var specs = Declare.linear("clip_mapper", c.clipEmbd, c.cCond)
        for (k, inject) in (c.injectEffnet + c.injectEffnet.reversed()).enumerated() where inject {
            specs += Declare.conv("effnet_mappers.\(k)", c.effnetEmbd, c.cCond, kernel: 1)
        }
        specs += Declare.conv("embedding.1", c.cIn * c.patchSize * c.patchSize, c.cHidden[0], kernel: 1)
        for i in 0..<n {
            let p = "down_blocks.\(i)."
            var k = 0
            if i > 0 {
                specs += Declare.conv(p + "0.1", c.cHidden[i - 1], c.cHidden[i], kernel: 2)
                k = 1
            }
            for _ in 0..<c.blocks[i] {
                for type in c.levelConfig[i] {
                    specs += blockParameters(c, type, p + "\(k)", level: i, cSkip: c.injectEffnet[i] ? c.cCond : 0)
                    k += 1
                }
            }
        }
        for (u, i) in (0..<n).reversed().enumerated() {
            let p = "up_blocks.\(u)."
            var k = 0
            for j in 0..<c.blocks[i] {
                for (t, type) in c.levelConfig[i].enumerated() {
                    let cSkip = (i < n - 1 && j == 0 && t == 0 ? c.cHidden[i] : 0) + (c.injectEffnet[i] ? c.cCond : 0)
                    specs += blockParameters(c, type, p + "\(k)", level: i, cSkip: cSkip)
                    k += 1
                }
            }
            if i > 0 { specs += Declare.convTranspose(p + "\(k).1", c.cHidden[i], c.cHidden[i - 1], kernel: 2) }
        }
        specs += Declare.conv("clf.1", c.cHidden[0], 2 * c.cOut * c.patchSize * c.patchSize, kernel: 1)
        return specs
    }

    private static func blockParameters(
        _ c: WuerstchenDiffNeXtConfig, _ type: Character, _ prefix: String, level i: Int, cSkip: Int
    ) -> [ParameterSpec] {
        switch type {
        case "C": return ResBlockStageB.parameters(prefix, c: c.cHidden[i], cSkip: cSkip, kernelSize: c.kernelSize)
        case "T": return TimestepBlock.parameters(prefix, c: c.cHidden[i], cR: c.cR)
        default: return AttnBlock.parameters(prefix, c: c.cHidden[i], cCond: c.cCond)
        }
    }

    /// The model over `weights` (PyTorch layout, names from `parameters(config)`), GEMM weights in `precision`.
    public init(config c: WuerstchenDiffNeXtConfig, weights: consuming [String: Tensor], precision: Precision = .fp32) throws {
        try self.init(config: c, parameters: Weights(tensors: consume weights, precision: precision))
    }

    /// The model over parameters read from `w`, GEMM weights in `w.precision`.
    init(config c: WuerstchenDiffNeXtConfig, parameters w: Weights) throws {
        try c.validate()
        let n = c.levels
        config = c
        clip_mapper = w.linear("clip_mapper")
        embedding = w.conv("embedding.1")
        clf = w.conv("clf.1")

        func mapper(_ k: Int) -> (weight: Tensor, bias: Tensor)? {
            guard (c.injectEffnet + c.injectEffnet.reversed())[k] else { return nil }
            return (w["effnet_mappers.\(k).weight"], w["effnet_mappers.\(k).bias"])
        }
        func block(_ type: Character, _ prefix: String, level i: Int, skip: Int, effnet: (weight: Tensor, bias: Tensor)?) -> DiffNeXtBlock {
            switch type {
            case "C": return .res(ResBlockStageB(w, prefix, c: c.cHidden[i], skipChannels: skip, effnetMapper: effnet))
            case "T": return .timestep(TimestepBlock(w, prefix))
            default: return .attn(AttnBlock(w, prefix, heads: c.nhead[i]))
            }
        }

        var down: [DiffNeXtLevel] = []
        for i in 0..<n {
            let p = "down_blocks.\(i)."
            var k = i > 0 ? 1 : 0
            var blocks: [DiffNeXtBlock] = []
            for _ in 0..<c.blocks[i] {
                for type in c.levelConfig[i] {
                    blocks.append(block(type, p + "\(k)", level: i, skip: 0, effnet: mapper(i)))
                    k += 1
                }
            }
            down.append(DiffNeXtLevel(
                downscaler: i > 0 ? w.conv(p + "0.1", stride: 2) : nil, blocks: blocks, upscaler: nil,
                injectsEffnet: c.injectEffnet[i]))
        }
        var up: [DiffNeXtLevel] = []
        for (u, i) in (0..<n).reversed().enumerated() {
            let p = "up_blocks.\(u)."
            var k = 0
            var blocks: [DiffNeXtBlock] = []
            for j in 0..<c.blocks[i] {
                for (t, type) in c.levelConfig[i].enumerated() {
                    let skip = i < n - 1 && j == 0 && t == 0 ? c.cHidden[i] : 0
                    blocks.append(block(type, p + "\(k)", level: i, skip: skip, effnet: mapper(n + u)))
                    k += 1
                }
            }
            let upscaler = i > 0
                ? ConvTranspose2d(weight: w.take(p + "\(k).1.weight"), bias: w[p + "\(k).1.bias"], stride: 2).converted(to: w.precision) : nil
            up.append(DiffNeXtLevel(downscaler: nil, blocks: blocks, upscaler: upscaler, injectsEffnet: c.injectEffnet[i]))
        }
        down_blocks = down
        up_blocks = up
    }

    /// Loads `config.json` and the weights of a `decoder` folder (diffusers or Paddle layout, fp32 or fp16).
    /// Tensors are read one at a time and converted to `precision` as the modules take them.
    public init(folder: URL, variant: WeightsVariant = .preferFull, precision: Precision = .fp32) throws {
        let config = try loadConfig(WuerstchenDiffNeXtConfig.self, from: folder)
        try config.validate()
        let parameters = try ModelFolder.locateWeights(in: folder, variant: variant).lazy(Self.parameters(config))
        try self.init(config: config, parameters: Weights(lazy: parameters, precision: precision))
    }

    /// `forward(x, r, effnet, clip)` as the decoder pipeline calls it (`x_cat` unused, `return_noise=True`).
    /// x: [B, H, W, c_in] (H, W multiples of `latentMultiple`), r: B noise levels (one per row),
    /// effnet: [B, h, w, effnet_embd] (any size: resized per level), clip: [B, L, clip_embd]
    /// -> predicted noise [B, H, W, c_out]
    public func callAsFunction(_ x: Tensor, r: [Float], effnet: Tensor, clip: Tensor) -> Tensor {
        let c = config
        precondition(x.rank == 4 && x.dim(3) == c.cIn, "WuerstchenDiffNeXt: x must be [B, H, W, \(c.cIn)], got \(x.shape)")
        let b = x.dim(0), m = c.latentMultiple
        precondition(
            x.dim(1) % m == 0 && x.dim(2) % m == 0 && x.dim(1) > 0 && x.dim(2) > 0,
            "WuerstchenDiffNeXt: latent \(x.dim(1))x\(x.dim(2)) must be a non-empty multiple of \(m) (patch \(c.patchSize), \(c.levels) levels)")
        precondition(r.count == b, "WuerstchenDiffNeXt: r has \(r.count) values for a batch of \(b)")
        precondition(
            effnet.rank == 4 && effnet.dim(0) == b && effnet.dim(3) == c.effnetEmbd && effnet.dim(1) > 0 && effnet.dim(2) > 0,
            "WuerstchenDiffNeXt: effnet must be [\(b), h, w, \(c.effnetEmbd)], got \(effnet.shape)")
        precondition(
            clip.rank == 3 && clip.dim(0) == b && clip.dim(2) == c.clipEmbd,
            "WuerstchenDiffNeXt: clip must be [\(b), L, \(c.clipEmbd)], got \(clip.shape)")

        let rEmbed = rEmbedding(r, cR: c.cR)  // [B, c_r]
        let clipCond = clip_mapper(clip)  // gen_c_embeddings: [B, L, c_cond]
        wuerstchenLayerNorm.applyInPlace(clipCond)  // seq_norm

        // The image embeddings at each level's size, resized once and shared by the down and up
        // paths (their different mappers are folded into the ResBlocks). [B, h_i, w_i, effnet_embd]
        var resized: [Int: Tensor] = [:]
        func effnetAt(_ h: Tensor) -> Tensor {
            let key = h.dim(1) << 32 | h.dim(2)
            if let e = resized[key] { return e }
            let e = interpolateBicubicAntialias(effnet, height: h.dim(1), width: h.dim(2), alignCorners: true)
            resized[key] = e
            return e
        }
        func run(_ level: DiffNeXtLevel, _ h: Tensor, skip: Tensor?) -> Tensor {
            var h = h
            for (j, block) in level.blocks.enumerated() {
                switch block {
                case .res(let res):
                    h = res.applyInPlace(h, skip: j == 0 ? skip : nil, effnet: level.injectsEffnet ? effnetAt(h) : nil)
                case .timestep(let t):
                    t.apply(h, rEmbed)
                case .attn(let attn):
                    h = attn(h, mappedKV: attn.mapCondition(clipCond))
                }
            }
            return h
        }

        // embedding: PixelUnshuffle, 1x1 conv, LayerNorm. h: [B, H/p, W/p, c_hidden[0]]
        var h = embedding(pixelUnshuffle(x, factor: c.patchSize))
        wuerstchenLayerNorm.applyInPlace(h)

        // _down_encode. levelOutputs[i]: [B, H/p/2^i, W/p/2^i, c_hidden[i]]
        var levelOutputs: [Tensor?] = []
        for level in down_blocks {
            if let downscaler = level.downscaler { h = downscaler(wuerstchenLayerNorm(h)) }  // [B, h/2, w/2, c_i]
            h = run(level, h, skip: nil)
            levelOutputs.append(h)
        }

        // _up_decode: up level u is level n-1-u; its first block takes that level's output (but the
        // deepest, which starts from it). Each level output is freed once used.
        let n = c.levels
        h = levelOutputs[n - 1]!
        levelOutputs[n - 1] = nil
        for (u, level) in up_blocks.enumerated() {
            let i = n - 1 - u
            let skip = u > 0 ? levelOutputs[i] : nil
            levelOutputs[i] = nil
            h = run(level, h, skip: skip)
            if let upscaler = level.upscaler {
                wuerstchenLayerNorm.applyInPlace(h)
                h = upscaler(h)  // [B, 2h, 2w, c_{i-1}]
            }
        }

        // clf: LayerNorm, 1x1 conv to 2 * c_out * p^2, PixelShuffle; then a, b = chunk(2) and the noise.
        wuerstchenLayerNorm.applyInPlace(h)
        let head = clf(h)  // [B, H/p, W/p, 2 * c_out * p^2]
        return Self.noise(x, head: head, channels: c.cOut, patch: c.patchSize)
    }

    /// PixelShuffle of the head into `a` (channels `0..<c_out`) and `b`, then `(x - a) / (sigmoid(b) * (1 - 2 eps) + eps)`
    /// with eps = 1e-3, in torch's order of float32 operations (the sigmoid as torch's scalar `1 / (1 + exp(-b))`).
    /// x: [B, H, W, c], head: [B, H/p, W/p, 2 * c * p^2] -> [B, H, W, c]
    private static func noise(_ x: Tensor, head: Tensor, channels c: Int, patch p: Int) -> Tensor {
        let ab = pixelShuffle(head, factor: p)  // [B, H, W, 2c]: a, then b
        precondition(ab.shape == x.shape.dropLast() + [2 * c], "DiffNeXt head \(head.shape) does not fit x \(x.shape)")
        let out = Tensor(uninitialized: x.shape)
        let eps: Float = 1e-3
        let scale = Float(1 - 2 * Double(eps)), offset = eps  // Python scalars, rounded to float by torch
        let xs = x.data, abp = ab.data, os = out.data
        Compute.pool.parallelFor(x.count / max(c, 1), grain: 1024) { pixels in
            for pixel in pixels {
                let base = pixel * c, a = abp + 2 * base, b = a + c
                for k in 0..<c {
                    let s = 1 / (1 + Foundation.exp(-b[k]))
                    os[base + k] = (xs[base + k] - a[k]) / (s * scale + offset)
                }
            }
        }
        return out
    }
}

/// One entry of a level's block list.
private enum DiffNeXtBlock {
    case res(ResBlockStageB)
    case timestep(TimestepBlock)
    case attn(AttnBlock)
}

/// One level of the down path (`down_blocks.i`) or of the up path (`up_blocks.u`).
private struct DiffNeXtLevel {
    /// `down_blocks.i.0`: LayerNorm + Conv2d(c_{i-1}, c_i, 2, stride 2), levels i > 0 of the down path.
    let downscaler: Conv2d?
    let blocks: [DiffNeXtBlock]
    /// The last entry of `up_blocks.u`: LayerNorm + ConvTranspose2d(c_i, c_{i-1}, 2, stride 2), levels i > 0.
    let upscaler: ConvTranspose2d?
    /// Whether the level's ResBlocks take the resized image embeddings.
    let injectsEffnet: Bool
}

/// diffusers' `ResBlockStageB(c, c_skip)`: depthwise conv, LayerNorm, then the skip channels
/// concatenated AFTER the norm, `Linear(c + c_skip, 4c) -> GELU -> GRN(4c) -> Linear(4c, c)`, residual.
/// The effnet mapper of the block's level is folded into the first Linear (see the file header), so
/// its input here is `[norm(depthwise(x)), level skip?, resized effnet?]`.
private struct ResBlockStageB {
    let depthwise: DepthwiseConv2d
    /// `channelwise.0` ([4c, c + skip + effnet_embd?]): one layer over the concatenated input in fp32 and
    /// bf16; in int8 one layer per input segment (normalised block input, level skip, resized effnet: the
    /// weight's columns cut there), each quantising its own activations per row, summed into one output.
    /// The segments' ranges differ by up to ~100x (the effnet features arrive de-normalised, `* 42 - 1`), so
    /// one scale per row over their concatenation would leave the normalised part a few levels (measured on
    /// the demo model: the decoder's forward error against fp32 1.13% -> 0.81%, end to end 1.41 -> 0.58
    /// levels on average; BENCHMARKS.md).
    let channelwise0: [Linear]
    let channelwise2: GlobalResponseNorm
    let channelwise4: Linear  // [c, 4c]
    let skipChannels: Int
    let effnetChannels: Int

    static func parameters(_ prefix: String, c: Int, cSkip: Int, kernelSize: Int) -> [ParameterSpec] {
        Declare.conv(prefix + ".depthwise", c, c, kernel: kernelSize, groups: c)
            + Declare.linear(prefix + ".channelwise.0", c + cSkip, 4 * c)
            + [ParameterSpec(prefix + ".channelwise.2.gamma", [1, 1, 1, 4 * c]),
               ParameterSpec(prefix + ".channelwise.2.beta", [1, 1, 1, 4 * c])]
            + Declare.linear(prefix + ".channelwise.4", 4 * c, c)
    }

    /// `skipChannels`: channels of the level output this block takes (0 or c); `effnetMapper`: the
    /// level's `effnet_mappers.k` (`[c_cond, effnet_embd, 1, 1]`, `[c_cond]`) when the level injects.
    init(_ w: Weights, _ prefix: String, c: Int, skipChannels: Int, effnetMapper: (weight: Tensor, bias: Tensor)?) {
        depthwise = DepthwiseConv2d(weight: w.take(prefix + ".depthwise.weight"), bias: w[prefix + ".depthwise.bias"], paddingMode: .zeros)
        channelwise2 = GlobalResponseNorm(gamma: w[prefix + ".channelwise.2.gamma"], beta: w[prefix + ".channelwise.2.beta"])
        channelwise4 = w.linear(prefix + ".channelwise.4")
        self.skipChannels = skipChannels
        // Taken: with an effnet mapper it is replaced by the folded weight below.
        let linear = w.takeLinear(prefix + ".channelwise.0")
        guard let mapper = effnetMapper else {
            channelwise0 = Self.segments(linear, widths: [c, skipChannels], precision: w.precision)
            effnetChannels = 0
            return
        }
        // W = [W_x | W_e] with W_e: [4c, c_cond]; mapper M: [c_cond, E], b_M: [c_cond].
        // W' = [W_x | W_e M] ([4c, c + skip + E]), b' = b + W_e b_M.
        let rows = linear.outFeatures, inOld = linear.inFeatures
        let cCond = mapper.weight.dim(0), e = mapper.weight.dim(1)
        let kept = inOld - cCond, inNew = kept + e
        precondition(kept == c + skipChannels, "ResBlockStageB \(prefix): channelwise.0 takes \(inOld) inputs, expected \(c) + \(skipChannels) + \(cCond)")
        let old = linear.weight.float32
        let weight = Tensor(uninitialized: [rows, inNew])
        for r in 0..<rows { (weight.data + r * inNew).update(from: old.data + r * inOld, count: kept) }
        GEMM.sgemm(
            m: rows, n: e, k: cCond, a: old.data + kept, lda: inOld, b: mapper.weight.data, ldb: e,
            c: weight.data + kept, ldc: inNew)
        let bias = linear.bias!.copy()
        GEMM.sgemm(
            m: rows, n: 1, k: cCond, a: old.data + kept, lda: inOld, b: mapper.bias.data, ldb: 1,
            beta: 1, c: bias.data, ldc: 1)
        // Folded in float32, rounded once (bf16 precision).
        channelwise0 = Self.segments(Linear(weight: weight, bias: bias), widths: [c, skipChannels, e], precision: w.precision)
        effnetChannels = e
    }

    /// `linear` in `precision`: itself, or in int8 with more than one segment its columns cut at `widths`
    /// (zero widths dropped), each its own layer, the first keeping the bias.
    static func segments(_ linear: Linear, widths: [Int], precision: Precision) -> [Linear] {
        let widths = widths.filter { $0 > 0 }
        guard precision == .int8, widths.count > 1 else { return [linear.converted(to: precision)] }
        let w = linear.weight.float32, rows = linear.outFeatures, cols = linear.inFeatures
        precondition(widths.reduce(0, +) == cols, "segments \(widths) do not cover \(cols) columns")
        var start = 0
        return widths.enumerated().map { i, width in
            let part = Tensor(uninitialized: [rows, width])
            for r in 0..<rows { (part.data + r * width).update(from: w.data + r * cols + start, count: width) }
            start += width
            return Linear(weight: part, bias: i == 0 ? linear.bias : nil).converted(to: .int8)
        }
    }

    /// Writes the block's output into `x`'s storage and returns `x`.
    /// x: [B, H, W, c], skip: [B, H, W, skipChannels] or nil, effnet: [B, H, W, E] (resized) or nil
    func applyInPlace(_ x: Tensor, skip: Tensor?, effnet: Tensor?) -> Tensor {
        let h = depthwise(x)  // [B, H, W, c]
        wuerstchenLayerNorm.applyInPlace(h)
        var parts = [h]
        if skipChannels > 0, let skip { parts.append(skip) }
        if effnetChannels > 0, let effnet { parts.append(effnet) }
        let y: Tensor  // [B, H, W, 4c]
        if channelwise0.count == 1 {
            let input = parts.count == 1 ? h : Tensor.concat(parts, axis: -1)  // [B, H, W, c + skip + E]
            precondition(
                input.dim(3) == channelwise0[0].inFeatures,
                "ResBlockStageB: input has \(input.dim(3)) channels (skip \(skip?.shape ?? []), effnet \(effnet?.shape ?? [])), expected \(channelwise0[0].inFeatures)")
            y = channelwise0[0](input)
        } else {
            // int8: one product per segment, accumulated (the first adds the bias).
            precondition(parts.count == channelwise0.count, "ResBlockStageB: \(parts.count) inputs for \(channelwise0.count) segments")
            let rows = h.count / h.dim(3)
            y = Tensor(uninitialized: Array(h.shape.dropLast()) + [channelwise0[0].outFeatures])
            for (i, (part, layer)) in zip(parts, channelwise0).enumerated() {
                precondition(part.dim(3) == layer.inFeatures, "ResBlockStageB: input segment \(i) has \(part.dim(3)) channels, expected \(layer.inFeatures)")
                layer.apply(part.data, rows: rows, into: y.data, accumulate: i > 0)
            }
        }
        y.geluInPlace()
        channelwise2.applyInPlace(y)
        // x + channelwise4(y), accumulated onto x in place.
        channelwise4.apply(y.data, rows: x.count / x.dim(3), into: x.data, accumulate: true)
        return x
    }
}
