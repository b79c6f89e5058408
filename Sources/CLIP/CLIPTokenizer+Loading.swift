import Foundation
import JSON

/// Loading from the files Hugging Face repositories ship: `tokenizer.json` (the fast format), or
/// `vocab.json` + `merges.txt`; with `tokenizer_config.json` / `special_tokens_map.json` for the special
/// tokens and `model_max_length`. Follows transformers 5 (`tokenization_utils_base.py` `from_pretrained`,
/// `tokenization_utils_tokenizers.py` `convert_to_native_format`): from `tokenizer.json` only the
/// vocabulary, merges and added tokens are taken - `CLIPTokenizer` rebuilds the normalizer, pre-tokenizer,
/// BPE options and post-processor itself - so the file's own pipeline is checked to be CLIP's, and
/// anything else is rejected rather than silently replaced.
extension CLIPTokenizer {
    /// The vocabulary committed in this package (`Sources/CLIP/Resources`: CLIP's `vocab.json` and
    /// `merges.txt`, rebuilt from openai's `bpe_simple_vocab_16e6.txt.gz` by `scripts/fixtures/tokenizer.py`),
    /// with CLIP's defaults: BOS `<|startoftext|>`, EOS = PAD = `<|endoftext|>`, 77 positions. Loads the
    /// files on each access: keep the result.
    public static var embedded: CLIPTokenizer {
        get throws {
            guard let directory = Bundle.module.url(forResource: "Resources", withExtension: nil) else {
                throw CLIPTokenizerError(file: "CLIP.bundle/Resources", reason: "the embedded vocabulary is missing from the module bundle")
            }
            return try CLIPTokenizer(directory: directory)
        }
    }

    /// Loads the tokenizer in `directory`: `tokenizer.json` when present, else `vocab.json` and `merges.txt`;
    /// `tokenizer_config.json` and `special_tokens_map.json` when present.
    public init(directory: URL) throws {
        let fm = FileManager.default
        func file(_ name: String) -> URL? {
            let url = directory.appendingPathComponent(name)
            return fm.fileExists(atPath: url.path) ? url : nil
        }
        let config = try TokenizerConfiguration(
            tokenizerConfig: file("tokenizer_config.json"), specialTokensMap: file("special_tokens_map.json"))
        if let json = file("tokenizer.json") {
            try self.init(tokenizerJSON: json, configuration: config)
        } else if let vocab = file("vocab.json"), let merges = file("merges.txt") {
            try self.init(vocabulary: vocab, merges: merges, configuration: config)
        } else {
            throw CLIPTokenizerError(
                file: directory.path, reason: "no tokenizer.json, nor vocab.json and merges.txt: not a tokenizer directory")
        }
    }

    /// Loads `vocab.json` (token -> id) and `merges.txt` (one "left right" pair per line, after an optional
    /// `#version` line), with CLIP's default special tokens and 77 positions.
    public init(vocabulary: URL, merges: URL) throws {
        try self.init(vocabulary: vocabulary, merges: merges, configuration: TokenizerConfiguration())
    }

    init(vocabulary vocabURL: URL, merges mergesURL: URL, configuration: TokenizerConfiguration) throws {
        guard case .object(let entries) = try readJSON(vocabURL) else {
            throw CLIPTokenizerError(file: vocabURL.path, reason: "expected a JSON object of token -> id")
        }
        let vocab = try Self.vocabulary(entries, file: vocabURL.path, field: "")
        let merges = try Self.readMerges(mergesURL)
        try self.init(
            vocab: vocab, vocabFile: vocabURL.path, merges: merges, mergesFile: mergesURL.path, fileAddedTokens: [],
            configuration: configuration)
    }

