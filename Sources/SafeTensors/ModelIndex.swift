import Foundation
import JSON

/// A pipeline folder's `model_index.json`, as written by diffusers / ppdiffusers
/// (`DiffusionPipeline.save_pretrained`), e.g. for `warp-ai/wuerstchen-prior`:
/// `{"_class_name": "WuerstchenPriorPipeline", "_diffusers_version": "0.19.0",
///   "prior": ["wuerstchen", "WuerstchenPrior"], "scheduler": ["diffusers", "DDPMWuerstchenScheduler"],
///   "latent_mean": 42.0, "latent_std": 1.0, "resolution_multiple": 42.67}`.
public struct ModelIndex: Sendable, Equatable {
    /// A component entry `[library, class]`: the sub-folder of the same name holds it.
    public struct Component: Sendable, Equatable {
        /// Library that defines the class (`diffusers`, `transformers`, `wuerstchen`, `ppdiffusers`, ...).
        public let library: String
        /// Class name (`WuerstchenPrior`, `CLIPTextModel`, ...).
        public let className: String
    }

    /// The pipeline class (`_class_name`).
    public let className: String
    /// `_diffusers_version` (or ppdiffusers' `_ppdiffusers_version`), if present.
    public let diffusersVersion: String?
    /// Components by name (`prior`, `text_encoder`, `tokenizer`, `scheduler`, ...).
    public let components: [String: Component]
    /// Components saved as `[null, null]` (not part of this pipeline), sorted.
    public let absentComponents: [String]
    /// Every other entry (pipeline parameters such as `latent_mean`, other `_`-keys), as JSON.
    public let parameters: [String: JSONValue]

    /// Reads `folder/model_index.json`.
    public init(folder: URL) throws {
        try self.init(url: folder.appendingPathComponent("model_index.json"))
    }

    /// Reads a `model_index.json` at `url`.
    public init(url: URL) throws {
        let path = url.path
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ModelFolderError(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        try self.init(data: data, path: path)
    }

    /// Decodes `data`, naming `path` in errors.
    public init(data: Data, path: String) throws {
        let json: JSONValue
        do {
            json = try JSONValue.parse(data)
        } catch {
            throw ModelFolderError(path: path, reason: "not valid JSON: \(error.located)")
        }
        guard case .object(let top) = json else {
            throw ModelFolderError(path: path, reason: "is \(json.kindDescription), expected an object")
        }
        guard case .string(let className)? = json["_class_name"] else {
            throw ModelFolderError(path: path, reason: "key _class_name: expected a string, found \(json["_class_name"]?.kindDescription ?? "nothing")")
        }
        self.className = className
        var version: String?
        for key in ["_diffusers_version", "_ppdiffusers_version"] {
            guard let v = json[key] else { continue }
            guard case .string(let s) = v else {
                throw ModelFolderError(path: path, reason: "key \(key): expected a string, found \(v.kindDescription)")
            }
            version = version ?? s
        }
        diffusersVersion = version
        var components: [String: Component] = [:]
        var absent: [String] = []
        var parameters: [String: JSONValue] = [:]
        for (key, value) in top where key != "_class_name" && key != "_diffusers_version" {
            switch value {
            case .array(let pair) where pair.count == 2 && !key.hasPrefix("_"):
                switch (pair[0], pair[1]) {
                case (.string(let library), .string(let cls)): components[key] = Component(library: library, className: cls)
                case (.null, .null): absent.append(key)
                default: parameters[key] = value
                }
            default:
                parameters[key] = value
            }
        }
        self.components = components
        absentComponents = absent.sorted()
        self.parameters = parameters
    }

    /// The sub-folder of `pipeline` holding component `name`; throws if the index lists no such
    /// component or the folder is missing.
    public func componentFolder(_ name: String, in pipeline: URL) throws -> URL {
        let indexPath = pipeline.appendingPathComponent("model_index.json").path
        guard components[name] != nil else {
            let known = components.keys.sorted().joined(separator: ", ")
            throw ModelFolderError(path: indexPath, reason: "no component '\(name)' (components: \(known))")
        }
        let folder = pipeline.appendingPathComponent(name, isDirectory: true)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw ModelFolderError(path: folder.path, reason: "component folder listed in model_index.json is missing")
        }
        return folder
    }
}
