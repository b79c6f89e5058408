import Foundation

/// An encoder that hands the file to a sink piece by piece (`PNGEncoder`, `JPEGEncoder`, `WebPEncoder` and
/// `ImageEncoder`, which picks one); the whole-file `encode` is written once, here.
public protocol StreamingImageEncoder {
    /// Encodes `rgb` (`height` rows of `width * 3` bytes) with `metadata`, calling `sink` with each piece
    /// of the file in order; `sink` returns false to stop (the encode then throws).
    func encode(rgb: [UInt8], width: Int, height: Int, metadata: ImageMetadata?,
                sink: (UnsafeRawBufferPointer) -> Bool) throws
}

extension StreamingImageEncoder {
    /// The whole file.
    public func encode(rgb: [UInt8], width: Int, height: Int, metadata: ImageMetadata? = nil) throws -> Data {
        var data = Data()
        try encode(rgb: rgb, width: width, height: height, metadata: metadata) { chunk in
            data.append(contentsOf: chunk)
            return true
        }
        return data
    }
}