    init(tokenizerJSON url: URL, configuration: TokenizerConfiguration) throws {
        let path = url.path
        let root = try readJSON(url)
        guard case .object = root else {
            throw CLIPTokenizerError(file: path, reason: "expected a JSON object")
        }
        func fail(_ reason: String) -> CLIPTokenizerError { CLIPTokenizerError(file: path, reason: reason) }
        guard let model = root["model"], case .object = model else { throw fail("missing \"model\" object") }
        let type = model["type"]?.stringValue
        guard type == nil || type == "BPE" else {
            throw fail("model.type is \"\(type!)\": CLIP's tokenizer is a BPE model")
        }
        if let dropout = model["dropout"], !dropout.isNull {
            throw fail("model.dropout is \(dropout): BPE dropout is not supported (CLIP uses none)")
        }
        if let suffix = model["end_of_word_suffix"], !suffix.isNull, suffix.stringValue != BytePairEncoding.endOfWordSuffix {
            throw fail("model.end_of_word_suffix is \(suffix): CLIP's BPE uses \"</w>\"")
        }
        if let prefix = model["continuing_subword_prefix"], !prefix.isNull, prefix.stringValue != "" {
            throw fail("model.continuing_subword_prefix is \(prefix): CLIP's BPE uses none")
        }
        if model["byte_fallback"]?.boolValue == true { throw fail("model.byte_fallback is true: CLIP's BPE has none") }
        try Self.checkNormalizer(root["normalizer"], file: path)
        try Self.checkPreTokenizer(root["pre_tokenizer"], file: path)

        guard case .object(let entries)? = model["vocab"] else { throw fail("model.vocab: expected an object of token -> id") }
        let vocab = try Self.vocabulary(entries, file: path, field: "model.vocab")
        guard case .array(let mergeList)? = model["merges"] else { throw fail("model.merges: expected an array") }
        var merges: [(String, String, line: Int?)] = []
        merges.reserveCapacity(mergeList.count)
        for (i, item) in mergeList.enumerated() {
            switch item {
            case .string(let s):
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw fail("model.merges[\(i)] \"\(s)\": expected \"left right\"") }
                merges.append((String(parts[0]), String(parts[1]), nil))
            case .array(let pair) where pair.count == 2 && pair.allSatisfy({ $0.stringValue != nil }):
                merges.append((pair[0].stringValue!, pair[1].stringValue!, nil))
            default:
                throw fail("model.merges[\(i)]: expected \"left right\" or [\"left\", \"right\"]")
            }
        }
        var added: [AddedTokenSpec] = []
        if let list = root["added_tokens"] {
            guard case .array(let tokens) = list, tokens.allSatisfy({ $0.objectValue != nil }) else {
                throw fail("added_tokens: expected an array of objects")
            }
            for (i, token) in tokens.enumerated() {
                added.append(try AddedTokenSpec(token, file: path, field: "added_tokens[\(i)]"))
            }
        }
        try self.init(
            vocab: vocab, vocabFile: path, merges: merges, mergesFile: path, fileAddedTokens: added, configuration: configuration)
    }

    /// Assembles the tokenizer. Added tokens: those of `tokenizer.json` keep their flags; then the
    /// configuration's `added_tokens_decoder` entries and special tokens (bos, eos, unk, pad, in
    /// transformers' attribute order, a later one with the same content replacing an earlier one).
    init(
        vocab: [String: Int32], vocabFile: String, merges: [(String, String, line: Int?)], mergesFile: String,
        fileAddedTokens: [AddedTokenSpec], configuration config: TokenizerConfiguration
    ) throws {
        var added: [String: AddedTokenSpec] = [:]
        for token in fileAddedTokens { added[token.content] = token }
        for token in config.addedTokensDecoder where added[token.content] == nil { added[token.content] = token }
        var fromConfig: [String: AddedTokenSpec] = [:]
        for token in [config.bos, config.eos, config.unk, config.pad] { fromConfig[token.content] = token }
        for (content, token) in fromConfig where added[content] == nil { added[content] = token }

        func id(of token: AddedTokenSpec, _ role: String) throws -> Int32 {
            if let id = added[token.content]?.id ?? vocab[token.content] { return id }
            throw CLIPTokenizerError(
                file: vocabFile,
                reason: "\(role) \"\(token.content)\" is neither in the vocabulary nor an added token with an id")
        }
        let unknownID = try id(of: config.unk, "unk_token")
        self.bosTokenID = try id(of: config.bos, "bos_token")
        self.eosTokenID = try id(of: config.eos, "eos_token")
        self.padTokenID = try id(of: config.pad, "pad_token")
        var raw: [(scalars: [Unicode.Scalar], id: Int32)] = []
        var normalized: [(scalars: [Unicode.Scalar], id: Int32)] = []
        for token in added.values.sorted(by: { $0.content < $1.content }) {
            let tokenID = try id(of: token, "added token")
            if token.normalized {
                // `AddedVocabulary::refresh_added_tokens` matches the normalized form of the content.
                normalized.append((CLIPNormalizer.normalize(Array(token.content.unicodeScalars)[...]), tokenID))
            } else {
                raw.append((Array(token.content.unicodeScalars), tokenID))
            }
        }
        self.model = try BytePairEncoding(vocabulary: vocab, merges: merges, unknownID: unknownID, file: mergesFile)
        self.maxLength = config.modelMaxLength
        self.vocabularySize = Set(vocab.values).union(added.values.compactMap(\.id)).count
        self.rawAddedTokens = AddedTokenMatcher(raw)
        self.normalizedAddedTokens = AddedTokenMatcher(normalized)
    }

    /// Reads `merges.txt` as the Rust `BPE::read_file` does: lines starting with `#version` are skipped,
    /// every other line must be exactly two tokens separated by one space.
    static func readMerges(_ url: URL) throws -> [(String, String, line: Int?)] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw CLIPTokenizerError(file: url.path, reason: "cannot read: \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIPTokenizerError(file: url.path, reason: "not valid UTF-8")
        }
        var merges: [(String, String, line: Int?)] = []
        merges.reserveCapacity(50_000)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        for (index, rawLine) in lines.enumerated() {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.hasPrefix("#version") { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw CLIPTokenizerError(
                    file: url.path, line: index + 1,
                    reason: "expected a merge \"left right\" (two tokens and one space), found \"\(line.prefix(80))\"")
            }
            merges.append((String(parts[0]), String(parts[1]), index + 1))
        }
        return merges
    }

    /// Token -> id; an id is a non-negative integer (`5`, or an integral number such as `5.0`, as Python reads it).
    static func vocabulary(_ entries: [(String, JSONValue)], file: String, field: String) throws -> [String: Int32] {
        var vocab = [String: Int32](minimumCapacity: entries.count)
        for (token, value) in entries {
            guard let id = exactInt32(value), id >= 0 else {
                throw CLIPTokenizerError(
                    file: file, reason: "\(field.isEmpty ? "" : field + ": ")token \"\(token)\" has id \(value): expected a non-negative integer")
            }
            vocab[token] = id
        }
        return vocab
    }

    static func checkNormalizer(_ value: JSONValue?, file: String) throws {
        guard let value, !value.isNull else { return }
        let expected = #"Sequence [NFC, Replace(Regex "\s+" -> " "), Lowercase]"#
        func fail() -> CLIPTokenizerError {
            CLIPTokenizerError(file: file, reason: "normalizer is not CLIP's \(expected): this tokenizer cannot honour it")
        }
        guard value["type"]?.stringValue == "Sequence", let steps = value["normalizers"]?.arrayValue, steps.count == 3,
              steps[0]["type"]?.stringValue == "NFC", steps[2]["type"]?.stringValue == "Lowercase",
              steps[1]["type"]?.stringValue == "Replace", steps[1]["content"]?.stringValue == " ",
              steps[1]["pattern"]?["Regex"]?.stringValue == #"\s+"#
        else { throw fail() }
    }

    static func checkPreTokenizer(_ value: JSONValue?, file: String) throws {
        guard let value, !value.isNull else { return }
        func fail(_ what: String) -> CLIPTokenizerError {
            CLIPTokenizerError(
                file: file, reason: "pre_tokenizer \(what): expected CLIP's Sequence [Split(CLIP pattern, Removed, invert), ByteLevel(add_prefix_space: false)]")
        }
        guard value["type"]?.stringValue == "Sequence", let steps = value["pretokenizers"]?.arrayValue, steps.count == 2,
              steps.allSatisfy({ $0.objectValue != nil })
        else { throw fail("is not a two-step Sequence") }
        let split = steps[0], byteLevel = steps[1]
        let pattern = split["pattern"]?["Regex"]?.stringValue
        guard split["type"]?.stringValue == "Split",
              pattern == CLIPPreTokenizer.splitPattern || pattern == CLIPPreTokenizer.convertedSplitPattern,
              split["behavior"]?.stringValue == "Removed", split["invert"]?.boolValue == true
        else { throw fail("has a first step other than CLIP's Split (pattern \(pattern ?? "none"))") }
        guard byteLevel["type"]?.stringValue == "ByteLevel", byteLevel["add_prefix_space"]?.boolValue != true,
              byteLevel["use_regex"]?.boolValue != false
        else { throw fail("has a second step other than ByteLevel(add_prefix_space: false, use_regex: true)") }
    }
}

/// Reads a JSON file; errors name the file and what the parser found (with its line and column).
func readJSON(_ url: URL) throws -> JSONValue {
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
        throw CLIPTokenizerError(file: url.path, reason: "cannot read: \(error.localizedDescription)")
    }
    do {
        return try JSONValue.parse(data)
    } catch {
        throw CLIPTokenizerError(file: url.path, reason: "invalid JSON: \(error.located)")
    }
}

/// A number whose value is an integer in Int32 (`5`, `5.0`, `5e0`: the ids and lengths Python would take),
/// else nil; never a boolean.
func exactInt32(_ value: JSONValue) -> Int32? { value.doubleValue.flatMap { Int32(exactly: $0) } }
