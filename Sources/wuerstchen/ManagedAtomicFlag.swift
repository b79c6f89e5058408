import Foundation

/// A flag that is set once (the first signal starts the drain, a second one exits).
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var set = false

    /// True for the first caller only.
    func setIfFirst() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if set { return false }
        set = true
        return true
    }
}
