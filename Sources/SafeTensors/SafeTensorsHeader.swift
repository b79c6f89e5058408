import JSON

/// Limits the reader enforces before trusting a file (hostile or damaged input must fail cleanly).
public struct SafeTensorsLimits: Sendable {
    /// Largest header accepted, in bytes (the reference implementation's `MAX_HEADER_SIZE` is 100 MB).
    public var maxHeaderBytes: Int
    /// Deepest JSON nesting accepted in the header (a valid header needs 3).
    public var maxJSONDepth: Int

    /// The reference implementation's limits.
    public init(maxHeaderBytes: Int = 100_000_000, maxJSONDepth: Int = 16) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxJSONDepth = maxJSONDepth
    }
}

/// A parsed and validated safetensors header.
///
/// Layout (https://github.com/huggingface/safetensors#format): 8 bytes little-endian u64 `N`,
/// `N` bytes of UTF-8 JSON, then the data section. Rules enforced, as the reference `validate`:
/// - the header is a JSON object; `__metadata__` (optional, may be null) maps strings to strings;
/// - every other key is a tensor: `{"dtype": String, "shape": [UInt], "data_offsets": [begin, end]}`
///   (other keys of an entry are ignored, as serde does); dtype F32, F16, BF16 or I64;
/// - `end - begin == product(shape) * dtype size`, computed without overflow;
/// - the tensors, sorted by offset, tile the data section exactly: no overlap, no hole, nothing
///   after the last tensor (the reference rejects holes and trailing bytes alike, so do we);
/// - no key appears twice (JSONSerialization would silently keep one; `JSONValue.parse` rejects it).
struct SafeTensorsHeader {
    /// `__metadata__` entries.
    var metadata: [String: String] = [:]
    /// Tensor entries by name.
    var infos: [String: TensorInfo] = [:]
    /// Offset of the data section from the start of the file.
    var dataStart = 0

