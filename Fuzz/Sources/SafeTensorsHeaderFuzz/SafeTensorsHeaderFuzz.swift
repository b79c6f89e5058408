import FuzzSupport
@testable import SafeTensors

/// libFuzzer harness for the safetensors header reader (`SafeTensorsHeader.parse`). Input: first byte
/// even: the whole file as is; odd: bytes 1-2 are the data section's size (little endian) and the rest
/// the header's JSON, framed as a file (so that the fuzzer spends its time in the JSON rules, not the
/// length prefix). Properties: the reader returns or throws `SafeTensorsError`, never crashes; a header it
/// accepts lies inside the file and its tensors tile the data section exactly, each range the size its
/// dtype and shape need.
@main
struct SafeTensorsHeaderFuzz {
    static func main() {
        runFuzzer { data, size in
            check(bytes(data, size))
            return 0
        }
    }
}

func check(_ input: [UInt8]) {
    var file = input
    if let first = input.first, first & 1 == 1, input.count >= 3 {
        let dataBytes = Int(input[1]) | Int(input[2]) << 8
        let json = input[3...]
        file = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(json.count) >> (8 * $0)) } + json + [UInt8](repeating: 0, count: dataBytes)
    }
    let header: SafeTensorsHeader
    do {
        header = try file.withUnsafeBytes { try SafeTensorsHeader.parse($0, file: "fuzz.safetensors", limits: SafeTensorsLimits(maxHeaderBytes: 1 << 20)) }
    } catch is SafeTensorsError {
        return
    } catch {
        fatalError("not a SafeTensorsError: \(error)")
    }
    precondition(header.dataStart >= 8 && header.dataStart <= file.count, "data section starts at \(header.dataStart) of \(file.count)")
    var covered = 0
    for info in header.infos.values.sorted(by: { $0.byteRange.lowerBound < $1.byteRange.lowerBound }) {
        precondition(info.byteRange.lowerBound == covered, "\(info.name) starts at \(info.byteRange), expected \(covered)")
        let elements = info.shape.reduce(1, *)
        precondition(info.byteRange.count == elements * info.dtype.size, "\(info.name): \(info.byteRange.count) bytes for \(info.shape)")
        covered = info.byteRange.upperBound
    }
    precondition(header.dataStart + covered == file.count, "tensors cover \(covered) of \(file.count - header.dataStart) data bytes")
}
