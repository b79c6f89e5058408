import Foundation

/// A JSON value, as read by `JSONReader` (safetensors headers, shard indexes, `model_index.json`).
///
/// Integer literals that fit in `Int` stay exact (`.int`); every other number is a `.double`.
public enum JSONValue: Sendable, Hashable, CustomStringConvertible {
    /// `null`.
    case null
    /// `true` / `false`.
    case bool(Bool)
    /// An integer literal (no fraction, no exponent) that fits in `Int`.
    case int(Int)
    /// Any other number.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object (keys are unique: the reader rejects duplicates).
    case object([String: JSONValue])

    /// The string, if this is one.
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    /// The integer, if this is an integer literal that fits in `Int`.
    public var intValue: Int? { if case .int(let i) = self { i } else { nil } }
    /// The number as a `Double`, if this is a number.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }
    /// The boolean, if this is one.
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
    /// The elements, if this is an array.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    /// The members, if this is an object.
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { o } else { nil } }
    /// Whether this is `null`.
    public var isNull: Bool { self == .null }

    /// A short name of the kind of value, for error messages ("a string", "an array", ...).
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int: "an integer"
        case .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// Compact JSON text (for messages; object keys sorted).
    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .string(let s): return JSONWriter.quoted(s)
        case .array(let a): return "[" + a.map(\.description).joined(separator: ",") + "]"
        case .object(let o):
            return "{" + o.keys.sorted().map { JSONWriter.quoted($0) + ":" + o[$0]!.description }.joined(separator: ",") + "}"
        }
    }
}

extension JSONValue: Decodable {
    /// Decodes any JSON value (so `Codable` configs can keep free-form fields).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .double(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }
}

/// A JSON syntax error at a byte offset; `duplicateKey` is set when an object repeats a key.
struct JSONSyntaxError: Error, CustomStringConvertible {
    /// Byte offset in the parsed text.
    let offset: Int
    /// What is wrong.
    let message: String
    /// The repeated key, for duplicate-key errors.
    var duplicateKey: String? = nil

    var description: String { "\(message) at byte \(offset)" }
}

/// A strict RFC 8259 JSON reader over bytes that rejects duplicate object keys (which
/// `JSONSerialization` silently collapses) and bounds nesting depth, so that hostile input cannot
/// exhaust the stack.
struct JSONReader {
    /// Deepest nesting accepted (a safetensors header needs 3).
    static let defaultMaxDepth = 64