    /// Parses the header at the start of `bytes` (the whole file), naming `file` in errors.
    static func parse(_ bytes: UnsafeRawBufferPointer, file: String, limits: SafeTensorsLimits) throws -> SafeTensorsHeader {
        func fail(_ reason: String, tensor: String? = nil) -> SafeTensorsError {
            SafeTensorsError(file: file, tensor: tensor, reason: reason)
        }
        let size = bytes.count
        guard size >= 8 else {
            throw fail("file is \(size) bytes; a safetensors file starts with an 8-byte header length (truncated or not safetensors)")
        }
        let n = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard n <= UInt64(limits.maxHeaderBytes) else {
            throw fail("header length \(n) exceeds the limit of \(limits.maxHeaderBytes) bytes (corrupt or not safetensors)")
        }
        let headerLength = Int(n)
        guard headerLength <= size - 8 else {
            throw fail("header length \(headerLength) runs past the end of the file (\(size) bytes; truncated?)")
        }
        var header = SafeTensorsHeader()
        header.dataStart = 8 + headerLength
        let json: JSONValue
        do {
            json = try JSONValue.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<header.dataStart]), maxDepth: limits.maxJSONDepth)
        } catch {
            if let key = error.duplicateKey {
                throw fail("appears more than once in the header", tensor: key)
            }
            throw fail("header is not valid JSON: \(error.reason) at header byte \(error.offset)")
        }
        guard case .object(let members) = json else {
            throw fail("header is \(json.kindDescription), expected a JSON object")
        }
        let dataLength = size - header.dataStart
        for (name, value) in members.sorted(by: { $0.0 < $1.0 }) {
            if name == "__metadata__" {
                header.metadata = try metadataMap(value, fail: fail)
                continue
            }
            header.infos[name] = try entry(name, value, dataLength: dataLength, fail: fail)
        }
        try checkTiling(header.infos, dataLength: dataLength, fail: fail)
        return header
    }

    private static func metadataMap(_ value: JSONValue, fail: (String, String?) -> SafeTensorsError) throws -> [String: String] {
        if value.isNull { return [:] }
        guard case .object(let map) = value else {
            throw fail("__metadata__ is \(value.kindDescription), expected an object of strings", nil)
        }
        var out: [String: String] = [:]
        for (k, v) in map {
            guard case .string(let s) = v else {
                throw fail("__metadata__ value for '\(k)' is \(v.kindDescription) (\(v)), expected a string", nil)
            }
            out[k] = s
        }
        return out
    }

    private static func entry(
        _ name: String, _ value: JSONValue, dataLength: Int, fail: (String, String?) -> SafeTensorsError
    ) throws -> TensorInfo {
        guard case .object = value else {
            throw fail("entry is \(value.kindDescription), expected an object with dtype, shape and data_offsets", name)
        }
        guard let dtypeValue = value["dtype"] else { throw fail("entry has no dtype", name) }
        guard case .string(let dtypeName) = dtypeValue else {
            throw fail("dtype is \(dtypeValue.kindDescription), expected a string such as \"F32\"", name)
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            let supported = DType.allCases.map(\.rawValue).joined(separator: ", ")
            if DType.knownUnsupported.contains(dtypeName) {
                throw fail("unsupported dtype \(dtypeName); supported: \(supported)", name)
            }
            throw fail("unknown dtype \(JSONValue.quoted(dtypeName)); supported: \(supported)", name)
        }
        guard let shapeValue = value["shape"] else { throw fail("entry has no shape", name) }
        guard case .array(let dims) = shapeValue else {
            throw fail("shape is \(shapeValue.kindDescription), expected a list of non-negative integers", name)
        }
        var shape: [Int] = []
        var elements = 1
        var overflow = false
        for d in dims {
            guard let extent = d.intValue, extent >= 0 else {
                throw fail("shape \(shapeValue) is not a list of non-negative integers that fit in 64 bits", name)
            }
            shape.append(extent)
            let (p, o) = elements.multipliedReportingOverflow(by: extent)
            elements = p
            overflow = overflow || o
        }
        let (byteCount, o2) = elements.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, !o2 else {
            throw fail("shape \(shape) of \(dtypeName) overflows 64-bit byte counts", name)
        }
        guard let offsetsValue = value["data_offsets"] else { throw fail("entry has no data_offsets", name) }
        guard case .array(let offs) = offsetsValue, offs.count == 2,
              let begin = offs[0].intValue, let end = offs[1].intValue, begin >= 0, end >= 0
        else {
            throw fail("data_offsets \(offsetsValue) is not a pair of non-negative integers", name)
        }
        guard begin <= end else {
            throw fail("data_offsets [\(begin), \(end)] end before they begin", name)
        }
        guard end <= dataLength else {
            throw fail("data_offsets [\(begin), \(end)] run past the data section of \(dataLength) bytes (truncated?)", name)
        }
        guard end - begin == byteCount else {
            throw fail("data_offsets [\(begin), \(end)] hold \(end - begin) bytes, but shape \(shape) of \(dtypeName) needs \(byteCount)", name)
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin..<end)
    }

    /// The tensors must tile `0..<dataLength`: sorted by (begin, end), each starts where the last ended.
    private static func checkTiling(_ infos: [String: TensorInfo], dataLength: Int, fail: (String, String?) -> SafeTensorsError) throws {
        let sorted = infos.values.sorted {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name) < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name)
        }
        var covered = 0
        var last: TensorInfo?
        for info in sorted {
            let r = info.byteRange
            if r.lowerBound < covered, let last {
                throw fail("data_offsets [\(r.lowerBound), \(r.upperBound)] overlap tensor '\(last.name)' at [\(last.byteRange.lowerBound), \(last.byteRange.upperBound)]", info.name)
            }
            if r.lowerBound > covered {
                throw fail("data_offsets [\(r.lowerBound), \(r.upperBound)] leave bytes \(covered)..<\(r.lowerBound) of the data section unused (the format allows no holes)", info.name)
            }
            if !r.isEmpty || last == nil { last = info }
            covered = max(covered, r.upperBound)
        }
        guard covered == dataLength else {
            throw fail("data section has \(dataLength) bytes but the tensors cover only \(covered) (trailing bytes; the format allows none)", nil)
        }
    }
}
