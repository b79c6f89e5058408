import Foundation

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
    init(_ value: Any, id: Int32? = nil, file: String, field: String) throws {
        if let s = value as? String {
            self.init(content: s, id: id)
            return
        }
        guard let object = value as? [String: Any], let content = object["content"] as? String else {
            throw CLIPTokenizerError(file: file, reason: "\(field): expected a string or an object with a \"content\" string")
        }
        for flag in ["lstrip", "rstrip", "single_word"] where object[flag] as? Bool == true {
            throw CLIPTokenizerError(file: file, reason: "\(field) \"\(content)\": \(flag): true is not supported")
        }
        var tokenID = id
        if let value = object["id"] {
            guard let number = value as? NSNumber, let exact = Int32(exactly: number.doubleValue) else {
                throw CLIPTokenizerError(file: file, reason: "\(field) \"\(content)\": id \(value) is not an integer")
            }
            tokenID = exact
        }
        // transformers' AddedToken defaults: normalized = not special (special tokens are matched raw).
        let special = object["special"] as? Bool ?? true
        self.init(content: content, id: tokenID, normalized: object["normalized"] as? Bool ?? !special)
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
            guard let object = try readJSON(url) as? [String: Any] else {
                throw CLIPTokenizerError(file: url.path, reason: "expected a JSON object")
            }
            try apply(object, file: url.path)
            if let length = object["model_max_length"] {
                guard let number = length as? NSNumber, !isJSONBoolean(number), number.doubleValue >= 2 else {
                    throw CLIPTokenizerError(file: url.path, reason: "model_max_length \(length): expected an integer of at least 2")
                }
                if number.doubleValue <= 1_000_000, let exact = Int(exactly: number.doubleValue) { modelMaxLength = exact }
            }
            if let decoder = object["added_tokens_decoder"] {
                hasDecoder = true
                guard let entries = decoder as? [String: Any] else {
                    throw CLIPTokenizerError(file: url.path, reason: "added_tokens_decoder: expected an object of id -> token")
                }
                for (key, value) in entries.sorted(by: { $0.key < $1.key }) {
                    guard let id = Int32(key) else {
                        throw CLIPTokenizerError(file: url.path, reason: "added_tokens_decoder: key \"\(key)\" is not an integer id")
                    }
                    addedTokensDecoder.append(try AddedTokenSpec(value, id: id, file: url.path, field: "added_tokens_decoder[\(key)]"))
                }
            }
        }
        if let url = specialTokensMap, !hasDecoder {
            guard let object = try readJSON(url) as? [String: Any] else {
                throw CLIPTokenizerError(file: url.path, reason: "expected a JSON object")
            }
            try apply(object, file: url.path)
        }
    }

    private mutating func apply(_ object: [String: Any], file: String) throws {
        func token(_ key: String) throws -> AddedTokenSpec? {
            guard let value = object[key], !(value is NSNull) else { return nil }
            return try AddedTokenSpec(value, file: file, field: key)
        }
        if let t = try token("bos_token") { bos = t }
        if let t = try token("eos_token") { eos = t }
        if let t = try token("unk_token") { unk = t }
        if let t = try token("pad_token") { pad = t }
    }
}
