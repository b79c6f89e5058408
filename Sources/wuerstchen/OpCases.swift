import Tensor

/// The cases of `wuerstchen bench ops`, each named exactly as in `scripts/bench_ops.py`.
/// Shapes are the model's: prior tokens 24x24 (1024 px) with a CFG batch of 2 and c = 1536;
/// decoder level 0 at 1024 px is 128x128 x 320 (16384 tokens); Paella's up/down path at 512 <-> 256.
enum OpCases {
    static func all() -> [OpCase] {
        let g = TorchGenerator(seed: 0)
        func r(_ s: Int...) -> Tensor { g.randn(s) }
        var cases: [OpCase] = []

        // Raw sgemm: the ceiling every GEMM-backed op is measured against.
        do {
            let a = r(1152, 1536), b = r(1536, 6144), c = Tensor(uninitialized: [1152, 6144])
            cases.append(OpCase(name: "sgemm 1152x1536x6144", work: 2 * 1152 * 1536 * 6144, unit: "GFLOP/s") {
                GEMM.sgemm(m: 1152, n: 6144, k: 1536, a: a.data, lda: 1536, b: b.data, ldb: 6144, c: c.data, ldc: 6144)
            })
        }
        for (name, m, k, n) in [
            ("linear prior 1152x1536->6144", 1152, 1536, 6144), ("linear prior 1152x6144->1536", 1152, 6144, 1536),
            ("linear decoder 16384x320->1280", 16384, 320, 1280), ("linear decoder 16384x1280->320", 16384, 1280, 320),
        ] {
            let x = r(m, k), layer = Linear(weight: r(n, k), bias: r(n))
            cases.append(OpCase(name: name, work: Double(2 * m * k * n), unit: "GFLOP/s") { _ = layer(x) })
        }
        // Narrow precisions through the seam, oneDNN with float32 out. bf16: bfloat16 weights, inputs rounded;
        // int8: int8 weights per output channel, inputs quantised per row, int32 accumulation, scales and bias in
        // float32 (work counted as the same 2mkn operations). 288 rows is the prior at 512 px (2 x 12 x 12 tokens).
        for (precision, supported, unit) in [(Precision.bf16, Precision.bfloat16Supported, "GFLOP/s"),
                                             (.int8, Precision.int8Supported, "GOP/s")] where supported {
            for (shape, m, k, n) in [
                ("prior 288x1536->6144", 288, 1536, 6144),
                ("prior 1152x1536->6144", 1152, 1536, 6144), ("prior 1152x6144->1536", 1152, 6144, 1536),
                ("decoder 16384x320->1280", 16384, 320, 1280), ("decoder 16384x1280->320", 16384, 1280, 320),
            ] {
                let x = r(m, k), layer = Linear(weight: r(n, k), bias: r(n)).converted(to: precision)
                cases.append(OpCase(name: "linear \(precision.rawValue) \(shape)", work: Double(2 * m * k * n), unit: unit) { _ = layer(x) })
            }
        }
        for (name, b, c, h, w, co, k, s, p) in [
            ("conv1x1 decoder [1,128,128,16]->320", 1, 16, 128, 128, 320, 1, 1, 0),
            ("conv2x2s2 decoder [1,128,128,320]->640", 1, 320, 128, 128, 640, 2, 2, 0),
            ("conv4x4s2p1 vqgan [1,512,512,192]->384", 1, 192, 512, 512, 384, 4, 2, 1),
        ] {
            let x = r(b, h, w, c), conv = Conv2d(weight: r(co, c, k, k), bias: r(co), stride: s, padding: p)
            let ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1
            cases.append(OpCase(name: name, work: Double(2 * b * ho * wo * co * c * k * k), unit: "GFLOP/s") { _ = conv(x) })
        }
        for (name, b, c, h, w, co, k, s, p) in [
            ("convT2x2s2 decoder [1,64,64,640]->320", 1, 640, 64, 64, 320, 2, 2, 0),
            ("convT4x4s2p1 vqgan [1,256,256,384]->192", 1, 384, 256, 256, 192, 4, 2, 1),
        ] {
            let x = r(b, h, w, c), conv = ConvTranspose2d(weight: r(c, co, k, k), bias: r(co), stride: s, padding: p)
            cases.append(OpCase(name: name, work: Double(2 * b * h * w * c * co * k * k), unit: "GFLOP/s") { _ = conv(x) })
        }
        for (name, b, c, h, w, mode) in [
            ("depthwise3x3 prior [2,24,24,1536]", 2, 1536, 24, 24, PaddingMode.zeros),
            ("depthwise3x3 decoder [1,128,128,320]", 1, 320, 128, 128, .zeros),
            ("depthwise3x3 replicate vqgan [1,256,256,384]", 1, 384, 256, 256, .replicate),
        ] {
            let x = r(b, h, w, c), conv = DepthwiseConv2d(weight: r(c, 1, 3, 3), bias: r(c), paddingMode: mode)
            cases.append(OpCase(name: name, work: Double(2 * 4 * b * c * h * w), unit: "GB/s") { _ = conv(x) })
        }
        func unary(_ name: String, _ shape: [Int], _ op: @escaping (Tensor) -> Tensor) {
            let x = g.randn(shape)
            cases.append(OpCase(name: name, work: Double(2 * 4 * x.count), unit: "GB/s") { _ = op(x) })
        }
        unary("gelu prior [2,24,24,6144]", [2, 24, 24, 6144]) { $0.gelu() }
        // The SIMD8 fallback that `gelu` replaces on AVX-512 CPUs (no torch counterpart).
        unary("gelu prior [2,24,24,6144] simd8", [2, 24, 24, 6144]) { Activation.gelu($0, path: .simd8) }
        unary("gelu decoder [1,128,128,1280]", [1, 128, 128, 1280]) { $0.gelu() }
        unary("silu [1,128,128,1280]", [1, 128, 128, 1280]) { $0.silu() }
        let ln = LayerNorm(eps: 1e-6)
        unary("layernorm prior [2,24,24,1536]", [2, 24, 24, 1536]) { ln($0) }
        unary("layernorm decoder [1,128,128,320]", [1, 128, 128, 320]) { ln($0) }
        for (name, shape) in [("grn prior [2,24,24,6144]", [2, 24, 24, 6144]), ("grn decoder [1,128,128,1280]", [1, 128, 128, 1280])] {
            let c = shape[3], grn = GlobalResponseNorm(gamma: r(1, 1, 1, c), beta: r(1, 1, 1, c))
            unary(name, shape) { grn($0) }
        }
        do {
            let x = r(1, 128, 128, 1280), y = r(1, 128, 128, 1280)
            cases.append(OpCase(name: "add [1,128,128,1280]", work: Double(3 * 4 * x.count), unit: "GB/s") { _ = x + y })
        }
        unary("softmax [2*24*576,653]", [2, 24, 576, 653]) { $0.softmax() }
        for (name, b, lq, lk, e, h) in [
            ("attention prior B2 576x653 E1536 H24", 2, 576, 653, 1536, 24),
            ("attention decoder B1 1024x1101 E640 H10", 1, 1024, 1101, 640, 10),
            ("attention decoder B1 4096x4173 E640 H10", 1, 4096, 4173, 640, 10),
        ] {
            let q = r(b, lq, e), k = r(b, lk, e), v = r(b, lk, e)
            cases.append(OpCase(name: name, work: Double(4 * b * lq * lk * e), unit: "GFLOP/s") {
                _ = scaledDotProductAttention(q: q, k: k, v: v, heads: h)
            })
        }
        do {
            let e = r(2, 24, 24, 16)
            cases.append(OpCase(name: "bicubic-aa 24->128 [2,24,24,16]", work: Double(4 * 2 * 16 * 128 * 128), unit: "GB/s") {
                _ = interpolateBicubicAntialias(e, height: 128, width: 128)
            })
            cases.append(OpCase(name: "bicubic-aa 24->16 [2,24,24,16]", work: Double(4 * 2 * 16 * 16 * 16), unit: "GB/s") {
                _ = interpolateBicubicAntialias(e, height: 16, width: 16)
            })
        }
        let gen = TorchGenerator(seed: 0)
        cases.append(OpCase(name: "randn [1,4,256,256]", work: Double(4 * 4 * 256 * 256), unit: "GB/s") {
            gen.manualSeed(0)
            _ = gen.randn([1, 4, 256, 256])
        })
        return cases
    }
}
