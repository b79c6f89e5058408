import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What the tests' waits are multiplied by: `WUERSTCHEN_TEST_TIME_SCALE` (default 1), e.g. 10 under the
/// thread sanitizer, whose 5-15x slowdown turns the demo model's seconds into minutes. Waits only: no
/// test asserts an upper bound on wall-clock time.
public let testTimeScale = Double(ProcessInfo.processInfo.environment["WUERSTCHEN_TEST_TIME_SCALE"] ?? "").flatMap { $0 > 0 ? $0 : nil } ?? 1

/// Polls `condition` until it holds or `timeout` seconds (times `testTimeScale`) pass; returns whether
/// it held. For waiting on something that must happen, never as proof that something did not.
public func eventually(timeout: Double = 20, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout * testTimeScale)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}
