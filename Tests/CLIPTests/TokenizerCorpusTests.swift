import CLIP
import Foundation
import Testing

/// Ids against transformers' `CLIPTokenizer` over the prompt corpus of `scripts/fixtures/tokenizer.py`:
/// every id, every mask value and the truncation flag must match (tolerance: zero mismatches).
@Suite("CLIP tokenizer corpus")
struct TokenizerCorpusTests {
    /// Compares `tokenizer` with the corpus entries; prints the prompt and both id lists on a mismatch.
    func check(_ tokenizer: CLIPTokenizer, _ entries: [TokenizerFixtures.Entry], _ what: String) {
        var mismatches = 0
        for entry in entries {
            let encoded = tokenizer.encode(entry.prompt)
            if encoded.ids != entry.ids || encoded.attentionMask != entry.mask || encoded.truncated != entry.truncated {
                mismatches += 1
                print("""
                    \(what): mismatch for "\(TokenizerFixtures.visible(entry.prompt).prefix(300))"
                      expected \(entry.ids.prefix(Int(entry.mask.reduce(0, +)))) truncated \(entry.truncated)
                      actual   \(encoded.ids.prefix(encoded.length)) truncated \(encoded.truncated)
                    """)
            }
        }
        print("\(what): \(entries.count) prompts, \(mismatches) mismatched")
        #expect(mismatches == 0, "\(what): \(mismatches) of \(entries.count) prompts give other ids than transformers")
    }

    @Test("embedded vocab.json + merges.txt: ids, mask and truncation equal transformers'")
    func embedded() throws {
        let entries = try TokenizerFixtures.corpus()
        #expect(entries.count >= 200)
        let tokenizer = try CLIPTokenizer.embedded
        #expect(tokenizer.vocabularySize == 49408)
        #expect(tokenizer.bosTokenID == 49406 && tokenizer.eosTokenID == 49407 && tokenizer.padTokenID == 49407)
        #expect(tokenizer.maxLength == 77)
        check(tokenizer, entries, "embedded")
    }

    @Test("tokenizer.json (merges as strings, then as pairs): same ids")
    func tokenizerJSON() throws {
        let entries = try TokenizerFixtures.corpus()
        for pairs in [false, true] {
            let dir = try TokenizerFixtures.tokenizerJSONDirectory(pairMerges: pairs)
            defer { try? FileManager.default.removeItem(at: dir) }
            let tokenizer = try CLIPTokenizer(directory: dir)
            #expect(tokenizer.vocabularySize == 49408)
            check(tokenizer, entries, pairs ? "tokenizer.json, pair merges" : "tokenizer.json, string merges")
        }
    }

    @Test("published-style tokenizer_config.json (bos normalized: true, pad a plain string)")
    func publishedConfig() throws {
        let dir = try TokenizerFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        for name in ["vocab.json", "merges.txt"] {
            try fm.copyItem(at: TokenizerFixtures.embeddedFile(name), to: dir.appendingPathComponent(name))
        }
        try fm.copyItem(
            at: Fixture.url("tokenizer-published-config.json"), to: dir.appendingPathComponent("tokenizer_config.json"))
        let tokenizer = try CLIPTokenizer(directory: dir)
        check(tokenizer, try TokenizerFixtures.corpus("published_config_corpus"), "published config")
    }
}
