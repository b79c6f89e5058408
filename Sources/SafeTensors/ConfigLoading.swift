import Foundation
import JSON

/// Decodes `folder/<fileName>` (a component's `config.json`, or e.g. `scheduler_config.json`) as `T`,
/// read by the strict `JSONValue.parse` (a repeated key is an error) and `JSONValueDecoder`.
///
/// Unknown keys are ignored (Codable's default); errors name the file, the key path and what was
/// expected, e.g. `prior/config.json: key c_r: expected Int (expected Int, found a string)`.
public func loadConfig<T: Decodable>(_ type: T.Type, from folder: URL, fileName: String = "config.json") throws -> T {
    let url = folder.appendingPathComponent(fileName)
    let data: Data
    do {
        data = try Data(contentsOf: url)
    } catch {
        throw ModelFolderError(path: url.path, reason: "cannot read: \(error.localizedDescription)")
    }
    let json: JSONValue
    do {
        json = try JSONValue.parse(data)
    } catch {
        throw ModelFolderError(path: url.path, reason: "not valid JSON: \(error.located)")
    }
    do {
        return try JSONValueDecoder().decode(T.self, from: json)
    } catch let error as DecodingError {
        throw ModelFolderError(path: url.path, reason: describe(error, as: T.self))
    } catch {
        throw ModelFolderError(path: url.path, reason: "cannot decode \(T.self): \(error)")
    }
}

/// `key a.b[2]: ...` text for a decoding error.
private func describe<T>(_ error: DecodingError, as: T.Type) -> String {
    func path(_ keys: [any CodingKey]) -> String {
        var out = ""
        for k in keys {
            if let i = k.intValue, k.stringValue.hasPrefix("Index") || k.stringValue == String(i) {
                out += "[\(i)]"
            } else {
                out += (out.isEmpty ? "" : ".") + k.stringValue
            }
        }
        return out.isEmpty ? "(top level)" : out
    }
    switch error {
    case .typeMismatch(let type, let c):
        return "key \(path(c.codingPath)): expected \(type) (\(c.debugDescription))"
    case .valueNotFound(let type, let c):
        return "key \(path(c.codingPath)): expected \(type), found null or nothing"
    case .keyNotFound(let key, let c):
        let parent = c.codingPath.isEmpty ? "" : " in \(path(c.codingPath))"
        return "key \(key.stringValue)\(parent): required by \(T.self) but missing"
    case .dataCorrupted(let c):
        return "key \(path(c.codingPath)): \(c.debugDescription)"
    @unknown default:
        return "cannot decode \(T.self): \(error)"
    }
}
