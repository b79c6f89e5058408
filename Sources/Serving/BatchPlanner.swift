/// The scheduler's decision at a step boundary, apart from threads and models so that it can be
/// tested on its own: which of the admitted requests run in the next unit of compute.
///
/// Rules, in order:
/// 1. Text encoding first (prior, then decoder): it is short, and it lets a newly admitted request
///    join its shape group at the very next step instead of waiting for the group to finish.
/// 2. Otherwise the denoising (prior / decoder steps) and VQ-decoding groups, keyed by stage and
///    latent shape, compete oldest-first: the group holding the oldest request runs. Requests of
///    the same shape ride along whatever step each is at. A request therefore waits at most for the
///    requests admitted before it (no starvation), and a younger group never overtakes an older one.
/// 3. A unit takes its members oldest-first up to `maxRows` forward rows (always at least one).
public struct BatchPlanner: Sendable {
    /// What a request needs next.
    public enum Need: Int, Sendable, Comparable {
        /// Prior text encoding + initial latents.
        case encodePrior
        /// Decoder text encoding + initial latents.
        case encodeDecoder
        /// A prior denoising step.
        case priorStep
        /// A decoder denoising step.
        case decoderStep
        /// VQ decoding of the finished latents.
        case decode

        public static func < (a: Need, b: Need) -> Bool { a.rawValue < b.rawValue }
    }

    /// One admitted request as the planner sees it.
    public struct Candidate: Sendable, Equatable {
        /// Admission order: lower is older.
        public var order: Int
        /// What it needs next.
        public var need: Need
        /// Requests share a unit only when their keys are equal (the latent shapes).
        public var key: [Int]
        /// Rows it adds to the unit's forward pass (images, twice when guided).
        public var rows: Int

        /// A candidate.
        public init(order: Int, need: Need, key: [Int] = [], rows: Int) {
            self.order = order
            self.need = need
            self.key = key
            self.rows = rows
        }
    }

    /// The chosen unit: what it does and the indices (into the candidates) of its members, oldest first.
    public struct Unit: Sendable, Equatable {
        public var need: Need
        public var members: [Int]
    }

    /// Forward-pass rows per unit.
    public let maxRows: Int

    /// A planner bounding units to `maxRows` rows (at least 1).
    public init(maxRows: Int) {
        precondition(maxRows >= 1, "maxRows \(maxRows): must be at least 1")
        self.maxRows = maxRows
    }

    /// The next unit, or nil when there are no candidates.
    public func next(_ candidates: [Candidate]) -> Unit? {
        guard !candidates.isEmpty else { return nil }
        for need in [Need.encodePrior, .encodeDecoder] {
            let members = candidates.indices.filter { candidates[$0].need == need }
            if !members.isEmpty { return Unit(need: need, members: fill(members, candidates)) }
        }
        // The oldest request's group.
        let oldest = candidates.indices.min { candidates[$0].order < candidates[$1].order }!
        let need = candidates[oldest].need, key = candidates[oldest].key
        let members = candidates.indices.filter { candidates[$0].need == need && candidates[$0].key == key }
        return Unit(need: need, members: fill(members, candidates))
    }

    /// `members` oldest first, as many as fit in `maxRows` (at least one).
    private func fill(_ members: [Int], _ candidates: [Candidate]) -> [Int] {
        var chosen: [Int] = [], rows = 0
        for i in members.sorted(by: { candidates[$0].order < candidates[$1].order }) {
            if !chosen.isEmpty && rows + candidates[i].rows > maxRows { continue }
            chosen.append(i)
            rows += candidates[i].rows
        }
        return chosen
    }
}
