import Foundation
import SafeTensors
import Tensor

// transformers `CLIPTextModel` (src/transformers/models/clip/modeling_clip.py): token + position
// embeddings, pre-LayerNorm encoder layers with causal self-attention, final LayerNorm.
// Returns `last_hidden_state`, which is all both Würstchen pipelines read.

/// `CLIPTextConfig` as transformers writes it to `config.json`; defaults are transformers'.
public struct CLIPTextConfig: Codable, Sendable, Equatable {
    // Deliberate parallel of Wuerstchen/PaellaVQModel.swift, WuerstchenDiffNeXt.swift and
    // WuerstchenPrior.swift's configs (fields, CodingKeys, init, init(from:)):
    // each is its own checkpoint's config.json, field by field as it is written
    // (STYLE.md: one model family per file with its Codable config), so they are not shared.
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var maxPositionEmbeddings: Int
    public var hiddenAct: String
    public var layerNormEps: Float

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings"
        case hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps"
    }

    /// A configuration; every default is transformers' `CLIPTextConfig` default.
    public init(
        vocabSize: Int = 49408, hiddenSize: Int = 512, intermediateSize: Int = 2048, numHiddenLayers: Int = 12,
        numAttentionHeads: Int = 8, maxPositionEmbeddings: Int = 77, hiddenAct: String = "quick_gelu",
        layerNormEps: Float = 1e-5
    ) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.hiddenAct = hiddenAct
        self.layerNormEps = layerNormEps
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CLIPTextConfig()
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? d.layerNormEps
    }

    /// The ViT-bigG/14 text tower of `warp-ai/wuerstchen-prior`.
    public static let bigG = CLIPTextConfig(
        hiddenSize: 1280, intermediateSize: 5120, numHiddenLayers: 32, numAttentionHeads: 20, hiddenAct: "gelu")
    /// The ViT-H/14 text tower of `warp-ai/wuerstchen`.
    public static let vitH = CLIPTextConfig(
        hiddenSize: 1024, intermediateSize: 4096, numHiddenLayers: 24, numAttentionHeads: 16, hiddenAct: "gelu")
}

/// An error in a CLIP text model's configuration or inputs.
public struct CLIPModelError: Error, CustomStringConvertible {
    /// What is wrong, naming the file, field or input.
    public let description: String
}

/// transformers' `CLIPTextModel`: token ids `[B, L]` to `last_hidden_state` `[B, L, hidden]`.
public struct CLIPTextModel: @unchecked Sendable {
    /// The configuration the model was built from.
    public let config: CLIPTextConfig
    private let activation: Activation
    private let token_embedding: Tensor  // [vocab, D]
    private let position_embedding: Tensor  // [positions, D]
    private let layers: [EncoderLayer]
    private let final_layer_norm: LayerNorm

    /// The precision the Linear and attention weights are held in (bf16 or int8 only when all of them are).
    public var precision: Precision {
        guard let p = layers.first?.fc1.weight.precision else { return .fp32 }
        return layers.allSatisfy { $0.fc1.weight.precision == p && $0.self_attn.in_proj_weight.precision == p } ? p : .fp32
    }

    private struct EncoderLayer {
        let layer_norm1: LayerNorm
        let self_attn: MultiheadAttention  // q_proj, k_proj, v_proj stacked; out_proj
        let layer_norm2: LayerNorm
        let fc1: Linear
        let fc2: Linear
    }

    /// Every parameter the model declares, named as transformers names them (without the
    /// `text_model.` prefix that transformers 4.x files carry; `load` accepts both).
    public static func parameters(_ c: CLIPTextConfig) -> [ParameterSpec] {
        let d = c.hiddenSize, f = c.intermediateSize
        var specs: [ParameterSpec] = [
            ParameterSpec("embeddings.token_embedding.weight", [c.vocabSize, d]),
            ParameterSpec("embeddings.position_embedding.weight", [c.maxPositionEmbeddings, d]),
        ]
        for i in 0..<c.numHiddenLayers {
            let p = "encoder.layers.\(i)."
            for proj in ["k_proj", "v_proj", "q_proj", "out_proj"] {
                specs.append(ParameterSpec(p + "self_attn.\(proj).weight", [d, d], .linearWeight))
                specs.append(ParameterSpec(p + "self_attn.\(proj).bias", [d]))
            }
            specs += [
                ParameterSpec(p + "layer_norm1.weight", [d]), ParameterSpec(p + "layer_norm1.bias", [d]),
                ParameterSpec(p + "mlp.fc1.weight", [f, d], .linearWeight), ParameterSpec(p + "mlp.fc1.bias", [f]),
                ParameterSpec(p + "mlp.fc2.weight", [d, f], .linearWeight), ParameterSpec(p + "mlp.fc2.bias", [d]),
                ParameterSpec(p + "layer_norm2.weight", [d]), ParameterSpec(p + "layer_norm2.bias", [d]),
            ]
        }
        specs += [ParameterSpec("final_layer_norm.weight", [d]), ParameterSpec("final_layer_norm.bias", [d])]
        return specs
    }

    /// The model over `weights` (PyTorch layout, names from `parameters(config)`), Linear weights in `precision`.
    public init(config c: CLIPTextConfig, weights: consuming [String: Tensor], precision: Precision = .fp32) throws {
        var w = consume weights
        try self.init(config: c, precision: precision) { name in
            guard let x = w.removeValue(forKey: name) else { preconditionFailure("weight '\(name)' missing after strict load") }
            return x
        }
    }

