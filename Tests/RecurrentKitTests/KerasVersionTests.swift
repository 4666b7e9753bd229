import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit

/// One resolver decides the Keras version, from wherever a file form records it, and refuses
/// when it is unknown and matters (`hard_sigmoid`). The numbers come from real tf-keras.
final class KerasVersionTests: XCTestCase {
    let weights = fixture("keras/tfk_lstm_options.to_json.weights.h5")
    let toJSON = fixture("keras/tfk_lstm_options.to_json.json")
    let toJSONFixture = fixture("keras/tfk_lstm_options.to_json.fixture.h5")

    /// tf-keras `save_weights` + `model.to_json()`: the JSON's own `keras_version` (the
    /// weights file records none) makes hard_sigmoid Keras 2's, and the output matches.
    func testWeightsWithToJSONArchitectureVerifyAsKeras2() throws {
        XCTAssertNil(try HDF5File.open(weights).root.attribute("keras_version"), "the weights file must not say the version itself")
        let model = try LoadedModel(contentsOf: weights, architecture: toJSON)
        XCTAssertEqual(model.kerasVersion, 2)
        XCTAssertTrue(model.recurrentLayers.contains { $0.recurrentActivation == .hardSigmoidKeras2 })
        let verification = try Verification(model: model, fixture: Fixture(contentsOf: toJSONFixture))
        XCTAssertEqual(verification.atol, Verification.defaultAbsoluteTolerance)
        XCTAssertTrue(verification.passed, "\(verification.comparisons.map(\.maxAbsoluteError))")
    }

    /// Read as Keras 3 (what a default of Keras 3 for JSON architectures did), the same
    /// files miss tf-keras's output by about 0.031: the fixture catches that regression.
    /// (`time_major`, which only Keras 2 writes, is taken out, or it would contradict.)
    func testReadAsKeras3TheFixtureFails() throws {
        let folder = try temporaryFolder(self)
        let keras3 = try editedArchitecture(in: folder) {
            $0["keras_version"] = "3.15.1"
            Self.removeTimeMajor(in: &$0)
        }
        let model = try LoadedModel(contentsOf: weights, architecture: keras3)
        XCTAssertEqual(model.kerasVersion, 3)
        let verification = try Verification(model: model, fixture: Fixture(contentsOf: toJSONFixture))
        XCTAssertFalse(verification.passed)
        XCTAssertGreaterThan(verification.comparisons.map(\.maxAbsoluteError).max() ?? 0, 0.01)
    }

    /// No version anywhere (no keras_version, and no `time_major`, which only Keras 2
    /// writes): hard_sigmoid is refused, naming the layer, the two definitions and where the
    /// version was looked for.
    func testUnknownVersionRefusesHardSigmoid() throws {
        let folder = try temporaryFolder(self)
        let unversioned = try editedArchitecture(in: folder) {
            $0["keras_version"] = nil
            Self.removeTimeMajor(in: &$0)
        }
        XCTAssertThrowsError(try LoadedModel(contentsOf: weights, architecture: unversioned)) { error in
            let text = "\(error)"
            for fragment in ["lstm", "recurrent_activation 'hard_sigmoid'", "Keras 2", "Keras 3", "keras_version"] {
                XCTAssertTrue(text.contains(fragment), "\(text) lacks '\(fragment)'")
            }
        }
    }

    /// An unknown version that matters nowhere is no refusal: a model without hard_sigmoid
    /// reads with the version left unknown.
    func testUnknownVersionIsFineWhenNothingDependsOnIt() throws {
        let folder = try temporaryFolder(self)
        let path = try editedArchitecture(in: folder) { root in
            root["keras_version"] = nil
            Self.removeTimeMajor(in: &root)
            Self.replaceHardSigmoid(in: &root)
        }
        let model = try LoadedModel(contentsOf: weights, architecture: path)
        XCTAssertNil(model.kerasVersion)
        XCTAssertTrue(model.recurrentLayers.allSatisfy { $0.recurrentActivation == .sigmoid })
    }

