import Foundation
import Testing
@testable import Imaging

/// JPEG and WebP written through libjpeg-turbo and libwebp, decoded through the same libraries and
/// compared with the pixels PNG keeps exactly; the metadata read back from every format.
@Suite struct ImageFormatTests {
    /// A smooth picture with a hard edge (what the demo model draws), 96x64.
    static let width = 96, height = 64
    static let pixels: [UInt8] = (0..<(height * width)).flatMap { i -> [UInt8] in
        let x = i % width, y = i / width
        let inside = (x - 48) * (x - 48) + (y - 32) * (y - 32) < 400
        return inside ? [220, 40, 30] : [UInt8(40 + x), UInt8(60 + y), 180]
    }
    static let metadata = ImageMetadata(
        json: #"{"prompt":"a red circle <on> a \"blue\" background & more","seed":7}"#,
        text: "a red circle — on a blue background 🎈\nNegative prompt: \nSteps: 2, Seed: 7", software: "wuerstchen test")

    /// Mean and largest absolute difference of two RGB8 buffers.
    static func difference(_ a: [UInt8], _ b: [UInt8]) -> (mean: Double, max: Int) {
        precondition(a.count == b.count)
        var sum = 0, worst = 0
        for i in 0..<a.count {
            let d = abs(Int(a[i]) - Int(b[i]))
            sum += d
            worst = max(worst, d)
        }
        return (Double(sum) / Double(a.count), worst)
    }

    @Test(arguments: [
        // (format, output_compression, mean bound, max bound): lossless ones exact. The lossy maxima sit on
        // the circle's edge, where 4:2:0 chroma (JPEG below 90, lossy WebP always) halves the red-blue step;
        // measured: JPEG 100 mean 0.6, JPEG 50 mean 5.6 / max 91, WebP 90 mean 2.8 / max 81.
        (ImageFormat.png, 0, 0.0, 0), (.png, 100, 0, 0), (.webp, 100, 0, 0),
        (.jpeg, 100, 1.5, 16), (.jpeg, 50, 7, 128), (.webp, 90, 3.5, 128), (.webp, 10, 10, 160),
    ])
    func decodesToThePixelsWritten(_ format: ImageFormat, _ compression: Int, _ meanBound: Double, _ maxBound: Int) throws {
        let file = try ImageEncoder(format: format, compression: compression)
            .encode(rgb: Self.pixels, width: Self.width, height: Self.height, metadata: Self.metadata)
        #expect(ImageFormat(sniffing: file) == format)
        let decoded = try ImageDecoder.decode(file)
        #expect(decoded.format == format && decoded.width == Self.width && decoded.height == Self.height)
        let d = Self.difference(decoded.rgb, Self.pixels)
        #expect(d.mean <= meanBound && d.max <= maxBound, "\(format) at \(compression): mean error \(d.mean), max \(d.max)")
        #expect(decoded.json == Self.metadata.json, "\(format): json \(decoded.json ?? "nil")")
        #expect(decoded.text == Self.metadata.text, "\(format): text \(decoded.text ?? "nil")")
    }

