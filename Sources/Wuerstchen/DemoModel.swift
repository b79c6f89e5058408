import Foundation
import SafeTensors
import Tensor

/// The embedded demo pipeline: a toy-width Würstchen v2 (the real model classes and the real CLIP
/// tokenizer) trained on scenes drawn by code, so that a fresh checkout draws pictures without downloading
/// weights. Its grammar is one flat-coloured circle, square, triangle or ring, small, medium or large, centred
/// or on the left, right, top or bottom, on a flat background ("a red circle on a blue background"); it gets
/// the colours right far more often than the shape or place (scores in README), and other prompts give
/// abstract pictures. Trained by `scripts/demo_model/train.py`, stored in the
/// diffusers layout (fp16) under `Resources/DemoModel/{prior,decoder}`, and loaded through the same code as
/// real weights.
public enum DemoModel {
    /// The id recorded in the images it draws and served by `/v1/models` (the one name for it, CLI and server).
    public static let id = "wuerstchen-v2-demo"
    /// The id of the published pipelines (`warp-ai/wuerstchen-prior` + `warp-ai/wuerstchen`).
    public static let publishedID = "wuerstchen-v2"

    /// The model id of a loaded pipeline: `id` for the demo model (no folders given), else `publishedID`.
    public static func modelID(isDemo: Bool) -> String { isDemo ? id : publishedID }

    /// The two pipeline folders inside the module bundle.
    public static var folders: (prior: URL, decoder: URL) {
        get throws {
            guard let resources = Bundle.module.url(forResource: "Resources", withExtension: nil),
                  case let root = resources.appendingPathComponent("DemoModel"),
                  FileManager.default.fileExists(atPath: root.appendingPathComponent("prior/model_index.json").path)
            else {
                throw ModelFolderError(path: "Wuerstchen.bundle/Resources/DemoModel", reason: "the embedded demo model is missing from the module bundle")
            }
            return (root.appendingPathComponent("prior"), root.appendingPathComponent("decoder"))
        }
    }

    /// Loads the demo pipeline (well under a second), GEMM weights in `precision`.
    public static func pipeline(precision: Precision = .fp32) throws -> WuerstchenPipeline {
        let folders = try folders
        return try WuerstchenPipeline(priorFolder: folders.prior, decoderFolder: folders.decoder, precision: precision)
    }
}