    /// A weights file that says Keras 2 with an architecture that says Keras 3: where a
    /// name depends on the version (hard_sigmoid) the model is refused, naming both places;
    /// where none does, the weights read as Keras itself loads them across versions, with
    /// the version left unknown.
    func testDisagreeingVersionsAreRefusedWhereTheyMatter() throws {
        let folder = try temporaryFolder(self)
        let weights = fixture("keras/tfk_stacked_bilstm.legacy-weights.h5")
        let stacked = try XCTUnwrap(HDF5File.open(fixture("keras/tfk_stacked_bilstm.h5")).root.attribute("model_config")?.stringValue)
        var stackedRoot = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(stacked.utf8)) as? [String: Any])
        stackedRoot["keras_version"] = "3.15.1"
        let stackedPath = folder.appendingPathComponent("stacked.json").path
        try JSONSerialization.data(withJSONObject: stackedRoot).write(to: URL(fileURLWithPath: stackedPath))
        let read = try LoadedModel(contentsOf: weights, architecture: stackedPath)
        XCTAssertNil(read.kerasVersion)
        XCTAssertTrue(try Verification(model: read, fixture: Fixture(contentsOf: fixture("keras/tfk_stacked_bilstm.legacy-weights.fixture.h5"))).passed)

        var hard = stackedRoot
        Self.setRecurrentActivation("hard_sigmoid", in: &hard)
        let hardPath = folder.appendingPathComponent("hard.json").path
        try JSONSerialization.data(withJSONObject: hard).write(to: URL(fileURLWithPath: hardPath))
        XCTAssertThrowsError(try LoadedModel(contentsOf: weights, architecture: hardPath)) { error in
            let text = "\(error)"
            for fragment in ["2.21.0", "3.15.1", "disagree", "hard.json", "hard_sigmoid"] {
                XCTAssertTrue(text.contains(fragment), "\(text) lacks '\(fragment)'")
            }
        }
    }

    /// Every place a version is kept resolves: root attributes (tf-keras and Keras 3 .h5),
    /// metadata.json (.keras), the weights file's attribute (legacy weights-only).
    func testEveryFileFormResolvesItsVersion() throws {
        let cases: [(String, String?, Int)] = [
            ("keras/tfk_lstm_options.h5", nil, 2), ("keras/k3_lstm_options.keras", nil, 3),
            ("keras/k3h5_gru_reset.h5", nil, 3),
            ("keras/tfk_stacked_bilstm.legacy-weights.h5", "keras/tfk_stacked_bilstm.h5", 2),
            ("keras/k3_stacked_bilstm.weights.h5", "keras/k3_stacked_bilstm.keras", 3),
        ]
        for (model, architecture, version) in cases {
            let loaded = try LoadedModel(contentsOf: fixture(model), architecture: architecture.map(fixture))
            XCTAssertEqual(loaded.kerasVersion, version, model)
        }
    }

    // MARK: Evidence only one version writes

    let keras3Weights = fixture("keras/k3_hard_sigmoid.to_json.weights.h5")
    let keras3ToJSON = fixture("keras/k3_hard_sigmoid.to_json.json")

    /// Keras 3's save_weights + to_json(), with hard_sigmoid in an LSTM and a GRU: neither
    /// file records keras_version, yet both show Keras 3, and the model verifies against
    /// Keras 3's outputs.
    func testKeras3WeightsWithToJSONReadAsKeras3() throws {
        XCTAssertNil(try HDF5File.open(keras3Weights).root.attribute("keras_version"))
        XCTAssertNil(try loadJSON("keras/k3_hard_sigmoid.to_json.json")["keras_version"])
        let model = try LoadedModel(contentsOf: keras3Weights, architecture: keras3ToJSON)
        XCTAssertEqual(model.kerasVersion, 3)
        XCTAssertEqual(model.recurrentLayers.map(\.recurrentActivation), [.hardSigmoid, .hardSigmoid])
        let verification = try Verification(model: model, fixture: Fixture(contentsOf: fixture("keras/k3_hard_sigmoid.to_json.fixture.h5")))
        XCTAssertTrue(verification.passed, "\(verification.comparisons.map(\.maxAbsoluteError))")
    }

    /// Each piece of evidence alone decides: the Keras 3 config, the Keras 3 weights file's
    /// name attributes, and tf-keras's `time_major` in a config without keras_version.
    func testEachPieceOfEvidenceAloneSaysTheVersion() throws {
        let keras3Config = try KerasConfig(json: String(contentsOfFile: keras3ToJSON, encoding: .utf8), file: keras3ToJSON, path: "config")
        var fromConfig = KerasVersionResolver()
        fromConfig.record(config: keras3Config, at: keras3ToJSON)
        XCTAssertEqual(try fromConfig.resolved(file: keras3ToJSON), .init(version: .keras3))
        let evidence = KerasVersionResolver.serializationEvidence(keras3Config.allLayers)
        for form in ["a DTypePolicy object at layers[1].config.dtype", "an InputLayer's batch_shape at layers[0].config.batch_shape",
                     "\"zero_output_for_mask\": false at layers[2].config"] {
            XCTAssertTrue(evidence.contains { $0.0 == .keras3 && $0.1.hasSuffix(form) }, "\(form): \(evidence)")
        }
        XCTAssertFalse(evidence.contains { $0.0 == .keras2 }, "\(evidence)")

        var fromWeights = KerasVersionResolver()
        try fromWeights.record(container: HDF5Container(HDF5File.open(keras3Weights)))
        XCTAssertEqual(try fromWeights.resolved(file: keras3Weights), .init(version: .keras3))
        // tf-keras writes the same layout for *.weights.h5, without the name attributes.
        var tfKerasLayout = KerasVersionResolver()
        try tfKerasLayout.record(container: HDF5Container(HDF5File.open(weights)))
        XCTAssertEqual(try tfKerasLayout.resolved(file: weights), .init(version: nil))

        var root = try loadJSON("keras/tfk_lstm_options.to_json.json")
        root["keras_version"] = nil
        let text = String(decoding: try JSONSerialization.data(withJSONObject: root), as: UTF8.self)
        var fromTimeMajor = KerasVersionResolver()
        fromTimeMajor.record(config: try KerasConfig(json: text, file: "a.json", path: "config"), at: "a.json")
        XCTAssertEqual(try fromTimeMajor.resolved(file: "a.json"), .init(version: .keras2))
        let model = try LoadedModel(contentsOf: weights, architecture: try editedArchitecture(in: temporaryFolder(self)) { $0["keras_version"] = nil })
        XCTAssertEqual(model.kerasVersion, 2)
    }

    /// The Keras 3 weights file with a tf-keras architecture saying hard_sigmoid: the weights
    /// say Keras 3, the architecture Keras 2, and the name that depends on it is refused.
    func testEvidenceThatConflictsIsRefusedWhereItMatters() throws {
        let folder = try temporaryFolder(self)
        var root = try loadJSON("keras/k3_hard_sigmoid.to_json.json")
        root["keras_version"] = "2.21.0"
        let path = folder.appendingPathComponent("mixed.json").path
        try JSONSerialization.data(withJSONObject: root).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try LoadedModel(contentsOf: keras3Weights, architecture: path)) { error in
            let text = "\(error)"
            for fragment in ["hard_sigmoid", "disagree", "keras_version '2.21.0'", "Keras 3's weights layout"] {
                XCTAssertTrue(text.contains(fragment), "\(text) lacks '\(fragment)'")
            }
        }
    }

    /// The note on pre-2.3 defaults, for each kind of version text, and its absence where
    /// the architecture is from the same era or says hard_sigmoid.
    func testDefaultsNoteForEachRelease() throws {
        let config = try KerasConfig(json: String(contentsOfFile: fixture("keras/tfk_keras22_lstm.defaults.json"), encoding: .utf8),
                                     file: "a.json", path: "config")
        func note(_ written: String, architecture: String? = "2.21.0") -> String? {
            var weights = KerasVersionResolver()
            weights.record(written, at: "w.h5")
            var arch = KerasVersionResolver()
            arch.record(architecture, at: "a.json")
            return KerasVersionResolver.defaultsNote(weights: weights, architecture: arch, config: config)
        }
        XCTAssertEqual(note("2.2.5")?.hasPrefix("weights written by Keras 2.2.5, whose LSTM default recurrent_activation was hard_sigmoid (sigmoid since 2.3.0)"), true)
        XCTAssertEqual(note("2.2.4-tf")?.hasPrefix("weights written by tf.keras 2.2.4-tf, whose LSTM default recurrent_activation under TensorFlow 1 was hard_sigmoid"), true)
        XCTAssertEqual(note("1.2.2")?.contains("default inner_activation was hard_sigmoid"), true)
        XCTAssertEqual(note("2.2.0", architecture: nil)?.isEmpty, false)
        XCTAssertNil(note("2.3.0"))
        XCTAssertNil(note("2.21.0"))
        XCTAssertNil(note("2.2.0", architecture: "2.2.4"), "an architecture of the same era states its own activations")
        let hard = try KerasConfig(json: String(contentsOfFile: fixture("keras/tfk_keras22_lstm.rebuilt.json"), encoding: .utf8),
                                   file: "a.json", path: "config")
        var weights = KerasVersionResolver()
        weights.record("2.2.0", at: "w.h5")
        XCTAssertNil(KerasVersionResolver.defaultsNote(weights: weights, architecture: KerasVersionResolver(), config: hard))
    }

    /// A GRU bias of the other reset rule's shape is refused saying which reset_after each
    /// side has (Keras 2's default was False, TensorFlow 2's is True).
    func testGRUResetAfterMismatchSaysWhich() throws {
        let folder = try temporaryFolder(self)
        var root = try loadJSON("keras/k3_hard_sigmoid.to_json.json")
        Self.editLayerConfigs(in: &root) { if $0["reset_after"] != nil { $0["reset_after"] = false } }
        let path = folder.appendingPathComponent("reset.json").path
        try JSONSerialization.data(withJSONObject: root).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try LoadedModel(contentsOf: keras3Weights, architecture: path)) { error in
            XCTAssertTrue("\(error)".contains("bias has shape [2, 9], expected [9]: the file's is a GRU with reset_after=True (the default since TensorFlow 2), the architecture's reset_after=False; rebuild the architecture with reset_after=True"), "\(error)")
        }
    }

    func testMajorVersions() {
        XCTAssertEqual(KerasVersionResolver.major("2.21.0"), .keras2)
        XCTAssertEqual(KerasVersionResolver.major("1.2.2"), .keras2)
        XCTAssertEqual(KerasVersionResolver.major("3.15.1"), .keras3)
        XCTAssertNil(KerasVersionResolver.major("4.0.0"))
        XCTAssertNil(KerasVersionResolver.major("30.1"))
        XCTAssertNil(KerasVersionResolver.major("tf"))
    }

    /// The to_json architecture with `edit` applied to its top-level object, written in `folder`.
    private func editedArchitecture(in folder: URL, _ edit: (inout [String: Any]) -> Void) throws -> String {
        var root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: toJSON))) as? [String: Any])
        edit(&root)
        let path = folder.appendingPathComponent("architecture.json").path
        try JSONSerialization.data(withJSONObject: root).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Takes `time_major` (which only Keras 2 writes) out of every layer's config.
    static func removeTimeMajor(in root: inout [String: Any]) {
        editLayerConfigs(in: &root) { $0["time_major"] = nil }
    }

    /// Sets every recurrent layer's (and wrapped layer's) `recurrent_activation`.
    static func setRecurrentActivation(_ name: String, in root: inout [String: Any]) {
        editLayerConfigs(in: &root) { if $0["recurrent_activation"] != nil { $0["recurrent_activation"] = name } }
    }

    /// Applies `edit` to every layer config, wrapped layers (`layer`, `backward_layer`) included.
    static func editLayerConfigs(in root: inout [String: Any], _ edit: (inout [String: Any]) -> Void) {
        func visit(_ entry: [String: Any]) -> [String: Any] {
            var entry = entry
            guard var config = entry["config"] as? [String: Any] else { return entry }
            edit(&config)
            for key in ["layer", "backward_layer"] {
                if let inner = config[key] as? [String: Any] { config[key] = visit(inner) }
            }
            entry["config"] = config
            return entry
        }
        guard var config = root["config"] as? [String: Any], let layers = config["layers"] as? [[String: Any]] else { return }
        config["layers"] = layers.map(visit)
        root["config"] = config
    }

    private static func replaceHardSigmoid(in root: inout [String: Any]) {
        guard var config = root["config"] as? [String: Any], let layers = config["layers"] as? [[String: Any]] else { return }
        config["layers"] = layers.map { layer -> [String: Any] in
            var layer = layer
            if var inner = layer["config"] as? [String: Any], inner["recurrent_activation"] as? String == "hard_sigmoid" {
                inner["recurrent_activation"] = "sigmoid"
                layer["config"] = inner
            }
            return layer
        }
        root["config"] = config
    }
}
