import Foundation
import Tensor

/// One parameter a module declares: its PyTorch name, its PyTorch shape and what kind of tensor it
/// is (which decides the Paddle conversion).
public struct ParameterSpec: Sendable, Hashable {
    /// What the tensor is, for layout conversion.
    public enum Kind: Sendable, Hashable {
        /// `nn.Linear.weight`, `[out, in]` (Paddle stores `[in, out]`).
        case linearWeight
        /// A BatchNorm `running_mean` / `running_var` (Paddle names them `_mean` / `_variance`).
        case batchNormStat
        /// Stored the same way in both layouts (conv kernels, biases, norms, embeddings).
        case plain
    }

    /// PyTorch state-dict name (`blocks.0.attention.to_q.weight`).
    public let name: String
    /// PyTorch shape.
    public let shape: [Int]
    /// Kind, for layout conversion.
    public let kind: Kind

    /// A declared parameter.
    public init(_ name: String, _ shape: [Int], _ kind: Kind = .plain) {
        self.name = name
        self.shape = shape
        self.kind = kind
    }
}

/// Strict loading of declared parameters from a checkpoint, converting Paddle layout to PyTorch's.
///
/// Ports the strict half of `torch.nn.Module.load_state_dict(strict=True)` plus ppdiffusers'
/// `convert_paddle_state_dict_to_pytorch` (`ppdiffusers/models/modeling_pytorch_paddle_utils.py`):
/// Linear weights transposed, BatchNorm statistics renamed.
public enum WeightLoader {
    /// Paddle name suffixes of BatchNorm statistics: (PyTorch, Paddle).
    static let paddleStatRenames: [(pytorch: String, paddle: String)] = [
        (".running_mean", "._mean"),
        (".running_var", "._variance"),
    ]

    /// The name `spec` has in a checkpoint of `layout`.
    public static func storedName(_ spec: ParameterSpec, layout: WeightLayout) -> String {
        guard layout == .paddle, spec.kind == .batchNormStat else { return spec.name }
        for (pt, pd) in paddleStatRenames where spec.name.hasSuffix(pt) {
            return String(spec.name.dropLast(pt.count)) + pd
        }
        return spec.name
    }

    /// The shape `spec` has in a checkpoint of `layout`.
    public static func storedShape(_ spec: ParameterSpec, layout: WeightLayout) -> [Int] {
        layout == .paddle && spec.kind == .linearWeight ? spec.shape.reversed() : spec.shape
    }

    /// Loads every declared parameter from `source` as Float32 in PyTorch layout (F16/BF16 widened).
    ///
    /// Strict: throws one `WeightMismatchError` listing all missing, unexpected and mis-shaped
    /// tensors. Undeclared I64 tensors (buffers such as `position_ids`, `num_batches_tracked`) are
    /// ignored; they are never required.
    public static func load(_ parameters: [ParameterSpec], from source: any TensorSource, layout: WeightLayout) throws -> [String: Tensor] {
        try validate(parameters, in: source, layout: layout)
        var out: [String: Tensor] = [:]
        out.reserveCapacity(parameters.count)
        for p in parameters { out[p.name] = try tensor(p, from: source, layout: layout) }
        return out
    }

    /// The strict half of `load`: throws one `WeightMismatchError` listing all missing, unexpected and
    /// mis-shaped tensors, reading no tensor data.
    public static func validate(_ parameters: [ParameterSpec], in source: any TensorSource, layout: WeightLayout) throws {
        var declared = Set<String>()
        for p in parameters {
            let isNew = declared.insert(p.name).inserted
            precondition(isNew, "parameter '\(p.name)' declared twice")
            precondition(p.kind != .linearWeight || p.shape.count == 2, "Linear weight '\(p.name)' declared with shape \(p.shape), expected 2-D")
        }
        var missing: [WeightMismatchError.Entry] = []
        var misShaped: [WeightMismatchError.Mismatch] = []
        var claimed = Set<String>()
        for p in parameters {
            let stored = storedName(p, layout: layout)
            guard let info = source.info(stored) else {
                missing.append(.init(name: p.name, shape: p.shape))
                continue
            }
            claimed.insert(stored)
            let expected = storedShape(p, layout: layout)
            if info.shape != expected {
                misShaped.append(.init(name: p.name, storedName: stored, expected: expected, found: info.shape))
            }
        }
        let unexpected = source.names.compactMap { name -> WeightMismatchError.Entry? in
            guard !claimed.contains(name), let info = source.info(name), info.dtype != .i64 else { return nil }
            return .init(name: name, shape: info.shape)
        }
        guard missing.isEmpty, unexpected.isEmpty, misShaped.isEmpty else {
            throw WeightMismatchError(
                files: source.files.map(\.path), missing: missing.sorted { $0.name < $1.name },
                unexpected: unexpected, misShaped: misShaped.sorted { $0.name < $1.name })
        }
    }

    /// One declared (and validated) parameter as Float32 in PyTorch layout.
    public static func tensor(_ p: ParameterSpec, from source: any TensorSource, layout: WeightLayout) throws -> Tensor {
        let stored = storedName(p, layout: layout)
        if layout == .paddle, p.kind == .linearWeight {
            return try source.withRawBytes(stored) { info, raw in transposedLinear(info, raw, outShape: p.shape) }
        }
        return try source.tensor(stored)
    }

    /// A Paddle `[in, out]` Linear weight as PyTorch's `[out, in]`.
    private static func transposedLinear(_ info: TensorInfo, _ raw: UnsafeRawBufferPointer, outShape: [Int]) -> Tensor {
        let (inF, outF) = (info.shape[0], info.shape[1])
        let out = Tensor(uninitialized: outShape)
        if info.dtype == .f32, let base = raw.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
            Transpose.matrix(base.assumingMemoryBound(to: Float.self), rows: inF, cols: outF, into: out.data)
        } else {
            let widened = Tensor(uninitialized: info.shape)
            SafeTensorsFile.widen(info.dtype, raw, into: widened.data, count: widened.count)
            Transpose.matrix(widened.data, rows: inF, cols: outF, into: out.data)
        }
        return out
    }
}

/// Declared parameters of a checkpoint, checked strictly when made and then read one at a time, when a
/// module asks for them: a model built from it never holds more than one raw tensor beyond what its
/// modules keep (which matters when they keep a converted form, such as bfloat16 GEMM weights).
public final class LazyParameters: @unchecked Sendable {
    private let specs: [String: ParameterSpec]
    private let source: any TensorSource
    private let layout: WeightLayout

    /// Validates `parameters` against `source` (see `WeightLoader.validate`); reads nothing yet.
    public init(_ parameters: [ParameterSpec], from source: any TensorSource, layout: WeightLayout) throws {
        try WeightLoader.validate(parameters, in: source, layout: layout)
        specs = Dictionary(parameters.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.source = source
        self.layout = layout
    }

    /// Names of the declared parameters.
    public var names: [String] { Array(specs.keys) }

    /// The parameter `name` (a declared one) as Float32 in PyTorch layout, read now.
    public func tensor(_ name: String) throws -> Tensor {
        guard let spec = specs[name] else { preconditionFailure("parameter '\(name)' was not declared") }
        return try WeightLoader.tensor(spec, from: source, layout: layout)
    }
}
