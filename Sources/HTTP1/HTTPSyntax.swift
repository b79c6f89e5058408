/// Character classes of RFC 9110/9112/3986 as 256-entry tables.
enum HTTPSyntax {
    /// tchar: `!#$%&'*+-.^_`|~`, digits, letters (RFC 9110 §5.6.2).
    static let tchar: [Bool] = table { c in
        isAlnum(c) || "!#$%&'*+-.^_`|~".utf8.contains(c)
    }
    /// Field-value bytes: HTAB, SP, VCHAR, obs-text (RFC 9110 §5.5); CR, LF, NUL and other controls excluded.
    static let fieldValue: [Bool] = table { c in c == 0x09 || (c >= 0x20 && c != 0x7F) }
    /// Bytes of an origin-form target other than `%`: pchar, `/` and `?` (RFC 3986 §3.3-3.4).
    static let targetChar: [Bool] = table { c in
        isAlnum(c) || "-._~!$&'()*+,;=:@/?".utf8.contains(c)
    }
    /// Bytes of a Host value: reg-name, IP literals and port (RFC 3986 §3.2.2), without `,`.
    static let hostChar: [Bool] = table { c in
        isAlnum(c) || "-._~!$&'()*+;=:[]%".utf8.contains(c)
    }

    /// The value of a hex digit, or nil.
    static func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case 0x30...0x39: Int(c - 0x30)
        case 0x41...0x46: Int(c - 0x41 + 10)
        case 0x61...0x66: Int(c - 0x61 + 10)
        default: nil
        }
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }

    private static func table(_ member: (UInt8) -> Bool) -> [Bool] {
        (0...255).map { member(UInt8($0)) }
    }
}