    /// Parses one JSON document (surrounding whitespace allowed) from `bytes`.
    static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth) throws -> JSONValue {
        var reader = JSONReader(bytes: bytes, maxDepth: maxDepth)
        reader.skipWhitespace()
        let value = try reader.parseValue(depth: 0)
        reader.skipWhitespace()
        guard reader.i == bytes.count else { throw reader.error("unexpected text after the JSON value") }
        return value
    }

    /// Parses one JSON document from `data`.
    static func parse(_ data: Data, maxDepth: Int = defaultMaxDepth) throws -> JSONValue {
        try data.withUnsafeBytes { try parse($0, maxDepth: maxDepth) }
    }

    private let bytes: UnsafeRawBufferPointer
    private let maxDepth: Int
    private var i = 0

    private init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    private func error(_ message: String) -> JSONSyntaxError { JSONSyntaxError(offset: i, message: message) }

    private var atEnd: Bool { i >= bytes.count }
    private var peek: UInt8 { bytes[i] }

    private mutating func skipWhitespace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws {
        guard !atEnd else { throw error("unexpected end of text, expected \(what)") }
        guard peek == byte else { throw error("expected \(what), found '\(Self.printable(peek))'") }
        i += 1
    }

    private static func printable(_ b: UInt8) -> String {
        (0x20..<0x7F).contains(b) ? String(UnicodeScalar(b)) : String(format: "\\x%02X", b)
    }

    private mutating func parseValue(depth: Int) throws -> JSONValue {
        guard !atEnd else { throw error("unexpected end of text, expected a value") }
        switch peek {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected character '\(Self.printable(peek))'")
        }
    }

    private mutating func literal(_ word: String) throws {
        for b in word.utf8 {
            guard !atEnd, peek == b else { throw error("invalid literal, expected '\(word)'") }
            i += 1
        }
    }

    private mutating func parseObject(depth: Int) throws -> JSONValue {
        guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth) levels") }
        i += 1  // {
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if !atEnd, peek == UInt8(ascii: "}") {
            i += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard !atEnd, peek == UInt8(ascii: "\"") else {
                throw error(atEnd ? "unexpected end of text inside an object" : "expected a string key")
            }
            let keyOffset = i
            let key = try parseString()
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "':'")
            skipWhitespace()
            let value = try parseValue(depth: depth)
            if members.updateValue(value, forKey: key) != nil {
                var e = JSONSyntaxError(offset: keyOffset, message: "duplicate key \(JSONWriter.quoted(key))")
                e.duplicateKey = key
                throw e
            }
            skipWhitespace()
            guard !atEnd else { throw error("unexpected end of text inside an object") }
            if peek == UInt8(ascii: ",") { i += 1; continue }
            try expect(UInt8(ascii: "}"), "',' or '}'")
            return .object(members)
        }
    }

    private mutating func parseArray(depth: Int) throws -> JSONValue {
        guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth) levels") }
        i += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if !atEnd, peek == UInt8(ascii: "]") {
            i += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard !atEnd else { throw error("unexpected end of text inside an array") }
            if peek == UInt8(ascii: ",") { i += 1; continue }
            try expect(UInt8(ascii: "]"), "',' or ']'")
            return .array(elements)
        }
    }

    private mutating func parseNumber() throws -> JSONValue {
        let start = i
        var isInteger = true
        if peek == UInt8(ascii: "-") { i += 1 }
        guard !atEnd, Self.isDigit(peek) else { throw error("invalid number") }
        if peek == UInt8(ascii: "0") {
            i += 1
            if !atEnd, Self.isDigit(peek) { throw error("invalid number (leading zero)") }
        } else {
            while !atEnd, Self.isDigit(peek) { i += 1 }
        }
        if !atEnd, peek == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            guard !atEnd, Self.isDigit(peek) else { throw error("invalid number (no digit after '.')") }
            while !atEnd, Self.isDigit(peek) { i += 1 }
        }
        if !atEnd, peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            if !atEnd, peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
            guard !atEnd, Self.isDigit(peek) else { throw error("invalid number (no digit in exponent)") }
            while !atEnd, Self.isDigit(peek) { i += 1 }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        if isInteger, let n = Int(text) { return .int(n) }
        guard let d = Double(text), d.isFinite else {
            i = start
            throw error("number \(text) is out of range")
        }
        return .double(d)
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    private mutating func parseString() throws -> String {
        i += 1  // opening quote
        let start = i
        // Fast path: no escapes.
        while !atEnd, peek != UInt8(ascii: "\""), peek != UInt8(ascii: "\\"), peek >= 0x20 { i += 1 }
        guard !atEnd else { throw error("unterminated string") }
        if peek == UInt8(ascii: "\"") {
            let s = try Self.utf8String(UnsafeRawBufferPointer(rebasing: bytes[start..<i]), offset: start)
            i += 1
            return s
        }
        var out = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
        while true {
            guard !atEnd else { throw error("unterminated string") }
            let b = peek
            if b == UInt8(ascii: "\"") {
                i += 1
                return try out.withUnsafeBytes { try Self.utf8String($0, offset: start) }
            }
            guard b >= 0x20 else { throw error("control character 0x\(String(b, radix: 16)) in a string must be escaped") }
            if b != UInt8(ascii: "\\") {
                out.append(b)
                i += 1
                continue
            }
            i += 1
            guard !atEnd else { throw error("unterminated escape") }
            let e = peek
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired surrogate \\u\(String(scalar, radix: 16)) in a string")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("invalid low surrogate in a string") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw error("unpaired surrogate \\u\(String(scalar, radix: 16)) in a string")
                }
                out.append(contentsOf: Array(String(Character(UnicodeScalar(scalar)!)).utf8))
            default:
                throw error("invalid escape '\\\(Self.printable(e))'")
            }
        }
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = peek
            let d: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw error("invalid hex digit in \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private static func utf8String(_ bytes: UnsafeRawBufferPointer, offset: Int) throws -> String {
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw JSONSyntaxError(offset: offset, message: "string is not valid UTF-8")
        }
        return s
    }
}

/// Compact JSON output matching serde_json (the safetensors reference writer): no spaces, `"` `\`
/// and control characters escaped (`\n`, `\u001f`, ...), everything else (including `/` and
/// non-ASCII) written as raw UTF-8.
enum JSONWriter {
    /// `s` as a quoted JSON string literal.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
