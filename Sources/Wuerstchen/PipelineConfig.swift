import Foundation
import JSON
import SafeTensors

/// The scalar settings `model_index.json` carries for each pipeline (older files may omit them).
struct PipelineIndex {
    let index: ModelIndex
    let folder: URL

    init(folder: URL) throws {
        self.folder = folder
        index = try ModelIndex(folder: folder)
    }

    /// A number from the index, or `fallback` (the pipeline's default) when absent.
    func number(_ key: String, default fallback: Double) throws -> Double {
        guard let v = index.parameters[key] else { return fallback }
        guard let d = v.doubleValue else {
            throw ModelFolderError(path: folder.appendingPathComponent("model_index.json").path, reason: "'\(key)' must be a number, found \(v.kindDescription)")
        }
        return d
    }

    /// The folder of component `name` (`prior`, `text_encoder`, ...).
    func component(_ name: String) throws -> URL { try index.componentFolder(name, in: folder) }
}
