import Testing
@testable import Tensor

/// The batch-row ops, the matrix transpose, the in-place scale/shift kernels and the pixel bytes:
/// all exact (copies, or one IEEE rounding per op checked against the same scalar arithmetic).
@Suite struct RowsTests {
    /// Element i holds i.
    static func counting(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, values: (0..<Tensor.elementCount(shape)).map(Float.init))
    }

    @Test func rowsCopyAndViewsShare() {
        let x = Self.counting([4, 2, 3])
        let copy = x.rows(1..<3)
        #expect(copy.shape == [2, 2, 3] && copy.toArray() == (6..<18).map(Float.init))
        let view = x.rowsView(1..<3)
        #expect(view.toArray() == copy.toArray())
        view[flat: 0] = -1
        #expect(x[flat: 6] == -1 && copy[flat: 0] == 6, "a view writes through, a copy does not")
        let row = x.row(3)
        #expect(row.shape == [2, 3] && row.toArray() == (18..<24).map(Float.init))
        #expect(x.rowsView(2..<2).shape == [0, 2, 3])
        #expect(x.view(offset: 5, shape: [2]).toArray() == [5, -1])
        #expect(x.rowLength == 6 && Tensor(zeros: [5]).rowLength == 1)
    }

    @Test func stackedIsCatAlongTheBatchAndKeepsASingleTensor() {
        let a = Self.counting([1, 2, 2]), b = Self.counting([2, 2, 2])
        let s = Tensor.stacked([a, b])
        #expect(s.shape == [3, 2, 2] && s.toArray() == a.toArray() + b.toArray())
        #expect(Tensor.stacked([b]).storage === b.storage)
    }

    /// `repeat_interleave(n, dim=0)`: [r0, r0, r1, r1, ...].
    @Test func repeatingRowsInterleaves() {
        let x = Self.counting([2, 3])
        #expect(x.repeatingRows(2).toArray() == [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5])
        #expect(x.repeatingRows(2).shape == [4, 3])
        #expect(x.repeatingRows(0).shape == [0, 3])
    }

    @Test func updateRowsInPlaceWritesOnlyItsRows() {
        let x = Tensor(zeros: [4, 2])
        x.updateRowsInPlace(from: Tensor(shape: [2, 2], values: [1, 2, 3, 4]), at: 1)
        #expect(x.toArray() == [0, 0, 1, 2, 3, 4, 0, 0])
    }

    /// Odd sizes, several tiles and a partial one: equal to the permutation, element for element.
    @Test(arguments: [(1, 1), (3, 70), (33, 65), (129, 31)])
    func transposeEqualsPermute(rows: Int, cols: Int) {
        let x = Self.counting([rows, cols])
        let t = x.transposed()
        #expect(t.shape == [cols, rows])
        #expect(t.toArray() == x.permuted([1, 0]).toArray())
    }

    /// Vector body, tail, and a length split over the pool: the same roundings as the scalar formulas.
    @Test(arguments: [13, 70_001])
    func scaleShiftAndAddScaledRoundAsTheScalarFormulas(count: Int) {
        var rng = SplitMix(seed: 7)
        let xs = (0..<count).map { _ in rng.nextFloat() * 4 }, ys = (0..<count).map { _ in rng.nextFloat() }
        let scale: Float = 1 + 0.123_456_7, shift: Float = -0.765_432_1
        let x = Tensor(shape: [count], values: xs)
        x.scaleShiftInPlace(scale: scale, shift: shift)
        #expect(x.toArray() == xs.map { $0 * scale + shift })
        let z = Tensor(shape: [count], values: xs)
        z.addScaledInPlace(Tensor(shape: [count], values: ys), scale: scale)
        #expect(z.toArray() == zip(xs, ys).map { $0 + $1 * scale })
    }

    /// numpy rounds half to even: 0.5 -> 0, 1.5 -> 2, 254.5 -> 254; clamps outside [0, 1].
    @Test func pixelBytesRoundLikeNumpyToPil() {
        let image = Tensor(shape: [1, 2, 3], values: [0.5 / 255, 1.5 / 255, 254.5 / 255, -1, 2, 0.2])
        #expect(image.pixelBytes() == [0, 2, 254, 0, 255, 51])
    }
}
