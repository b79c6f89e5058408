import Foundation

/// One benchmark case: a name shared with `scripts/bench_ops.py`, the work it does (FLOPs or
/// bytes moved) and the op itself, with inputs made before timing.
struct OpCase {
    let name: String
    let work: Double
    let unit: String
    let body: () -> Void

    /// Median seconds of `repeats` runs after one warm-up.
    func time(repeats: Int) -> Double {
        let sorted = times(repeats: repeats)
        return sorted[sorted.count / 2]
    }

    /// Seconds of each of `repeats` runs (at least one) after one warm-up, fastest first.
    func times(repeats: Int) -> [Double] {
        body()
        var times: [Double] = []
        for _ in 0..<max(repeats, 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return times.sorted()
    }
}
