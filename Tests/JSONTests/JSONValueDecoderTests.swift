import Foundation
import JSON
import Testing

/// `Codable` configurations through the strict reader.
@Suite struct JSONValueDecoderTests {
    struct Config: Decodable, Equatable {
        var cIn: Int
        var eps: Float
        var scale: Double
        var name: String
        var flags: [Bool]
        var levels: [[Int]]
        var extra: Int?
        var small: Int8?
        enum CodingKeys: String, CodingKey { case cIn = "c_in", eps, scale, name, flags, levels, extra, small }
    }

    func decode(_ text: String) throws -> Config {
        try JSONValueDecoder().decode(Config.self, from: JSONValue.parse(Array(text.utf8)))
    }

    let valid = #"{"c_in": 16, "eps": 1e-05, "scale": 0.1, "name": "x", "flags": [true], "levels": [[1, 2], []], "unknown": {}}"#

    @Test func decodesConfigs() throws {
        let c = try decode(valid)
        #expect(c == Config(cIn: 16, eps: 1e-05, scale: 0.1, name: "x", flags: [true], levels: [[1, 2], []], extra: nil, small: nil))
        // Float through Double, as Python reads the file and torch narrows it.
        #expect(c.eps == Float(Double("1e-05")!))
        // An integral number written as a float is an integer; null is absent for an optional.
        let d = try decode(valid.replacingOccurrences(of: "16", with: "1.6e1").replacingOccurrences(of: "\"unknown\"", with: "\"extra\": null, \"x\""))
        #expect(d.cIn == 16 && d.extra == nil)
    }

    /// The message `loadConfig` builds from: the path and what was found.
    func failure(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> (path: String, error: DecodingError)? {
        do {
            _ = try decode(text)
            Issue.record("decoded", sourceLocation: sourceLocation)
        } catch let error as DecodingError {
            switch error {
            case .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c), .dataCorrupted(let c):
                return (c.codingPath.map(\.stringValue).joined(separator: "."), error)
            @unknown default: break
            }
        } catch {
            Issue.record("not a DecodingError: \(error)", sourceLocation: sourceLocation)
        }
        return nil
    }

    @Test func errorsNameTheKeyAndWhatWasFound() {
        let mismatch = failure(valid.replacingOccurrences(of: "16", with: "\"16\""))
        #expect(mismatch?.path == "c_in")
        if case .typeMismatch(_, let c)? = mismatch?.error { #expect(c.debugDescription == "expected Int, found a string") }
        #expect(failure(valid.replacingOccurrences(of: "[[1, 2], []]", with: "[[1, \"x\"]]"))?.path == "levels.Index 0.Index 1")
        if case .keyNotFound(let key, _)? = failure(valid.replacingOccurrences(of: "\"name\"", with: "\"nom\""))?.error {
            #expect(key.stringValue == "name")
        } else {
            Issue.record("expected keyNotFound")
        }
        if case .valueNotFound? = failure(valid.replacingOccurrences(of: "\"x\"", with: "null"))?.error {} else { Issue.record("expected valueNotFound") }
        for (text, path) in [("16.5", "c_in"), ("99999999999999999999", "c_in")] {
            let f = failure(valid.replacingOccurrences(of: "16", with: text))
            #expect(f?.path == path)
            if case .dataCorrupted(let c)? = f?.error { #expect(c.debugDescription == "number \(text) is not an integer that fits in Int") }
        }
        #expect(failure(valid.replacingOccurrences(of: "\"unknown\"", with: "\"small\": 300, \"u\""))?.path == "small")
        #expect(failure(valid.replacingOccurrences(of: "1e-05", with: "1e39"))?.path == "eps")
        #expect(failure(valid.replacingOccurrences(of: "0.1", with: "1e999"))?.path == "scale")
        #expect(failure("[]")?.path == "")
    }

    /// A value that is one type or another, as `WuerstchenDiffNeXtConfig.Dropout` reads `dropout`.
    enum Rate: Decodable, Equatable {
        case one(Float), many([Float])
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let v = try? c.decode(Float.self) { self = .one(v) } else { self = .many(try c.decode([Float].self)) }
        }
    }

    @Test func singleValuesTryOneTypeThenAnother() throws {
        let decoder = JSONValueDecoder()
        #expect(try decoder.decode(Rate.self, from: .number("0.5")) == .one(0.5))
        #expect(try decoder.decode(Rate.self, from: .array([.number("0.1"), .int(0)])) == .many([0.1, 0]))
        #expect(throws: DecodingError.self) { try decoder.decode(Rate.self, from: .string("x")) }
        #expect(try decoder.decode([String: Int].self, from: .object([("a", .int(1))])) == ["a": 1])
    }
}
