/// The pre-tokenizer transformers' `CLIPTokenizer` builds (`tokenization_clip.py`):
/// `Sequence([Split(Regex(CLIP pattern), behavior="removed", invert=True), ByteLevel(add_prefix_space=False)])`.
///
/// Both regular expressions are matched by hand, with Oniguruma's semantics (leftmost match, first
/// alternative that matches wins, greedy runs): the Split keeps the matches of `splitPattern` and drops
/// what lies between them (whitespace only, since the last alternative takes everything else), then
/// ByteLevel splits each piece again with GPT-2's pattern (`tokenizers` `byte_level.rs`, `use_regex: true`)
/// before the pieces become bytes. The second split only matters for the special-token alternatives: a
/// normalized `<|STARTOFTEXT|>` is one Split piece that GPT-2's pattern cuts into `<|`, `startoftext`, `|>`.
enum CLIPPreTokenizer {
    /// The Split pattern of transformers 5's `CLIPTokenizer`, the one this type matches.
    static let splitPattern = #"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"#
    /// The pattern of `convert_slow_tokenizer.CLIPConverter`, found in published `tokenizer.json` files;
    /// transformers 5's `CLIPTokenizer` replaces it with `splitPattern` when it loads such a file.
    static let convertedSplitPattern = #"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"#

    private static let ws = CLIPTextClasses.whitespace, letter = CLIPTextClasses.letter
    private static let number = CLIPTextClasses.number
    private static let apostrophe = Unicode.Scalar(UInt8(ascii: "'"))
    private static let space = Unicode.Scalar(UInt8(ascii: " "))
    private static let specials: [[Unicode.Scalar]] = ["<|startoftext|>", "<|endoftext|>"].map { Array($0.unicodeScalars) }
    /// The contraction alternatives without their apostrophe, in pattern order.
    private static let contractions: [[Unicode.Scalar]] = ["s", "t", "re", "ve", "m", "ll", "d"].map { Array($0.unicodeScalars) }

    /// Calls `body` with the range of every final piece of `text` (normalized scalars), left to right.
    static func split(_ text: [Unicode.Scalar], _ body: (Range<Int>) -> Void) {
        let n = text.count
        var classes = [UInt8](repeating: 0, count: n)
        for i in 0..<n { classes[i] = CLIPTextClasses.classify(text[i]) }
        var i = 0
        while i < n {
            let c = classes[i]
            if c == ws { i += 1; continue }
            var end: Int
            if let length = literal(text, at: i, end: n, specials: true) {
                end = i + length
            } else if c == letter {
                end = i + 1
                while end < n && classes[end] == letter { end += 1 }
            } else if c == number {
                end = i + 1
            } else {
                end = i + 1
                while end < n && classes[end] == 0 { end += 1 }
            }
            byteLevelSplit(text, classes, i..<end, body)
            i = end
        }
    }

    /// GPT-2's pattern over one Split piece:
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    private static func byteLevelSplit(
        _ text: [Unicode.Scalar], _ classes: [UInt8], _ piece: Range<Int>, _ body: (Range<Int>) -> Void
    ) {
        var i = piece.lowerBound
        let end = piece.upperBound
        while i < end {
            if let length = literal(text, at: i, end: end, specials: false) {
                body(i..<(i + length))
                i += length
                continue
            }
            // ` ?X+` for X = letter, number, other: the optional space first, then without it.
            let start = (text[i] == space && i + 1 < end && classes[i + 1] != ws) ? i + 1 : i
            let c = classes[start]
            if c != ws {
                var k = start + 1
                while k < end && classes[k] == c { k += 1 }
                body(i..<k)
                i = k
                continue
            }
            // `\s+(?!\S)|\s+`: a whitespace run, leaving its last space to the next word when one follows.
            var k = i + 1
            while k < end && classes[k] == ws { k += 1 }
            if k < end && k - i >= 2 { k -= 1 }
            body(i..<k)
            i = k
        }
    }

    /// Length of the literal alternative matching at `i` (the special tokens when `specials`, then the
    /// contractions), if any.
    @inline(__always)
    private static func literal(_ text: [Unicode.Scalar], at i: Int, end: Int, specials: Bool) -> Int? {
        let first = text[i]
        if specials && first == "<" {
            for s in Self.specials where i + s.count <= end && text[i..<(i + s.count)].elementsEqual(s) {
                return s.count
            }
        }
        guard first == apostrophe else { return nil }
        for s in contractions where i + 1 + s.count <= end && text[(i + 1)..<(i + 1 + s.count)].elementsEqual(s) {
            return s.count + 1
        }
        return nil
    }
}
