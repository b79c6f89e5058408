/// CLIP's BPE model over byte-level symbols: `tokenizers` `BPE` with `continuing_subword_prefix=""`,
/// `end_of_word_suffix="</w>"`, no dropout, `fuse_unk=False` (`tokenizers/src/models/bpe/{model,word}.rs`).
///
/// A word's symbols start as one per byte (the byte's GPT-2 `bytes_to_unicode` character, `</w>` appended
/// to the last one); merges are applied lowest rank first, ties to the leftmost pair, through a priority
/// queue exactly as `Word::merge_all` does.
struct BytePairEncoding: Sendable {
    /// Merge rank of each pair of ids, keyed `left << 32 | right`.
    private let ranks: [UInt64: Int32]
    /// Id of the token each merge (by rank) produces.
    private let mergedIDs: [Int32]
    /// Id of each byte's symbol inside a word and at its end (with `</w>`); -1 when not in the vocabulary.
    private let byteIDs: [Int32], lastByteIDs: [Int32]
    /// Id given to a symbol missing from the vocabulary.
    private let unknownID: Int32?

    /// The suffix marking the last symbol of a word.
    static let endOfWordSuffix = "</w>"

    /// GPT-2's reversible byte-to-character table (`bytes_to_unicode`): printable Latin-1 bytes map to
    /// themselves, the other 68 to U+0100 onwards in byte order.
    static let byteCharacters: [Character] = {
        var printable = Set<Int>()
        for r in [33...126, 161...172, 174...255] { printable.formUnion(r) }
        var table = [Character](repeating: " ", count: 256)
        var next = 256
        for b in 0..<256 {
            if printable.contains(b) {
                table[b] = Character(Unicode.Scalar(UInt32(b))!)
            } else {
                table[b] = Character(Unicode.Scalar(UInt32(next))!)
                next += 1
            }
        }
        return table
    }()

    /// Builds the model; `merges` are (left, right) token pairs in rank order. Names `file` in errors.
    init(vocabulary: [String: Int32], merges: [(String, String, line: Int?)], unknownID: Int32?, file: String) throws {
        var ranks = [UInt64: Int32](minimumCapacity: merges.count)
        var mergedIDs = [Int32]()
        mergedIDs.reserveCapacity(merges.count)
        for (rank, (left, right, line)) in merges.enumerated() {
            guard let a = vocabulary[left], let b = vocabulary[right] else {
                let missing = vocabulary[left] == nil ? left : right
                throw CLIPTokenizerError(
                    file: file, line: line, reason: "merge \(rank) (\"\(left) \(right)\"): token \"\(missing)\" is not in the vocabulary")
            }
            guard let merged = vocabulary[left + right] else {
                throw CLIPTokenizerError(
                    file: file, line: line, reason: "merge \(rank) (\"\(left) \(right)\"): merged token \"\(left + right)\" is not in the vocabulary")
            }
            let key = UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
            // A repeated pair keeps its last rank, as the Rust HashMap built from the merges list does.
            ranks[key] = Int32(rank)
            mergedIDs.append(merged)
        }
        self.ranks = ranks
        self.mergedIDs = mergedIDs
        self.byteIDs = Self.byteCharacters.map { vocabulary[String($0)] ?? -1 }
        self.lastByteIDs = Self.byteCharacters.map { vocabulary[String($0) + Self.endOfWordSuffix] ?? -1 }
        self.unknownID = unknownID
    }

    /// Appends the token ids of one word (the UTF-8 bytes of a pre-tokenizer piece) to `ids`.
    func encode(word bytes: UnsafeBufferPointer<UInt8>, into ids: inout [Int32]) {
        let n = bytes.count
        guard n > 0 else { return }
        // Symbols as a doubly linked list over arrays; `alive[i]` false once merged into its left neighbour.
        var symbols = [Int32](repeating: 0, count: n)
        var prev = [Int32](repeating: -1, count: n)
        var next = [Int32](repeating: -1, count: n)
        var alive = [Bool](repeating: true, count: n)
        for i in 0..<n {
            let id = i == n - 1 ? lastByteIDs[Int(bytes[i])] : byteIDs[Int(bytes[i])]
            // Unknown symbols become `unk` (fuse_unk=False: one per symbol); without one they are dropped,
            // as the Rust model errors out on them.
            symbols[i] = id >= 0 ? id : (unknownID ?? -1)
            prev[i] = Int32(i - 1)
            next[i] = i + 1 < n ? Int32(i + 1) : -1
        }
        if n > 1 {
            // Min-heap of (rank << 32 | position).
            var heap = [UInt64]()
            heap.reserveCapacity(n)
            for i in 0..<(n - 1) {
                if let r = rank(symbols[i], symbols[i + 1]) { heap.append(UInt64(r) << 32 | UInt64(i)) }
            }
            if heap.count > 1 {
                for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(&heap, i) }
            }
            while let top = popMin(&heap) {
                let pos = Int(top & 0xFFFF_FFFF)
                let r = Int32(top >> 32)
                guard alive[pos], next[pos] >= 0 else { continue }
                let right = Int(next[pos])
                // A stale entry: the pair at `pos` changed since it was queued.
                guard let current = rank(symbols[pos], symbols[right]), mergedIDs[Int(current)] == mergedIDs[Int(r)] else { continue }
                symbols[pos] = mergedIDs[Int(r)]
                alive[right] = false
                next[pos] = next[right]
                if next[right] >= 0 { prev[Int(next[right])] = Int32(pos) }
                if prev[pos] >= 0, let pr = rank(symbols[Int(prev[pos])], symbols[pos]) {
                    push(&heap, UInt64(pr) << 32 | UInt64(prev[pos]))
                }
                if next[pos] >= 0, let nr = rank(symbols[pos], symbols[Int(next[pos])]) {
                    push(&heap, UInt64(nr) << 32 | UInt64(pos))
                }
            }
        }
        var i = 0
        while i >= 0 && i < n {
            if symbols[i] >= 0 { ids.append(symbols[i]) }
            i = Int(next[i])
        }
    }

    @inline(__always)
    private func rank(_ a: Int32, _ b: Int32) -> Int32? {
        guard a >= 0, b >= 0 else { return nil }
        return ranks[UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))]
    }

    @inline(__always)
    private func push(_ heap: inout [UInt64], _ value: UInt64) {
        heap.append(value)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[parent] > heap[i] else { break }
            heap.swapAt(parent, i)
            i = parent
        }
    }

    @inline(__always)
    private func popMin(_ heap: inout [UInt64]) -> UInt64? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        let top = heap[0]
        heap[0] = last
        siftDown(&heap, 0)
        return top
    }

    @inline(__always)
    private func siftDown(_ heap: inout [UInt64], _ start: Int) {
        var i = start
        let n = heap.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && heap[l] < heap[m] { m = l }
            if r < n && heap[r] < heap[m] { m = r }
            if m == i { return }
            heap.swapAt(i, m)
            i = m
        }
    }
}
