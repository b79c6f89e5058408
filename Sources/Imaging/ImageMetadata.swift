import Foundation

/// What an image file says about how it was made, and where each format keeps it:
///
/// | format | `json` | `text` (AUTOMATIC1111's) | `software` |
/// | --- | --- | --- | --- |
/// | PNG | iTXt `wuerstchen` | tEXt `parameters` (iTXt when not Latin-1, as Pillow writes it) | tEXt `Software` |
/// | JPEG | XMP (APP1) `wuerstchen:parameters` | Exif (APP1) `UserComment`, UCS-2 (`UNICODE`) | Exif `Software`, XMP `xmp:CreatorTool` |
/// | WebP | XMP chunk, as in JPEG | EXIF chunk, as in JPEG | as in JPEG |
///
/// AUTOMATIC1111's web UI (and the tools that read its files) reads PNG `parameters` and the Exif
/// `UserComment` of JPEG and WebP; our own reader (`wuerstchen inspect`) reads `json`.
public struct ImageMetadata: Sendable, Equatable {
    /// The PNG keyword of `json`.
    public static let pngJSONKey = "wuerstchen"
    /// The PNG keyword of `text` (AUTOMATIC1111's).
    public static let pngTextKey = "parameters"
    /// The XMP namespace of `json` (`wuerstchen:parameters`).
    public static let xmpNamespace = "urn:wuerstchen:xmp:1.0/"

    // Deliberate parallel of HTTP1/HTTPError.swift:HTTPError's fields and init: the same shape (three stored
    // values and their memberwise init), an unrelated meaning.
    /// The generation parameters as one JSON object's text.
    public var json: String
    /// The same in AUTOMATIC1111's `parameters` layout (prompt, `Negative prompt: ...`, `Steps: ...`).
    public var text: String
    /// The program that wrote the file (`wuerstchen 0.2.0`).
    public var software: String

    /// Metadata from its three texts.
    public init(json: String, text: String, software: String) {
        self.json = json
        self.text = text
        self.software = software
    }

    /// The largest payload of one JPEG marker segment: 65535 minus the two length bytes.
    public static let maxJPEGSegment = 65533
    /// The identifier that opens an XMP APP1 segment (XMP specification part 3, 1.1.3).
    static let xmpIdentifier = Array("http://ns.adobe.com/xap/1.0/\0".utf8)
    /// The identifier that opens an Exif APP1 segment.
    static let exifIdentifier: [UInt8] = Array("Exif".utf8) + [0, 0]

    // MARK: - XMP

    /// An XMP packet holding `json` (`wuerstchen:parameters`) and `software` (`xmp:CreatorTool`).
    public var xmpPacket: [UInt8] {
        let packet = """
            <?xpacket begin="\u{FEFF}" id="W5M0MpCehiHzreSzNTczkc9d"?>
            <x:xmpmeta xmlns:x="adobe:ns:meta/">
            <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
            <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:wuerstchen="\(Self.xmpNamespace)">
            <xmp:CreatorTool>\(Self.xmlEscaped(software))</xmp:CreatorTool>
            <wuerstchen:parameters>\(Self.xmlEscaped(json))</wuerstchen:parameters>
            </rdf:Description>
            </rdf:RDF>
            </x:xmpmeta>
            <?xpacket end="r"?>
            """
        return Array(packet.utf8)
    }

    /// `&`, `<` and `>` as entities. The JSON writer escapes every control character, so `json` holds none
    /// of the characters XML 1.0 cannot carry; other text loses them.
    static func xmlEscaped(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default:
                if scalar.value >= 0x20, scalar.value != 0xFFFE, scalar.value != 0xFFFF { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }

    /// The text of element `name` in an XMP packet we wrote (`<name>text</name>`, entities decoded); nil
    /// when it has none.
    static func xmpElement(_ name: String, in packet: [UInt8]) -> String? {
        let xml = String(decoding: packet, as: UTF8.self)
        guard let open = xml.range(of: "<\(name)>"), let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex) else {
            return nil
        }
        return xmlUnescaped(String(xml[open.upperBound..<close.lowerBound]))
    }

