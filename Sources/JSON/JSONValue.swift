/// A JSON document as parsed (`JSONValue.parse`) or built for output (`serialized`): numbers are kept as
/// their literal text, so that every caller converts them exactly, with its own range checks (no rounding
/// through Double on the way in), and objects keep their members in order (documents are written with
/// their keys in the documented order; a parsed object has no duplicate keys).
///
/// Used for every JSON the package reads or writes: safetensors headers and shard indexes, `config.json`
/// and `model_index.json`, the tokenizer files, the HTTP API's bodies and error bodies, the server's
/// configuration file and the CLI's `--json` output.
public indirect enum JSONValue: Sendable, Equatable, CustomStringConvertible {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number as written (`12`, `-3.5e2`); see `intValue` and `doubleValue`.
    case number(String)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// Members in document order (a parsed object has no duplicate keys).
    case object([(String, JSONValue)])

    /// Structural equality; numbers compare by value (`1.0 == 1`), members in order.
    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.number(let x), .number(let y)): x == y || Double(x) == Double(y)
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    /// A number from an integer.
    public static func int<I: BinaryInteger>(_ value: I) -> JSONValue { .number(String(value)) }

    /// A number from a Double, in its shortest round-trip form (non-finite values become null: JSON has no NaN).
    public static func double(_ value: Double) -> JSONValue { value.isFinite ? .number(String(value)) : .null }

    /// The member `key` of an object, or nil (also when this is not an object).
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    /// The value when this is an integer literal (no fraction, no exponent) that fits `Int`; exact.
    public var intValue: Int? {
        guard case .number(let text) = self, !text.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 | 0x20 == UInt8(ascii: "e") })
        else { return nil }
        return Int(text)
    }

    /// The value of a number, rounded to the nearest Double (infinite when its magnitude is beyond Double's).
    public var doubleValue: Double? {
        guard case .number(let text) = self else { return nil }
        return Double(text)
    }

    /// The string, if this is one.
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }

    /// The boolean, if this is one.
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }

    /// The elements, if this is an array.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }

    /// The members in document order, if this is an object.
    public var objectValue: [(String, JSONValue)]? { if case .object(let o) = self { o } else { nil } }

    /// Whether this is `null`.
    public var isNull: Bool { if case .null = self { true } else { false } }

    /// What kind of value this is, for error messages: `null`, `a boolean`, `an integer` (an integer literal
    /// that fits Int), `a number`, `a string`, `an array`, `an object`.
    public var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: intValue != nil ? "an integer" : "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// Compact JSON text (`serialized`), for messages.
    public var description: String { serialized }
}
