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
}
