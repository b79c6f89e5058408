import Foundation
import SafeTensors
import Tensor

// Stage A of Würstchen v2: diffusers' `PaellaVQModel`
// (src/diffusers/pipelines/deprecated/wuerstchen/modeling_paella_vq_model.py, diffusers 0.42.1) with
// its `VectorQuantizer` (src/diffusers/models/autoencoders/vae.py, `legacy=False`), ported to NHWC:
// the permutes around the LayerNorms and the channelwise MLPs vanish because channels are last.
//
// Encoder: PixelUnshuffle(s) -> Conv1x1 -> [MixingResidualBlock, (Conv4x4/s2/p1, MixingResidualBlock)...]
//          -> Conv1x1 (no bias) -> BatchNorm2d (eval: running statistics).
// Decoder: Conv1x1 -> bottleneck_blocks x MixingResidualBlock -> [ConvTranspose4x4/s2/p1,
//          MixingResidualBlock]... -> Conv1x1 -> PixelShuffle(s).
// There is no LeakyReLU anywhere in this model and the decoder has no BatchNorm.

/// `PaellaVQModel`'s `config.json`; every default is diffusers' (and the published `warp-ai/wuerstchen` vqgan's).
public struct PaellaVQModelConfig: Codable, Sendable, Equatable {
    // Deliberate parallel of CLIP/CLIPTextModel.swift, WuerstchenDiffNeXt.swift and
    // WuerstchenPrior.swift's configs (fields, CodingKeys, init, init(from:)):
    // each is its own checkpoint's config.json, field by field as it is written
    // (STYLE.md: one model family per file with its Codable config), so they are not shared.
    /// Image channels the encoder takes.
    public var inChannels: Int
    /// Image channels the decoder returns.
    public var outChannels: Int
    /// PixelUnshuffle / PixelShuffle factor at the image end.
    public var upDownScaleFactor: Int
    /// Resolution levels (each further level halves the resolution and doubles the width).
    public var levels: Int
    /// MixingResidualBlocks at the decoder's lowest resolution.
    public var bottleneckBlocks: Int
    /// Width of the lowest-resolution level (`c_levels[-1]`).
    public var embedDim: Int
    /// Latent channels (Stage B's `c_in`).
    public var latentChannels: Int
    /// Codebook entries of the vector quantizer.
    public var numVqEmbeddings: Int
    /// The factor the decoder pipeline multiplies Stage B's latents by before `decode`.
    public var scaleFactor: Float

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels"
        case outChannels = "out_channels"
        case upDownScaleFactor = "up_down_scale_factor"
        case levels
        case bottleneckBlocks = "bottleneck_blocks"
        case embedDim = "embed_dim"
        case latentChannels = "latent_channels"
        case numVqEmbeddings = "num_vq_embeddings"
        case scaleFactor = "scale_factor"
    }

    /// A configuration; every default is diffusers' `PaellaVQModel` default.
    public init(
        inChannels: Int = 3, outChannels: Int = 3, upDownScaleFactor: Int = 2, levels: Int = 2,
        bottleneckBlocks: Int = 12, embedDim: Int = 384, latentChannels: Int = 4, numVqEmbeddings: Int = 8192,
        scaleFactor: Float = 0.3764
    ) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.upDownScaleFactor = upDownScaleFactor
        self.levels = levels
        self.bottleneckBlocks = bottleneckBlocks
        self.embedDim = embedDim
        self.latentChannels = latentChannels
        self.numVqEmbeddings = numVqEmbeddings
        self.scaleFactor = scaleFactor
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PaellaVQModelConfig()
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? d.inChannels
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? d.outChannels
        upDownScaleFactor = try c.decodeIfPresent(Int.self, forKey: .upDownScaleFactor) ?? d.upDownScaleFactor
        levels = try c.decodeIfPresent(Int.self, forKey: .levels) ?? d.levels
        bottleneckBlocks = try c.decodeIfPresent(Int.self, forKey: .bottleneckBlocks) ?? d.bottleneckBlocks
        embedDim = try c.decodeIfPresent(Int.self, forKey: .embedDim) ?? d.embedDim
        latentChannels = try c.decodeIfPresent(Int.self, forKey: .latentChannels) ?? d.latentChannels
        numVqEmbeddings = try c.decodeIfPresent(Int.self, forKey: .numVqEmbeddings) ?? d.numVqEmbeddings
        scaleFactor = try c.decodeIfPresent(Float.self, forKey: .scaleFactor) ?? d.scaleFactor
    }

    /// The vqgan of `warp-ai/wuerstchen` (= the defaults).
    public static let wuerstchenV2 = PaellaVQModelConfig()

    /// `c_levels = [embed_dim // 2**i for i in reversed(range(levels))]`: widths from the image end
    /// (highest resolution, narrowest) to the latent end.
    public var channelLevels: [Int] { (0..<levels).reversed().map { embedDim >> $0 } }

    /// Latent pixels per image pixel along each axis: `up_down_scale_factor * 2**(levels - 1)`
    /// (4 for the published model: a 256x256 latent decodes to 1024x1024).
    public var downscale: Int { upDownScaleFactor << max(levels - 1, 0) }

    /// Checks what the architecture needs; names the field that is wrong.
    func validate() throws {
        func fail(_ s: String) -> PaellaVQModelError { PaellaVQModelError(description: "vqgan config: " + s) }
        guard levels >= 1 else { throw fail("levels must be >= 1, got \(levels)") }
        guard upDownScaleFactor >= 1 else { throw fail("up_down_scale_factor must be >= 1, got \(upDownScaleFactor)") }
        guard embedDim >= 1, embedDim % (1 << (levels - 1)) == 0 else {
            throw fail("embed_dim \(embedDim) must be a positive multiple of 2**(levels - 1) = \(1 << (levels - 1))")
        }
        guard inChannels >= 1, outChannels >= 1, latentChannels >= 1, numVqEmbeddings >= 1, bottleneckBlocks >= 0 else {
            throw fail("in_channels, out_channels, latent_channels, num_vq_embeddings must be >= 1 and bottleneck_blocks >= 0")
        }
    }
}

