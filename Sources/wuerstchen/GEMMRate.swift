import Tensor

/// This machine's GEMM rate, the ceiling `bench` measures each stage against: through the seam in `precision`, the
/// best rate of three timed runs (after one warm-up) of each of the model's main product shapes (`bench ops`' "linear"
/// cases: the prior's at 512 px, 288 x 1536 -> 6144, and at 1024 px, 1152 x 1536 -> 6144; the decoder's level 0 at
/// 1024 px, 16384 x 320 -> 1280), the highest of them; GFLOP/s (GOP/s for int8). One shape alone is not a ceiling:
/// on Zen 4 oneDNN's bf16 ran the 1152-row shape at 264 GFLOP/s and the prior's own at 353.
enum GEMMRate {
    static func measure(_ precision: Precision) -> Double {
        let g = TorchGenerator(seed: 0)
        var rate = 0.0
        for (m, k, n) in [(288, 1536, 6144), (1152, 1536, 6144), (16384, 320, 1280)] {
            let x = g.randn([m, k]), layer = Linear(weight: g.randn([n, k]), bias: g.randn([n])).converted(to: precision)
            let product = OpCase(name: "linear \(m)x\(k)->\(n)", work: 2 * Double(m * k * n), unit: "GFLOP/s") { _ = layer(x) }
            rate = max(rate, product.work / product.times(repeats: 3)[0] / 1e9)
        }
        return rate
    }
}
