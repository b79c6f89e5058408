import Foundation
import Tensor
import Wuerstchen
@testable import Serving

/// Collects a request's events and waits for its end.
final class EventRecorder: @unchecked Sendable {
    private let condition = NSCondition()
    private(set) var events: [GenerationEvent] = []
    private var finishedAt: Date?

    var callback: @Sendable (GenerationEvent) -> Void { { [self] e in record(e) } }

    private func record(_ event: GenerationEvent) {
        condition.lock()
        precondition(!(events.last?.isTerminal ?? false), "an event after the terminal one: \(event)")
        events.append(event)
        if event.isTerminal { finishedAt = Date() }
        condition.broadcast()
        condition.unlock()
    }

    /// The terminal event (waits up to `timeout` seconds).
    func result(timeout: Double = 60) -> GenerationEvent? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeout * testTimeScale)
        while !(events.last?.isTerminal ?? false) {
            if !condition.wait(until: deadline) { return nil }
        }
        return events.last
    }

    /// When the terminal event arrived.
    var finished: Date? {
        condition.lock()
        defer { condition.unlock() }
        return finishedAt
    }

    var progressCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return events.filter { if case .progress = $0 { true } else { false } }.count
    }

    var images: Tensor? {
        if case .completed(let output)? = result() { return output.images }
        return nil
    }

    var error: ServingError? {
        if case .failed(let e)? = result() { return e }
        return nil
    }
}