    /// XML's five named entities and numeric character references decoded.
    static func xmlUnescaped(_ s: String) -> String {
        guard s.contains("&") else { return s }
        var out = ""
        var rest = Substring(s)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";") else { break }
            let entity = rest[rest.index(after: amp)..<semi]
            switch entity {
            case "amp": out += "&"
            case "lt": out += "<"
            case "gt": out += ">"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                var value: UInt32?
                if entity.hasPrefix("#x") { value = UInt32(entity.dropFirst(2), radix: 16) } else if entity.hasPrefix("#") { value = UInt32(entity.dropFirst()) }
                if let value, let scalar = Unicode.Scalar(value) { out.unicodeScalars.append(scalar) } else { out += rest[amp...semi] }
            }
            rest = rest[rest.index(after: semi)...]
        }
        return out + rest
    }

    // MARK: - Exif

    /// A big-endian TIFF structure (what an Exif APP1 segment holds after `Exif\0\0`, and a WebP EXIF
    /// chunk holds as is): IFD0 with `Software` (0x0131, ASCII) and the Exif IFD pointer (0x8769), whose
    /// IFD has `UserComment` (0x9286): `UNICODE\0` then `text` in UTF-16 big-endian, as AUTOMATIC1111
    /// writes it through piexif (Exif 2.32, 4.6.5, table 9).
    public var exifTIFF: [UInt8] {
        var software = Array(software.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? UInt8($0.value) : UInt8(ascii: "?") }) + [0]
        if software.count <= 4 { software += [UInt8](repeating: 0, count: 5 - software.count) }
        let comment = Array("UNICODE".utf8) + [0] + text.utf16.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
        var out: [UInt8] = [0x4D, 0x4D, 0x00, 0x2A]
        func u16(_ v: Int) { out += [UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
        func u32(_ v: Int) { out += [UInt8((v >> 24) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
        let ifd0 = 8, ifd0Size = 2 + 2 * 12 + 4
        let softwareAt = ifd0 + ifd0Size
        let exifIFD = (softwareAt + software.count + 1) & ~1
        let exifIFDSize = 2 + 12 + 4
        let commentAt = exifIFD + exifIFDSize
        u32(ifd0)
        u16(2)
        u16(0x0131); u16(2); u32(software.count); u32(softwareAt)  // Software, ASCII
        u16(0x8769); u16(4); u32(1); u32(exifIFD)  // Exif IFD pointer, LONG
        u32(0)
        out += software
        if out.count < exifIFD { out.append(0) }
        u16(1)
        u16(0x9286); u16(7); u32(comment.count); u32(commentAt)  // UserComment, UNDEFINED
        u32(0)
        out += comment
        return out
    }

    /// The `UserComment` of a TIFF structure (either byte order), decoded from its character code
    /// (`UNICODE` as UTF-16 in the structure's byte order, `ASCII`, or undefined read as UTF-8); nil when
    /// the structure is damaged or has none.
    static func exifUserComment(_ tiff: [UInt8]) -> String? {
        guard tiff.count >= 8 else { return nil }
        let big: Bool
        switch (tiff[0], tiff[1]) {
        case (0x4D, 0x4D): big = true
        case (0x49, 0x49): big = false
        default: return nil
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= tiff.count else { return nil }
            return big ? Int(tiff[at]) << 8 | Int(tiff[at + 1]) : Int(tiff[at + 1]) << 8 | Int(tiff[at])
        }
        func u32(_ at: Int) -> Int? {
            guard let hi = u16(big ? at : at + 2), let lo = u16(big ? at + 2 : at) else { return nil }
            return hi << 16 | lo
        }
        /// (type, count, value-or-offset field position) of `tag` in the IFD at `ifd`.
        func entry(_ tag: Int, in ifd: Int) -> (count: Int, field: Int)? {
            guard let n = u16(ifd), n < 1000 else { return nil }
            for i in 0..<n {
                let at = ifd + 2 + 12 * i
                if u16(at) == tag, let count = u32(at + 4) { return (count, at + 8) }
            }
            return nil
        }
        guard let ifd0 = u32(4), let pointer = entry(0x8769, in: ifd0), let exifIFD = u32(pointer.field),
              let comment = entry(0x9286, in: exifIFD) else { return nil }
        let start = comment.count <= 4 ? comment.field : (u32(comment.field) ?? -1)
        guard comment.count >= 8, start >= 0, start + comment.count <= tiff.count else { return nil }
        let code = tiff[start..<(start + 8)], body = Array(tiff[(start + 8)..<(start + comment.count)])
        if code.elementsEqual(Array("UNICODE".utf8) + [0]) {
            var units: [UInt16] = []
            for i in stride(from: 0, to: body.count - 1, by: 2) {
                let (hi, lo) = big ? (body[i], body[i + 1]) : (body[i + 1], body[i])
                units.append(UInt16(hi) << 8 | UInt16(lo))
            }
            return String(decoding: units, as: UTF16.self)
        }
        return String(decoding: body.prefix { $0 != 0 }, as: UTF8.self)
    }
}
