import Foundation
import TextSafety

/// Decides which Keras version's semantics a model carries: the one place that reads
/// `keras_version`, wherever a file form keeps it, and the evidence only one version writes
/// (spec/keras-layout.md, "Keras version"):
///
/// - an HDF5 file's root attribute (tf-keras and Keras 3 full models, legacy weights);
/// - the `model_weights` group's attribute (tf-keras full models write it there too);
/// - a `.keras` archive's `metadata.json`;
/// - a JSON architecture's own top-level field (`model.to_json()` writes `"keras_version"`
///   and `"backend"` beside `"class_name"` and `"config"`);
/// - a config's serialization: Keras 3 alone writes dtype policy objects (`DTypePolicy`),
///   an InputLayer's `batch_shape` and an RNN's `"zero_output_for_mask": false`; Keras 2
///   (tf.keras) alone writes an RNN's `time_major`, which Keras 3 cannot even load;
/// - a Keras 3 weights file (`layers/…/vars`) whose root `vars` group carries the model's
///   `name` attribute (Keras 3.15 writes it; tf-keras, which writes the same layout for
///   `*.weights.h5`, writes no attributes there).
///
/// No place wins by default: when none says, the version is unknown, and when places
/// disagree it is in doubt. Either matters only for names whose meaning differs between
/// versions (`ActivationNames.kerasVersionDependent`, such as `hard_sigmoid`): the reader
/// refuses those, naming what it found, and reads everything else.
struct KerasVersionResolver {
    /// One piece of evidence: a `keras_version` text, or a serialization form one version
    /// alone writes, and where it was.
    struct Finding: Equatable {
        /// The `keras_version` text, or what the evidence is.
        var text: String
        var place: String
        /// For evidence other than a `keras_version` text: the version it shows.
        var evidence: KerasVersion?

        /// The version this finding shows; nil for a text that names none this build reads.
        var version: KerasVersion? { evidence ?? KerasVersionResolver.major(text) }

        /// As a message names it: `keras_version '2.21.0' (file: keras_version attribute)`.
        var described: String {
            evidence == nil ? "keras_version '\(escapedForDisplay(text))' (\(escapedForDisplay(place)))" : "\(text) (\(escapedForDisplay(place)))"
        }
    }

    /// What the findings say together.
    struct Resolution: Equatable {
        /// The version every finding agrees on; nil when none says or they disagree.
        var version: KerasVersion?
        /// When findings disagree: the two that do, described.
        var conflict: String?
    }

    private(set) var findings: [Finding] = []

    /// The name every form gives the version: an HDF5 attribute, a JSON field.
    static let field = "keras_version"

    /// A JSON document's top-level version field (`model.to_json()`, `metadata.json`); nil
    /// when it has none or it is not a string.
    static func version(in object: [String: Any]) -> String? {
        object[field] as? String
    }

    /// Records `keras_version` text found at `place`; nil or empty records nothing.
    mutating func record(_ text: String?, at place: String) {
        guard let text, !text.isEmpty else { return }
        findings.append(Finding(text: text, place: place))
    }

    /// Records the `keras_version` attributes of a container's root and, when present, of
    /// its `model_weights` group; for a Keras 3 weights layout, the root `vars` group's
    /// `name` attribute, which only Keras 3 writes.
    mutating func record(container: TensorContainer) throws {
        let file = container.file
        record(try container.stringAttribute(Self.field, at: ""), at: "\(file): keras_version attribute")
        if try container.kind(of: "model_weights") == .group {
            record(try container.stringAttribute(Self.field, at: "model_weights"),
                   at: "\(file): /model_weights keras_version attribute")
        }
        if try container.kind(of: "layers") == .group, try container.kind(of: "vars") == .group,
           try container.hasAttribute("name", at: "vars") {
            findings.append(Finding(text: "Keras 3's weights layout with a name attribute on /vars", place: file, evidence: .keras3))
        }
    }

    /// Records the top-level `keras_version` field of a JSON document (`model.to_json()`,
    /// `metadata.json`).
    mutating func record(json object: [String: Any], place: String) {
        record(Self.version(in: object), at: place)
    }

    /// Records a model config's own `keras_version` field and the serialization forms in it
    /// that one version alone writes (the first of each version), found at `place`.
    mutating func record(config: KerasConfig, at place: String) {
        record(config.kerasVersion, at: "\(place) \"keras_version\" field")
        var seen = Set<Int>()
        for (version, what) in Self.serializationEvidence(config.allLayers) where seen.insert(version.rawValue).inserted {
            findings.append(Finding(text: what, place: place, evidence: version))
        }
    }

    /// Adds another resolver's findings (an architecture's to those of its weights file).
    mutating func record(_ other: KerasVersionResolver) {
        findings += other.findings
    }