/// An error in a vqgan's configuration or inputs.
public struct PaellaVQModelError: Error, CustomStringConvertible {
    /// What is wrong, naming the field or input.
    public let description: String
}

/// diffusers' `PaellaVQModel` (Stage A): latents `[B, h, w, latent_channels]` to images
/// `[B, h * downscale, w * downscale, out_channels]` and back, NHWC.
///
/// Images are in the model's own range: the decoder is trained towards [0, 1] but does not clamp;
/// the Würstchen decoder pipeline clamps to [0, 1] afterwards (`.sample.clamp(0, 1)`), then PIL
/// rounds `x * 255`. The encoder takes images in the range it was trained on (the pipelines never
/// call it).
public struct PaellaVQModel: @unchecked Sendable {
    /// The configuration the model was built from.
    public let config: PaellaVQModelConfig
    /// Tokens per tile of the MixingResidualBlocks' channelwise MLPs. The MLP is 4x as wide as its
    /// input, so at full size it would need `[1, 512, 512, 768]` (800 MB) at 1024 px; in tiles it needs
    /// `tile * 5 * C` floats. Any value >= 1 gives the same result up to float rounding (the GEMM's
    /// blocking may change with the row count).
    public var channelwiseTileTokens = 2048
    /// Image rows per band in which the MixingResidualBlocks run (nil: about 4M floats per band).
    /// Each band normalises its rows plus a halo row on either side, so no block needs a temporary
    /// of the whole image. Any value >= 1 gives the same result up to float rounding.
    public var bandRows: Int? = nil

    private let in_block: Conv2d  // in_block.1, after PixelUnshuffle
    private let down_blocks: [Stage]
    private let down_latent: Conv2d  // down_blocks.<last>.0, bias=False
    private let down_norm: BatchNorm  // down_blocks.<last>.1
    private let vquantizer: VectorQuantizer
    private let up_in: Conv2d  // up_blocks.0.0
    private let up_blocks: [Stage]
    private let out_block: Conv2d  // out_block.0, before PixelShuffle

    /// One element of the `down_blocks` / `up_blocks` Sequentials.
    private enum Stage {
        case block(MixingResidualBlock)
        case downscale(Conv2d)  // Conv2d(c_prev, c, 4, stride 2, padding 1)
        case upscale(ConvTranspose2d)  // ConvTranspose2d(c, c_next, 4, stride 2, padding 1)
    }

