import Foundation
import Tensor

/// How a checkpoint lays out its tensors.
public enum WeightLayout: Sendable, Equatable {
    /// PyTorch / diffusers: Linear weights `[out, in]`, BatchNorm `running_mean` / `running_var`.
    case pytorch
    /// PaddlePaddle / ppdiffusers: Linear weights `[in, out]`, BatchNorm `_mean` / `_variance`.
    case paddle
}

/// Which precision variant of a component's weights to take when a folder holds several.
public enum WeightsVariant: Sendable, Equatable {
    /// The plain (usually float32) file; the `.fp16.` file only when there is no plain one.
    case preferFull
    /// The `.fp16.` file; the plain one only when there is no fp16 one.
    case preferFP16
}

/// A component's weights as found in its folder.
public struct ComponentWeights: Sendable {
    /// The component folder.
    public let folder: URL
    /// The file chosen: a `.safetensors` file or a shard index `.json`.
    public let file: URL
    /// Whether `file` is the `.fp16.` variant.
    public let isFP16Variant: Bool
    /// The opened, validated checkpoint.
    public let checkpoint: SafeTensorsCheckpoint
    /// The layout, from the metadata `format` (`pd` / `pt`) or else the file name
    /// (`diffusion_paddle_model*` is Paddle, everything else PyTorch).
    public let layout: WeightLayout

    /// Loads `parameters` strictly (see `WeightLoader.load`).
    public func load(_ parameters: [ParameterSpec]) throws -> [String: Tensor] {
        try WeightLoader.load(parameters, from: checkpoint, layout: layout)
    }

    /// Validates `parameters` strictly and returns them to be read one at a time (see `LazyParameters`).
    public func lazy(_ parameters: [ParameterSpec]) throws -> LazyParameters {
        try LazyParameters(parameters, from: checkpoint, layout: layout)
    }
}

/// Finds and opens the weights of a component folder in diffusers or PaddlePaddle layout.
public enum ModelFolder {
    /// Weight file stems, in order of preference: diffusers, transformers (also PaddleNLP), ppdiffusers.
    static let stems = ["diffusion_pytorch_model", "model", "diffusion_paddle_model"]
    /// Stems whose files are Paddle layout unless their metadata says `pt`.
    static let paddleStems: Set<String> = ["diffusion_paddle_model"]

    /// File names tried for `stem`: single file, then shard index (diffusers' `_add_variant` puts
    /// the variant before `.index.json`; transformers puts it before `.json`: both are accepted).
    static func candidates(_ stem: String, fp16: Bool) -> [String] {
        fp16
            ? ["\(stem).fp16.safetensors", "\(stem).safetensors.fp16.index.json", "\(stem).safetensors.index.fp16.json"]
            : ["\(stem).safetensors", "\(stem).safetensors.index.json"]
    }

    /// Every name tried, in order, for `variant`.
    public static func searchOrder(_ variant: WeightsVariant) -> [String] {
        let full = stems.flatMap { candidates($0, fp16: false) }
        let half = stems.flatMap { candidates($0, fp16: true) }
        return variant == .preferFull ? full + half : half + full
    }

    /// Finds the weights in `folder`, opens and validates them.
    ///
    /// Throws `ModelFolderError` listing the names looked for and what the folder holds when
    /// nothing matches (pickled `model_state.pdparams` / `*.bin` checkpoints are not supported
    /// and are called out), or `SafeTensorsError` when the file found is damaged.
    public static func locateWeights(in folder: URL, variant: WeightsVariant = .preferFull) throws -> ComponentWeights {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw ModelFolderError(path: folder.path, reason: "model folder does not exist or is not a directory")
        }
        let order = searchOrder(variant)
        for name in order {
            let url = folder.appendingPathComponent(name)
            guard fm.fileExists(atPath: url.path) else { continue }
            let checkpoint = try SafeTensorsCheckpoint(url: url)
            let stem = stems.first { name.hasPrefix($0 + ".") }!
            let layout: WeightLayout
            switch checkpoint.format {
            case .pd: layout = .paddle
            case .pt: layout = .pytorch
            default: layout = paddleStems.contains(stem) ? .paddle : .pytorch
            }
            return ComponentWeights(
                folder: folder, file: url, isFP16Variant: name.contains(".fp16."), checkpoint: checkpoint, layout: layout)
        }
        let contents = ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
        var reason = "no weights file found; looked for \(order.joined(separator: ", "))"
        reason += "; the folder holds: " + (contents.isEmpty ? "nothing" : contents.prefix(40).joined(separator: ", "))
        if contents.count > 40 { reason += ", ... (\(contents.count) entries)" }
        let pickles = contents.filter { $0.hasSuffix(".pdparams") || $0.hasSuffix(".bin") || $0.hasSuffix(".pt") || $0.hasSuffix(".ckpt") }
        if !pickles.isEmpty {
            reason += ". \(pickles.joined(separator: ", ")) is a pickled checkpoint, which is not supported (it can run code): "
                + "convert it to safetensors (ppdiffusers/diffusers save_pretrained(..., safe_serialization=True))"
        }
        throw ModelFolderError(path: folder.path, reason: reason)
    }

    /// Finds the weights of `folder` and loads `parameters` strictly, in PyTorch layout.
    public static func loadParameters(
        _ parameters: [ParameterSpec], from folder: URL, variant: WeightsVariant = .preferFull
    ) throws -> [String: Tensor] {
        try locateWeights(in: folder, variant: variant).load(parameters)
    }
}
