@testable import CLIP
import Foundation
import Testing

/// Pieces of the tokenizer on their own: the normalizer's lowercasing, the API's padding and truncation,
/// error messages for malformed files, and speed (a benchmark, `WUERSTCHEN_BENCH=1`).
@Suite("CLIP tokenizer")
struct TokenizerTests {
    func scalars(_ s: String) -> [UInt32] { s.unicodeScalars.map(\.value) }

    @Test("Lowercase is Rust's char::to_lowercase per character")
    func lowercase() {
        func lower(_ s: String) -> [UInt32] { CLIPNormalizer.normalize(Array(s.unicodeScalars)[...]).map(\.value) }
        // 'İ' (U+0130) -> 'i' + U+0307 COMBINING DOT ABOVE, not recomposed (NFC runs first).
        #expect(lower("İ") == [0x69, 0x307])
        // No final-sigma context: every Σ becomes σ (U+03C3), never ς.
        #expect(lower("ΟΔΥΣΣΕΥΣ") == scalars("οδυσσευσ"))
        // ẞ (U+1E9E) -> ß; Kelvin sign -> k; Ω ohm sign is first NFC-mapped to Ω then lowercased.
        #expect(lower("ẞ\u{212A}\u{2126}") == [0xDF, 0x6B, 0x3C9])
        // Whitespace runs (tab, NBSP, ideographic space) become one space, not stripped.
        #expect(lower(" a\t\u{A0}\u{3000}b ") == scalars(" a b "))
        // NFD input is composed before anything else.
        #expect(lower("E\u{301}") == [0xE9])
    }

    @Test("NFC is the tokenizers crate's: Unicode 9.0 data, full canonical reordering")
    func nfc() {
        func nfc(_ s: String) -> [UInt32] { CanonicalComposition.nfc(Array(s.unicodeScalars)[...]).map(\.value) }
        #expect(nfc("\u{F73}\u{F73}") == [0xF71, 0xF71, 0xF72, 0xF72])
        #expect(nfc("\u{CC6}\u{CC2}\u{CD5}") == [0xCCB])
        // U+08CA (Unicode 14, class 230) has class 0 in 9.0 data: not moved behind U+033A (class 220).
        #expect(nfc("a\u{8CA}\u{33A}") == [0x61, 0x8CA, 0x33A])
        #expect(nfc("\u{2014C}\u{300}") == [0x2014C, 0x300])
        #expect(nfc("\u{1100}\u{1161}\u{11A8}") == [0xAC01])
        #expect(nfc("q\u{307}\u{323}") == [0x71, 0x323, 0x307])
        #expect(nfc("\u{212B}") == [0xC5])
    }

    @Test("padding, attention mask and truncation keep BOS and EOS")
    func padding() throws {
        let tokenizer = try CLIPTokenizer.embedded
        let short = tokenizer.encode("a photo of a cat")
        #expect(short.ids.count == 77 && short.attentionMask.count == 77)
        #expect(Array(short.ids.prefix(7)) == [49406, 320, 1125, 539, 320, 2368, 49407])
        #expect(short.length == 7 && !short.truncated && short.untruncatedCount == 7)
        #expect(short.ids[7...].allSatisfy { $0 == 49407 })
        let long = tokenizer.encode(Array(repeating: "cat", count: 100).joined(separator: " "))
        #expect(long.truncated && long.untruncatedCount == 102 && long.length == 77)
        #expect(long.ids.first == 49406 && long.ids.last == 49407)
        let exact = tokenizer.encode(Array(repeating: "cat", count: 75).joined(separator: " "))
        #expect(!exact.truncated && exact.length == 77)
        let empty = tokenizer.encode("")
        #expect(Array(empty.ids.prefix(2)) == [49406, 49407] && empty.length == 2)
        let eight = tokenizer.encode("a photo of a cat", maxLength: 4)
        #expect(eight.ids == [49406, 320, 1125, 49407] && eight.truncated)
    }