    /// The `down_blocks` layout: (index, kind, channels) in diffusers' order.
    private static func encoderLayout(_ c: PaellaVQModelConfig) -> [(index: Int, downscale: Bool, cin: Int, cout: Int)] {
        let levels = c.channelLevels
        var out: [(index: Int, downscale: Bool, cin: Int, cout: Int)] = []
        for i in 0..<c.levels {
            if i > 0 { out.append((out.count, true, levels[i - 1], levels[i])) }
            out.append((out.count, false, levels[i], levels[i]))
        }
        return out
    }

    /// The `up_blocks` layout after `up_blocks.0`: (index, kind, channels) in diffusers' order.
    private static func decoderLayout(_ c: PaellaVQModelConfig) -> [(index: Int, upscale: Bool, cin: Int, cout: Int)] {
        let levels = c.channelLevels, n = c.levels
        var out: [(index: Int, upscale: Bool, cin: Int, cout: Int)] = []
        for i in 0..<n {
            let ch = levels[n - 1 - i]
            for _ in 0..<(i == 0 ? c.bottleneckBlocks : 1) { out.append((out.count + 1, false, ch, ch)) }
            if i < n - 1 { out.append((out.count + 1, true, ch, levels[n - 2 - i])) }
        }
        return out
    }

    /// Every tensor the model declares, named and shaped as PyTorch's state dict (BatchNorm running
    /// statistics included, as `.batchNormStat`; the int64 `num_batches_tracked` is not declared).
    public static func parameters(_ c: PaellaVQModelConfig) -> [ParameterSpec] {
        let levels = c.channelLevels, s2 = c.upDownScaleFactor * c.upDownScaleFactor
        var specs = Declare.conv("in_block.1", c.inChannels * s2, levels[0], kernel: 1)
        let encoder = encoderLayout(c)
        for e in encoder {
            specs += e.downscale
                ? Declare.conv("down_blocks.\(e.index)", e.cin, e.cout, kernel: 4)
                : MixingResidualBlock.parameters("down_blocks.\(e.index)", c: e.cin)
        }
        let last = "down_blocks.\(encoder.count)"
        specs += [
            ParameterSpec(last + ".0.weight", [c.latentChannels, levels[c.levels - 1], 1, 1]),
            ParameterSpec(last + ".1.weight", [c.latentChannels]), ParameterSpec(last + ".1.bias", [c.latentChannels]),
            ParameterSpec(last + ".1.running_mean", [c.latentChannels], .batchNormStat),
            ParameterSpec(last + ".1.running_var", [c.latentChannels], .batchNormStat),
            ParameterSpec("vquantizer.embedding.weight", [c.numVqEmbeddings, c.latentChannels]),
        ]
        specs += Declare.conv("up_blocks.0.0", c.latentChannels, levels[c.levels - 1], kernel: 1)
        for d in decoderLayout(c) {
            specs += d.upscale
                ? Declare.convTranspose("up_blocks.\(d.index)", d.cin, d.cout, kernel: 4)
                : MixingResidualBlock.parameters("up_blocks.\(d.index)", c: d.cin)
        }
        specs += Declare.conv("out_block.0", levels[0], c.outChannels * s2, kernel: 1)
        return specs
    }

    /// The model over `weights` (PyTorch layout, names from `parameters(config)`), GEMM weights in `precision`.
    public init(config c: PaellaVQModelConfig, weights: consuming [String: Tensor], precision: Precision = .fp32) throws {
        try self.init(config: c, parameters: Weights(tensors: consume weights, precision: Self.weightPrecision(precision)))
    }

    /// The precision the VQ-GAN's GEMM weights are held in for a pipeline running in `precision`: `int8` keeps
    /// the VQ-GAN float32 (its time goes to 3x3/4x4 convolutions at full resolution, and its output is pixels).
    public static func weightPrecision(_ precision: Precision) -> Precision { precision == .int8 ? .fp32 : precision }

