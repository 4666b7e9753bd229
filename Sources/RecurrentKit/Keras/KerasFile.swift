import Foundation
import HDF5
import TextSafety

/// How a legacy HDF5 weights-only file's layers (`layer_names`) are paired with the layers
/// of the architecture given for it, as Keras's `model.load_weights` pairs them.
public enum KerasWeightsMatching: String, Sendable, CaseIterable {
    /// In order, Keras's default (`by_name=False`): the k-th layer of the file that has
    /// weights gives the k-th layer of the model that has weights, whatever their names;
    /// the counts, each layer's weight count and every shape must agree.
    case order
    /// By layer name (`by_name=True`): each layer of the model takes the file's layer of the
    /// same name; the file's other layers are not used (and noted). A model layer the file
    /// has no layer for would keep Keras's initial (random) weights, so it is refused.
    case name
}

/// Reads the Keras file forms, chosen from content: legacy HDF5 full models (Keras 2 and
/// Keras 3), weights-only HDF5 (legacy and Keras 3 layouts), and `.keras` archives.
package enum KerasFile {
    /// True when the container holds any Keras form.
    static func isKeras(_ container: TensorContainer) throws -> Bool {
        try container.hasAttribute(KerasVersionResolver.field, at: "") || container.hasAttribute("layer_names", at: "")
            || container.hasAttribute("layer_names0", at: "") || container.kind(of: "model_weights") != nil
            || (container.kind(of: "layers") == .group && container.kind(of: "vars") == .group)
    }

    /// True when the file is a regular file that starts like a zip archive.
    static func isZip(_ path: String) -> Bool {
        (try? InputFiles.prefix(path, count: 4)) == [0x50, 0x4B, 0x03, 0x04]
    }

    /// A Keras file's container: a full model, or weights to pair with an architecture.
    ///
    /// - Parameter matching: how a legacy weights-only file's layers are paired with the
    ///   architecture's (`KerasWeightsMatching`); `.name` is refused for every other form.
    static func read(_ container: TensorContainer, architecture: Architecture?,
                     matching: KerasWeightsMatching = .order) throws -> ModelReading {
        let file = container.file
        var versions = KerasVersionResolver()
        try versions.record(container: container)
        if let configText = try container.stringAttribute("model_config", at: "") {
            if matching == .name { throw nameMatchingRefused(file: file, form: "a full model (its weights and model_config travel together)") }
            let config = try KerasConfig(json: configText, file: file, path: "model_config")
            versions.record(config: config, at: "\(file): model_config")
            let version = try versions.resolved(file: file)
            guard try container.kind(of: "model_weights") == .group else {
                throw ModelError(file: file, path: "/model_weights", message: "missing: the file has a model_config but no weights")
            }
            let source = try LegacyH5Weights(container: container.scoped(to: "model_weights"))
            let layout: Layout = version.version == .keras3 ? .keras3H5 : .keras2H5
            let own = try KerasReader.read(config: config, file: file, layout: layout, version: version, source: source)
            if let architecture {
                // The file's weights read as the given architecture describes them: it must
                // be the model the file carries, or it is refused (never ignored).
                var both = versions
                both.record(architecture.versions)
                try requireAgreement(own, architecture: architecture) {
                    try KerasReader.read(config: architecture.config, file: file, layout: layout,
                                         version: try both.resolved(file: file),
                                         source: try LegacyH5Weights(container: container.scoped(to: "model_weights")))
                }
            }
            return own
        }
        guard let architecture else {
            throw ModelError(file: file, message: "holds Keras weights without an architecture; pass the model it belongs to (\(option: .architecture, "MODEL.h5|MODEL.keras|config.json"))")
        }
        let source: KerasWeightSource
        var notes: [String] = []
        if try container.hasAttribute("layer_names", at: "") || container.hasAttribute("layer_names0", at: "") {
            let legacy = try LegacyH5Weights(container: container, architecture: architecture.config.allLayers, matching: matching)
            notes += legacy.notes
            source = legacy
        } else {
            if matching == .name {
                throw nameMatchingRefused(file: file, form: "in Keras 3's layers/…/vars layout, which Keras loads by its layers' class names and order and never by layer name")
            }
            source = Keras3Weights(container: container, layers: architecture.config.allLayers)
        }
        if let note = KerasVersionResolver.defaultsNote(weights: versions, architecture: architecture.versions,
                                                        config: architecture.config) {
            notes.append(note)
        }
        versions.record(architecture.versions)
        var model = try KerasReader.read(config: architecture.config, file: file, layout: .kerasWeights,
                                         version: try versions.resolved(file: file), source: source,
                                         assets: architecture.assets)
        model.notes += notes
        return model
    }

    /// The refusal of name matching for a file whose layers are not paired with an
    /// architecture's by name in Keras either.
    static func nameMatchingRefused(file: String, form: String) -> ModelError {
        ModelError(.invalidInput, file: file,
                   message: "matching weights to layers by name applies to a legacy HDF5 weights-only file (layer_names), as Keras's load_weights(by_name=True) does; this file is \(form)")
    }

    /// A `.keras` archive: `config.json`, `metadata.json` and `model.weights.h5`.
    ///
    /// Every member is read into memory and `model.weights.h5` opened from there (HDF5's
    /// core driver): nothing is extracted to disk. `memberLimit` bounds the weights member
    /// (tests lower it).
    ///
    /// An `architecture` given beside the archive must describe the model the archive
    /// carries (`requireAgreement`); it never replaces the archive's own.
    static func readArchive(_ path: String, architecture: Architecture? = nil,
                            memberLimit: Int = Limits.archiveMemberBytes) throws -> ModelReading {
        let archive = try KerasArchive(path)
        let (config, versions) = try archive.configuration()
        guard let image = try archive.member("model.weights.h5", limit: memberLimit) else {
            throw ModelError(file: path, path: "model.weights.h5", message: "missing from the archive")
        }
        let hdf5 = try HDF5File.open(image: image, name: "\(path)!model.weights.h5")
        let source = Keras3Weights(container: HDF5Container(hdf5), layers: config.allLayers)
        let own = try KerasReader.read(config: config, file: path, layout: .kerasArchive,
                                       version: try versions.resolved(file: path), source: source,
                                       assets: KerasArchiveAssets(archive: archive, layers: config.allLayers))
        if let architecture {
            var both = versions
            both.record(architecture.versions)
            try requireAgreement(own, architecture: architecture) {
                try KerasReader.read(config: architecture.config, file: path, layout: .kerasArchive,
                                     version: try both.resolved(file: path),
                                     source: Keras3Weights(container: HDF5Container(hdf5), layers: architecture.config.allLayers),
                                     assets: KerasArchiveAssets(archive: archive, layers: architecture.config.allLayers))
            }
        }
        return own
    }

    /// Refuses an architecture given for a file that carries its own (a full-model `.h5`, a
    /// `.keras` archive) unless the file's weights, read as it describes them (`given`),
    /// make the model the file's own description makes (`own`); the refusal names the first
    /// difference: the layer, the option and both values (`ModelDifference`).
    private static func requireAgreement(_ own: ModelReading, architecture: Architecture,
                                         given: () throws -> ModelReading) throws {
        let file = own.file
        let shownArchitecture = escapedForDisplay(architecture.path)
        let other: ModelReading
        do {
            other = try given()
        } catch let error as ModelError {
            var reason = error
            if reason.file == file { reason.file = nil }
            throw ModelError(.invalidInput, file: file,
                             message: "carries its own architecture, and the one given (\(shownArchitecture)) does not describe it: \(reason.description)")
        }
        guard let difference = ModelDifference(own.model, other.model) else { return }
        let layer = difference.layerIndex.map { LoadedModel(own).layerLabel($0) ?? "\($0)" }
        throw ModelError(.invalidInput, file: file, layer: layer,
                         message: "carries its own architecture, and the one given (\(shownArchitecture)) differs: \(difference.field) is \(difference.first) in the file, \(difference.second) in the architecture given; give none, or one that agrees")
    }

    /// Reads the named members of a zip archive into memory, each bounded by
    /// `Limits.configJSONBytes` (they are JSON documents); absent names are left out.
    static func archiveMembers(_ path: String, names: Set<String>) throws -> [String: Data] {
        let archive = try KerasArchive(path)
        var members: [String: Data] = [:]
        for name in names.sorted() {
            if let bytes = try archive.member(name, limit: Limits.configJSONBytes) { members[name] = Data(bytes) }
        }
        return members
    }

    /// The architecture for a weights-only file: a full model file or a config JSON.
    package struct Architecture {
        /// The file it was read from, as the caller named it.
        var path: String
        var config: KerasConfig
        /// Every version the architecture's file records (`KerasVersionResolver`); the weights file adds its own.
        var versions = KerasVersionResolver()
        /// A `.keras` architecture's assets (an adapted TextVectorization's vocabulary).
        var assets: KerasAssets?

        package init(contentsOf path: String) throws {
            self.path = path
            try InputFiles.requireRegularFile(path)
            if isZip(path) {
                let archive = try KerasArchive(path)
                (config, versions) = try archive.configuration()
                assets = KerasArchiveAssets(archive: archive, layers: config.allLayers)
            } else if try InputFiles.prefix(path, count: 1) == [UInt8(ascii: "{")] {
                let data = try InputFiles.read(path, limit: Limits.configJSONBytes, what: "Limits.configJSONBytes")
                config = try KerasConfig(json: String(decoding: data, as: UTF8.self), file: path, path: "config")
                versions.record(config: config, at: path)
            } else {
                let form = try ModelFileForm(sniffing: path)
                guard form == .hdf5 else {
                    throw ModelError(file: path, message: (form.refusal ?? "is \(form.title)") + ", not a Keras model or config")
                }
                let container = HDF5Container(try HDF5File.open(path))
                guard let text = try container.stringAttribute("model_config", at: "") else {
                    throw ModelError(file: path, path: "model_config", message: "missing: not a Keras full-model file")
                }
                config = try KerasConfig(json: text, file: path, path: "model_config")
                try versions.record(container: container)
                versions.record(config: config, at: "\(path): model_config")
            }
        }
    }
}

