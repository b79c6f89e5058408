import Testing
@testable import Tensor

@Suite struct LayoutTests {
    @Test func permuteMatchesIndexArithmetic() {
        let x = Tensor(shape: [2, 3, 4, 5], values: (0..<120).map(Float.init))
        let y = x.nchwToNHWC()
        #expect(y.shape == [2, 4, 5, 3])
        for n in 0..<2 { for c in 0..<3 { for h in 0..<4 { for w in 0..<5 {
            #expect(y[flat: ((n * 4 + h) * 5 + w) * 3 + c] == x[flat: ((n * 3 + c) * 4 + h) * 5 + w])
        } } } }
        #expect(y.nhwcToNCHW().toArray() == x.toArray())
        #expect(x.permuted([3, 1, 0, 2]).permuted([2, 1, 3, 0]).toArray() == x.toArray())
    }
}
