import Foundation
import JSON
import Tensor

/// A checkpoint that is either one `.safetensors` file or a sharded set described by a
/// `*.safetensors.index.json` (`{"metadata": {...}, "weight_map": {tensor: shard file}}`, as written
/// by transformers' / diffusers' `save_pretrained(max_shard_size=...)`).
///
/// All shards are opened (mapped and validated) eagerly; mapping is cheap and this way a broken
/// checkpoint fails at load, naming the shard. Every name in `weight_map` must be in its shard,
/// and every tensor in a shard must be listed in `weight_map` under that shard.
public final class SafeTensorsCheckpoint: TensorSource, @unchecked Sendable {
    /// The file opened: the index, or the single safetensors file.
    public let url: URL
    /// The shards, in the order of their first appearance (sorted by file name).
    public let shards: [SafeTensorsFile]
    /// The index's `metadata` object (e.g. `total_size`); empty for a single file.
    public let indexMetadata: [String: JSONValue]
    private let shardOf: [String: Int]

    /// Whether `url` names a shard index (`*.index.json`, including `*.index.fp16.json` variants).
    public static func isIndex(_ url: URL) -> Bool {
        let name = url.lastPathComponent
        return name.hasSuffix(".json") && name.contains(".index.")
    }

    /// Opens `url`: a shard index (by its `.index...json` name) or a single safetensors file.
    public convenience init(url: URL, access: SafeTensorsFile.Access = .sequential, limits: SafeTensorsLimits = SafeTensorsLimits()) throws {
        if Self.isIndex(url) {
            try self.init(index: url, access: access, limits: limits)
        } else {
            self.init(file: try SafeTensorsFile(url: url, access: access, limits: limits))
        }
    }

    /// A checkpoint of one file.
    public init(file: SafeTensorsFile) {
        url = file.url
        shards = [file]
        indexMetadata = [:]
        shardOf = Dictionary(uniqueKeysWithValues: file.infos.keys.map { ($0, 0) })
    }

    /// Opens the shard index at `index` and every shard it names (same folder).
    public init(index: URL, access: SafeTensorsFile.Access = .sequential, limits: SafeTensorsLimits = SafeTensorsLimits()) throws {
        url = index
        let path = index.path
        func fail(_ reason: String, tensor: String? = nil) -> SafeTensorsError {
            SafeTensorsError(file: path, tensor: tensor, reason: reason)
        }
        let data: Data
        do {
            data = try Data(contentsOf: index)
        } catch {
            throw fail("cannot read shard index: \(error.localizedDescription)")
        }
        let json: JSONValue
        do {
            json = try JSONValue.parse(data)
        } catch {
            if let key = error.duplicateKey { throw fail("appears more than once in the shard index", tensor: key) }
            throw fail("shard index is not valid JSON: \(error.located)")
        }
        guard case .object = json else { throw fail("shard index is \(json.kindDescription), expected an object") }
        switch json["metadata"] {
        case nil, .null?: indexMetadata = [:]
        case .object(let m)?: indexMetadata = Dictionary(uniqueKeysWithValues: m)
        case let other?: throw fail("\"metadata\" is \(other.kindDescription), expected an object")
        }
        guard let mapValue = json["weight_map"] else { throw fail("shard index has no \"weight_map\"") }
        guard case .object(let unsorted) = mapValue else { throw fail("\"weight_map\" is \(mapValue.kindDescription), expected an object") }
        let map = unsorted.sorted { $0.0 < $1.0 }

        var shardNames: [String] = []
        var shardIndex: [String: Int] = [:]
        var shardOf: [String: Int] = [:]
        for (name, value) in map {
            guard case .string(let file) = value else {
                throw fail("weight_map value is \(value.kindDescription), expected a shard file name", tensor: name)
            }
            guard !file.isEmpty, file != ".", file != "..", !file.contains("/"), !file.contains("\\") else {
                throw fail("shard \(JSONValue.quoted(file)) must be a plain file name in the index's folder", tensor: name)
            }
            if shardIndex[file] == nil {
                shardIndex[file] = shardNames.count
                shardNames.append(file)
            }
            shardOf[name] = shardIndex[file]!
        }
        let folder = index.deletingLastPathComponent()
        var shards: [SafeTensorsFile] = []
        for file in shardNames {
            let shardURL = folder.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: shardURL.path) else {
                let example = map.first { $0.1 == .string(file) }?.0
                throw fail("shard '\(file)' listed in the index is missing from \(folder.path)", tensor: example)
            }
            shards.append(try SafeTensorsFile(url: shardURL, access: access, limits: limits))
        }
        for (name, s) in shardOf.sorted(by: { $0.key < $1.key }) where shards[s].infos[name] == nil {
            let elsewhere = shards.first { $0.infos[name] != nil }.map { "; it is in '\($0.url.lastPathComponent)'" } ?? ""
            throw fail("mapped to shard '\(shardNames[s])', which does not contain it\(elsewhere)", tensor: name)
        }
        for (s, shard) in shards.enumerated() {
            for name in shard.names where shardOf[name] != s {
                let listed = shardOf[name].map { "mapped to '\(shardNames[$0])'" } ?? "not listed"
                throw fail("in shard '\(shardNames[s])' but \(listed) in the weight_map", tensor: name)
            }
        }
        let formats = Set(shards.map(\.format))
        guard formats.count <= 1 else {
            throw fail("shards disagree on metadata format: \(shards.map { "\($0.url.lastPathComponent)=\($0.format)" }.joined(separator: ", "))")
        }
        self.shards = shards
        self.shardOf = shardOf
    }

    /// Index first (when sharded), then the shards.
    public var files: [URL] {
        let shardURLs = shards.map(\.url)
        return shardURLs == [url] ? [url] : [url] + shardURLs
    }

    /// Names of all tensors across the shards, sorted.
    public var names: [String] { shardOf.keys.sorted() }

    /// The shards' common `format` (`.unspecified` when there is no shard).
    public var format: SafeTensorsFormat { shards.first?.format ?? .unspecified }

    /// The shard holding `name`.
    public func shard(containing name: String) -> SafeTensorsFile? { shardOf[name].map { shards[$0] } }

    /// The header entry of `name`, if present.
    public func info(_ name: String) -> TensorInfo? { shard(containing: name)?.infos[name] }

    /// The tensor `name` as an owned Float32 tensor.
    public func tensor(_ name: String) throws -> Tensor { try require(name).tensor(name) }

    /// The tensor `name`, borrowed from its shard's mapping when possible (read-only).
    public func borrowedTensor(_ name: String) throws -> Tensor { try require(name).borrowedTensor(name) }

    /// The I64 tensor `name` as integers.
    public func int64s(_ name: String) throws -> [Int64] { try require(name).int64s(name) }

    /// Calls `body` with the stored bytes of `name` (valid only during the call).
    public func withRawBytes<R>(_ name: String, _ body: (TensorInfo, UnsafeRawBufferPointer) throws -> R) throws -> R {
        try require(name).withRawBytes(name, body)
    }

    private func require(_ name: String) throws -> SafeTensorsFile {
        guard let file = shard(containing: name) else {
            throw SafeTensorsError(file: url.path, tensor: name, reason: "not in checkpoint")
        }
        return file
    }
}
