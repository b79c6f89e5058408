import CPNG
import Foundation

/// 8-bit RGB PNG encoding through libpng, handing bytes to a sink as rows are compressed, so a
/// response can stream the image while it is being encoded.
public struct PNGEncoder: StreamingImageEncoder, Sendable {
    /// zlib level 0 (store) ... 9 (smallest); 6 is libpng's default.
    public var compressionLevel: Int

    /// An encoder with the given zlib level (clamped to 0...9).
    public init(compressionLevel: Int = 6) {
        self.compressionLevel = min(max(compressionLevel, 0), 9)
    }

    /// Encodes `rgb` (`height` rows of `width * 3` bytes), calling `sink` with each piece of the file
    /// in order; `metadata` goes into text chunks before the image data (`ImageMetadata`'s table). `sink`
    /// returns false to stop (the encode then throws).
    public func encode(rgb: [UInt8], width: Int, height: Int, metadata: ImageMetadata? = nil,
                       sink: (UnsafeRawBufferPointer) -> Bool) throws {
        precondition(rgb.count == width * height * 3, "rgb holds \(rgb.count) bytes, \(width)x\(height) RGB needs \(width * height * 3)")
        guard width > 0, height > 0, width <= 1 << 24, height <= 1 << 24 else {
            throw PNGError(description: "cannot encode a \(width)x\(height) image")
        }
        let chunks = metadata.map(Self.textChunks) ?? []
        try withoutActuallyEscaping(sink) { sink in
            var box = sink
            var error = [CChar](repeating: 0, count: 256)
            let status = Self.withTexts(chunks) { texts in
                withUnsafeMutablePointer(to: &box) { context in
                    rgb.withUnsafeBufferPointer { pixels in
                        wpng_encode_rgb8(
                            pixels.baseAddress, Int32(width), Int32(height), width * 3, Int32(compressionLevel),
                            texts.baseAddress, Int32(texts.count),
                            { ctx, bytes, count in
                                let sink = ctx!.assumingMemoryBound(to: ((UnsafeRawBufferPointer) -> Bool).self).pointee
                                return sink(UnsafeRawBufferPointer(start: bytes, count: count)) ? 0 : 1
                            }, context, &error, error.count)
                    }
                }
            }
            if status != 0 {
                throw PNGError(description: String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
        }
    }

    /// One text chunk's keyword and NUL-terminated bytes (UTF-8 for iTXt, Latin-1 for tEXt).
    struct TextChunk {
        let key: String
        let bytes: [UInt8]
        let international: Bool
    }

    /// `metadata` as PNG text chunks: JSON in iTXt, AUTOMATIC1111's text in tEXt when it is Latin-1
    /// (else iTXt, as Pillow's `PngInfo.add_text` decides), `Software` in tEXt. NUL, which no PNG text
    /// can hold, is dropped.
    static func textChunks(_ metadata: ImageMetadata) -> [TextChunk] {
        func chunk(_ key: String, _ text: String, international: Bool? = nil) -> TextChunk {
            let scalars = text.unicodeScalars.filter { $0.value != 0 }
            let latin1 = international.map { !$0 } ?? scalars.allSatisfy { $0.value <= 0xFF }
            let bytes = latin1 ? scalars.map { $0.value <= 0xFF ? UInt8($0.value) : UInt8(ascii: "?") } : Array(String(String.UnicodeScalarView(scalars)).utf8)
            return TextChunk(key: key, bytes: bytes + [0], international: !latin1)
        }
        return [chunk(ImageMetadata.pngJSONKey, metadata.json, international: true), chunk(ImageMetadata.pngTextKey, metadata.text),
                chunk("Software", metadata.software, international: false)]
    }

    /// Calls `body` with `wpng_text` structures pointing into `chunks` (valid only during the call).
    private static func withTexts<R>(_ chunks: [TextChunk], _ body: (UnsafeBufferPointer<wpng_text>) -> R) -> R {
        func nest(_ i: Int, _ built: [wpng_text]) -> R {
            guard i < chunks.count else { return built.withUnsafeBufferPointer(body) }
            return chunks[i].key.withCString { key in
                chunks[i].bytes.withUnsafeBufferPointer { bytes in
                    bytes.withMemoryRebound(to: CChar.self) { text in
                        nest(i + 1, built + [wpng_text(key: key, text: text.baseAddress, length: chunks[i].bytes.count - 1,
                                                       international: chunks[i].international ? 1 : 0)])
                    }
                }
            }
        }
        return nest(0, [])
    }
}