    /// The model over tensors handed out once each by `take` (by PyTorch name, without `text_model.`).
    init(config c: CLIPTextConfig, precision: Precision, take: (String) throws -> Tensor) throws {
        guard let act = Activation(name: c.hiddenAct) else {
            throw CLIPModelError(description: "config hidden_act '\(c.hiddenAct)' is not supported (gelu, quick_gelu, gelu_new, silu)")
        }
        guard c.hiddenSize % c.numAttentionHeads == 0 else {
            throw CLIPModelError(description: "config hidden_size \(c.hiddenSize) is not divisible by num_attention_heads \(c.numAttentionHeads)")
        }
        // Every tensor is taken as it is used, so that those the layers convert (q, k, v stacked into one
        // projection, bfloat16) are freed at once rather than at the end of loading.
        func t(_ name: String) throws -> Tensor { try take(name) }
        func linear(_ p: String) throws -> Linear { Linear(weight: try t(p + ".weight"), bias: try t(p + ".bias")) }
        func norm(_ p: String) throws -> LayerNorm { LayerNorm(weight: try t(p + ".weight"), bias: try t(p + ".bias"), eps: c.layerNormEps) }
        config = c
        activation = act
        token_embedding = try t("embeddings.token_embedding.weight")
        position_embedding = try t("embeddings.position_embedding.weight")
        layers = try (0..<c.numHiddenLayers).map { i in
            let p = "encoder.layers.\(i)."
            return EncoderLayer(
                layer_norm1: try norm(p + "layer_norm1"),
                self_attn: MultiheadAttention(
                    query: try linear(p + "self_attn.q_proj"), key: try linear(p + "self_attn.k_proj"),
                    value: try linear(p + "self_attn.v_proj"), out: try linear(p + "self_attn.out_proj"),
                    heads: c.numAttentionHeads
                ).converted(to: precision),
                layer_norm2: try norm(p + "layer_norm2"),
                fc1: try linear(p + "mlp.fc1").converted(to: precision), fc2: try linear(p + "mlp.fc2").converted(to: precision))
        }
        final_layer_norm = try norm("final_layer_norm")
    }

    /// Loads `config.json` and the weights of a `text_encoder` folder (transformers or Paddle
    /// layout, `text_model.`-prefixed names or not, fp32 or fp16 files).
    /// Tensors are read one at a time and Linear weights converted to `precision` as they are.
    public init(folder: URL, variant: WeightsVariant = .preferFull, precision: Precision = .fp32) throws {
        let config = try loadConfig(CLIPTextConfig.self, from: folder)
        let weights = try ModelFolder.locateWeights(in: folder, variant: variant)
        // transformers 4.x (the published files) nests everything under `text_model.`; 5.x does not.
        let prefix = weights.checkpoint.info("text_model.final_layer_norm.weight") != nil ? "text_model." : ""
        let specs = Self.parameters(config).map { ParameterSpec(prefix + $0.name, $0.shape, $0.kind) }
        let parameters = try weights.lazy(specs)
        try self.init(config: config, precision: precision) { try parameters.tensor(prefix + $0) }
    }

    /// ids: [B, L] token ids, mask: [B, L] of 1 (token) / 0 (padding), or nil for no padding mask.
    /// -> last_hidden_state [B, L, hidden]
    public func callAsFunction(ids: [[Int32]], attentionMask: [[Int32]]? = nil) throws -> Tensor {
        let b = ids.count
        guard b > 0, let l = ids.first?.count, l > 0, ids.allSatisfy({ $0.count == l }) else {
            throw CLIPModelError(description: "input_ids must be a non-empty batch of equally long sequences")
        }
        guard l <= config.maxPositionEmbeddings else {
            throw CLIPModelError(description: "input_ids length \(l) exceeds max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        if let m = attentionMask, m.count != b || m.contains(where: { $0.count != l }) {
            throw CLIPModelError(description: "attention_mask must have the shape of input_ids [\(b), \(l)]")
        }
        let d = config.hiddenSize
        // Embeddings: token rows plus position rows. h: [B, L, D]
        var h = Tensor(uninitialized: [b, l, d])
        for (bi, row) in ids.enumerated() {
            for (j, id) in row.enumerated() {
                guard id >= 0, Int(id) < config.vocabSize else {
                    throw CLIPModelError(description: "input_ids[\(bi)][\(j)] = \(id) is outside the vocabulary of \(config.vocabSize)")
                }
                let dst = h.data + (bi * l + j) * d
                let tok = token_embedding.data + Int(id) * d, pos = position_embedding.data + j * d
                for k in 0..<d { dst[k] = tok[k] + pos[k] }
            }
        }
        let mask = Self.causalMask(batch: b, length: l, padding: attentionMask)  // [B or 1, L, L]
        for layer in layers {
            var x = layer.layer_norm1(h)
            x = layer.self_attn(x, mask: mask)
            h.addInPlace(x)
            x = layer.layer_norm2(h)
            x = layer.fc1(x)
            activation.applyInPlace(x)
            x = layer.fc2(x)
            h.addInPlace(x)
        }
        h = final_layer_norm(h)
        return h
    }

    /// The additive mask transformers builds: `_create_4d_causal_attention_mask` plus, with a padding
    /// mask, `_prepare_4d_attention_mask` (padded keys masked for every query). -> [B or 1, L, L]
    static func causalMask(batch: Int, length l: Int, padding: [[Int32]]?) -> Tensor {
        let rows = padding == nil ? 1 : batch
        let m = Tensor(zeros: [rows, l, l])
        for bi in 0..<rows {
            for i in 0..<l {
                for j in 0..<l where j > i || (padding?[bi][j] ?? 1) == 0 {
                    m.data[(bi * l + i) * l + j] = -.infinity
                }
            }
        }
        return m
    }
}
