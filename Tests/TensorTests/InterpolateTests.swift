import Foundation
import SafeTensors
import Testing
@testable import Tensor

/// Bicubic antialiased resize against PyTorch (`scripts/fixtures/interpolate.py`). Elementwise: 1e-6 relative.
@Suite struct InterpolateTests {
    static let tolerance: Float = 1e-6

    static var caseNames: [String] {
        guard let f = try? Fixture.load("interpolate") else { return [] }
        return f.names.filter { $0.hasSuffix(".x") }.map { String($0.dropLast(2)) }
    }

    @Test(arguments: caseNames)
    func bicubicAntialiasMatchesTorch(name: String) throws {
        let f = try Fixture.load("interpolate")
        let x = try f.tensor("\(name).x"), expected = try f.tensor("\(name).y")
        let y = interpolateBicubicAntialias(
            x, height: expected.dim(1), width: expected.dim(2), alignCorners: name.hasSuffix("_ac"))
        expectClose(y, expected, tolerance: Self.tolerance, "bicubic aa \(name)")
    }

    @Test func fixtureHasCases() {
        #expect(Self.caseNames.count >= 15, "interpolate fixture cases: \(Self.caseNames)")
    }

    @Test func sameSizeIsCopy() {
        let x = Tensor(shape: [1, 2, 3, 1], values: [1, 2, 3, 4, 5, 6])
        #expect(interpolateBicubicAntialias(x, height: 2, width: 3).toArray() == x.toArray())
    }
}
