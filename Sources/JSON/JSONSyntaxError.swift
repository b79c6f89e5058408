/// Why a text is not JSON: where (byte offset, and line and column for files) and what was expected there.
public struct JSONSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Byte offset of the problem from the start of the text.
    public let offset: Int
    /// What is wrong, e.g. `expected ',' or '}' in an object`.
    public let reason: String
    /// The repeated key, when an object has a key twice (callers name it: a tensor, a field).
    public let duplicateKey: String?
    /// 1-based line of `offset`.
    public internal(set) var line = 1
    /// 1-based column of `offset`, in bytes from the line's start.
    public internal(set) var column = 1

    /// An error at `offset`.
    public init(offset: Int, reason: String, duplicateKey: String? = nil) {
        self.offset = offset
        self.reason = reason
        self.duplicateKey = duplicateKey
    }

    /// `invalid JSON at byte N: reason`.
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }

    /// `reason at line L, column C (byte N)`, for errors about files.
    public var located: String { "\(reason) at line \(line), column \(column) (byte \(offset))" }
}
