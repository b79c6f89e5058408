import CWebP
import Foundation

/// 8-bit RGB WebP encoding through libwebp: lossless (VP8L, every pixel exact) or lossy (VP8) at a quality,
/// with the metadata in EXIF and XMP chunks (libwebpmux). libwebp hands out the file only when the whole
/// image is compressed, so the sink gets it then, in pieces of 64 KiB.
public struct WebPEncoder: StreamingImageEncoder, Sendable {
    /// Lossless (VP8L) when true; `quality` then sets the effort, 0 (fastest) ... 100 (smallest), as libwebp reads it.
    public var lossless: Bool
    /// libwebp's quality 0 (smallest) ... 100.
    public var quality: Int

    public init(lossless: Bool, quality: Int = 75) {
        self.lossless = lossless
        self.quality = min(max(quality, 0), 100)
    }

    /// Encodes `rgb` (`height` rows of `width * 3` bytes) with `metadata`, calling `sink` with the file in
    /// order; `sink` returns false to stop (the encode then throws).
    public func encode(rgb: [UInt8], width: Int, height: Int, metadata: ImageMetadata? = nil,
                       sink: (UnsafeRawBufferPointer) -> Bool) throws {
        precondition(rgb.count == width * height * 3, "rgb holds \(rgb.count) bytes, \(width)x\(height) RGB needs \(width * height * 3)")
        guard width > 0, height > 0, width <= 16383, height <= 16383 else {
            throw ImagingError("WebP cannot hold a \(width)x\(height) image (at most 16383 pixels a side)")
        }
        let exif = metadata?.exifTIFF, xmp = metadata?.xmpPacket
        var error = [CChar](repeating: 0, count: 256)
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        let status = rgb.withUnsafeBufferPointer { pixels in
            Self.withOptional(exif) { exifPointer, exifCount in
                Self.withOptional(xmp) { xmpPointer, xmpCount in
                    wwebp_encode_rgb8(pixels.baseAddress, Int32(width), Int32(height), width * 3, Float(quality), lossless ? 1 : 0,
                                      exifPointer, exifCount, xmpPointer, xmpCount, &out, &size, &error, error.count)
                }
            }
        }
        guard status == 0, let out else { throw ImagingError("WebP encoding failed: \(message(error))") }
        defer { wwebp_free(out) }
        var offset = 0
        while offset < size {
            let n = min(65536, size - offset)
            guard sink(UnsafeRawBufferPointer(start: out + offset, count: n)) else {
                throw ImagingError("WebP encoding failed: the output sink stopped accepting bytes")
            }
            offset += n
        }
    }

    private static func withOptional<R>(_ bytes: [UInt8]?, _ body: (UnsafePointer<UInt8>?, Int) -> R) -> R {
        guard let bytes else { return body(nil, 0) }
        return bytes.withUnsafeBufferPointer { body($0.baseAddress, $0.count) }
    }
}
