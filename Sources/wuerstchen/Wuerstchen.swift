import ArgumentParser
import Foundation
import Tensor

@main
struct Wuerstchen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wuerstchen",
        abstract: "Würstchen v2 text-to-image on CPUs.",
        subcommands: [Generate.self, Tokenize.self, Bench.self, Serve.self])
}
