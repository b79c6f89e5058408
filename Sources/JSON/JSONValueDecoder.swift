/// Decodes `Decodable` types from a parsed `JSONValue`, so that `Codable` configurations (a model's
/// `config.json`) are read by the same strict parser as every other file. Numbers convert exactly from their
/// text: an integer type takes an integer literal in its range, or a number whose value is an integer
/// (`16.0`, `1e2`); `Double` and `Float` take the number rounded to Double, and Float from that Double, as
/// Python's `json` gives a float that torch then narrows. Out-of-range numbers are errors, never clamped.
/// Errors are `DecodingError`s with the coding path and what was found.
public struct JSONValueDecoder: Sendable {
    /// A decoder.
    public init() {}

    /// `T` decoded from `value`.
    public func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try unbox(value, as: T.self, path: [])
    }
}

/// An array position in a coding path (`stringValue` "Index 2", as Foundation's decoder names it).
private struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { "Index \(intValue!)" }
    init(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { nil }
}

/// The key `super`, for `superDecoder()`.
private struct SuperKey: CodingKey {
    var stringValue: String { "super" }
    var intValue: Int? { nil }
    init() {}
    init?(stringValue: String) { nil }
    init?(intValue: Int) { nil }
}

private func mismatch(_ type: Any.Type, _ value: JSONValue, _ path: [any CodingKey]) -> DecodingError {
    .typeMismatch(type, DecodingError.Context(codingPath: path, debugDescription: "expected \(type), found \(value.kindDescription)"))
}

private func corrupted(_ path: [any CodingKey], _ message: String) -> DecodingError {
    .dataCorrupted(DecodingError.Context(codingPath: path, debugDescription: message))
}

/// `value` as `T`: the primitives here, everything else through its `init(from:)`.
private func unbox<T: Decodable>(_ value: JSONValue, as type: T.Type, path: [any CodingKey]) throws -> T {
    if case .null = value, !(T.self is any ExpressibleByNilLiteral.Type) {
        throw DecodingError.valueNotFound(T.self, DecodingError.Context(codingPath: path, debugDescription: "expected \(T.self), found null"))
    }
    if T.self == Bool.self {
        guard case .bool(let b) = value else { throw mismatch(T.self, value, path) }
        return b as! T
    }
    if T.self == String.self {
        guard case .string(let s) = value else { throw mismatch(T.self, value, path) }
        return s as! T
    }
    if let integer = T.self as? any FixedWidthInteger.Type { return try unboxInteger(value, as: integer, path: path) as! T }
    if let floating = T.self as? any BinaryFloatingPoint.Type { return try unboxFloat(value, as: floating, path: path) as! T }
    return try T(from: ValueDecoder(value: value, codingPath: path))
}

private func unboxInteger<I: FixedWidthInteger>(_ value: JSONValue, as type: I.Type, path: [any CodingKey]) throws -> I {
    guard case .number(let text) = value else { throw mismatch(I.self, value, path) }
    if let exact = I(text) { return exact }
    guard let d = Double(text), let integral = I(exactly: d) else {
        throw corrupted(path, "number \(text) is not an integer that fits in \(I.self)")
    }
    return integral
}

private func unboxFloat<F: BinaryFloatingPoint>(_ value: JSONValue, as type: F.Type, path: [any CodingKey]) throws -> F {
    guard case .number(let text) = value else { throw mismatch(F.self, value, path) }
    guard let d = Double(text), d.isFinite, F(d).isFinite else { throw corrupted(path, "number \(text) does not fit in \(F.self)") }
    return F(d)
}

private struct ValueDecoder: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else { throw mismatch([String: Any].self, value, codingPath) }
        return KeyedDecodingContainer(KeyedContainer<Key>(members: members, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw mismatch([Any].self, value, codingPath) }
        return UnkeyedContainer(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleContainer(value: value, codingPath: codingPath) }
}

/// One generic `decode` witnesses every primitive requirement; `unbox` tells the types apart.
private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [(String, JSONValue)]
    let codingPath: [any CodingKey]

    var allKeys: [Key] { members.compactMap { Key(stringValue: $0.0) } }

    func contains(_ key: Key) -> Bool { members.contains { $0.0 == key.stringValue } }

    private func value(_ key: Key) throws -> JSONValue {
        guard let v = members.first(where: { $0.0 == key.stringValue })?.1 else {
            throw DecodingError.keyNotFound(key, DecodingError.Context(codingPath: codingPath, debugDescription: "no key \(key.stringValue)"))
        }
        return v
    }

    func decodeNil(forKey key: Key) throws -> Bool { try value(key).isNull }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try unbox(value(key), as: T.self, path: codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try ValueDecoder(value: value(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try ValueDecoder(value: value(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        ValueDecoder(value: members.first { $0.0 == "super" }?.1 ?? .null, codingPath: codingPath + [SuperKey()])
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        ValueDecoder(value: members.first { $0.0 == key.stringValue }?.1 ?? .null, codingPath: codingPath + [key])
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let items: [JSONValue]
    let codingPath: [any CodingKey]
    var currentIndex = 0

    init(items: [JSONValue], codingPath: [any CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    /// The next element and its path; moves past it.
    private mutating func next(_ type: Any.Type) throws -> (JSONValue, [any CodingKey]) {
        let path = codingPath + [IndexKey(intValue: currentIndex)]
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, DecodingError.Context(codingPath: path, debugDescription: "the array has only \(items.count) elements"))
        }
        defer { currentIndex += 1 }
        return (items[currentIndex], path)
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex].isNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (value, path) = try next(T.self)
        return try unbox(value, as: T.self, path: path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (value, path) = try next([String: Any].self)
        return try ValueDecoder(value: value, codingPath: path).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (value, path) = try next([Any].self)
        return try ValueDecoder(value: value, codingPath: path).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let (value, path) = try next(Any.self)
        return ValueDecoder(value: value, codingPath: path)
    }
}

private struct SingleContainer: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool { value.isNull }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try unbox(value, as: T.self, path: codingPath) }
}
