/// A safetensors error; its description names the file and, where there is one, the tensor.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    // Deliberate parallel of CLIP/CLIPTokenizerError.swift:CLIPTokenizerError and
    // Serving/ServerConfiguration+Loading.swift:ConfigurationError (fields, init, description): each module's
    // own error names its own thing (file, line, tensor, field, source); a shared type would couple the targets.
    /// File the error is about.
    public let file: String
    /// Tensor the error is about, if any.
    public let tensor: String?
    /// What is wrong and what was expected.
    public let reason: String

    /// An error about `file` (and `tensor`, if the problem is one tensor's).
    public init(file: String, tensor: String? = nil, reason: String) {
        self.file = file
        self.tensor = tensor
        self.reason = reason
    }

    /// `file: tensor 'name': reason`.
    public var description: String {
        if let tensor { return "\(file): tensor '\(tensor)': \(reason)" }
        return "\(file): \(reason)"
    }
}
