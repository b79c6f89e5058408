/// A JPEG or WebP encoding or decoding failure, or metadata that a format cannot hold; names the format
/// and what went wrong (libjpeg's or libwebp's own message when they gave one).
public struct ImagingError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// A C shim's NUL-terminated message buffer as text.
func message(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
