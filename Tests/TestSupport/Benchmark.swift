import Foundation
import Testing

/// The one switch of the timing tests: `WUERSTCHEN_BENCH=1` (in release: `WUERSTCHEN_BENCH=1 swift test -c
/// release -Xswiftc -enable-testing --skip-build --filter NAME`). Without it they are reported as skipped.
public let benchmarksEnabled = ProcessInfo.processInfo.environment["WUERSTCHEN_BENCH"] == "1"

/// Why a benchmark did not run, as the test report shows it.
let benchmarkSkipReason: Comment = "a benchmark: set WUERSTCHEN_BENCH=1 (release build) to run it"

extension SuiteTrait where Self == ConditionTrait {
    /// A suite that measures speed: runs only with `WUERSTCHEN_BENCH=1`, skipped (saying so) otherwise.
    public static var benchmark: Self { .enabled(if: benchmarksEnabled, benchmarkSkipReason) }
}

extension TestTrait where Self == ConditionTrait {
    /// A test that measures speed: runs only with `WUERSTCHEN_BENCH=1`, skipped (saying so) otherwise.
    public static var benchmark: Self { .enabled(if: benchmarksEnabled, benchmarkSkipReason) }
}
