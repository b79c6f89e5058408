extension JSONValue {
    /// Nesting accepted by default (a safetensors header needs 3, `tokenizer.json` 5).
    public static let defaultMaxDepth = 64

    /// Parses one RFC 8259 JSON document strictly: one value with optional surrounding whitespace, UTF-8
    /// (invalid sequences in strings rejected), no trailing commas, no comments, no duplicate object keys
    /// (`JSONSerialization` silently keeps one), nesting at most `maxDepth` (so that hostile input cannot
    /// exhaust the stack). Numbers are kept as text.
    public static func parse<Bytes: Collection<UInt8>>(_ bytes: Bytes, maxDepth: Int = defaultMaxDepth) throws(JSONSyntaxError) -> JSONValue {
        let result = bytes.withContiguousStorageIfAvailable { JSONParser.parse($0, maxDepth: maxDepth) }
            ?? Array(bytes).withUnsafeBufferPointer { JSONParser.parse($0, maxDepth: maxDepth) }
        return try result.get()
    }

    /// Parses the document in `bytes` (see `parse(_:maxDepth:)`), e.g. a file's mapping.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth) throws(JSONSyntaxError) -> JSONValue {
        try JSONParser.parse(bytes.assumingMemoryBound(to: UInt8.self), maxDepth: maxDepth).get()
    }
}

