import Dispatch
import Foundation
import Testing
@testable import Tensor

/// `GEMMProfile`, which `wuerstchen bench` reads per stage: exact operation counts, each outermost product once,
/// products of the pool regions a recording starts included, other threads' products (other tests) left out.
@Suite struct GEMMProfileTests {
    static func layer(_ n: Int, _ k: Int, _ precision: Precision) -> Linear {
        let g = TorchGenerator(seed: 1)
        return Linear(weight: g.randn([n, k]), bias: g.randn([n])).converted(to: precision)
    }

    /// A float32 `Linear` with bias is `GEMM.linear` around `GEMM.sgemm`: one call of 2 m n k, not two.
    /// bf16 and int8 (where this CPU runs them) go through oneDNN blocks on the pool: still one call.
    @Test(arguments: Precision.allCases)
    func countsEachOutermostProductOnce(_ precision: Precision) {
        let (m, k, n) = (37, 19, 23)
        let run = precision.resolved().precision
        let x = TorchGenerator(seed: 2).randn([m, k]), linear = Self.layer(n, k, run)
        let profile = GEMMProfile()
        let y = profile.record { linear(x) }
        #expect(y.shape == [m, n])
        #expect(profile.totals.calls == 1)
        #expect(profile.totals.operations == Double(2 * m * k * n))
        #expect(profile.totals.seconds > 0)
    }

    /// Products made by the workers of a region count, each weighted by 1/workers; so do plain matmuls.
    @Test func countsProductsOnPoolWorkersAndMatmuls() {
        let a = TorchGenerator(seed: 3).randn([8, 16, 32]), b = TorchGenerator(seed: 4).randn([8, 32, 24])
        let profile = GEMMProfile()
        profile.record {
            _ = a.matmul(b)  // 8 strided products of 16x32x24
            Compute.pool.parallelFor(6) { range in
                for _ in range {
                    let c = Tensor(uninitialized: [16, 24])
                    GEMM.sgemm(m: 16, n: 24, k: 32, a: a.data, lda: 32, b: b.data, ldb: 24, c: c.data, ldc: 24)
                }
            }
        }
        #expect(profile.totals.calls == 8 + 6)
        #expect(profile.totals.operations == Double(14 * 2 * 16 * 32 * 24))
    }

    /// Products of another thread, running while this one records, are not counted; nor are this thread's
    /// products after the recording ends; an inner recording takes its body's products.
    @Test func countsOnlyItsOwnThreadAndScope() {
        let x = TorchGenerator(seed: 5).randn([64, 64]), linear = Self.layer(64, 64, .fp32)
        let stop = DispatchSemaphore(value: 0), started = DispatchSemaphore(value: 0)
        let busy = Thread {
            started.signal()
            while stop.wait(timeout: .now()) == .timedOut { _ = linear(x) }
        }
        busy.start()
        started.wait()
        let outer = GEMMProfile(), inner = GEMMProfile()
        outer.record {
            for _ in 0..<5 { _ = linear(x) }
            inner.record { for _ in 0..<3 { _ = linear(x) } }
        }
        _ = linear(x)
        stop.signal()
        #expect(outer.totals.calls == 5)
        #expect(inner.totals.calls == 3)
        #expect(outer.totals.operations == Double(5 * 2 * 64 * 64 * 64))
    }
}
