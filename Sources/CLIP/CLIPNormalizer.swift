/// The normalizer transformers' `CLIPTokenizer` builds (`tokenization_clip.py`):
/// `Sequence([NFC(), Replace(Regex(r"\s+"), " "), Lowercase()])`, applied in that order.
///
/// Works on Unicode scalars throughout: Swift's `String` compares canonically equivalent texts as equal,
/// so NFC versus NFD would be invisible at the `String` level.
enum CLIPNormalizer {
    /// The normalized scalars of `text`.
    static func normalize(_ text: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        let composed = CanonicalComposition.nfc(text)
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(composed.count)
        var inSpace = false
        for scalar in composed {
            // Replace(\s+, " "): a run of whitespace becomes one space (not stripped: the pre-tokenizer drops it).
            if CLIPTextClasses.classify(scalar) == CLIPTextClasses.whitespace {
                if !inSpace { out.append(" ") }
                inSpace = true
                continue
            }
            inSpace = false
            // Lowercase: Rust `char::to_lowercase` per character (full mapping, no context: 'İ' -> "i̇",
            // final sigma stays 'σ'), which is Unicode's per-scalar Lowercase_Mapping.
            if scalar.value < 0x80 {
                let v = scalar.value
                out.append((v >= 0x41 && v <= 0x5A) ? Unicode.Scalar(v + 0x20)! : scalar)
            } else {
                out.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }
}
