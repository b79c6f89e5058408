import CPNG
import Foundation

/// PNG decoding to 8-bit RGB through libpng, for tests and tools that check what the encoder wrote.
public enum PNGDecoder {
    /// Width, height and `height * width * 3` bytes of a PNG file.
    public static func decode(_ png: Data) throws -> (width: Int, height: Int, rgb: [UInt8]) {
        var error = [CChar](repeating: 0, count: 256)
        var buffer: UnsafeMutablePointer<UInt8>?
        var w: Int32 = 0, h: Int32 = 0
        let status = png.withUnsafeBytes { raw in
            wpng_decode_rgb8(raw.bindMemory(to: UInt8.self).baseAddress, png.count, &buffer, &w, &h, &error, error.count)
        }
        guard status == 0, let buffer else {
            throw PNGError(description: String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        defer { wpng_free(buffer) }
        return (Int(w), Int(h), Array(UnsafeBufferPointer(start: buffer, count: Int(w) * Int(h) * 3)))
    }
}
