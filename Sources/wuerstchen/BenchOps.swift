import ArgumentParser
import Foundation
import JSON
import Tensor

/// `wuerstchen bench ops`: every op at the model's real shapes. `scripts/bench_ops.py` runs the
/// same cases (same names, shapes and work counts) in PyTorch and prints both side by side.
struct BenchOps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops", abstract: "Time each engine op at the model's real shapes.")

    @Option(help: "Threads for OpenBLAS and the op pool (0: all cores).")
    var threads: Int = 0

    @Option(help: "Timed repetitions per case (the median is reported).")
    var repeats: Int = 10

    @Option(help: "Only cases whose name contains this text.")
    var filter: String?

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func run() throws {
        Compute.configure(threads: threads)
        var results: [JSONValue] = []
        if !json {
            print("OpenBLAS core \(Compute.blasCoreName), \(Compute.blasThreads) threads, GELU kernel \(KernelPath.bestName)")
        }
        for c in OpCases.all() where filter.map({ c.name.contains($0) }) ?? true {
            let s = c.time(repeats: repeats)
            let rate = c.work / s / 1e9
            results.append(.object([("name", .string(c.name)), ("rate", .double(rate)), ("seconds", .double(s)), ("unit", .string(c.unit))]))
            if !json {
                print(String(format: "%-48@ %9.3f ms %9.1f %@", c.name, s * 1e3, rate, c.unit))
            }
        }
        if json {
            // Keys in sorted order, as before.
            let object = JSONValue.object([
                ("blas_core", .string(Compute.blasCoreName)), ("cases", .array(results)), ("gelu_kernel", .string(KernelPath.bestName)),
                ("threads", .int(Compute.blasThreads)),
            ])
            print(object.serialized)
        }
    }
}
