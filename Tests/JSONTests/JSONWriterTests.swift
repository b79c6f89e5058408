import JSON
import Testing

/// The one writer: serde_json's bytes (what the safetensors reference writes), and what it reads back.
@Suite struct JSONWriterTests {
    @Test func escapesAsSerdeJSON() {
        // serde_json: the short escapes for " \ \b \f \n \r \t, \u00xx (lowercase) for the other controls,
        // everything else raw: DEL, '/', non-ASCII.
        let text = "q\"b\\s\u{8}\u{C}\n\r\t\u{0}\u{1F}\u{7F}/é😀"
        #expect(JSONValue.quoted(text) == #""q\"b\\s\b\f\n\r\t\u0000\u001f"# + "\u{7F}/é😀\"")
        #expect(JSONValue.quoted("") == #""""#)
        let long = String(repeating: "ab", count: 100_000) + "\n"
        #expect(JSONValue.quoted(long) == "\"" + String(repeating: "ab", count: 100_000) + "\\n\"")
    }

    @Test func writesCompactly() {
        let v = JSONValue.object([
            ("a", .array([.int(1), .double(2.5), .bool(false), .null])), ("b", .object([])), ("c", .array([])),
            ("d", .string("x")),
        ])
        #expect(v.serialized == #"{"a":[1,2.5,false,null],"b":{},"c":[],"d":"x"}"#)
        #expect(v.serializedBytes == Array(v.serialized.utf8) && v.description == v.serialized)
    }

    @Test func readsBackWhatItWrites() throws {
        var scalars = (0..<0x800).compactMap(Unicode.Scalar.init).map(Character.init)
        scalars += ["😀", "\u{10FFFF}", "\u{FFFD}"]
        let v = JSONValue.object([("s", .string(String(scalars))), ("n", .array([.int(-7), .double(1e-7), .double(1.5e300)]))])
        #expect(try JSONValue.parse(v.serializedBytes) == v)
    }
}
