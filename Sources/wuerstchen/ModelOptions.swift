import ArgumentParser
import Tensor
import Wuerstchen

/// Options shared by the commands that run the models.
struct ModelOptions: ParsableArguments {
    // Deliberate parallel of Generate.swift and Serve.swift's options: ArgumentParser declarations, each flag's
    // own help and type.
    @Option(help: "Prior pipeline folder (warp-ai/wuerstchen-prior layout, diffusers or PaddlePaddle). Omit both folders for the embedded demo model.")
    var prior: String?

    @Option(help: "Decoder pipeline folder (warp-ai/wuerstchen layout, diffusers or PaddlePaddle).")
    var decoder: String?

    @Option(help: "Numeric precision (default fp32; `generate --from` takes the image's): fp32, bf16 (GEMM weights and inputs in bfloat16 through oneDNN, float32 elsewhere; needs AVX512-BF16, else fp32 with a message) or int8 (Linear, 1x1-conv and attention-projection GEMMs in int8 through oneDNN, float32 elsewhere; needs AVX2, else fp32 with a message).")
    var precision: String?

    @Option(help: "Threads for OpenBLAS and the op pool (0: all cores).")
    var threads: Int = 0

    func validate() throws {
        guard (prior == nil) == (decoder == nil) else {
            throw ValidationError("--prior and --decoder go together: give both pipeline folders, or neither for the demo model")
        }
        if let precision, Precision(rawValue: precision) == nil {
            throw ValidationError("--precision must be fp32, bf16 or int8, got '\(precision)'")
        }
        guard threads >= 0 else { throw ValidationError("--threads must be 0 (all cores) or more, got \(threads)") }
    }

    /// The precision that runs: `--precision`, or fp32 where the CPU lacks AVX512-BF16 (bf16) or AVX2 (int8).
    var effectivePrecision: Precision { (precision.flatMap(Precision.init(rawValue:)) ?? .fp32).resolved().precision }

    /// The model id recorded in images: `wuerstchen-v2`, or `wuerstchen-v2-demo` for the embedded demo model.
    var modelID: String { DemoModel.modelID(isDemo: prior == nil) }

    /// What the options ask to load.
    var loader: PipelineLoader {
        PipelineLoader(prior: prior, decoder: decoder, precision: precision.flatMap(Precision.init(rawValue:)) ?? .fp32, threads: threads)
    }

    /// Loads the pipelines (or the embedded demo model), logging what was loaded and how long it took.
    func load() throws -> WuerstchenPipeline { try loader.load() }
}
