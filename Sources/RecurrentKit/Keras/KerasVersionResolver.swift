import Foundation

/// Decides which Keras version's semantics a model carries: the one place that reads
/// `keras_version`, wherever a file form keeps it (spec/keras-layout.md):
///
/// - an HDF5 file's root attribute (tf-keras and Keras 3 full models, tf-keras legacy weights);
/// - the `model_weights` group's attribute (tf-keras full models write it there too);
/// - a `.keras` archive's `metadata.json`;
/// - a JSON architecture's own top-level field (`model.to_json()` writes `"keras_version"`
///   and `"backend"` beside `"class_name"` and `"config"`).
///
/// No place wins by default: when places disagree the model is refused, and when none says,
/// the version is unknown, which matters only for names whose meaning differs between
/// versions (`ActivationNames.kerasVersionDependent`, such as `hard_sigmoid`); the reader
/// refuses those and reads everything else.
struct KerasVersionResolver {
    /// One `keras_version` found: its text and where it was.
    struct Finding: Equatable {
        var text: String
        var place: String
    }

    private(set) var findings: [Finding] = []

    /// Records `keras_version` text found at `place`; nil or empty records nothing.
    mutating func record(_ text: String?, at place: String) {
        guard let text, !text.isEmpty else { return }
        findings.append(Finding(text: text, place: place))
    }

    /// Records the `keras_version` attributes of a container's root and, when present, of
    /// its `model_weights` group.
    mutating func record(container: TensorContainer) throws {
        let file = container.file
        record(try container.stringAttribute("keras_version", at: ""), at: "\(file): keras_version attribute")
        if try container.kind(of: "model_weights") == .group {
            record(try container.stringAttribute("keras_version", at: "model_weights"),
                   at: "\(file): /model_weights keras_version attribute")
        }
    }

    /// Records the top-level `keras_version` field of a JSON document (`model.to_json()`,
    /// `metadata.json`).
    mutating func record(json object: [String: Any], place: String) {
        record(object["keras_version"] as? String, at: place)
    }

    /// Adds another resolver's findings (an architecture's to those of its weights file).
    mutating func record(_ other: KerasVersionResolver) {
        findings += other.findings
    }

    /// The major version of a `keras_version` text: `3.x` is Keras 3; `2.x` (tf-keras,
    /// Keras 2) and `1.x`, whose `hard_sigmoid` is the same function, are Keras 2; anything
    /// else is not understood (nil).
    static func major(_ text: String) -> KerasVersion? {
        switch text.prefix { $0.isNumber } {
        case "3": return .keras3
        case "1", "2": return .keras2
        default: return nil
        }
    }

    /// The version every finding agrees on, or nil when none records one.
    ///
    /// Refused, naming both places, when findings disagree or a text names no known version.
    func resolved(file: String) throws -> KerasVersion? {
        var result: (version: KerasVersion, finding: Finding)?
        for finding in findings {
            guard let version = Self.major(finding.text) else {
                throw ModelError(file: file, message: "keras_version '\(shown(finding.text))' (\(shown(finding.place))) names no Keras version this build reads (1, 2 or 3)")
            }
            if let result, result.version != version {
                throw ModelError(file: file, message: "keras_version '\(shown(result.finding.text))' (\(shown(result.finding.place))) and '\(shown(finding.text))' (\(shown(finding.place))) disagree; which Keras the model is for is ambiguous, so it is refused")
            }
            result = result ?? (version, finding)
        }
        return result?.version
    }

    /// Where a version was looked for, for the refusal of a version-dependent name.
    static let placesSearched = "the file's keras_version attributes, metadata.json, or the JSON architecture's \"keras_version\" field"
}
