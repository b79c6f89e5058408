/// Header fields in the order received, with case-insensitive lookup; a name may repeat
/// (RFC 9110 §5.3: repeated fields are the comma-joined list of their values).
public struct HTTPHeaders: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    /// One field: name as received and value with surrounding whitespace removed.
    public struct Field: Sendable, Equatable {
        /// Field name, case as received.
        public var name: String
        /// Field value without leading or trailing spaces and tabs.
        public var value: String
    }

    /// Every field in order.
    public private(set) var fields: [Field] = []

    /// Headers from (name, value) pairs, in order.
    public init(_ pairs: [(String, String)] = []) {
        fields = pairs.map { Field(name: $0.0, value: $0.1) }
    }

    /// Headers from a literal `["Host": "a"]`.
    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    /// Appends a field (does not replace an existing one of the same name).
    public mutating func add(name: String, value: String) {
        fields.append(Field(name: name, value: value))
    }

    /// Removes every field named `name` (case-insensitive).
    public mutating func remove(name: String) {
        fields.removeAll { Self.equalsIgnoringCase($0.name, name) }
    }

    /// Number of fields.
    public var count: Int { fields.count }

    /// The first value of `name` (case-insensitive), or nil.
    public subscript(name: String) -> String? {
        fields.first { Self.equalsIgnoringCase($0.name, name) }?.value
    }

    /// Every value of `name` (case-insensitive), in order.
    public func values(_ name: String) -> [String] {
        fields.filter { Self.equalsIgnoringCase($0.name, name) }.map(\.value)
    }

    /// Whether a field named `name` (case-insensitive) is present.
    public func contains(_ name: String) -> Bool {
        fields.contains { Self.equalsIgnoringCase($0.name, name) }
    }

    /// The comma-separated elements of every `name` field, trimmed and lowercased, empty ones dropped
    /// (for list fields such as Connection and Transfer-Encoding).
    public func tokens(_ name: String) -> [String] {
        values(name).flatMap { $0.split(separator: ",") }
            .map { $0.trimmingHTTPWhitespace().lowercased() }
            .filter { !$0.isEmpty }
    }

    /// Iterates the fields in order.
    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }

    /// ASCII case-insensitive comparison of two field names (field names are ASCII tokens).
    static func equalsIgnoringCase(_ a: String, _ b: String) -> Bool {
        let x = a.utf8, y = b.utf8
        guard x.count == y.count else { return false }
        for (p, q) in zip(x, y) where p != q {
            let lp = p >= 65 && p <= 90 ? p | 0x20 : p
            let lq = q >= 65 && q <= 90 ? q | 0x20 : q
            if lp != lq { return false }
        }
        return true
    }
}

extension StringProtocol {
    /// The string without leading and trailing spaces and horizontal tabs (HTTP's OWS).
    func trimmingHTTPWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
