/// The CLIP text side of both Würstchen pipelines: the byte-level BPE tokenizer that gives the
/// ids transformers' `CLIPTokenizer` gives, and `CLIPTextModel` (transformers `modeling_clip.py`).
public enum CLIP {
    /// Sequence length of every CLIP text encoder in these pipelines (`max_position_embeddings`).
    public static let maxLength = 77
}
