import SafeTensors
import Tensor

/// Strictly loaded parameters (PyTorch names and layouts), read by the module initialisers, and the
/// precision the modules keep their GEMM weights in.
///
/// `WeightLoader` has already checked that exactly the declared tensors are present with the
/// declared shapes, so a lookup here cannot miss unless a module's `parameters` and its
/// initialiser disagree, which is a programming error.
///
/// The tensors come from a dictionary (built in code, tests) or are read one at a time from the
/// checkpoint (`LazyParameters`, model folders). A module that converts a tensor into its own layout
/// (stacked q/k/v, folded mappers, bfloat16) `take`s it: the bag keeps no reference, so the raw tensor
/// is freed as soon as the converted one exists instead of at the end of loading, which keeps the
/// load's peak memory near the model's size.
final class Weights {
    private var tensors: [String: Tensor]
    private let lazy: LazyParameters?
    /// The precision of the GEMM weights that `linear` and `conv` return.
    let precision: Precision

    /// The bag; pass the loader's dictionary with `consume` (or as a temporary) so that `take` frees.
    init(tensors: consuming [String: Tensor], precision: Precision = .fp32) {
        self.tensors = tensors
        lazy = nil
        self.precision = precision
    }

    /// Parameters read from the checkpoint when asked for.
    init(lazy: LazyParameters, precision: Precision) {
        tensors = [:]
        self.lazy = lazy
        self.precision = precision
    }

    private func read(_ name: String) -> Tensor {
        guard let lazy else { preconditionFailure("parameter '\(name)' was not declared or already taken") }
        do {
            return try lazy.tensor(name)
        } catch {
            preconditionFailure("reading parameter '\(name)' failed after validation: \(error)")
        }
    }

    /// The tensor `name` (the bag keeps it).
    subscript(_ name: String) -> Tensor {
        if let t = tensors[name] { return t }
        let t = read(name)
        tensors[name] = t
        return t
    }

    /// The tensor `name`, removed from the bag.
    func take(_ name: String) -> Tensor {
        if let t = tensors.removeValue(forKey: name) { return t }
        return read(name)
    }

    /// `nn.Linear` at `prefix` (`prefix.weight`, `prefix.bias`), its weight taken and held in `precision`.
    func linear(_ prefix: String) -> Linear { takeLinear(prefix).converted(to: precision) }

    /// `nn.Linear` at `prefix` in Float32, removed from the bag (for layers that convert it).
    func takeLinear(_ prefix: String) -> Linear { Linear(weight: take(prefix + ".weight"), bias: take(prefix + ".bias")) }

    /// `nn.Conv2d` at `prefix` (the layer keeps its kernel permuted, in `precision`, so the raw one is taken).
    func conv(_ prefix: String, stride: Int = 1, padding: Int = 0) -> Conv2d {
        Conv2d(weight: take(prefix + ".weight"), bias: self[prefix + ".bias"], stride: stride, padding: padding)
            .converted(to: precision)
    }
}

/// Parameter declarations of the building blocks, named as PyTorch names them under `prefix`.
enum Declare {
    static func linear(_ prefix: String, _ inFeatures: Int, _ outFeatures: Int) -> [ParameterSpec] {
        [ParameterSpec(prefix + ".weight", [outFeatures, inFeatures], .linearWeight), ParameterSpec(prefix + ".bias", [outFeatures])]
    }

    static func conv(_ prefix: String, _ cin: Int, _ cout: Int, kernel: Int, groups: Int = 1) -> [ParameterSpec] {
        [ParameterSpec(prefix + ".weight", [cout, cin / groups, kernel, kernel]), ParameterSpec(prefix + ".bias", [cout])]
    }

    static func convTranspose(_ prefix: String, _ cin: Int, _ cout: Int, kernel: Int) -> [ParameterSpec] {
        [ParameterSpec(prefix + ".weight", [cin, cout, kernel, kernel]), ParameterSpec(prefix + ".bias", [cout])]
    }
}