    @Test func qualityChangesTheSize() throws {
        func size(_ f: ImageFormat, _ c: Int) throws -> Int {
            try ImageEncoder(format: f, compression: c).encode(rgb: Self.pixels, width: Self.width, height: Self.height).count
        }
        #expect(try size(.jpeg, 10) < size(.jpeg, 90))
        #expect(try size(.webp, 10) < size(.webp, 90))
        #expect(try size(.png, 100) <= size(.png, 0))
        #expect(ImageEncoder.pngLevel(compression: 0) == 0 && ImageEncoder.pngLevel(compression: 100) == 9
                && ImageEncoder.pngLevel(compression: 67) == 6)
    }

    /// JPEG streams in pieces as it compresses, and stops (throwing) when the sink does; so does WebP.
    @Test func streamsAndStops() throws {
        let big = [UInt8]((0..<(512 * 512 * 3)).map { UInt8(($0 * 7919) % 251) })
        var pieces = 0
        try JPEGEncoder(quality: 95).encode(rgb: big, width: 512, height: 512) { _ in
            pieces += 1
            return true
        }
        #expect(pieces > 1)
        #expect(throws: ImagingError.self) { try JPEGEncoder().encode(rgb: big, width: 512, height: 512) { _ in false } }
        #expect(throws: ImagingError.self) { try WebPEncoder(lossless: true).encode(rgb: big, width: 512, height: 512) { _ in false } }
    }

    /// PNG: JSON in iTXt, AUTOMATIC1111's text in tEXt when Latin-1 (else iTXt), Software in tEXt.
    @Test func pngChunks() throws {
        var m = Self.metadata
        m.text = "café, Steps: 2"
        let file = try ImageEncoder(format: .png).encode(rgb: Self.pixels, width: Self.width, height: Self.height, metadata: m)
        let chunks = Self.pngChunkTypes(file)
        #expect(chunks.firstIndex(of: "iTXt")! < chunks.firstIndex(of: "IDAT")!, "text before the image data: \(chunks)")
        #expect(chunks.filter { $0 == "tEXt" }.count == 2 && chunks.filter { $0 == "iTXt" }.count == 1, "\(chunks)")
        let texts = try ImageDecoder.pngTexts([UInt8](file))
        #expect(texts.map(\.key) == ["wuerstchen", "parameters", "Software"])
        #expect(texts[1].text == "café, Steps: 2" && texts[2].text == "wuerstchen test")
        // Not Latin-1: iTXt.
        let other = try ImageEncoder(format: .png).encode(rgb: Self.pixels, width: Self.width, height: Self.height, metadata: Self.metadata)
        #expect(Self.pngChunkTypes(other).filter { $0 == "iTXt" }.count == 2)
    }

    /// Exif: the TIFF structure's UserComment, read back (and the JPEG's first segment is Exif, not JFIF).
    @Test func exifAndXMP() throws {
        let tiff = Self.metadata.exifTIFF
        #expect(Array(tiff.prefix(4)) == [0x4D, 0x4D, 0, 42])
        #expect(ImageMetadata.exifUserComment(tiff) == Self.metadata.text)
        #expect(ImageMetadata.xmpElement("wuerstchen:parameters", in: Self.metadata.xmpPacket) == Self.metadata.json)
        #expect(ImageMetadata.xmpElement("xmp:CreatorTool", in: Self.metadata.xmpPacket) == "wuerstchen test")
        let jpeg = try ImageEncoder(format: .jpeg).encode(rgb: Self.pixels, width: Self.width, height: Self.height, metadata: Self.metadata)
        #expect(Array(jpeg.prefix(4)) == [0xFF, 0xD8, 0xFF, 0xE1])
        #expect(String(decoding: jpeg[6..<10], as: UTF8.self) == "Exif")
    }

    /// Prompts too long for a JPEG segment are refused with the size; PNG and WebP take them.
    @Test func jpegSegmentBound() throws {
        let long = ImageMetadata(json: String(repeating: "a", count: 70_000), text: "x", software: "s")
        #expect(throws: ImagingError.self) { try ImageEncoder(format: .jpeg).check(long) }
        do {
            try ImageEncoder(format: .jpeg).check(long)
        } catch {
            #expect(error.description.contains("65533") && error.description.contains("PNG or WebP"), "\(error)")
        }
        try ImageEncoder(format: .webp).check(long)
        let webp = try ImageEncoder(format: .webp, compression: 50).encode(rgb: Self.pixels, width: Self.width, height: Self.height, metadata: long)
        #expect(try ImageDecoder.decode(webp, pixels: false).json == long.json)
    }

    @Test func formatsByExtensionAndRejectsOtherFiles() throws {
        #expect(ImageFormat(fileExtension: "JPG") == .jpeg && ImageFormat(fileExtension: "jpeg") == .jpeg)
        #expect(ImageFormat(fileExtension: "webp") == .webp && ImageFormat(fileExtension: "png") == .png)
        #expect(ImageFormat(fileExtension: "gif") == nil)
        #expect(throws: ImagingError.self) { try ImageDecoder.decode(Data("GIF89a......".utf8)) }
        let jpeg = try ImageEncoder(format: .jpeg).encode(rgb: Self.pixels, width: Self.width, height: Self.height)
        #expect(throws: ImagingError.self) { try ImageDecoder.decode(jpeg.prefix(200)) }
        let plain = try ImageDecoder.decode(jpeg)
        #expect(plain.json == nil && plain.text == nil)
    }

    static func pngChunkTypes(_ file: Data) -> [String] {
        let bytes = [UInt8](file)
        var types: [String] = [], at = 8
        while at + 8 <= bytes.count {
            let length = bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) }
            types.append(String(decoding: bytes[(at + 4)..<(at + 8)], as: UTF8.self))
            at += 12 + length
        }
        return types
    }
}
