import Foundation
import Tensor
import Wuerstchen

/// Which pipelines to load and how: what `ModelOptions` parses from the command line, and what `serve` takes
/// from its configuration (defaults, file, environment, flags) as it is.
struct PipelineLoader {
    /// Prior pipeline folder; nil with `decoder` for the embedded demo model.
    var prior: String?
    /// Decoder pipeline folder.
    var decoder: String?
    /// The precision asked for; fp32 runs where the CPU lacks AVX512-BF16 (bf16) or AVX2 (int8).
    var precision: Precision
    /// Threads for OpenBLAS and the op pool, 0 for every core.
    var threads: Int

    /// Loads the pipelines (or the embedded demo model), logging what was loaded and how long it took.
    func load() throws -> WuerstchenPipeline {
        Compute.configure(threads: threads)
        let (precision, note) = self.precision.resolved()
        if let note { log(note) }
        let start = Date()
        let pipeline: WuerstchenPipeline
        if let prior, let decoder {
            pipeline = try WuerstchenPipeline(
                priorFolder: URL(fileURLWithPath: prior), decoderFolder: URL(fileURLWithPath: decoder), precision: precision)
            log("loaded \(prior) and \(decoder) (\(precision.rawValue)) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        } else {
            pipeline = try DemoModel.pipeline(precision: precision)
            log("using the embedded demo model (\(precision.rawValue)): it draws one shape on a plain background, e.g. \"a red circle on a blue background\"; pass --prior and --decoder with the real weights for anything else")
        }
        return pipeline
    }
}