/// A recursive-descent parser over bytes; recursion is bounded by `maxDepth`.
private struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private let maxDepth: Int
    private var i = 0
    /// Bytes of a string with escapes, reused from string to string.
    private var scratch: [UInt8] = []

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) -> Result<JSONValue, JSONSyntaxError> {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        do throws(JSONSyntaxError) {
            parser.skipWhitespace()
            guard !bytes.isEmpty else { throw parser.error("the input is empty") }
            let value = try parser.parseValue(depth: 0)
            parser.skipWhitespace()
            guard parser.atEnd else { throw parser.error("unexpected text after the JSON value") }
            return .success(value)
        } catch {
            var located = error
            let before = UnsafeBufferPointer(rebasing: bytes[..<min(error.offset, bytes.count)])
            located.line = 1 + before.lazy.filter { $0 == 0x0A }.count
            located.column = 1 + before.count - ((before.lastIndex(of: 0x0A)).map { $0 + 1 } ?? 0)
            return .failure(located)
        }
    }

    private init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    private func error(_ reason: String, at offset: Int? = nil) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset ?? i, reason: reason)
    }

    private var atEnd: Bool { i >= bytes.count }

    /// The byte at `i` for a message: `'x'`, `'\xNN'`, or the end of the input.
    private var found: String { atEnd ? "the end of the input" : "'\(Self.printable(bytes[i]))'" }

    /// `b` as itself when printable ASCII, else `\xNN`.
    private static func printable(_ b: UInt8) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        return (0x20..<0x7F).contains(b) ? String(Character(Unicode.Scalar(b))) : "\\x" + String(decoding: [hex[Int(b >> 4)], hex[Int(b & 0xF)]], as: UTF8.self)
    }

    private mutating func skipWhitespace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func parseValue(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard !atEnd else { throw error("unexpected end of input, expected a value") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("expected a value, found \(found)")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let start = i
        for b in UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount) {
            guard !atEnd, bytes[i] == b else { throw error("invalid literal, expected \(word)", at: start) }
            i += 1
        }
    }

    private mutating func parseObject(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        var members: [(String, JSONValue)] = []
        // Duplicate keys: a linear search while the object is small, a set past that (a vocabulary has 49408 keys).
        var keys: Set<String>?
        try parseContainer(depth: depth, close: UInt8(ascii: "}"), in: "an object") { p throws(JSONSyntaxError) in
            guard !p.atEnd, p.bytes[p.i] == UInt8(ascii: "\"") else { throw p.error("expected a quoted member name, found \(p.found)") }
            let keyOffset = p.i
            let key = try p.parseString()
            let repeated: Bool
            if members.count < 12 {
                repeated = members.contains { $0.0 == key }
            } else {
                if keys == nil { keys = Set(members.map(\.0)) }
                repeated = !keys!.insert(key).inserted
            }
            if repeated { throw JSONSyntaxError(offset: keyOffset, reason: "duplicate key \(JSONValue.quoted(key))", duplicateKey: key) }
            p.skipWhitespace()
            guard !p.atEnd, p.bytes[p.i] == UInt8(ascii: ":") else { throw p.error("expected ':' after a member name, found \(p.found)") }
            p.i += 1
            p.skipWhitespace()
            members.append((key, try p.parseValue(depth: depth)))
        }
        return .object(members)
    }

    private mutating func parseArray(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        var items: [JSONValue] = []
        try parseContainer(depth: depth, close: UInt8(ascii: "]"), in: "an array") { p throws(JSONSyntaxError) in
            items.append(try p.parseValue(depth: depth))
        }
        return .array(items)
    }

    /// An object or array, `i` at its opening bracket: `element` reads each member or item (whitespace
    /// before it skipped), separated by commas, up to `close`.
    private mutating func parseContainer(
        depth: Int, close: UInt8, in what: String, _ element: (inout JSONParser) throws(JSONSyntaxError) -> Void
    ) throws(JSONSyntaxError) {
        guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth) levels") }
        i += 1
        skipWhitespace()
        if !atEnd, bytes[i] == close {
            i += 1
            return
        }
        while true {
            skipWhitespace()
            try element(&self)
            skipWhitespace()
            guard !atEnd else { throw error("unexpected end of input in \(what)") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == close { i += 1; return }
            throw error("expected ',' or '\(Character(Unicode.Scalar(close)))' in \(what), found \(found)")
        }
    }

    private func isDigit(_ at: Int) -> Bool { at < bytes.count && bytes[at] >= UInt8(ascii: "0") && bytes[at] <= UInt8(ascii: "9") }

    private mutating func skipDigits() { while isDigit(i) { i += 1 } }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, kept as text.
    private mutating func parseNumber() throws(JSONSyntaxError) -> JSONValue {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard isDigit(i) else { throw error("expected a digit, found \(found)") }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
            if isDigit(i) { throw error("a number may not have leading zeros") }
        } else {
            skipDigits()
        }
        if !atEnd, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard isDigit(i) else { throw error("expected a digit after '.', found \(found)") }
            skipDigits()
        }
        if !atEnd, bytes[i] | 0x20 == UInt8(ascii: "e") {
            i += 1
            if !atEnd, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard isDigit(i) else { throw error("expected a digit in the exponent, found \(found)") }
            skipDigits()
        }
        return .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
    }

    private mutating func parseString() throws(JSONSyntaxError) -> String {
        i += 1  // opening quote
        let start = i
        // Fast path: no escape before the closing quote, so the string is the bytes as they are.
        while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\"), bytes[i] >= 0x20 { i += 1 }
        guard !atEnd else { throw error("unterminated string", at: start - 1) }
        if bytes[i] == UInt8(ascii: "\"") {
            i += 1
            guard let s = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<(i - 1)]), as: UTF8.self) else { throw notUTF8(at: start) }
            return s
        }
        scratch.removeAll(keepingCapacity: true)
        scratch += UnsafeBufferPointer(rebasing: bytes[start..<i])
        while true {
            guard !atEnd else { throw error("unterminated string", at: start - 1) }
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                guard let s = scratch.withUnsafeBufferPointer({ String(validating: $0, as: UTF8.self) }) else {
                    throw notUTF8(at: start)
                }
                return s
            }
            guard b >= 0x20 else {
                throw error("a control character (byte 0x\(String(b, radix: 16))) inside a string must be escaped")
            }
            guard b == UInt8(ascii: "\\") else {
                scratch.append(b)
                i += 1
                continue
            }
            try parseEscape()
        }
    }

    /// One escape (`i` at its backslash) appended to `scratch` as UTF-8.
    private mutating func parseEscape() throws(JSONSyntaxError) {
        let escape = i
        i += 1
        guard !atEnd else { throw error("unterminated escape", at: escape) }
        let e = bytes[i]
        i += 1
        switch e {
        case UInt8(ascii: "\""): scratch.append(0x22)
        case UInt8(ascii: "\\"): scratch.append(0x5C)
        case UInt8(ascii: "/"): scratch.append(0x2F)
        case UInt8(ascii: "b"): scratch.append(0x08)
        case UInt8(ascii: "f"): scratch.append(0x0C)
        case UInt8(ascii: "n"): scratch.append(0x0A)
        case UInt8(ascii: "r"): scratch.append(0x0D)
        case UInt8(ascii: "t"): scratch.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hex4()
            if (0xD800...0xDBFF).contains(scalar) {
                guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                    throw error("unpaired surrogate \\u\(String(scalar, radix: 16)): a high surrogate escape must be followed by a low one", at: escape)
                }
                i += 2
                let low = try hex4()
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw error("unpaired surrogate \\u\(String(scalar, radix: 16)) followed by \\u\(String(low, radix: 16)), not a low surrogate", at: escape)
                }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw error("unpaired surrogate \\u\(String(scalar, radix: 16)): a low surrogate escape without a high one", at: escape)
            }
            scratch += UTF8.encode(Unicode.Scalar(scalar)!)!
        default:
            throw error("invalid escape '\\\(Self.printable(e))'", at: escape)
        }
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard !atEnd else { throw error("expected 4 hex digits after \\u, found the end of the input") }
            let c = bytes[i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("expected 4 hex digits after \\u, found \(found)")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private func notUTF8(at offset: Int) -> JSONSyntaxError { error("a string is not valid UTF-8", at: offset) }
}
