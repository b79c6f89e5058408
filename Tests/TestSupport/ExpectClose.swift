import Tensor
import Testing

/// Largest absolute difference divided by the largest absolute expected value (1 if that is below 1),
/// so the tolerance reads as "relative to the tensor's scale"; a NaN counts as infinitely far.
public func relativeError(_ actual: Tensor, _ expected: Tensor) -> Float {
    precondition(actual.count == expected.count, "element counts differ: \(actual.shape) vs \(expected.shape)")
    var maxDiff: Float = 0, maxRef: Float = 0
    for i in 0..<actual.count {
        let d = abs(actual[flat: i] - expected[flat: i])
        maxDiff = d.isNaN ? .infinity : max(maxDiff, d)
        maxRef = max(maxRef, abs(expected[flat: i]))
    }
    return maxDiff / max(maxRef, 1)
}

/// Checks `actual` against `expected` (same shape) within `tolerance` of `relativeError`, naming
/// the op and printing the error either way so that drifts show in the log.
public func expectClose(
    _ actual: Tensor, _ expected: Tensor, tolerance: Float, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.shape == expected.shape, "\(what): shape \(actual.shape), expected \(expected.shape)", sourceLocation: sourceLocation)
    guard actual.shape == expected.shape else { return }
    let err = relativeError(actual, expected)
    print("\(what): max relative error \(err) (tolerance \(tolerance))")
    #expect(err <= tolerance, "\(what): max relative error \(err) exceeds \(tolerance)", sourceLocation: sourceLocation)
}