/// A `.keras` zip archive opened for reading members into memory, through the one zip
/// reader (`ZipArchive`).
///
/// The archive is refused when any name appears twice (Keras's `zipfile` reads the last of
/// two, a first-match reader the first: the two would disagree). A member Keras reads
/// (`config.json`, `metadata.json`, `model.weights.h5`) must be a plain file entry, not a
/// symbolic link or a directory. Members inflate into memory, counted as they are produced:
/// the sizes in the archive's headers are claims.
struct KerasArchive {
    let path: String
    private let archive: ZipArchive

    /// The names Keras reads; each must be a file entry when present.
    static let readNames = ["config.json", "metadata.json", "model.weights.h5"]

    init(_ path: String) throws {
        self.path = path
        archive = try ZipArchive(path: path)
        for name in Self.readNames {
            try archive.requireFile(name)
        }
    }

    /// `config.json` parsed, and the versions `metadata.json` and `config.json` record.
    func configuration() throws -> (config: KerasConfig, versions: KerasVersionResolver) {
        guard let configBytes = try member("config.json", limit: Limits.configJSONBytes) else {
            throw ModelError(file: path, path: "config.json", message: "missing from the archive")
        }
        var versions = KerasVersionResolver()
        if let metadata = try member("metadata.json", limit: Limits.configJSONBytes) {
            let object = try StrictJSON.object(String(decoding: metadata, as: UTF8.self)) {
                ModelError(file: path, path: "metadata.json", message: $0)
            }
            versions.record(json: object, place: "\(path)!metadata.json")
        }
        let config = try KerasConfig(json: String(decoding: configBytes, as: UTF8.self), file: path, path: "config.json")
        versions.record(config: config, at: "\(path)!config.json")
        return (config, versions)
    }

    /// The bytes of member `name` (nil when absent), inflated into memory and refused as
    /// soon as they pass `limit` or the member's declared size, or when their CRC differs.
    func member(_ name: String, limit: Int) throws -> [UInt8]? {
        try archive.member(name, limit: limit, bound: boundName(limit))
    }

    private func boundName(_ limit: Int) -> String {
        switch limit {
        case Limits.configJSONBytes: return "the bound on JSON documents, Limits.configJSONBytes"
        case Limits.archiveMemberBytes: return "the bound on archive members, Limits.archiveMemberBytes"
        case Limits.vocabularyBytes: return "the bound on vocabulary files, Limits.vocabularyBytes"
        default: return "the bound on this member"
        }
    }
}
