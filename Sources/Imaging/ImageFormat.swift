import Foundation

/// The image file formats we write: OpenAI's `output_format` values.
public enum ImageFormat: String, CaseIterable, Sendable, Equatable {
    /// PNG through libpng: lossless, streamed as rows are compressed.
    case png
    /// JPEG through libjpeg-turbo: lossy, streamed as scanlines are compressed.
    case jpeg
    /// WebP through libwebp: lossless at `output_compression` 100, else lossy; written once compressed.
    case webp

    /// The media type (`Content-Type`, `Accept`).
    public var mediaType: String { "image/\(rawValue)" }

    /// The usual file extension (without the dot).
    public var fileExtension: String { self == .jpeg ? "jpg" : rawValue }

    /// The format of a file name's extension (`png`, `jpg`, `jpeg`, `webp`, any case); nil for others.
    public init?(fileExtension: String) {
        switch fileExtension.lowercased() {
        case "png": self = .png
        case "jpg", "jpeg": self = .jpeg
        case "webp": self = .webp
        default: return nil
        }
    }

    /// The format of a file from its first bytes (PNG signature, JPEG SOI, RIFF....WEBP); nil for others.
    public init?(sniffing data: Data) {
        let head = [UInt8](data.prefix(12))
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            self = .png
        } else if head.starts(with: [0xFF, 0xD8, 0xFF]) {
            self = .jpeg
        } else if head.count == 12, head.starts(with: Array("RIFF".utf8)), Array(head[8..<12]) == Array("WEBP".utf8) {
            self = .webp
        } else {
            return nil
        }
    }
}
