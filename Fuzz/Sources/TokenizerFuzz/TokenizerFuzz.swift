import CLIP
import FuzzSupport

/// libFuzzer harness for the CLIP tokenizer (the embedded vocabulary, as the demo model and the real
/// CLIP use) on any UTF-8 (invalid sequences become U+FFFD, as an HTTP body's would not: it is checked
/// first, but the tokenizer must not depend on it). Properties: exactly 77 ids and mask entries, BOS
/// first, EOS last of the real positions, the mask 1s then 0s, every id inside the vocabulary, the count
/// before truncation and the ids agreeing with `tokenIDs`. libFuzzer's `-timeout` catches
/// inputs whose cost grows faster than their length (issue 12 item 1).
@main
struct TokenizerFuzz {
    static func main() {
        // Loaded before libFuzzer starts its per-input clock (the vocabulary takes seconds under ASan).
        _ = tokenizer.vocabularySize
        runFuzzer { data, size in
            check(bytes(data, size))
            return 0
        }
    }
}

let tokenizer: CLIPTokenizer = {
    do { return try CLIPTokenizer.embedded } catch { fatalError("\(error)") }
}()

func check(_ input: [UInt8]) {
    let text = String(decoding: input, as: UTF8.self)
    let t = tokenizer.encode(text)
    precondition(t.ids.count == tokenizer.maxLength && t.attentionMask.count == tokenizer.maxLength, "\(t.ids.count) ids")
    let n = t.length
    precondition(n >= 2 && t.attentionMask[..<n].allSatisfy { $0 == 1 } && t.attentionMask[n...].allSatisfy { $0 == 0 }, "mask \(t.attentionMask)")
    precondition(t.ids[0] == tokenizer.bosTokenID && t.ids[n - 1] == tokenizer.eosTokenID, "ids \(t.ids)")
    precondition(t.ids.allSatisfy { $0 >= 0 && Int($0) < tokenizer.vocabularySize }, "id outside the vocabulary: \(t.ids)")
    let ids = tokenizer.tokenIDs(text)
    precondition(t.untruncatedCount == ids.count + 2, "untruncated \(t.untruncatedCount), tokenIDs \(ids.count)")
    precondition(t.truncated == (ids.count + 2 > tokenizer.maxLength), "truncated \(t.truncated) with \(ids.count) tokens")
    precondition(Array(t.ids[1..<(n - 1)]) == Array(ids.prefix(n - 2)), "encode and tokenIDs disagree")
}
