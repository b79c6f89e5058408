import CPNG
import Foundation

/// A PNG encoding failure (from libpng, or the sink stopping).
public struct PNGError: Error, CustomStringConvertible, Equatable {
    public let description: String
}

/// 8-bit RGB PNG encoding through libpng, handing bytes to a sink as rows are compressed, so a
/// response can stream the image while it is being encoded.
public struct PNGEncoder: Sendable {
    /// zlib level 0 (store) ... 9 (smallest); 6 is libpng's default.
    public var compressionLevel: Int

    /// An encoder with the given zlib level (clamped to 0...9).
    public init(compressionLevel: Int = 6) {
        self.compressionLevel = min(max(compressionLevel, 0), 9)
    }

    /// Encodes `rgb` (`height` rows of `width * 3` bytes), calling `sink` with each piece of the file
    /// in order. `sink` returns false to stop (the encode then throws).
    public func encode(rgb: [UInt8], width: Int, height: Int, sink: (UnsafeRawBufferPointer) -> Bool) throws {
        precondition(rgb.count == width * height * 3, "rgb holds \(rgb.count) bytes, \(width)x\(height) RGB needs \(width * height * 3)")
        guard width > 0, height > 0, width <= 1 << 24, height <= 1 << 24 else {
            throw PNGError(description: "cannot encode a \(width)x\(height) image")
        }
        try withoutActuallyEscaping(sink) { sink in
            var box = sink
            var error = [CChar](repeating: 0, count: 256)
            let status = withUnsafeMutablePointer(to: &box) { context in
                rgb.withUnsafeBufferPointer { pixels in
                    wpng_encode_rgb8(
                        pixels.baseAddress, Int32(width), Int32(height), width * 3, Int32(compressionLevel),
                        { ctx, bytes, count in
                            let sink = ctx!.assumingMemoryBound(to: ((UnsafeRawBufferPointer) -> Bool).self).pointee
                            return sink(UnsafeRawBufferPointer(start: bytes, count: count)) ? 0 : 1
                        }, context, &error, error.count)
                }
            }
            if status != 0 {
                throw PNGError(description: String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
        }
    }

    /// The whole PNG file of `rgb` (`height` rows of `width * 3` bytes; `Tensor.pixelBytes()` makes them
    /// from pixels in [0, 1]).
    public func encode(rgb: [UInt8], width: Int, height: Int) throws -> Data {
        var data = Data()
        try encode(rgb: rgb, width: width, height: height) { chunk in
            data.append(contentsOf: chunk)
            return true
        }
        return data
    }
}
