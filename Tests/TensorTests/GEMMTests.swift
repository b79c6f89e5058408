import Testing
@testable import Tensor

@Suite struct GEMMTests {
    @Test func linearMatchesNaive() {
        var g = SplitMix(seed: 1)
        let x = Tensor(shape: [5, 7], values: (0..<35).map { _ in g.nextFloat() })
        let w = Tensor(shape: [3, 7], values: (0..<21).map { _ in g.nextFloat() })
        let b = Tensor(shape: [3], values: [0.5, -1, 2])
        let y = Linear(weight: w, bias: b)(x)
        var maxErr: Float = 0
        for i in 0..<5 {
            for o in 0..<3 {
                var s: Float = b[flat: o]
                for k in 0..<7 { s += x[flat: i * 7 + k] * w[flat: o * 7 + k] }
                maxErr = max(maxErr, abs(s - y[flat: i * 3 + o]))
            }
        }
        #expect(maxErr < 1e-5, "max error \(maxErr)")
    }
}