    /// The serialization forms in layer configs that one Keras version alone writes, each
    /// with where it is (`layers[1].config.dtype`), in config order.
    static func serializationEvidence(_ layers: [KerasConfig.Node]) -> [(KerasVersion, String)] {
        var found: [(KerasVersion, String)] = []
        func visit(className: String, config: [String: Any], path: String, depth: Int) {
            guard depth < 8 else { return }
            if let dtype = config["dtype"] as? [String: Any], let policy = dtype["class_name"] as? String,
               policy.hasSuffix("DTypePolicy") || policy == "DTypePolicyMap" {
                found.append((.keras3, "Keras 3's serialization: a \(escapedForDisplay(policy)) object at \(path).dtype"))
            }
            if className == "InputLayer", config["batch_shape"] != nil {
                found.append((.keras3, "Keras 3's serialization: an InputLayer's batch_shape at \(path).batch_shape"))
            }
            if KerasLayout.isRecurrentClass(className) {
                if let zero = config["zero_output_for_mask"] as? NSNumber, JSONValue.isBoolean(zero), !zero.boolValue {
                    // tf-keras writes the key only when true; Keras 3 always.
                    found.append((.keras3, "Keras 3's serialization: \"zero_output_for_mask\": false at \(path)"))
                }
                if config["time_major"] != nil {
                    found.append((.keras2, "Keras 2's serialization: time_major at \(path).time_major"))
                }
            }
            for key in ["layer", "backward_layer"] {
                if let inner = config[key] as? [String: Any], let innerClass = inner["class_name"] as? String,
                   let innerConfig = inner["config"] as? [String: Any] {
                    visit(className: innerClass, config: innerConfig, path: "\(path).\(key).config", depth: depth + 1)
                }
            }
        }
        for node in layers {
            visit(className: node.className, config: node.config, path: node.configPath, depth: 0)
        }
        return found
    }

    /// The major version of a `keras_version` text: `3.x` is Keras 3; `2.x` (tf-keras,
    /// Keras 2) and `1.x`, whose `hard_sigmoid` is the same function, are Keras 2; anything
    /// else is not understood (nil).
    static func major(_ text: String) -> KerasVersion? {
        switch text.prefix(while: { $0.isNumber }) {
        case "3": return .keras3
        case "1", "2": return .keras2
        default: return nil
        }
    }

    /// The version every finding agrees on, nil when none records one, or the disagreement.
    ///
    /// Refused when a `keras_version` text names no known version.
    func resolved(file: String) throws -> Resolution {
        var result: (version: KerasVersion, finding: Finding)?
        for finding in findings {
            guard let version = finding.version else {
                throw ModelError(file: file, message: "keras_version '\(escapedForDisplay(finding.text))' (\(escapedForDisplay(finding.place))) names no Keras version this build reads (1, 2 or 3)")
            }
            if let result, result.version != version {
                return Resolution(version: nil, conflict: "\(result.finding.described) and \(finding.described) disagree")
            }
            result = result ?? (version, finding)
        }
        return Resolution(version: result?.version)
    }

    /// Where a version was looked for, for the refusal of a version-dependent name.
    static let placesSearched = "the file's keras_version attributes, metadata.json, the JSON architecture's \"keras_version\" field, and the serialization forms only one version writes"

    // MARK: Defaults that changed between releases

    /// The numeric release of a `keras_version` text: `2.2.4-tf` → [2, 2, 4].
    static func release(_ text: String) -> [Int]? {
        let numbers = text.prefix { $0.isNumber || $0 == "." }.split(separator: ".").compactMap { Int($0) }
        return numbers.isEmpty ? nil : numbers
    }

    /// The one line to say when weights were written by a Keras whose LSTM and GRU default
    /// `recurrent_activation` was `hard_sigmoid` (Keras 1 and 2 before 2.3.0, and tf.keras
    /// under TensorFlow 1, all of which record a version below 2.3) while the architecture
    /// — from a later Keras, or one that does not say — gives such a layer `sigmoid`: a model
    /// built with those defaults, rebuilt with the later ones, is a different model, and nothing
    /// in the files shows which the user meant.
    ///
    /// GRU's `reset_after` (False in Keras 2, True in TensorFlow 2's tf.keras) changes the
    /// bias shape, so a mismatch there is refused with the shapes rather than noted.
    static func defaultsNote(weights: KerasVersionResolver, architecture: KerasVersionResolver, config: KerasConfig) -> String? {
        guard let written = weights.findings.first(where: { $0.evidence == nil }),
              let writtenRelease = release(written.text), writtenRelease.lexicographicallyPrecedes([2, 3, 0]) else { return nil }
        // An architecture from the same era states its activations as that Keras saved them.
        if architecture.findings.contains(where: { finding in
            finding.evidence == nil && release(finding.text).map { $0.lexicographicallyPrecedes([2, 3, 0]) } == true
        }) { return nil }
        var names: [String] = []
        var classes: [String] = []
        for node in config.allLayers {
            var className = node.className
            var layerConfig = node.config
            if className == "Bidirectional", let inner = node.config["layer"] as? [String: Any] {
                className = inner["class_name"] as? String ?? ""
                layerConfig = inner["config"] as? [String: Any] ?? [:]
            }
            guard let kind = KerasLayout.cellKind(ofClass: className), kind != .rnn else { continue }
            let activation = layerConfig["recurrent_activation"]
            guard activation == nil || activation is NSNull || activation as? String == "sigmoid" else { continue }
            names.append(node.name)
            if !classes.contains(className) { classes.append(className) }
        }
        guard !names.isEmpty else { return nil }
        let kinds = classes.sorted().joined(separator: " and ")
        let text = escapedForDisplay(written.text)
        let then: String
        if text.hasSuffix("-tf") {
            then = "weights written by tf.keras \(text), whose \(kinds) default recurrent_activation under TensorFlow 1 was hard_sigmoid (sigmoid in TensorFlow 2, whose 2.0 and 2.1 also record 2.2.4-tf)"
        } else if writtenRelease.first == 1 {
            then = "weights written by Keras \(text), whose \(kinds) default inner_activation was hard_sigmoid (sigmoid since Keras 2.3.0)"
        } else {
            then = "weights written by Keras \(text), whose \(kinds) default recurrent_activation was hard_sigmoid (sigmoid since 2.3.0)"
        }
        return "\(then); the architecture says sigmoid (\(shownList(names))): if the model was built with the defaults, rebuild it with recurrent_activation='hard_sigmoid'"
    }
}