    /// The model over parameters read from `w`, GEMM weights in `w.precision`.
    init(config c: PaellaVQModelConfig, parameters w: Weights) throws {
        try c.validate()
        config = c
        in_block = w.conv("in_block.1")
        let encoder = Self.encoderLayout(c)
        down_blocks = encoder.map { e in
            e.downscale
                ? .downscale(w.conv("down_blocks.\(e.index)", stride: 2, padding: 1))
                : .block(MixingResidualBlock(w, "down_blocks.\(e.index)"))
        }
        let last = "down_blocks.\(encoder.count)"
        down_latent = Conv2d(weight: w[last + ".0.weight"], bias: nil)
        down_norm = BatchNorm(
            weight: w[last + ".1.weight"], bias: w[last + ".1.bias"],
            runningMean: w[last + ".1.running_mean"], runningVar: w[last + ".1.running_var"])
        vquantizer = VectorQuantizer(codebook: w["vquantizer.embedding.weight"])
        up_in = w.conv("up_blocks.0.0")
        up_blocks = Self.decoderLayout(c).map { d in
            d.upscale
                ? .upscale(ConvTranspose2d(
                    weight: w.take("up_blocks.\(d.index).weight"), bias: w["up_blocks.\(d.index).bias"], stride: 2, padding: 1
                ).converted(to: w.precision))
                : .block(MixingResidualBlock(w, "up_blocks.\(d.index)"))
        }
        out_block = w.conv("out_block.0")
    }

    /// Loads `config.json` and the weights of a `vqgan` folder (diffusers or Paddle layout, fp32 or fp16).
    /// Tensors are read one at a time and converted to `precision` as the modules take them.
    public init(folder: URL, variant: WeightsVariant = .preferFull, precision: Precision = .fp32) throws {
        let config = try loadConfig(PaellaVQModelConfig.self, from: folder)
        try config.validate()
        let parameters = try ModelFolder.locateWeights(in: folder, variant: variant).lazy(Self.parameters(config))
        try self.init(config: config, parameters: Weights(lazy: parameters, precision: Self.weightPrecision(precision)))
    }

    // MARK: Decoding

    /// diffusers' `PaellaVQModel.decode(h, force_not_quantize=...)`: latents to images.
    ///
    /// The Würstchen decoder pipeline calls `vqgan.decode(scale_factor * latents)` with the default
    /// `force_not_quantize=True` and clamps the result to [0, 1] itself (`decodePipelineLatents`
    /// does the scaling, not the clamp). With `forceNotQuantize: false` every latent pixel is first
    /// replaced by its nearest codebook vector. The batch is decoded one sample at a time, so peak
    /// memory is that of one image.
    /// latents: [B, h, w, latent_channels] -> [B, h * downscale, w * downscale, out_channels]
    public func decode(_ latents: Tensor, forceNotQuantize: Bool = true) throws -> Tensor {
        guard latents.rank == 4, latents.dim(3) == config.latentChannels, latents.dim(1) >= 1, latents.dim(2) >= 1 else {
            throw PaellaVQModelError(
                description: "vqgan decode expects latents [B, h, w, \(config.latentChannels)] (NHWC), got \(latents.shape)")
        }
        let b = latents.dim(0), h = latents.dim(1), w = latents.dim(2), f = config.downscale
        let out = Tensor(uninitialized: [b, h * f, w * f, config.outChannels])
        for i in 0..<b {
            var x = latents.rowsView(i..<(i + 1))  // [1, h, w, latent]
            if !forceNotQuantize { x = vquantizer(x) }
            out.updateRowsInPlace(from: decodeSample(x), at: i)
        }
        return out
    }

    /// What the Würstchen decoder pipeline hands Stage A: `decode(scale_factor * latents)`, unclamped.
    /// latents: [B, h, w, latent_channels] (Stage B's output) -> [B, h * downscale, w * downscale, out_channels]
    public func decodePipelineLatents(_ latents: Tensor) throws -> Tensor {
        try decode(latents * config.scaleFactor)
    }

    /// One sample through `up_blocks` and `out_block`. x: [1, h, w, latent] -> [1, H, W, out]
    private func decodeSample(_ latent: Tensor) -> Tensor {
        var x = up_in(latent)  // [1, h, w, c_levels[-1]]
        for stage in up_blocks {
            switch stage {
            case .block(let block): block.apply(x, tileTokens: channelwiseTileTokens, bandRows: bandRows)
            case .upscale(let conv): x = conv(x)  // [1, 2h', 2w', c / 2]
            case .downscale: preconditionFailure("no downscale in the decoder")
            }
        }
        x = out_block(x)  // [1, H / s, W / s, out * s * s]
        return pixelShuffle(x, factor: config.upDownScaleFactor)
    }

    // MARK: Encoding and quantisation

