import Foundation
import SafeTensors

/// The reference files of one test target's bundle (`Fixtures/` copied as a resource): each target
/// declares `let Fixture = Fixtures(bundle: .module)`, since `Bundle.module` is per target.
public struct Fixtures: Sendable {
    public let bundle: Bundle

    public init(bundle: Bundle) { self.bundle = bundle }

    /// URL of `Fixtures/<name>` (a file or a folder) in the bundle.
    public func url(_ name: String) throws -> URL {
        guard let url = bundle.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
            throw SafeTensorsError(file: "Fixtures/\(name)", reason: "fixture missing from the test bundle")
        }
        return url
    }

    /// Opens `Fixtures/<name>.safetensors` (reference tensors written by PyTorch or diffusers,
    /// `scripts/fixtures/*.py`).
    public func load(_ name: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(url: url(name + ".safetensors"))
    }

    /// `Fixtures/<name>`: a published checkpoint's tensor names and shapes, one `name<TAB>[d0, d1, ...]` line
    /// each (written from the real files' headers).
    public func tensorShapes(_ name: String) throws -> [String: [Int]] {
        let tsv = try String(contentsOf: url(name), encoding: .utf8)
        var shapes: [String: [Int]] = [:]
        for line in tsv.split(separator: "\n") where !line.isEmpty {
            let cols = line.split(separator: "\t")
            shapes[String(cols[0])] = cols[1].dropFirst().dropLast().split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces))! }
        }
        return shapes
    }
}
