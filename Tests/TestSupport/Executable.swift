import Foundation

/// Why a product executable could not be run.
public struct ExecutableNotFound: Error, CustomStringConvertible {
    public let name: String
    public var description: String {
        "\(name) executable not found near \(CommandLine.arguments[0]); build the package first (swift build)"
    }
}

/// The package's executable `name` next to the test bundle (both are products of the same build).
public func productExecutable(_ name: String = "wuerstchen") throws -> URL {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    throw ExecutableNotFound(name: name)
}
