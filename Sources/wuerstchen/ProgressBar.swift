import Foundation
import Wuerstchen

/// A one-line progress bar on stderr.
enum ProgressBar {
    static func draw(_ p: GenerationProgress) {
        let width = 30, filled = p.total == 0 ? width : width * p.step / p.total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data("\r\(p.stage.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) [\(bar)] \(p.step)/\(p.total)".utf8))
    }

    static func finish() { FileHandle.standardError.write(Data("\n".utf8)) }
}
