/// A tokenizer file that cannot be read or honoured: names the file, the line when there is one, and what
/// is wrong.
public struct CLIPTokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    // Deliberate parallel of SafeTensors/SafeTensorsError.swift:SafeTensorsError and
    // Serving/ServerConfiguration+Loading.swift:ConfigurationError (fields, init, description): each module's
    // own error names its own thing (file, line, tensor, field, source); a shared type would couple the targets.
    /// The file at fault (its path, or the field path for in-memory configurations).
    public let file: String
    /// 1-based line number in `file`, when the problem is on a line (`merges.txt`).
    public let line: Int?
    /// What is wrong and what was expected.
    public let reason: String

    /// An error about `file` (at `line`, when known).
    public init(file: String, line: Int? = nil, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    /// "file:line: reason".
    public var description: String {
        if let line { return "\(file):\(line): \(reason)" }
        return "\(file): \(reason)"
    }
}
