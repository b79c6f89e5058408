import CLIP
import Foundation
import SafeTensors
import Tensor

/// The embedded demo pipeline: the real architecture family at toy width with random weights drawn
/// from fixed seeds, and the real CLIP tokenizer, so that everything runs on a fresh checkout without
/// downloading weights. Its images are noise: only real weights (`--prior`, `--decoder`) give pictures.
public enum DemoModel {
    /// Seed of the first component; each component uses the next one.
    static let seed: UInt64 = 20230607

    /// Prior text encoder (ViT-bigG/14 family, narrowed).
    static let priorText = CLIPTextConfig(hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 2, hiddenAct: "gelu")
    /// Decoder text encoder (ViT-H/14 family, narrowed).
    static let decoderText = CLIPTextConfig(hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 2, hiddenAct: "gelu")
    static let prior = WuerstchenPriorConfig(cIn: 16, c: 64, cCond: 32, cR: 64, depth: 2, nhead: 4, dropout: 0)
    static let decoder = WuerstchenDiffNeXtConfig(
        cIn: 4, cOut: 4, cR: 64, patchSize: 2, cCond: 64, cHidden: [16, 32, 64, 64], nhead: [-1, 2, 4, 4],
        blocks: [1, 1, 2, 1], effnetEmbd: 16, clipEmbd: 32, dropout: .uniform(0))
    static let vqgan = PaellaVQModelConfig(levels: 2, bottleneckBlocks: 2, embedDim: 32, latentChannels: 4, numVqEmbeddings: 64)

    /// Random weights for `specs`: normal * 0.1 (output heads * 0.02 so that the latents stay finite
    /// and the pixels are not all clamped), LayerNorm weights 1 + noise, BatchNorm variances 1.
    static func weights(_ specs: [ParameterSpec], seed: UInt64, smallOutputs: [String]) -> [String: Tensor] {
        let g = TorchGenerator(seed: seed)
        var out: [String: Tensor] = [:]
        for spec in specs {
            var t = g.randn(spec.shape)
            if spec.name.hasSuffix("running_var") {
                t = Tensor(shape: spec.shape, repeating: 1)
            } else if spec.name.hasSuffix("running_mean") {
                t = Tensor(zeros: spec.shape)
            } else if spec.name.contains("layer_norm") && spec.name.hasSuffix(".weight") {
                t = t.mul(0.02).add(1)
            } else {
                t = t.mul(smallOutputs.contains(where: spec.name.hasPrefix) ? 0.02 : 0.1)
            }
            out[spec.name] = t
        }
        return out
    }

    /// Builds the demo pipeline (about a second; a few MB of weights), GEMM weights in `precision`.
    public static func pipeline(precision: Precision = .fp32) throws -> WuerstchenPipeline {
        let tokenizer = try CLIPTokenizer.embedded
        let priorPipeline = WuerstchenPriorPipeline(
            tokenizer: tokenizer,
            textEncoder: try CLIPTextModel(config: priorText, weights: weights(CLIPTextModel.parameters(priorText), seed: seed, smallOutputs: []), precision: precision),
            prior: try WuerstchenPrior(config: prior, weights: weights(WuerstchenPrior.parameters(prior), seed: seed + 1, smallOutputs: ["out."]), precision: precision))
        var vqWeights = weights(PaellaVQModel.parameters(vqgan), seed: seed + 4, smallOutputs: ["out_block."])
        vqWeights["out_block.0.bias"] = Tensor(shape: vqWeights["out_block.0.bias"]!.shape, repeating: 0.5)  // mid-grey noise
        let decoderPipeline = WuerstchenDecoderPipeline(
            tokenizer: tokenizer,
            textEncoder: try CLIPTextModel(config: decoderText, weights: weights(CLIPTextModel.parameters(decoderText), seed: seed + 2, smallOutputs: []), precision: precision),
            decoder: try WuerstchenDiffNeXt(config: decoder, weights: weights(WuerstchenDiffNeXt.parameters(decoder), seed: seed + 3, smallOutputs: ["clf."]), precision: precision),
            vqgan: try PaellaVQModel(config: vqgan, weights: vqWeights, precision: precision))
        return WuerstchenPipeline(prior: priorPipeline, decoder: decoderPipeline)
    }
}
