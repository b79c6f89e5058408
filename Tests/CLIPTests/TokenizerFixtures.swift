import CLIP
import Foundation
// Every file of the target sees the shared helpers (fixtures).
@_exported import TestSupport

/// The target's `Fixtures` folder (tokenizer files and small CLIP text models).
let Fixture = Fixtures(bundle: .module)

/// The tokenizer fixtures written by `scripts/fixtures/tokenizer.py` (transformers 5.24, tokenizers 0.23).
enum TokenizerFixtures {
    /// One prompt and what transformers' `CLIPTokenizer(padding="max_length", max_length=77, truncation=True)`
    /// returns for it.
    struct Entry {
        var prompt: String
        var ids: [Int32]
        var mask: [Int32]
        var truncated: Bool
    }

    /// The corpus (`corpus`: plain vocabulary files) or the prompts run with a published-style
    /// `tokenizer_config.json` (`published_config_corpus`).
    static func corpus(_ key: String = "corpus") throws -> [Entry] {
        let data = try Data(contentsOf: Fixture.url("tokenizer-corpus.json"))
        let root = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return (root[key] as! [[String: Any]]).map { e in
            Entry(
                prompt: e["prompt"] as! String,
                ids: (e["ids"] as! [NSNumber]).map { $0.int32Value },
                mask: (e["mask"] as! [NSNumber]).map { $0.int32Value },
                truncated: e["truncated"] as! Bool)
        }
    }

    /// The embedded vocabulary files (Sources/CLIP/Resources), through the public loader's directory.
    static func embeddedFile(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/CLIP/Resources/\(name)")
    }

    /// A fresh temporary directory.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("clip-tokenizer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A directory with the `tokenizer.json` transformers saves for the embedded vocabulary: the committed
    /// skeleton (pipeline, added tokens, post-processor) refilled with `vocab.json` and `merges.txt`
    /// (merges as "a b" strings, or as ["a", "b"] pairs when `pairMerges`).
    static func tokenizerJSONDirectory(pairMerges: Bool) throws -> URL {
        var root = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixture.url("tokenizer-skeleton.json"))) as! [String: Any]
        var model = root["model"] as! [String: Any]
        model["vocab"] = try JSONSerialization.jsonObject(with: Data(contentsOf: embeddedFile("vocab.json")))
        let lines = try String(contentsOf: embeddedFile("merges.txt"), encoding: .utf8)
            .split(separator: "\n").filter { !$0.hasPrefix("#version") }
        model["merges"] = pairMerges ? lines.map { $0.split(separator: " ").map(String.init) } : lines.map(String.init)
        root["model"] = model
        let dir = try temporaryDirectory()
        try JSONSerialization.data(withJSONObject: root).write(to: dir.appendingPathComponent("tokenizer.json"))
        try Data(#"{"model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}"#.utf8)
            .write(to: dir.appendingPathComponent("tokenizer_config.json"))
        return dir
    }

    /// Escapes a prompt for a failure message (control and invisible characters as \u{...}).
    static func visible(_ s: String) -> String {
        s.unicodeScalars.map { u in
            (u.value < 0x20 || (0x7F...0xA0).contains(u.value) || u.properties.generalCategory == .format
             || u.properties.generalCategory == .nonspacingMark)
                ? "\\u{\(String(u.value, radix: 16))}" : String(u)
        }.joined()
    }
}
