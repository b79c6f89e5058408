/// Element types the reader understands.
public enum DType: String, Sendable, CaseIterable {
    /// IEEE binary32.
    case f32 = "F32"
    /// IEEE binary16, widened to Float32 at load.
    case f16 = "F16"
    /// bfloat16 (the upper half of a binary32), widened to Float32 at load.
    case bf16 = "BF16"
    /// Signed 64-bit integers (buffers such as `position_ids`).
    case i64 = "I64"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .i64: 8
        }
    }

    /// Rank of the reference writer's ordering: it stores tensors by dtype in descending order of
    /// its `Dtype` enum (I64, F32, BF16, F16 here), then by name (safetensors `tensor.rs`, `prepare`).
    var writerRank: Int {
        switch self {
        case .f16: 0
        case .bf16: 1
        case .f32: 2
        case .i64: 3
        }
    }

    /// Dtypes of the format that this reader knows but does not load (safetensors `Dtype`).
    static let knownUnsupported: Set<String> = [
        "BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "U64", "F64", "C64",
        "F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0",
    ]
}

/// One tensor's header entry.
public struct TensorInfo: Sendable, Equatable {
    /// Name in the file.
    public let name: String
    /// Element type.
    public let dtype: DType
    /// Shape as stored.
    public let shape: [Int]
    /// Byte range inside the data section (after the header).
    public let byteRange: Range<Int>

    /// An entry (the reader validates that the range matches shape and dtype).
    public init(name: String, dtype: DType, shape: [Int], byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
    }

    /// Number of elements.
    public var elementCount: Int { shape.reduce(1, *) }
}

/// The `format` entry of a file's `__metadata__`: which framework wrote it, and so which layout
/// its tensors follow (Paddle stores Linear weights as `[in, out]`).
public enum SafeTensorsFormat: Sendable, Hashable, CustomStringConvertible {
    /// `"pt"`: PyTorch.
    case pt
    /// `"pd"`: PaddlePaddle (ppdiffusers' `np_safe_save_file(..., metadata={"format": "pd"})`).
    case pd
    /// `"np"`: NumPy.
    case np
    /// Any other value.
    case other(String)
    /// No `format` entry.
    case unspecified

    /// Classifies a metadata value (nil when the key is absent).
    public init(metadataValue: String?) {
        switch metadataValue {
        case nil: self = .unspecified
        case "pt": self = .pt
        case "pd": self = .pd
        case "np": self = .np
        case let v?: self = .other(v)
        }
    }

    /// The metadata value, or `none`.
    public var description: String {
        switch self {
        case .pt: "pt"
        case .pd: "pd"
        case .np: "np"
        case .other(let v): v
        case .unspecified: "none"
        }
    }
}