    func expectError(_ body: () throws -> Void, contains parts: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try body()
            Issue.record("expected an error containing \(parts)", sourceLocation: sourceLocation)
        } catch {
            let message = "\(error)"
            print("error as reported: \(message)")
            for part in parts {
                #expect(message.contains(part), "\"\(message)\" should contain \"\(part)\"", sourceLocation: sourceLocation)
            }
        }
    }

    @Test("malformed files: errors name the file, the line and what is wrong")
    func malformed() throws {
        let dir = try TokenizerFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let vocab = dir.appendingPathComponent("vocab.json"), merges = dir.appendingPathComponent("merges.txt")
        try Data(#"{"a": 0, "b": 1, "ab": 2, "a</w>": 3, "b</w>": 4, "<|startoftext|>": 5, "<|endoftext|>": 6}"#.utf8).write(to: vocab)

        try Data("#version: 0.2\na b\na  b\n".utf8).write(to: merges)
        expectError({ _ = try CLIPTokenizer(directory: dir) }, contains: ["merges.txt:3:", "two tokens"])
        try Data("#version: 0.2\na b\nb c\n".utf8).write(to: merges)
        expectError({ _ = try CLIPTokenizer(directory: dir) }, contains: ["merges.txt:3:", "\"c\" is not in the vocabulary"])
        try Data("#version: 0.2\na b\n".utf8).write(to: merges)
        let tiny = try CLIPTokenizer(directory: dir)
        #expect(tiny.bosTokenID == 5 && tiny.padTokenID == 6)

        try Data(#"{"a": 0, "b": }"#.utf8).write(to: vocab)
        expectError({ _ = try CLIPTokenizer(directory: dir) }, contains: ["vocab.json", "invalid JSON"])
        try Data(#"{"a": "zero"}"#.utf8).write(to: vocab)
        expectError({ _ = try CLIPTokenizer(directory: dir) }, contains: ["vocab.json", "\"a\"", "non-negative integer"])
        try Data(#"{"a": 0, "b": 1, "ab": 2, "<|endoftext|>": 3}"#.utf8).write(to: vocab)
        expectError({ _ = try CLIPTokenizer(directory: dir) }, contains: ["vocab.json", "bos_token \"<|startoftext|>\"", "neither in the vocabulary"])

        try Data(#"{"pad_token": "!", "model_max_length": 77"#.utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        expectError({ _ = try CLIPTokenizer(directory: dir) }, contains: ["tokenizer_config.json", "invalid JSON"])
        try FileManager.default.removeItem(at: dir.appendingPathComponent("tokenizer_config.json"))

        let json = dir.appendingPathComponent("tokenizer.json")
        let skeleton = try String(contentsOf: Fixture.url("tokenizer-skeleton.json"), encoding: .utf8)
        try Data(skeleton.replacingOccurrences(of: #""type": "Lowercase""#, with: #""type": "Strip""#).utf8).write(to: json)
        expectError({ _ = try CLIPTokenizer(directory: dir) }, contains: ["tokenizer.json", "normalizer"])
        try Data(skeleton.replacingOccurrences(of: #""type": "BPE""#, with: #""type": "WordPiece""#).utf8).write(to: json)
        expectError({ _ = try CLIPTokenizer(directory: dir) }, contains: ["tokenizer.json", "model.type", "WordPiece"])
        try Data(skeleton.replacingOccurrences(of: #""merges": []"#, with: #""merges": [["a"]]"#).utf8).write(to: json)
        expectError({ _ = try CLIPTokenizer(directory: dir) }, contains: ["tokenizer.json", "model.merges[0]"])

        expectError({ _ = try CLIPTokenizer(directory: dir.appendingPathComponent("missing")) }, contains: ["no tokenizer.json"])
    }

    /// A benchmark, not a unit test (no wall-clock bound on a shared machine): prints the best of 20
    /// batches of 100 encodes of a 77-token prompt (in release, well under a millisecond each).
    @Test("speed: a 77-token prompt's encode time (release)", .benchmark)
    func speed() throws {
        let loadStart = ContinuousClock.now
        let tokenizer = try CLIPTokenizer.embedded
        print("load: embedded vocabulary in \(ContinuousClock.now - loadStart)")
        let prompt = "a highly detailed photograph of a majestic lion standing on a rock at sunset, golden hour lighting, "
            + "dramatic clouds, national geographic, award winning, 8k resolution, sharp focus, intricate fur detail, "
            + "bokeh background, cinematic composition, volumetric light, trending on artstation, by greg rutkowski, "
            + "octane render, unreal engine, ultra realistic, 4k, sharp, vivid"
        let first = tokenizer.encode(prompt)
        #expect(first.untruncatedCount == 77)
        // Best of 20 batches: the machine is shared, the best batch is the one least disturbed.
        var checksum = 0
        var perPrompt = Double.infinity
        for _ in 0..<20 {
            let start = ContinuousClock.now
            for _ in 0..<100 { checksum &+= Int(tokenizer.encode(prompt).ids[5]) }
            let elapsed = ContinuousClock.now - start
            let micros = (Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12) / 100
            perPrompt = min(perPrompt, micros)
        }
        print("encode: \(first.untruncatedCount) tokens, \(String(format: "%.1f", perPrompt)) µs per prompt (checksum \(checksum))")
    }
}
