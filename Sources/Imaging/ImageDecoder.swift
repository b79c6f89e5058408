import CJPEG
import CPNG
import CWebP
import Foundation

/// A decoded image file: its format, 8-bit RGB pixels and the metadata we write (`ImageMetadata`).
public struct DecodedImage: Sendable {
    public var format: ImageFormat
    public var width: Int
    public var height: Int
    /// `height * width * 3` bytes.
    public var rgb: [UInt8]
    /// `json`: our parameters JSON; nil when the file has none.
    public var json: String?
    /// AUTOMATIC1111's `parameters` text (PNG) or Exif `UserComment` (JPEG, WebP); nil when absent.
    public var text: String?
}

/// Reads PNG, JPEG and WebP files through the same libraries that write them: pixels for tests and tools,
/// and the generation parameters for `wuerstchen inspect` and `generate --from`.
public enum ImageDecoder {
    /// Pixels and metadata of a file, its format told by its first bytes; throws naming the format and
    /// the library's complaint, or that the bytes are none of the three.
    public static func decode(_ data: Data, pixels: Bool = true) throws -> DecodedImage {
        guard let format = ImageFormat(sniffing: data) else {
            throw ImagingError("not a PNG, JPEG or WebP file (it starts with \(data.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")))")
        }
        let bytes = [UInt8](data)
        switch format {
        case .png:
            var out = DecodedImage(format: .png, width: 0, height: 0, rgb: [], json: nil, text: nil)
            if pixels {
                let p = try PNGDecoder.decode(data)
                (out.width, out.height, out.rgb) = (p.width, p.height, p.rgb)
            }
            let texts = try pngTexts(bytes)
            out.json = texts.first { $0.key == ImageMetadata.pngJSONKey }?.text
            out.text = texts.first { $0.key == ImageMetadata.pngTextKey }?.text
            return out
        case .jpeg:
            return try decodeJPEG(bytes, pixels: pixels)
        case .webp:
            return try decodeWebP(bytes, pixels: pixels)
        }
    }

    /// Every text chunk of a PNG, in file order (tEXt/zTXt decoded from Latin-1, iTXt from UTF-8).
    static func pngTexts(_ bytes: [UInt8]) throws -> [(key: String, text: String)] {
        final class Box { var texts: [(key: String, text: String)] = [] }
        let box = Box()
        var error = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { b in
            wpng_read_text(b.baseAddress, b.count, { ctx, key, text, length, international in
                let box = Unmanaged<Box>.fromOpaque(ctx!).takeUnretainedValue()
                let raw = UnsafeRawBufferPointer(start: text, count: length)
                let value = international != 0 ? String(decoding: raw, as: UTF8.self)
                    : String(String.UnicodeScalarView(raw.map { Unicode.Scalar($0) }))
                box.texts.append((String(cString: key!), value))
            }, Unmanaged.passUnretained(box).toOpaque(), &error, error.count)
        }
        guard status == 0 else { throw PNGError(description: message(error)) }
        return box.texts
    }

    private static func decodeJPEG(_ bytes: [UInt8], pixels: Bool) throws -> DecodedImage {
        final class Box { var segments: [[UInt8]] = [] }
        let box = Box()
        var error = [CChar](repeating: 0, count: 256)
        var buffer: UnsafeMutablePointer<UInt8>?
        var w: Int32 = 0, h: Int32 = 0
        let status = bytes.withUnsafeBufferPointer { b in
            let onMarker: wjpeg_marker_fn = { ctx, marker, data, length in
                guard marker == 0xE1, let data else { return }
                Unmanaged<Box>.fromOpaque(ctx!).takeUnretainedValue().segments.append(Array(UnsafeBufferPointer(start: data, count: length)))
            }
            let context = Unmanaged.passUnretained(box).toOpaque()
            return pixels ? wjpeg_decode_rgb8(b.baseAddress, b.count, &buffer, &w, &h, onMarker, context, &error, error.count)
                : wjpeg_decode_rgb8(b.baseAddress, b.count, nil, &w, &h, onMarker, context, &error, error.count)
        }
        guard status == 0 else { throw ImagingError("JPEG decoding failed: \(message(error))") }
        var out = DecodedImage(format: .jpeg, width: Int(w), height: Int(h), rgb: [], json: nil, text: nil)
        if let buffer {
            out.rgb = Array(UnsafeBufferPointer(start: buffer, count: out.width * out.height * 3))
            wjpeg_free(buffer)
        }
        for segment in box.segments {
            if segment.starts(with: ImageMetadata.xmpIdentifier) {
                out.json = ImageMetadata.xmpElement("wuerstchen:parameters", in: Array(segment.dropFirst(ImageMetadata.xmpIdentifier.count)))
            } else if segment.starts(with: ImageMetadata.exifIdentifier) {
                out.text = ImageMetadata.exifUserComment(Array(segment.dropFirst(ImageMetadata.exifIdentifier.count)))
            }
        }
        return out
    }

    private static func decodeWebP(_ bytes: [UInt8], pixels: Bool) throws -> DecodedImage {
        var out = DecodedImage(format: .webp, width: 0, height: 0, rgb: [], json: nil, text: nil)
        if pixels {
            var error = [CChar](repeating: 0, count: 256)
            var buffer: UnsafeMutablePointer<UInt8>?
            var w: Int32 = 0, h: Int32 = 0
            let status = bytes.withUnsafeBufferPointer { wwebp_decode_rgb8($0.baseAddress, $0.count, &buffer, &w, &h, &error, error.count) }
            guard status == 0, let buffer else { throw ImagingError("WebP decoding failed: \(message(error))") }
            (out.width, out.height) = (Int(w), Int(h))
            out.rgb = Array(UnsafeBufferPointer(start: buffer, count: out.width * out.height * 3))
            wwebp_free(buffer)
        }
        func chunk(_ fourcc: String) -> [UInt8]? {
            var data: UnsafeMutablePointer<UInt8>?
            var size = 0
            let status = bytes.withUnsafeBufferPointer { wwebp_get_chunk($0.baseAddress, $0.count, fourcc, &data, &size) }
            guard status == 0, let data else { return nil }
            defer { wwebp_free(data) }
            return Array(UnsafeBufferPointer(start: data, count: size))
        }
        out.json = chunk("XMP ").flatMap { ImageMetadata.xmpElement("wuerstchen:parameters", in: $0) }
        out.text = chunk("EXIF").flatMap(ImageMetadata.exifUserComment)
        return out
    }
}
