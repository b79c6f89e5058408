import Foundation
import Tensor
import Testing
import Wuerstchen
@testable import Serving

/// The planner's decisions, without threads or models.
@Suite struct BatchPlannerTests {
    typealias C = BatchPlanner.Candidate

    @Test func encodingComesFirstSoNewRequestsJoinAtTheNextStep() {
        let planner = BatchPlanner(maxRows: 16)
        let unit = planner.next([
            C(order: 0, need: .priorStep, key: [3, 3, 16], rows: 2),
            C(order: 5, need: .encodePrior, rows: 2),
            C(order: 6, need: .encodeDecoder, rows: 1),
            C(order: 7, need: .encodePrior, rows: 2),
        ])
        #expect(unit == BatchPlanner.Unit(need: .encodePrior, members: [1, 3]))
        #expect(planner.next([C(order: 0, need: .decode, key: [1], rows: 1), C(order: 3, need: .encodeDecoder, rows: 1)])?.need == .encodeDecoder)
    }

    @Test func theOldestRequestsGroupRunsWithEveryoneOfItsShapeAtAnyStep() {
        let planner = BatchPlanner(maxRows: 16)
        let candidates = [
            C(order: 4, need: .priorStep, key: [3, 3, 16], rows: 2),
            C(order: 1, need: .priorStep, key: [6, 3, 16], rows: 2),  // oldest: its shape group runs
            C(order: 2, need: .decoderStep, key: [6, 3, 16], rows: 1),  // same key, other stage: not with it
            C(order: 9, need: .priorStep, key: [6, 3, 16], rows: 1),
            C(order: 3, need: .priorStep, key: [6, 3, 16], rows: 2),
        ]
        #expect(planner.next(candidates) == BatchPlanner.Unit(need: .priorStep, members: [1, 4, 3]))
    }

    @Test func unitsStayWithinTheRowBudgetOldestFirstButNeverEmpty() {
        let planner = BatchPlanner(maxRows: 4)
        let group = (0..<4).map { C(order: $0, need: .decoderStep, key: [8], rows: 2) }
        #expect(planner.next(group)?.members == [0, 1])
        #expect(planner.next([C(order: 0, need: .priorStep, key: [1], rows: 8)])?.members == [0], "one oversized request runs alone")
        #expect(planner.next([]) == nil)
    }

    /// A request of another shape is served as soon as every older request is done, however many
    /// younger ones of the running shape keep arriving.
    @Test func youngerArrivalsCannotStarveAnOlderGroup() {
        let planner = BatchPlanner(maxRows: 16)
        var candidates = [C(order: 1, need: .priorStep, key: [2], rows: 2)]
        for order in 2..<10 { candidates.append(C(order: order, need: .priorStep, key: [1], rows: 2)) }
        #expect(planner.next(candidates)?.members == [0])
    }
}
