import Foundation
import Testing
@testable import Imaging

@Suite struct PNGEncoderTests {
    /// The encoded file has the PNG structure and decodes (through libpng's reader) to the input pixels.
    @Test func encodesAValidRGBFile() throws {
        let w = 7, h = 5
        let rgb = (0..<(w * h * 3)).map { UInt8($0 % 256) }
        let png = try PNGEncoder(compressionLevel: 0).encode(rgb: rgb, width: w, height: h)
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(String(decoding: png[12..<16], as: UTF8.self) == "IHDR")
        let be = { (o: Int) in png[o..<(o + 4)].reduce(0) { $0 << 8 | Int($1) } }
        #expect(be(16) == w && be(20) == h)
        #expect(png[24] == 8 && png[25] == 2)  // bit depth 8, colour type RGB
        #expect(String(decoding: png.suffix(8).prefix(4), as: UTF8.self) == "IEND")
        for level in [0, 6, 9] {
            let decoded = try PNGDecoder.decode(try PNGEncoder(compressionLevel: level).encode(rgb: rgb, width: w, height: h))
            #expect(decoded.width == w && decoded.height == h)
            #expect(decoded.rgb == rgb, "level \(level) does not round-trip")
        }
        #expect(throws: PNGError.self) { try PNGDecoder.decode(png.prefix(40)) }
    }

    @Test func streamsInPiecesAndStopsWhenTheSinkDoes() throws {
        let rgb = (0..<(64 * 64 * 3)).map { UInt8(($0 * 7919) % 256) }
        var pieces = 0
        try PNGEncoder(compressionLevel: 1).encode(rgb: rgb, width: 64, height: 64) { _ in
            pieces += 1
            return true
        }
        #expect(pieces > 1)
        #expect(throws: PNGError.self) {
            try PNGEncoder().encode(rgb: rgb, width: 64, height: 64) { _ in false }
        }
    }

    /// An empty image is an error (an HTTP answer must never carry an empty PNG).
    @Test func refusesAnEmptyImage() {
        #expect(throws: PNGError.self) { try PNGEncoder().encode(rgb: [], width: 0, height: 0) }
    }
}
