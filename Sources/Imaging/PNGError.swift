/// A PNG encoding or decoding failure (from libpng, or the sink stopping).
public struct PNGError: Error, CustomStringConvertible, Equatable {
    public let description: String
}