    /// diffusers' `PaellaVQModel.encode(x).latents`: images to (unquantised) latents, BatchNorm in
    /// eval mode (running statistics).
    /// images: [B, H, W, in_channels], H and W multiples of `downscale` -> [B, H / downscale, W / downscale, latent]
    public func encode(_ images: Tensor) throws -> Tensor {
        let f = config.downscale
        guard images.rank == 4, images.dim(3) == config.inChannels, images.dim(1) > 0, images.dim(2) > 0,
            images.dim(1) % f == 0, images.dim(2) % f == 0
        else {
            throw PaellaVQModelError(
                description: "vqgan encode expects images [B, H, W, \(config.inChannels)] (NHWC) with H and W multiples of \(f), got \(images.shape)")
        }
        let b = images.dim(0), h = images.dim(1) / f, w = images.dim(2) / f
        let out = Tensor(uninitialized: [b, h, w, config.latentChannels])
        for i in 0..<b {
            var x = pixelUnshuffle(images.rowsView(i..<(i + 1)), factor: config.upDownScaleFactor)
            x = in_block(x)  // [1, H / s, W / s, c_levels[0]]
            for stage in down_blocks {
                switch stage {
                case .block(let block): block.apply(x, tileTokens: channelwiseTileTokens, bandRows: bandRows)
                case .downscale(let conv): x = conv(x)  // [1, h' / 2, w' / 2, 2c]
                case .upscale: preconditionFailure("no upscale in the encoder")
                }
            }
            x = down_latent(x)  // [1, h, w, latent]
            down_norm.applyInPlace(x)
            out.updateRowsInPlace(from: x, at: i)
        }
        return out
    }

    /// diffusers' `VectorQuantizer(...)(z)[0]`: every latent pixel replaced by its nearest codebook
    /// vector (Euclidean), as `z + (z_q - z)`. latents: [B, h, w, latent] -> same
    public func quantize(_ latents: Tensor) throws -> Tensor {
        guard latents.rank == 4, latents.dim(3) == config.latentChannels else {
            throw PaellaVQModelError(
                description: "vqgan quantize expects latents [B, h, w, \(config.latentChannels)] (NHWC), got \(latents.shape)")
        }
        return vquantizer(latents)
    }

}

// MARK: - Blocks

/// Paella's `MixingResidualBlock(c, 4c)`:
/// ```
/// x = x + depthwise(norm1(x) * (1 + g0) + g1) * g2      # ReplicationPad2d(1) + Conv2d(c, c, 3, groups=c)
/// x = x + channelwise(norm2(x) * (1 + g3) + g4) * g5    # Linear(c, 4c) -> GELU -> Linear(4c, c)
/// ```
/// with `g = gammas` (six scalars) and LayerNorms without affine, eps 1e-6. Applied in place; the
/// channelwise half runs in tiles of tokens so that its 4x wide hidden layer never exists whole.
struct MixingResidualBlock {
    let depthwise: DepthwiseConv2d  // depthwise.1
    let channelwise0: Linear  // [4c, c]
    let channelwise2: Linear  // [c, 4c]
    let gammas: [Float]

    static func parameters(_ prefix: String, c: Int) -> [ParameterSpec] {
        Declare.conv(prefix + ".depthwise.1", c, c, kernel: 3, groups: c)
            + Declare.linear(prefix + ".channelwise.0", c, 4 * c)
            + Declare.linear(prefix + ".channelwise.2", 4 * c, c)
            + [ParameterSpec(prefix + ".gammas", [6])]
    }

    init(_ w: Weights, _ prefix: String) {
        depthwise = DepthwiseConv2d(
            weight: w[prefix + ".depthwise.1.weight"], bias: w[prefix + ".depthwise.1.bias"], paddingMode: .replicate)
        channelwise0 = w.linear(prefix + ".channelwise.0")
        channelwise2 = w.linear(prefix + ".channelwise.2")
        gammas = w[prefix + ".gammas"].toArray()
    }

