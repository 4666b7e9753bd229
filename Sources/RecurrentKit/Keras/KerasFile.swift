import Foundation
import HDF5
import ZIPFoundation

/// Reads the Keras file forms, chosen from content: legacy HDF5 full models (Keras 2 and
/// Keras 3), weights-only HDF5 (legacy and Keras 3 layouts), and `.keras` archives.
enum KerasFile {
    /// The most a `.keras` member may expand to; a zip that claims more is refused unread.
    static let archiveMemberLimit: UInt64 = 4 << 30

    /// True when the HDF5 file looks like any Keras form.
    static func isKeras(_ root: HDF5Group) throws -> Bool {
        try root.hasAttribute("keras_version") || root.hasAttribute("layer_names") || root.hasAttribute("layer_names0")
            || root.contains("model_weights") || (root.kind(of: "layers") == .group && root.kind(of: "vars") == .group)
    }

    /// True when the file starts like a zip archive.
    static func isZip(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let magic = (try? handle.read(upToCount: 4)) ?? Data()
        return magic == Data([0x50, 0x4B, 0x03, 0x04])
    }

    static func version(_ text: String?) -> KerasLayout.Version {
        (text?.hasPrefix("3") ?? false) ? .keras3 : .keras2
    }

    /// A Keras file read from HDF5: a full model, or weights to pair with an architecture.
    static func read(_ hdf5: HDF5File, architecture: Architecture?) throws -> LoadedModel {
        let root = hdf5.root
        let file = hdf5.path
        let version = version(try root.attribute("keras_version")?.stringValue)
        if let configText = try root.attribute("model_config")?.stringValue {
            let config = try KerasConfig(json: configText, file: file, path: "model_config")
            guard try root.kind(of: "model_weights") == .group else {
                throw ModelError(file: file, path: "/model_weights", message: "missing: the file has a model_config but no weights")
            }
            let source = try LegacyH5Weights(group: root.group("model_weights"), file: file)
            return try KerasReader.read(config: config, file: file, layout: version == .keras3 ? .keras3H5 : .keras2H5,
                                        version: version, source: source)
        }
        guard let architecture else {
            throw ModelError(file: file, message: "holds Keras weights without an architecture; pass the model it belongs to (--architecture MODEL.h5|MODEL.keras|config.json)")
        }
        let source: KerasWeightSource
        if try root.hasAttribute("layer_names") || root.hasAttribute("layer_names0") {
            source = try LegacyH5Weights(group: root, file: file)
        } else {
            source = Keras3Weights(root: root, file: file, layers: architecture.config.allLayers)
        }
        return try KerasReader.read(config: architecture.config, file: file, layout: .kerasWeights,
                                    version: architecture.version, source: source)
    }

    /// A `.keras` archive: `config.json`, `metadata.json` and `model.weights.h5`.
    static func readArchive(_ path: String) throws -> LoadedModel {
        let members = try archiveMembers(path, names: ["config.json", "metadata.json"])
        guard let configData = members["config.json"] else {
            throw ModelError(file: path, path: "config.json", message: "missing from the archive")
        }
        var versionText: String?
        if let metadata = members["metadata.json"],
           let object = try? JSONSerialization.jsonObject(with: metadata) as? [String: Any] {
            versionText = object["keras_version"] as? String
        }
        let config = try KerasConfig(json: String(decoding: configData, as: UTF8.self), file: path, path: "config.json")
        let hdf5 = try extractWeights(path)
        let source = Keras3Weights(root: hdf5.root, file: hdf5.path, layers: config.allLayers)
        return try KerasReader.read(config: config, file: path, layout: .kerasArchive,
                                    version: version(versionText ?? "3"), source: source)
    }

    /// Extracts `model.weights.h5` to a temporary file and opens it; the file is unlinked
    /// at once (the open handle keeps it readable), so nothing is left behind.
    static func extractWeights(_ path: String) throws -> HDF5File {
        let archive = try openArchive(path)
        guard let entry = archive["model.weights.h5"] else {
            throw ModelError(file: path, path: "model.weights.h5", message: "missing from the archive")
        }
        guard entry.uncompressedSize <= archiveMemberLimit else {
            throw ModelError(file: path, path: entry.path, message: "declares \(entry.uncompressedSize) bytes, over the limit of \(archiveMemberLimit)")
        }
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-\(UUID().uuidString).weights.h5")
        defer { try? FileManager.default.removeItem(at: temporary) }
        do {
            _ = try archive.extract(entry, to: temporary)
        } catch {
            throw ModelError(file: path, path: entry.path, message: "cannot be extracted (\(error))")
        }
        return try HDF5File.open(temporary.path, displayName: "\(path)!model.weights.h5")
    }

    static func openArchive(_ path: String) throws -> Archive {
        do {
            return try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw ModelError(file: path, message: "is not a readable zip archive (\(error))")
        }
    }

    /// Reads the named members of a zip archive into memory, refusing oversized ones.
    static func archiveMembers(_ path: String, names: Set<String>) throws -> [String: Data] {
        let archive = try openArchive(path)
        var members: [String: Data] = [:]
        for entry in archive where names.contains(entry.path) {
            guard entry.uncompressedSize <= archiveMemberLimit else {
                throw ModelError(file: path, path: entry.path, message: "declares \(entry.uncompressedSize) bytes, over the limit of \(archiveMemberLimit)")
            }
            var data = Data()
            data.reserveCapacity(Int(entry.uncompressedSize))
            do {
                _ = try archive.extract(entry) { chunk in
                    // A damaged header may understate the size; never grow past what it declared.
                    guard UInt64(data.count + chunk.count) <= entry.uncompressedSize else {
                        throw ModelError(file: path, path: entry.path, message: "expands past its declared size")
                    }
                    data.append(chunk)
                }
            } catch let error as ModelError {
                throw error
            } catch {
                throw ModelError(file: path, path: entry.path, message: "cannot be extracted (\(error))")
            }
            members[entry.path] = data
        }
        return members
    }

    /// The architecture for a weights-only file: a full model file or a config JSON.
    struct Architecture {
        var config: KerasConfig
        var version: KerasLayout.Version

        init(contentsOf path: String) throws {
            if isZip(path) {
                let members = try archiveMembers(path, names: ["config.json", "metadata.json"])
                guard let data = members["config.json"] else {
                    throw ModelError(file: path, path: "config.json", message: "missing from the archive")
                }
                config = try KerasConfig(json: String(decoding: data, as: UTF8.self), file: path, path: "config.json")
                let metadata = members["metadata.json"].flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
                version = KerasFile.version(metadata?["keras_version"] as? String ?? "3")
            } else if let data = FileManager.default.contents(atPath: path), data.first == UInt8(ascii: "{") {
                config = try KerasConfig(json: String(decoding: data, as: UTF8.self), file: path, path: "config")
                version = .keras3
            } else {
                let root = try HDF5File.open(path).root
                guard let text = try root.attribute("model_config")?.stringValue else {
                    throw ModelError(file: path, path: "model_config", message: "missing: not a Keras full-model file")
                }
                config = try KerasConfig(json: text, file: path, path: "model_config")
                version = KerasFile.version(try root.attribute("keras_version")?.stringValue)
            }
        }
    }
}
