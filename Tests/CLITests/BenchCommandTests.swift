import Foundation
import Testing

/// `wuerstchen bench --json` as a user runs it, on the embedded demo model: the per-stage GEMM figures
/// (issue 16, item 1) are there, consistent, and count the same products for every step.
@Suite struct BenchCommandTests {
    static func bench(_ extra: [String]) throws -> [String: Any] {
        let (status, out, err) = try GenerateCommandTests.run(
            ["bench", "--json", "--width", "128", "--height", "128", "--decoder-steps", "2"] + extra)
        #expect(status == 0, "bench failed: \(err)")
        let object = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        return try #require(object, "bench --json printed no object: \(out)")
    }

    @Test func reportsGEMMWorkAndItsShareOfTheMachineRatePerStage() throws {
        let two = try Self.bench(["--prior-steps", "2"]), four = try Self.bench(["--prior-steps", "4"])
        let peak = try #require(two["gemm_peak_gflops"] as? Double)
        #expect(peak > 1, "this machine's GEMM rate: \(peak) GFLOP/s")
        for stage in ["prior_text", "prior", "decoder_text", "decoder", "vqgan", ""] {
            let p = stage.isEmpty ? "" : stage + "_"
            let gop = try #require(two[p + "gemm_gop"] as? Double, "no \(p)gemm_gop")
            let fraction = try #require(two[p + "gemm_peak_fraction"] as? Double)
            let share = try #require(two[p + "non_gemm_share"] as? Double)
            let rate = try #require(two[p + "gflops"] as? Double)
            print("\(stage.isEmpty ? "total" : stage): \(gop) GOP, \(rate) GFLOP/s, \(fraction) of the GEMM rate, non-GEMM \(share)")
            #expect(gop > 0 && rate > 0)
            #expect(fraction > 0 && fraction < 2)
            #expect(share >= 0 && share <= 1)
        }
        // The demo prior's steps all run the same products: four steps count twice the work of two, exactly.
        let prior2 = try #require(two["prior_gemm_gop"] as? Double), prior4 = try #require(four["prior_gemm_gop"] as? Double)
        #expect(abs(prior4 - 2 * prior2) <= 1e-12 * prior4, "prior: \(prior2) GOP in 2 steps, \(prior4) in 4")
        // The other stages do not depend on the prior's step count.
        for key in ["prior_text_gemm_gop", "decoder_text_gemm_gop", "decoder_gemm_gop", "vqgan_gemm_gop"] {
            #expect(two[key] as? Double == four[key] as? Double, "\(key): \(two[key] ?? "-") vs \(four[key] ?? "-")")
        }
    }
}
