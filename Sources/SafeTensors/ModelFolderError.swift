/// An error about a model folder or one of its JSON files (`model_index.json`, `config.json`,
/// missing weights); its description names the path.
public struct ModelFolderError: Error, CustomStringConvertible, Equatable {
    // Deliberate parallel of HTTP1/HTTPVersion.swift:HTTPVersion's fields and init (and of the other error
    // structs): the same shape, each module's own error naming its own thing.
    /// Folder or file the error is about.
    public let path: String
    /// What is wrong and what was expected.
    public let reason: String

    /// An error about `path`.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    /// `path: reason`.
    public var description: String { "\(path): \(reason)" }
}

/// The checkpoint's tensors do not match the parameters a module declares. Lists every problem
/// at once (missing, unexpected and mis-shaped tensors, with shapes) and names the file(s).
public struct WeightMismatchError: Error, CustomStringConvertible, Equatable {
    /// A tensor name with a shape.
    public struct Entry: Sendable, Equatable, CustomStringConvertible {
        /// Tensor name.
        public let name: String
        /// Its shape.
        public let shape: [Int]
        /// `name [d0, d1]`.
        public var description: String { "\(name) \(shape)" }
    }

    /// A tensor whose stored shape differs from the declared one.
    public struct Mismatch: Sendable, Equatable, CustomStringConvertible {
        /// Declared (PyTorch) parameter name.
        public let name: String
        /// Name in the file (differs for renamed Paddle tensors).
        public let storedName: String
        /// Shape the file should hold (already transposed for Paddle Linear weights).
        public let expected: [Int]
        /// Shape the file holds.
        public let found: [Int]
        /// `name: expected [..], found [..]`.
        public var description: String {
            let stored = storedName == name ? "" : " (stored as \(storedName))"
            return "\(name)\(stored): expected \(expected), found \(found)"
        }
    }

    /// The checkpoint's files.
    public let files: [String]
    /// Declared parameters absent from the checkpoint (declared PyTorch names and shapes).
    public let missing: [Entry]
    /// Checkpoint tensors no parameter claims (stored names and shapes).
    public let unexpected: [Entry]
    /// Parameters present with the wrong shape.
    public let misShaped: [Mismatch]

    /// An error listing all problems.
    public init(files: [String], missing: [Entry], unexpected: [Entry], misShaped: [Mismatch]) {
        self.files = files
        self.missing = missing
        self.unexpected = unexpected
        self.misShaped = misShaped
    }

    /// One line per problem under a summary line that names the files.
    public var description: String {
        var lines = ["\(files.joined(separator: ", ")): weights do not match the model: "
            + "\(missing.count) missing, \(unexpected.count) unexpected, \(misShaped.count) mis-shaped"]
        lines += missing.map { "  missing: \($0)" }
        lines += unexpected.map { "  unexpected: \($0)" }
        lines += misShaped.map { "  mis-shaped: \($0)" }
        return lines.joined(separator: "\n")
    }
}
