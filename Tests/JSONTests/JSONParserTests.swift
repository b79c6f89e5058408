import JSON
import Testing

/// The strict reader: what it accepts, what it refuses (with where and why), and its limits.
@Suite struct JSONParserTests {
    func parse(_ text: String, maxDepth: Int = JSONValue.defaultMaxDepth) throws(JSONSyntaxError) -> JSONValue {
        try JSONValue.parse(Array(text.utf8), maxDepth: maxDepth)
    }

    /// The error `text` gives (recorded as an issue when it parses).
    func failure(_ text: some Collection<UInt8>, maxDepth: Int = JSONValue.defaultMaxDepth,
                 sourceLocation: SourceLocation = #_sourceLocation) -> JSONSyntaxError? {
        do {
            let value = try JSONValue.parse(text, maxDepth: maxDepth)
            Issue.record("parsed as \(value)", sourceLocation: sourceLocation)
            return nil
        } catch {
            return error
        }
    }

    @Test func parsesAndSerialises() throws {
        let v = try parse(#" {"a": [1, -2.5e3, true, null, "x\"\u00e9\ud83d\ude00"], "b": {}} "#)
        #expect(v["a"] == .array([.number("1"), .number("-2.5e3"), .bool(true), .null, .string("x\"é😀")]))
        if case .array(let a)? = v["a"] { #expect(a[0].intValue == 1) }
        #expect(JSONValue.object([("k", .string("a\nb\u{1}"))]).serialized == #"{"k":"a\nb\u0001"}"#)
        #expect(JSONValue.number("9223372036854775808").intValue == nil)
    }

    @Test(arguments: ["", "{", "{\"a\":1,}", "[1,]", "01", "{\"a\":1,\"a\":2}", "\"\u{1}\"", "{'a':1}", "1 2", "nul", "\"\\x\"", "-", "1.", "[\"\\ud800\"]"])
    func rejectsMalformed(_ text: String) {
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test func limitsNesting() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(Array(deep.utf8)) }
        #expect(failure(Array(String(repeating: "{\"a\":", count: 50_000).utf8), maxDepth: 16)?.reason == "nesting deeper than 16 levels")
        let three = #"{"t":{"shape":[1]}}"#
        #expect((try? parse(three, maxDepth: 3)) != nil)
        #expect(failure(Array(three.utf8), maxDepth: 2)?.offset == 14)
    }

    @Test func errorsSayWhereAndWhat() throws {
        // (text, offset of the problem, reason)
        let cases: [(String, Int, String)] = [
            ("", 0, "the input is empty"), ("{\"a\":1,}", 7, "expected a quoted member name, found '}'"),
            ("[1,]", 3, "expected a value, found ']'"), ("01", 1, "a number may not have leading zeros"),
            ("\"a\u{1}\"", 2, "a control character (byte 0x1) inside a string must be escaped"), ("\"a\\qb\"", 2, "invalid escape '\\q'"),
            ("[\"\\udc00\"]", 2, "unpaired surrogate \\udc00: a low surrogate escape without a high one"), ("{} x", 3, "unexpected text after the JSON value"),
            ("[nul]", 1, "invalid literal, expected null"), ("1.", 2, "expected a digit after '.', found the end of the input"),
            ("{\"a\" 1}", 5, "expected ':' after a member name, found '1'"), ("\"abc", 0, "unterminated string"),
        ]
        for (text, offset, reason) in cases {
            let e = failure(Array(text.utf8))
            #expect(e?.offset == offset && e?.reason == reason, "\(text): \(e.map { "\($0)" } ?? "parsed")")
        }
        let e = try #require(failure(Array("{\n  \"a\": 1,\n  \"b\": ]\n}".utf8)))
        #expect(e.line == 3 && e.column == 8 && e.located == "expected a value, found ']' at line 3, column 8 (byte 19)")
        #expect(e.description == "invalid JSON at byte 19: expected a value, found ']'")
    }

    @Test func rejectsDuplicateKeysInSmallAndLargeObjects() {
        let small = failure(Array(#"{"a":1,"b":2,"a":3}"#.utf8))
        #expect(small?.duplicateKey == "a" && small?.offset == 13 && small?.reason == #"duplicate key "a""#)
        // Past the linear search's size: the set of keys must catch it, wherever the first one was.
        let members = (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(failure(Array("{\(members),\"k3\":0}".utf8))?.duplicateKey == "k3")
        #expect(failure(Array("{\(members),\"k39\":0}".utf8))?.duplicateKey == "k39")
        #expect((try? parse("{\(members),\"k40\":0}"))?.objectValue?.count == 41)
        // The same key in different objects is fine.
        #expect((try? parse(#"{"a":{"a":1},"b":{"a":2}}"#)) != nil)
    }

    @Test func rejectsInvalidUTF8() {
        let q = UInt8(ascii: "\"")
        for bad: [UInt8] in [[0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xE2, 0x82], [0xF4, 0x90, 0x80, 0x80]] {
            #expect(failure([q] + bad + [q])?.reason == "a string is not valid UTF-8", "\(bad)")
            // After an escape the string takes the slow path: it is checked there too.
            #expect(failure([q, UInt8(ascii: "\\"), UInt8(ascii: "n")] + bad + [q])?.reason == "a string is not valid UTF-8", "\(bad)")
        }
        #expect(failure([0xFF])?.reason == "expected a value, found '\\xFF'")
        #expect((try? JSONValue.parse([q, 0xE2, 0x82, 0xAC, q])) == .string("€"))
    }

    @Test func keepsNumbersAsText() throws {
        let v = try parse("[1.0e+2, -0, 12345678901234567890123, 1e999, 0.1, 5]")
        #expect(v == .array([.number("1.0e+2"), .number("-0"), .number("12345678901234567890123"), .number("1e999"), .number("0.1"), .number("5")]))
        guard case .array(let a) = v else { return }
        #expect(a[0].intValue == nil && a[0].doubleValue == 100 && a[0].kindDescription == "a number")
        #expect(a[1].intValue == 0 && a[2].intValue == nil && a[2].kindDescription == "a number")
        #expect(a[3].doubleValue == .infinity)
        #expect(a[5].intValue == 5 && a[5].kindDescription == "an integer")
        #expect(a[0] == .number("100"), "numbers compare by value")
        #expect(JSONValue.int(Int64.min).intValue == Int(Int64.min))
        #expect(JSONValue.double(0.1) == .number("0.1") && JSONValue.double(.nan) == .null)
    }

    @Test func objectsKeepTheirOrder() throws {
        let v = try parse(#"{"z":1,"a":2,"m":3}"#)
        #expect(v.objectValue?.map(\.0) == ["z", "a", "m"])
        #expect(v.serialized == #"{"z":1,"a":2,"m":3}"#)
        #expect(v["a"] == .int(2) && v["q"] == nil && JSONValue.string("x")["a"] == nil)
    }
}
