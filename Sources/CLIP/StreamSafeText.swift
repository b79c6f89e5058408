/// Unicode's stream-safe text format (UAX #15 §13, https://unicode.org/reports/tr15/#Stream_Safe_Text_Format):
/// no more than 30 non-starters (scalars of non-zero canonical combining class) in a row. Real text of any
/// script needs far fewer; a longer run is one `Character` of unbounded size that normalisation has to
/// reorder as a whole, so servers bound it before tokenizing.
///
/// Non-starters are counted on the canonical decomposition the tokenizer's NFC works on
/// (`CanonicalComposition`: Unicode 9.0 decompositions, as `tokenizers`), so that a precomposed starter
/// with trailing marks (U+00C0 = A + U+0300) and a starter whose decomposition is all marks
/// (U+0F73 = U+0F71 U+0F72) count as what they become; a scalar is a non-starter when its class in
/// Swift's current tables is non-zero (marks assigned after Unicode 9.0 count too). UAX #15 counts on
/// the compatibility decomposition (NFKD); compatibility-only marks (U+FF9E) are not counted here
/// because NFC leaves them as starters, so they cost the tokenizer nothing.
public enum StreamSafeText {
    /// UAX #15's bound on consecutive non-starters.
    public static let maxNonStarters = 30

    /// A run of consecutive non-starters.
    public struct Run: Sendable, Equatable {
        /// Offset, in Unicode scalars of the text, of the scalar the run starts in.
        public var start: Int
        /// Non-starters in the run, counted on the canonical decomposition.
        public var length: Int
    }

    /// The first run of more than `limit` consecutive non-starters in `text`, measured whole; nil when
    /// there is none (the text is stream-safe for `limit` 30). Linear in the text.
    public static func firstRun(longerThan limit: Int = maxNonStarters, in text: String.UnicodeScalarView) -> Run? {
        var run = Run(start: 0, length: 0)
        var decomposed: [Unicode.Scalar] = []
        for (offset, scalar) in text.enumerated() {
            // Below U+00C0 every scalar is a starter without decomposition.
            if scalar.value < 0xC0 {
                if run.length > limit { return run }
                run = Run(start: offset + 1, length: 0)
                continue
            }
            decomposed.removeAll(keepingCapacity: true)
            CanonicalComposition.decompose(scalar, into: &decomposed)
            let leading = decomposed.prefix(while: isNonStarter).count
            if leading == decomposed.count {
                if run.length == 0 { run.start = offset }
                run.length += leading
                continue
            }
            run.length += leading
            if run.length > limit { return run }
            let trailing = decomposed.reversed().prefix(while: isNonStarter).count
            run = Run(start: offset, length: trailing)
        }
        return run.length > limit ? run : nil
    }

    @inline(__always)
    private static func isNonStarter(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value >= 0x300 && scalar.properties.canonicalCombiningClass.rawValue != 0
    }
}
