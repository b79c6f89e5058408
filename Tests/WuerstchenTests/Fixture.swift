import Foundation
import SafeTensors
import Testing
import Tensor

/// Reference tensors written by diffusers (`scripts/fixtures/*.py`).
enum Fixture {
    /// URL of `Fixtures/<name>` in the test bundle.
    static func url(_ name: String) throws -> URL {
        guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
            throw SafeTensorsError(file: "Fixtures/\(name)", reason: "fixture missing from the test bundle")
        }
        return url
    }

    /// Opens `Fixtures/<name>.safetensors`.
    static func load(_ name: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(url: url(name + ".safetensors"))
    }
}

/// Largest absolute difference over the largest absolute expected value (or 1 if smaller).
func relativeError(_ actual: Tensor, _ expected: Tensor) -> Float {
    precondition(actual.count == expected.count, "element counts differ: \(actual.shape) vs \(expected.shape)")
    var maxDiff: Float = 0, maxRef: Float = 0
    for i in 0..<actual.count {
        let d = abs(actual[flat: i] - expected[flat: i])
        maxDiff = d.isNaN ? .infinity : max(maxDiff, d)
        maxRef = max(maxRef, abs(expected[flat: i]))
    }
    return maxDiff / max(maxRef, 1)
}

/// Checks shape and `relativeError` within `tolerance`, printing the error either way.
func expectClose(
    _ actual: Tensor, _ expected: Tensor, tolerance: Float, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.shape == expected.shape, "\(what): shape \(actual.shape), expected \(expected.shape)", sourceLocation: sourceLocation)
    guard actual.shape == expected.shape else { return }
    let err = relativeError(actual, expected)
    print("\(what): max relative error \(err) (tolerance \(tolerance))")
    #expect(err <= tolerance, "\(what): max relative error \(err) exceeds \(tolerance)", sourceLocation: sourceLocation)
}
