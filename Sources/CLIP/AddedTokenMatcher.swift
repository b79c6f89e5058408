/// Splits text around added tokens as `tokenizers`' `AddedVocabulary` does: leftmost match, the longest
/// one when several start at the same place (Aho-Corasick `LeftmostLongest`), no stripping
/// (`lstrip`/`rstrip`/`single_word` are rejected when loading).
struct AddedTokenMatcher: Sendable {
    /// Token contents (already normalized for the normalized set) and their ids.
    private let tokens: [(scalars: [Unicode.Scalar], id: Int32)]

    /// A piece of the split text.
    enum Segment {
        /// An added token, by id.
        case token(Int32)
        /// Text between added tokens.
        case text(ArraySlice<Unicode.Scalar>)
    }

    init(_ tokens: [(scalars: [Unicode.Scalar], id: Int32)]) {
        self.tokens = tokens.filter { !$0.scalars.isEmpty }
    }

    /// Calls `body` with the segments of `text` in order (empty text segments are skipped).
    func split(_ text: ArraySlice<Unicode.Scalar>, _ body: (Segment) -> Void) {
        if tokens.isEmpty {
            if !text.isEmpty { body(.text(text)) }
            return
        }
        var start = text.startIndex
        var i = text.startIndex
        while i < text.endIndex {
            var best: (length: Int, id: Int32)? = nil
            for token in tokens where token.scalars.count <= text.endIndex - i && token.scalars.count > (best?.length ?? 0) {
                if text[i..<(i + token.scalars.count)].elementsEqual(token.scalars) {
                    best = (token.scalars.count, token.id)
                }
            }
            if let best {
                if start < i { body(.text(text[start..<i])) }
                body(.token(best.id))
                i += best.length
                start = i
            } else {
                i += 1
            }
        }
        if start < text.endIndex { body(.text(text[start..<text.endIndex])) }
    }
}
