import Foundation

/// Writes a line to stderr.
func log(_ message: String) {
    FileHandle.standardError.write(Data("wuerstchen: \(message)\n".utf8))
}