    /// x: [B, H, W, C], updated in place, one band of `bandRows` image rows at a time (default: about
    /// 4M floats per band). Both halves are local: the depthwise half of output row y reads normalised
    /// rows y-1...y+1 of the block's input, the channelwise half only row y. So a band needs the
    /// normalised rows of the band plus one halo row on each side, taken before the previous band
    /// changed them (the upper halo is carried over from the previous band, the lower one is not
    /// updated yet). Extra memory: `(bandRows + 2)` normalised rows, their depthwise output, and
    /// `tileTokens * 5C` floats for the channelwise MLP, instead of whole-image temporaries.
    func apply(_ x: Tensor, tileTokens: Int, bandRows: Int? = nil) {
        precondition(x.rank == 4 && x.dim(3) == depthwise.channels, "MixingResidualBlock expects [B, H, W, \(depthwise.channels)], got \(x.shape)")
        let g = gammas
        let b = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3)
        let rowFloats = w * c
        guard rowFloats > 0, h > 0 else { return }
        let band = max(1, min(h, bandRows ?? max(8, (1 << 22) / rowFloats)))
        let normed = Tensor(uninitialized: [band + 2, w, c])  // normalised rows haveLo..<haveHi
        let scratch = ChannelwiseScratch(block: self, tileTokens: tileTokens, c: c)
        for s in 0..<b {
            let image = x.row(s)  // [H, W, C], rows are image rows
            var haveLo = 0, haveHi = 0
            var y0 = 0
            while y0 < h {
                let y1 = min(h, y0 + band)
                let lo = max(0, y0 - 1), hi = min(h, y1 + 1)
                // Keep the normalised rows lo..<haveHi from the previous band (computed before it updated them).
                let kept = max(0, haveHi - lo)
                if kept > 0 { memmove(normed.data, normed.data + (lo - haveLo) * rowFloats, kept * rowFloats * 4) }
                // norm1(x) * (1 + g0) + g1 for the new rows; torch rounds (1 + g0) to float first.
                let fresh = lo + kept
                let newRows = normed.rowsView(kept..<(kept + hi - fresh))  // [hi - fresh, W, C]
                newRows.updateRowsInPlace(from: image.rowsView(fresh..<hi), at: 0)
                wuerstchenLayerNorm.applyInPlace(newRows)
                newRows.scaleShiftInPlace(scale: 1 + g[0], shift: g[1])
                (haveLo, haveHi) = (lo, hi)
                // x += depthwise(t) * g2 for rows y0..<y1 (the halo rows' outputs are discarded: the view's
                // replicate padding is right only at the image's own edges).
                let d = depthwise(normed.rowsView(0..<(hi - lo)).reshaped([1, hi - lo, w, c])).row(0)  // [hi - lo, W, C]
                let xBand = image.rowsView(y0..<y1)
                xBand.addScaledInPlace(d.rowsView((y0 - lo)..<(y1 - lo)), scale: g[2])
                // x += channelwise(norm2(x) * (1 + g3) + g4) * g5 for the band's tokens.
                channelwise(xBand.reshaped([(y1 - y0) * w, c]), scratch)
                y0 = y1
            }
        }
    }

    /// Tile buffers of the channelwise MLP.
    private struct ChannelwiseScratch {
        let tile: Int
        let xn: Tensor  // [tile, C]
        let hidden: Tensor  // [tile, 4C]

        init(block: MixingResidualBlock, tileTokens: Int, c: Int) {
            tile = max(1, tileTokens)
            xn = Tensor(uninitialized: [tile, c])
            hidden = Tensor(uninitialized: [tile, block.channelwise0.outFeatures])
        }
    }

    /// `x += channelwise(norm2(x) * (1 + g3) + g4) * g5` over the tokens of `x`, in place, in equal tiles:
    /// xn [n, C] -> hidden [n, 4C] -> y [n, C] (back in xn) -> x. x: [tokens, C]
    private func channelwise(_ x: Tensor, _ scratch: ChannelwiseScratch) {
        let g = gammas, hiddenC = channelwise0.outFeatures, tokens = x.dim(0)
        let tiles = (tokens + scratch.tile - 1) / scratch.tile
        guard tiles > 0 else { return }
        let per = (tokens + tiles - 1) / tiles
        let hidden = scratch.hidden.data
        var t0 = 0
        while t0 < tokens {
            let n = min(per, tokens - t0)
            let rows = x.rowsView(t0..<(t0 + n)), xn = scratch.xn.rowsView(0..<n)  // [n, C]
            xn.updateRowsInPlace(from: rows, at: 0)
            wuerstchenLayerNorm.applyInPlace(xn)
            xn.scaleShiftInPlace(scale: 1 + g[3], shift: g[4])
            linear(channelwise0, xn.data, rows: n, into: hidden)
            Activation.gelu.apply(hidden, hidden, count: n * hiddenC)
            linear(channelwise2, hidden, rows: n, into: xn.data)
            rows.addScaledInPlace(xn, scale: g[5])
            t0 += n
        }
    }

    /// `out = x W^T + b` for `rows` rows, as `torch.addmm` (bias preloaded, GEMM accumulates onto it).
    private func linear(_ l: Linear, _ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        l.apply(x, rows: rows, into: out)
    }
}

