import SafeTensors
import Tensor

/// Strictly loaded parameters (PyTorch names and layouts), read by the module initialisers.
///
/// `WeightLoader` has already checked that exactly the declared tensors are present with the
/// declared shapes, so a lookup here cannot miss unless a module's `parameters` and its
/// initialiser disagree, which is a programming error.
struct Weights {
    let tensors: [String: Tensor]

    /// The tensor `name`.
    subscript(_ name: String) -> Tensor {
        guard let t = tensors[name] else { preconditionFailure("parameter '\(name)' was not declared") }
        return t
    }

    /// `nn.Linear` at `prefix` (`prefix.weight`, `prefix.bias`).
    func linear(_ prefix: String) -> Linear { Linear(weight: self[prefix + ".weight"], bias: self[prefix + ".bias"]) }

    /// `nn.Conv2d` at `prefix`.
    func conv(_ prefix: String, stride: Int = 1, padding: Int = 0) -> Conv2d {
        Conv2d(weight: self[prefix + ".weight"], bias: self[prefix + ".bias"], stride: stride, padding: padding)
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
