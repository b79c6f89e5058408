import Foundation
import JSON

/// An added token as `tokenizer.json`'s `added_tokens`, `tokenizer_config.json`'s `added_tokens_decoder`
/// or a special-token entry declares it.
struct AddedTokenSpec: Sendable {
    var content: String
    /// Its id, when the file gives one (otherwise looked up in the vocabulary).
    var id: Int32?
    /// Matched after normalization (`normalized: true`) or on the raw text.
    var normalized: Bool

    init(content: String, id: Int32? = nil, normalized: Bool = false) {
        self.content = content
        self.id = id
        self.normalized = normalized
    }

    /// From a string (a special token: `normalized: false`) or an `AddedToken` object.
    init(_ value: JSONValue, id: Int32? = nil, file: String, field: String) throws {
        if case .string(let s) = value {
            self.init(content: s, id: id)
            return
        }
        guard let content = value["content"]?.stringValue else {
            throw CLIPTokenizerError(file: file, reason: "\(field): expected a string or an object with a \"content\" string")
        }
        for flag in ["lstrip", "rstrip", "single_word"] where value[flag]?.boolValue == true {
            throw CLIPTokenizerError(file: file, reason: "\(field) \"\(content)\": \(flag): true is not supported")
        }
        var tokenID = id
        if let given = value["id"] {
            guard let exact = exactInt32(given) else {
                throw CLIPTokenizerError(file: file, reason: "\(field) \"\(content)\": id \(given) is not an integer")
            }
            tokenID = exact
        }
        // transformers' AddedToken defaults: normalized = not special (special tokens are matched raw).
        let special = value["special"]?.boolValue ?? true
        self.init(content: content, id: tokenID, normalized: value["normalized"]?.boolValue ?? !special)
    }
}

/// What `tokenizer_config.json` and `special_tokens_map.json` say, with transformers' `CLIPTokenizer`
/// defaults for what they leave out.
struct TokenizerConfiguration: Sendable {
    var bos = AddedTokenSpec(content: "<|startoftext|>")
    var eos = AddedTokenSpec(content: "<|endoftext|>")
    var unk = AddedTokenSpec(content: "<|endoftext|>")
    var pad = AddedTokenSpec(content: "<|endoftext|>")
    /// `model_max_length`; CLIP's 77 when absent or the "no limit" placeholder (1e30) transformers writes.
    var modelMaxLength = CLIP.maxLength
    var addedTokensDecoder: [AddedTokenSpec] = []
    /// The configuration file these came from, for errors.
    var file: String?

    init() {}

    /// Reads the two files when present. As transformers 5: without `added_tokens_decoder` in
    /// `tokenizer_config.json`, `special_tokens_map.json` overrides its special tokens.
    init(tokenizerConfig: URL?, specialTokensMap: URL?) throws {
        var hasDecoder = false
        if let url = tokenizerConfig {
            file = url.path
            let object = try readJSON(url)
            guard case .object = object else {
                throw CLIPTokenizerError(file: url.path, reason: "expected a JSON object")
            }
            try apply(object, file: url.path)
            if let length = object["model_max_length"] {
                // transformers' "no limit" placeholder is the integer 1e30: read as Python reads it, through Double.
                guard let number = length.doubleValue, number >= 2 else {
                    throw CLIPTokenizerError(file: url.path, reason: "model_max_length \(length): expected an integer of at least 2")
                }
                if number <= 1_000_000, let exact = Int(exactly: number) { modelMaxLength = exact }
            }
            if let decoder = object["added_tokens_decoder"] {
                hasDecoder = true
                guard case .object(let entries) = decoder else {
                    throw CLIPTokenizerError(file: url.path, reason: "added_tokens_decoder: expected an object of id -> token")
                }
                for (key, value) in entries.sorted(by: { $0.0 < $1.0 }) {
                    guard let id = Int32(key) else {
                        throw CLIPTokenizerError(file: url.path, reason: "added_tokens_decoder: key \"\(key)\" is not an integer id")
                    }
                    addedTokensDecoder.append(try AddedTokenSpec(value, id: id, file: url.path, field: "added_tokens_decoder[\(key)]"))
                }
            }
        }
        if let url = specialTokensMap, !hasDecoder {
            let object = try readJSON(url)
            guard case .object = object else {
                throw CLIPTokenizerError(file: url.path, reason: "expected a JSON object")
            }
            try apply(object, file: url.path)
        }
    }

    /// The special tokens of `object` (a JSON object).
    private mutating func apply(_ object: JSONValue, file: String) throws {
        func token(_ key: String) throws -> AddedTokenSpec? {
            guard let value = object[key], !value.isNull else { return nil }
            return try AddedTokenSpec(value, file: file, field: key)
        }
        if let t = try token("bos_token") { bos = t }
        if let t = try token("eos_token") { eos = t }
        if let t = try token("unk_token") { unk = t }
        if let t = try token("pad_token") { pad = t }
    }
}
