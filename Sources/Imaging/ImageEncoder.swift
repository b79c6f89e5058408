import Foundation

/// One of the three encoders, chosen by `output_format`, with OpenAI's `output_compression` (0-100)
/// mapped onto each library's own setting:
///
/// | format | `output_compression` c | absent |
/// | --- | --- | --- |
/// | png | zlib level `round(c * 9 / 100)` (0 stores, 100 is level 9); always lossless | the server's `png_compression` (6) |
/// | jpeg | libjpeg quality `max(c, 1)`; chroma 4:4:4 from 90, 4:2:0 below | 100, OpenAI's default |
/// | webp | 100: lossless (exact pixels); 0-99: lossy at libwebp quality c | 100 (lossless), OpenAI's default |
///
/// OpenAI has no lossless switch: 100, its default, is the one value that keeps every pixel in WebP.
public struct ImageEncoder: StreamingImageEncoder, Sendable, Equatable {
    /// The file format.
    public var format: ImageFormat
    /// `output_compression` 0-100, nil for the default in the table above.
    public var compression: Int?
    /// The zlib level of PNGs without `compression`.
    public var defaultPNGLevel: Int

    public init(format: ImageFormat = .png, compression: Int? = nil, defaultPNGLevel: Int = 6) {
        self.format = format
        self.compression = compression.map { min(max($0, 0), 100) }
        self.defaultPNGLevel = defaultPNGLevel
    }

    /// OpenAI's default `output_compression`.
    public static let defaultCompression = 100

    /// The zlib level for `output_compression` c.
    public static func pngLevel(compression c: Int) -> Int { Int((Double(c) * 9 / 100).rounded()) }

    /// Throws when `metadata` cannot go into this format (a JPEG segment holds 65533 bytes).
    public func check(_ metadata: ImageMetadata) throws(ImagingError) {
        if format == .jpeg { _ = try JPEGEncoder.segments(metadata) }
    }

    /// Encodes `rgb` (`height` rows of `width * 3` bytes) with `metadata`, calling `sink` with each piece
    /// of the file in order (as it is compressed for PNG and JPEG); `sink` returns false to stop.
    public func encode(rgb: [UInt8], width: Int, height: Int, metadata: ImageMetadata? = nil,
                       sink: (UnsafeRawBufferPointer) -> Bool) throws {
        let c = compression ?? Self.defaultCompression
        switch format {
        case .png:
            try PNGEncoder(compressionLevel: compression.map(Self.pngLevel) ?? defaultPNGLevel)
                .encode(rgb: rgb, width: width, height: height, metadata: metadata, sink: sink)
        case .jpeg:
            try JPEGEncoder(quality: c).encode(rgb: rgb, width: width, height: height, metadata: metadata, sink: sink)
        case .webp:
            // Lossless: libwebp's `quality` is then the effort, left at its default 75 (100 saved 2% of the bytes
            // at 1024 px for a quarter more time, BENCHMARKS.md).
            let encoder = c == 100 ? WebPEncoder(lossless: true) : WebPEncoder(lossless: false, quality: c)
            try encoder.encode(rgb: rgb, width: width, height: height, metadata: metadata, sink: sink)
        }
    }
}