/// `nn.BatchNorm2d` in eval mode, as PyTorch's CPU kernel computes it
/// (aten/src/ATen/native/batch_norm.cpp `batch_norm_cpu_collect_linear_and_constant_terms`):
/// `alpha = weight / sqrt(running_var + eps)`, `beta = bias - running_mean * alpha`, `y = x * alpha + beta`.
private struct BatchNorm {
    let alpha: Tensor  // [C]
    let beta: Tensor  // [C]

    init(weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor, eps: Float = 1e-5) {
        var a = [Float](repeating: 0, count: weight.count), b = a
        for c in 0..<weight.count {
            let invstd = 1 / (runningVar[flat: c] + eps).squareRoot()
            a[c] = invstd * weight[flat: c]
            b[c] = bias[flat: c] - runningMean[flat: c] * a[c]
        }
        alpha = Tensor(shape: [a.count], values: a)
        beta = Tensor(shape: [b.count], values: b)
    }

    /// x: [..., C] normalised in place: `x * alpha` rounded, then `+ beta` (torch's two roundings).
    func applyInPlace(_ x: Tensor) {
        precondition(x.dim(-1) == alpha.count, "BatchNorm over \(alpha.count) channels got \(x.shape)")
        x.mulInPlace(alpha)
        x.addInPlace(beta)
    }
}

/// diffusers' `VectorQuantizer(n_e, vq_embed_dim, beta=0.25, legacy=False)` forward, the quantised
/// latents only (the loss and indices are training outputs).
///
/// `argmin(cdist(z, E))` equals `argmin(|e|^2 - 2 z.e)` (the `|z|^2` term is the same for every code),
/// computed with one GEMM per tile of tokens; the first index wins ties, as `torch.argmin`.
private struct VectorQuantizer {
    let codebook: Tensor  // [n_e, D]
    let norms: Tensor  // [n_e], |e|^2

    init(codebook: Tensor) {
        self.codebook = codebook
        let n = codebook.dim(0), d = codebook.dim(1)
        norms = Tensor(uninitialized: [n])
        for i in 0..<n {
            var s: Float = 0
            for j in 0..<d { s += codebook[flat: i * d + j] * codebook[flat: i * d + j] }
            norms[flat: i] = s
        }
    }

    /// z: [..., D] -> [..., D]
    func callAsFunction(_ z: Tensor) -> Tensor {
        let n = codebook.dim(0), d = codebook.dim(1)
        let tokens = z.count / d
        let out = Tensor(uninitialized: z.shape)
        let tile = max(1, min(tokens, (1 << 20) / n))
        let scores = Tensor(uninitialized: [tile, n])
        var t0 = 0
        while t0 < tokens {
            let m = min(tile, tokens - t0)
            // scores[t, j] = |e_j|^2 - 2 z_t . e_j
            for r in 0..<m { (scores.data + r * n).update(from: norms.data, count: n) }
            GEMM.sgemm(
                transB: true, m: m, n: n, k: d, alpha: -2, a: z.data + t0 * d, lda: d,
                b: codebook.data, ldb: d, beta: 1, c: scores.data, ldc: n)
            let zs = z.data, cb = codebook.data, sc = scores.data, o = out.data
            Compute.pool.parallelFor(m, grain: 16) { range in
                for r in range {
                    let row = sc + r * n
                    var best = 0
                    var bestScore = row[0]
                    for j in 1..<max(n, 1) where row[j] < bestScore {
                        best = j
                        bestScore = row[j]
                    }
                    // z + (z_q - z), as the straight-through estimator rounds it.
                    let zr = zs + (t0 + r) * d, e = cb + best * d, orow = o + (t0 + r) * d
                    for k in 0..<d { orow[k] = zr[k] + (e[k] - zr[k]) }
                }
            }
            t0 += m
        }
        return out
    }
}
