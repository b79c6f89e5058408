import ArgumentParser
import Foundation
import Serving
import Tensor

@main
struct Wuerstchen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wuerstchen",
        abstract: "Würstchen v2 text-to-image on CPUs.",
        version: WuerstchenVersion.current,
        subcommands: [Generate.self, Inspect.self, Tokenize.self, Bench.self, Serve.self])
}
