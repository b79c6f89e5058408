import CJPEG
import Foundation

/// 8-bit RGB JPEG encoding through libjpeg-turbo (baseline, Huffman tables optimised by libjpeg's
/// defaults), handing bytes to a sink in pieces of at most 64 KiB as scanlines are compressed, so a
/// response streams while the image is encoded.
public struct JPEGEncoder: StreamingImageEncoder, Sendable {
    /// libjpeg's quality, 1 (smallest) ... 100 (`jpeg_set_quality` with baseline tables).
    public var quality: Int

    /// An encoder at `quality` (clamped to 1...100: libjpeg reads 0 as 1).
    public init(quality: Int = 90) {
        self.quality = min(max(quality, 1), 100)
    }

    /// Chroma at full resolution (4:4:4) from quality 90 up, else subsampled 4:2:0 (libjpeg's default):
    /// at high quality the colour edges of a drawn image are what subsampling visibly smears.
    public var fullChroma: Bool { quality >= 90 }

    /// The APP1 segments of `metadata` (Exif first, then XMP); throws when one exceeds a JPEG segment's
    /// 65533 bytes (prompts of tens of kilobytes), naming the size and the formats that have no bound.
    public static func segments(_ metadata: ImageMetadata) throws(ImagingError) -> [[UInt8]] {
        let exif = ImageMetadata.exifIdentifier + metadata.exifTIFF
        let xmp = ImageMetadata.xmpIdentifier + metadata.xmpPacket
        for (name, bytes) in [("Exif", exif), ("XMP", xmp)] where bytes.count > ImageMetadata.maxJPEGSegment {
            throw ImagingError("the generation parameters need \(bytes.count) bytes of JPEG \(name) metadata, more than one JPEG "
                               + "segment holds (\(ImageMetadata.maxJPEGSegment)): shorten the prompts, or use PNG or WebP")
        }
        return [exif, xmp]
    }

    /// Encodes `rgb` (`height` rows of `width * 3` bytes) with `metadata` in APP1 segments, calling `sink`
    /// with each piece of the file in order; `sink` returns false to stop (the encode then throws).
    public func encode(rgb: [UInt8], width: Int, height: Int, metadata: ImageMetadata? = nil,
                       sink: (UnsafeRawBufferPointer) -> Bool) throws {
        precondition(rgb.count == width * height * 3, "rgb holds \(rgb.count) bytes, \(width)x\(height) RGB needs \(width * height * 3)")
        guard width > 0, height > 0, width <= 65500, height <= 65500 else {
            throw ImagingError("JPEG cannot hold a \(width)x\(height) image (at most 65500 pixels a side)")
        }
        let segments = try metadata.map { m throws(ImagingError) in try Self.segments(m) } ?? []
        // Deliberate parallel of PNGEncoder.swift:encode (and WebPEncoder's): the sink passed through a context
        // pointer to each library's own C entry point, with its own option list and callback type.
        try withoutActuallyEscaping(sink) { sink in
            var box = sink
            var error = [CChar](repeating: 0, count: 256)
            let status = Self.withSegments(segments) { list in
                withUnsafeMutablePointer(to: &box) { context in
                    rgb.withUnsafeBufferPointer { pixels in
                        wjpeg_encode_rgb8(
                            pixels.baseAddress, Int32(width), Int32(height), width * 3, Int32(quality), fullChroma ? 1 : 0,
                            list.baseAddress, Int32(list.count),
                            { ctx, bytes, count in
                                let sink = ctx!.assumingMemoryBound(to: ((UnsafeRawBufferPointer) -> Bool).self).pointee
                                return sink(UnsafeRawBufferPointer(start: bytes, count: count)) ? 0 : 1
                            }, context, &error, error.count)
                    }
                }
            }
            if status != 0 { throw ImagingError("JPEG encoding failed: \(message(error))") }
        }
    }

    /// Calls `body` with APP1 `wjpeg_segment`s pointing into `segments` (valid only during the call).
    private static func withSegments<R>(_ segments: [[UInt8]], _ body: (UnsafeBufferPointer<wjpeg_segment>) -> R) -> R {
        func nest(_ i: Int, _ built: [wjpeg_segment]) -> R {
            guard i < segments.count else { return built.withUnsafeBufferPointer(body) }
            return segments[i].withUnsafeBufferPointer { bytes in
                nest(i + 1, built + [wjpeg_segment(marker: 0xE1, data: bytes.baseAddress, length: bytes.count)])
            }
        }
        return nest(0, [])
    }
}
