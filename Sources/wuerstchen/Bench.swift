import ArgumentParser

/// `wuerstchen bench ...`
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (build with -c release).",
        subcommands: [BenchPipeline.self, BenchOps.self, BenchCLIP.self, BenchBatch.self, BenchFormats.self, BenchPreview.self], defaultSubcommand: BenchPipeline.self)
}
