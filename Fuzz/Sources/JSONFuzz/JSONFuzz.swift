import FuzzSupport
import JSON

/// libFuzzer harness for the JSON reader and writer. Properties for every input: parsing never crashes
/// (it returns a value or throws `JSONSyntaxError`, also at a small depth limit); a value that parsed
/// writes out as text that parses back to the same value and writes out the same text again.
@main
struct JSONFuzz {
    static func main() {
        runFuzzer { data, size in
            check(bytes(data, size))
            return 0
        }
    }
}

func check(_ input: [UInt8]) {
    _ = try? JSONValue.parse(input, maxDepth: 4)
    guard let value = try? JSONValue.parse(input) else { return }
    let text = value.serializedBytes
    let again: JSONValue
    do { again = try JSONValue.parse(text) } catch {
        fatalError("written text does not parse: \(error): \(String(decoding: text, as: UTF8.self))")
    }
    precondition(again == value, "round trip changed the value: \(value) -> \(again)")
    precondition(again.serializedBytes == text, "writing is not stable: \(String(decoding: text, as: UTF8.self))")
}
