import ArgumentParser
import Foundation
import Tensor

/// `wuerstchen bench ...`
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (release build): `bench ops` times the engine's ops at the model's shapes.",
        subcommands: [BenchOps.self])
}

struct BenchOps: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ops", abstract: "Time each op at the model's real shapes.")

    @Option(help: "Threads for OpenBLAS and the op pool (0: all cores).")
    var threads: Int = 0

    func run() throws {
        Compute.configure(threads: threads)
        print("OpenBLAS core: \(Compute.blasCoreName), threads: \(Compute.blasThreads)")
    }
}
