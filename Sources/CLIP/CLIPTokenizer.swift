/// CLIP's byte-level BPE tokenizer, giving the ids transformers 5's `CLIPTokenizer` gives
/// (`transformers/models/clip/tokenization_clip.py`, backed by the `tokenizers` library) for
/// `tokenizer(text, padding="max_length", max_length=77, truncation=True)`.
///
/// The pipeline, in `tokenizers`' order: added (special) tokens typed in the text are split off first - the
/// ones with `normalized: false` on the raw text, the others after normalization; each remaining segment is
/// normalized (`CLIPNormalizer`: NFC, whitespace runs to one space, lowercase), pre-tokenized
/// (`CLIPPreTokenizer`: CLIP's pattern, then GPT-2's, then bytes) and encoded by BPE
/// (`BytePairEncoding`); the sequence is cut to `maxLength - 2` ids and framed by BOS and EOS, then padded.
public struct CLIPTokenizer: Sendable {
    /// Id of the beginning-of-text token (`<|startoftext|>`, 49406 in CLIP's vocabulary).
    public let bosTokenID: Int32
    /// Id of the end-of-text token (`<|endoftext|>`, 49407).
    public let eosTokenID: Int32
    /// Id used for padding (`pad_token`: `<|endoftext|>` unless the configuration says otherwise).
    public let padTokenID: Int32
    /// Length `encode` pads and truncates to (`model_max_length`, 77 for CLIP).
    public let maxLength: Int
    /// Number of entries in the vocabulary (49408 for CLIP).
    public let vocabularySize: Int

    let model: BytePairEncoding
    /// Added tokens matched on the raw text (`normalized: false`), then on normalized segments.
    let rawAddedTokens: AddedTokenMatcher
    let normalizedAddedTokens: AddedTokenMatcher

    /// Encodes `text` to exactly `maxLength` ids: BOS, at most `maxLength - 2` tokens, EOS, then padding.
    public func encode(_ text: String) -> TokenizedText {
        encode(text, maxLength: maxLength)
    }

    /// Encodes `text` to exactly `maxLength` ids (at least 2): BOS, at most `maxLength - 2` tokens, EOS,
    /// then `padTokenID`, with the attention mask 1 on the first three parts.
    public func encode(_ text: String, maxLength: Int) -> TokenizedText {
        precondition(maxLength >= 2, "maxLength \(maxLength): must leave room for BOS and EOS")
        let tokens = tokenIDs(text)
        let kept = min(tokens.count, maxLength - 2)
        var ids = [Int32]()
        ids.reserveCapacity(maxLength)
        ids.append(bosTokenID)
        ids.append(contentsOf: tokens[0..<kept])
        ids.append(eosTokenID)
        let length = ids.count
        ids.append(contentsOf: repeatElement(padTokenID, count: maxLength - length))
        var mask = [Int32](repeating: 0, count: maxLength)
        for i in 0..<length { mask[i] = 1 }
        return TokenizedText(
            ids: ids, attentionMask: mask, truncated: tokens.count > kept, untruncatedCount: tokens.count + 2)
    }

    /// The token ids of `text` without BOS, EOS, truncation or padding.
    public func tokenIDs(_ text: String) -> [Int32] {
        var ids = [Int32]()
        var bytes = [UInt8]()
        let scalars = Array(text.unicodeScalars)
        rawAddedTokens.split(scalars[...]) { segment in
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let raw):
                let normalized = CLIPNormalizer.normalize(raw)
                normalizedAddedTokens.split(normalized[...]) { part in
                    switch part {
                    case .token(let id):
                        ids.append(id)
                    case .text(let slice):
                        let words = Array(slice)
                        CLIPPreTokenizer.split(words) { range in
                            bytes.removeAll(keepingCapacity: true)
                            for scalar in words[range] { bytes.append(contentsOf: UTF8.encode(scalar)!) }
                            bytes.withUnsafeBufferPointer { model.encode(word: $0, into: &ids) }
                        }
                    }
                }
            }
        }
        return ids
    }
}
