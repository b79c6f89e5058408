import Foundation
import SafeTensors
import Testing
import Tensor

/// `TorchGenerator` against draws printed by torch 2.15 on an AVX-512 CPU (`scripts/fixtures/rng.py`).
///
/// Tolerance: 1e-6 absolute on every value, and bit-exact where no libm is involved (the vectorised float32
/// path of tensors with 16 elements or more, `rand`, raw words). Below 16 elements torch goes through libm's
/// double `log1p`/`sin`/`cos`, which are the system's own here as they are for torch.
@Suite struct TorchGeneratorTests {
    static let seeds: [(name: String, seed: UInt64)] = [("0", 0), ("42", 42), ("2p40p3", (1 << 40) + 3)]
    static let shapes: [(name: String, shape: [Int])] = [
        ("1", [1]), ("7", [7]), ("16", [16]), ("17", [17]), ("2x16x6x6", [2, 16, 6, 6]), ("1x4x64x64", [1, 4, 64, 64]),
    ]

    /// Counts bit-identical values and the largest absolute difference; checks the 1e-6 tolerance, and
    /// bit-exactness when `exact`.
    @discardableResult
    static func compare(
        _ actual: Tensor, _ expected: Tensor, _ what: String, exact: Bool = false,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> (same: Int, maxAbs: Float) {
        #expect(actual.shape == expected.shape, "\(what): shape \(actual.shape), expected \(expected.shape)", sourceLocation: sourceLocation)
        guard actual.shape == expected.shape else { return (0, .infinity) }
        var same = 0
        var maxAbs: Float = 0
        for i in 0..<actual.count {
            let a = actual[flat: i], e = expected[flat: i]
            if a.bitPattern == e.bitPattern { same += 1 }
            maxAbs = max(maxAbs, abs(a - e).isNaN ? .infinity : abs(a - e))
        }
        print("\(what): \(same)/\(actual.count) bit-exact, max abs error \(maxAbs) (tolerance 1e-6\(exact ? ", bit-exact" : ""))")
        #expect(maxAbs <= 1e-6, "\(what): max abs error \(maxAbs) exceeds 1e-6", sourceLocation: sourceLocation)
        if exact {
            #expect(same == actual.count, "\(what): \(actual.count - same) values differ from torch in their bits", sourceLocation: sourceLocation)
        }
        return (same, maxAbs)
    }

    /// Integers stored as float32 bit patterns by the fixture script.
    static func words(_ t: Tensor) -> [UInt32] { t.toArray().map(\.bitPattern) }

    @Test func firstWordsAreStdMT19937() {
        // std::mt19937(0) (and numpy.random.RandomState(0)) begin with these words.
        let g = TorchGenerator(seed: 0)
        #expect((0..<4).map { _ in g.random() } == [2_357_136_044, 2_546_248_239, 3_071_714_933, 3_626_093_760])
    }

    @Test func rawDrawsMatchTorch() throws {
        let f = try Fixture.load("rng")
        for (name, seed) in Self.seeds {
            let expected32 = Self.words(try f.tensor("raw32_s\(name)"))
            let g32 = TorchGenerator(seed: seed)
            let got32 = expected32.map { _ in g32.random() & 0x7FFF_FFFF }
            #expect(got32 == expected32, "seed \(name): random() differs from torch")

            let halves = Self.words(try f.tensor("raw64_s\(name)"))
            let expected64 = stride(from: 0, to: halves.count, by: 2).map { UInt64(halves[$0]) << 32 | UInt64(halves[$0 + 1]) }
            let g64 = TorchGenerator(seed: seed)
            let got64 = expected64.map { _ in g64.random64() & (UInt64.max >> 1) }
            #expect(got64 == expected64, "seed \(name): random64() differs from torch")
        }
    }

    @Test func randnOnFreshGeneratorsMatchesTorch() throws {
        let f = try Fixture.load("rng")
        var exact = 0, total = 0
        var worst: Float = 0
        for (sname, seed) in Self.seeds {
            for (shname, shape) in Self.shapes {
                let key = "randn_s\(sname)_\(shname)"
                if shname == "1x4x64x64" && sname != "0" { continue }  // stored for seed 0 only
                let got = TorchGenerator(seed: seed).randn(shape)
                let r = Self.compare(got, try f.tensor(key), key, exact: got.count >= 16)
                exact += r.same
                total += got.count
                worst = max(worst, r.maxAbs)
            }
        }
        print("randn, fresh generators: \(exact)/\(total) bit-exact, max abs error \(worst)")
    }

    @Test func randnCallsInARowMatchTorch() throws {
        let f = try Fixture.load("rng")
        var g = TorchGenerator(seed: 0)
        Self.compare(g.randn([7]), try f.tensor("seq_a0_7"), "seed 0: randn(7)")
        Self.compare(g.randn([17]), try f.tensor("seq_a1_17"), "then randn(17)", exact: true)

        g = TorchGenerator(seed: 0)
        for i in 0..<3 { Self.compare(g.randn([3]), try f.tensor("seq_b\(i)_3"), "seed 0: randn(3) #\(i)") }

        g = TorchGenerator(seed: 42)
        Self.compare(g.randn([17]), try f.tensor("seq_c0_17"), "seed 42: randn(17)", exact: true)
        Self.compare(g.randn([5]), try f.tensor("seq_c1_5"), "then randn(5)")

        g = TorchGenerator(seed: 7)
        Self.compare(g.randn([3]), try f.tensor("seq_d0_3"), "seed 7: randn(3)")
        Self.compare(g.randn([32]), try f.tensor("seq_d1_32"), "then randn(32)", exact: true)
        Self.compare(g.rand([5]), try f.tensor("seq_d2_5"), "then rand(5)", exact: true)
        Self.compare(g.randn([1]), try f.tensor("seq_d3_1"), "then randn(1), the cached value")
        Self.compare(g.randn([2, 16, 6, 6]), try f.tensor("seq_d4_2x16x6x6"), "then randn(2, 16, 6, 6)", exact: true)

        // manual_seed drops the cached value.
        g = TorchGenerator(seed: 5)
        _ = g.randn([1])
        g.manualSeed(5)
        Self.compare(g.randn([2]), try f.tensor("seq_e0_2"), "seed 5: randn(1), manual_seed(5), randn(2)")
    }

    @Test func randMatchesTorch() throws {
        let f = try Fixture.load("rng")
        for (name, seed) in Self.seeds {
            Self.compare(TorchGenerator(seed: seed).rand([1000]), try f.tensor("rand_s\(name)_1000"), "seed \(name): rand(1000)", exact: true)
        }
    }

    @Test func onlyTheLow32BitsOfTheSeedCount() {
        let a = TorchGenerator(seed: (1 << 40) + 3).randn([100])
        let b = TorchGenerator(seed: 3).randn([100])
        #expect(a.toArray() == b.toArray())
    }
}

/// Draw speed at the decoder's latent size (opt-in: `WUERSTCHEN_BENCH=1 swift test -c release -Xswiftc
/// -enable-testing --filter TorchGeneratorSpeed`).
@Suite(.benchmark)
struct TorchGeneratorSpeed {
    @Test func latentSizedDraw() {
        // The decoder's latents at 1024 px: [1, 4, 256, 256].
        let g = TorchGenerator(seed: 0)
        _ = g.randn([4, 256, 256])
        var best = Double.infinity
        for _ in 0..<20 {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = g.randn([1, 4, 256, 256])
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        print("TorchGenerator.randn([1, 4, 256, 256]): \(String(format: "%.2f", best)) ms per draw, best of 20 (262144 values)")
    }
}
