/// The character classes of the regular expressions CLIP's tokenizer runs (`\s`, `\p{L}`, `\p{N}`), as the
/// `tokenizers` library's regex engine (Oniguruma, through the `onig` crate) classifies them.
///
/// Oniguruma's tables are Unicode 16.0 while Swift's are newer: letters and numbers first assigned later
/// (Unicode 17 added 4644 letters and 13 numbers) are neither in Oniguruma's build, so they are excluded by
/// age. Checked against `tokenizers` 0.23 over every code point: `\s` is the White_Space property
/// (U+0009-000D, U+0020, U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000),
/// `\p{L}` the categories Lu Ll Lt Lm Lo, `\p{N}` Nd Nl No.
enum CLIPTextClasses {
    /// Scalar class bits.
    static let whitespace: UInt8 = 1, letter: UInt8 = 2, number: UInt8 = 4

    /// The class bits of `scalar` (0 for anything else: punctuation, symbols, marks, controls, ...).
    @inline(__always)
    static func classify(_ scalar: Unicode.Scalar) -> UInt8 {
        let v = scalar.value
        if v < 0x80 { return ascii[Int(v)] }
        return classifyNonASCII(scalar)
    }

    private static let ascii: [UInt8] = (0..<128).map { classifyNonASCII(Unicode.Scalar(UInt8($0))) }

    private static func classifyNonASCII(_ scalar: Unicode.Scalar) -> UInt8 {
        let p = scalar.properties
        if p.isWhitespace { return whitespace }
        guard let age = p.age, age.major < 16 || (age.major == 16 && age.minor == 0) else { return 0 }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return letter
        case .decimalNumber, .letterNumber, .otherNumber: return number
        default: return 0
        }
    }
}
