import CFuzzerDriver
#if canImport(Glibc)
import Glibc
#endif

/// Runs libFuzzer with the process arguments on `callback` (one input a call) and exits with its status.
/// A property that does not hold is a `fatalError` (libFuzzer reports the trap as a crash and saves
/// the input); so is any address sanitizer finding.
public func runFuzzer(_ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    exit(cfuzzer_run(CommandLine.argc, CommandLine.unsafeArgv, callback))
}

/// The input as an array (`data` is nil for the empty input).
public func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// A small seeded generator (SplitMix64): split points derived from the input, so a crash repeats.
/// A deliberate copy of the suite's `Tests/TestSupport/SplitMix.swift`: this package sees only the main
/// package's products, and the test support is in none.
public struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// FNV-1a of the input: the seed of its split points.
public func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}
