/// One prompt as the CLIP text encoder takes it: ids padded to a fixed length and the attention mask,
/// as transformers' `CLIPTokenizer(text, padding="max_length", max_length=77, truncation=True)` returns.
public struct TokenizedText: Sendable, Equatable {
    /// `[BOS, tokens..., EOS, PAD...]`, exactly `maxLength` ids.
    public var ids: [Int32]
    /// 1 for BOS, the tokens and EOS; 0 for padding. Same length as `ids`.
    public var attentionMask: [Int32]
    /// Whether the prompt had more than `maxLength - 2` tokens and was cut (BOS and EOS are always kept).
    public var truncated: Bool
    /// Number of tokens before truncation, BOS and EOS included (what the prompt would need).
    public var untruncatedCount: Int

    /// Number of real (unpadded) positions: BOS, the kept tokens and EOS.
    public var length: Int { attentionMask.reduce(0) { $0 + Int($1) } }
}
