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
    func testReadAsKeras3TheFixtureFails() throws {
        let folder = try temporaryFolder(self)
        let keras3 = try editedArchitecture(in: folder) { $0["keras_version"] = "3.15.1" }
        let model = try LoadedModel(contentsOf: weights, architecture: keras3)
        XCTAssertEqual(model.kerasVersion, 3)
        let verification = try Verification(model: model, fixture: Fixture(contentsOf: toJSONFixture))
        XCTAssertFalse(verification.passed)
        XCTAssertGreaterThan(verification.comparisons.map(\.maxAbsoluteError).max() ?? 0, 0.01)
    }

    /// No version anywhere: hard_sigmoid is refused, naming the layer, the two definitions
    /// and where the version was looked for.
    func testUnknownVersionRefusesHardSigmoid() throws {
        let folder = try temporaryFolder(self)
        let unversioned = try editedArchitecture(in: folder) { $0["keras_version"] = nil }
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
            Self.replaceHardSigmoid(in: &root)
        }
        let model = try LoadedModel(contentsOf: weights, architecture: path)
        XCTAssertNil(model.kerasVersion)
        XCTAssertTrue(model.recurrentLayers.allSatisfy { $0.recurrentActivation == .sigmoid })
    }

    /// A weights file that says Keras 2 with an architecture that says Keras 3 is refused,
    /// naming both places.
    func testDisagreeingVersionsAreRefused() throws {
        let folder = try temporaryFolder(self)
        let config = try XCTUnwrap(HDF5File.open(fixture("keras/tfk_stacked_bilstm.h5")).root.attribute("model_config")?.stringValue)
        var root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(config.utf8)) as? [String: Any])
        root["keras_version"] = "3.15.1"
        let path = folder.appendingPathComponent("architecture.json").path
        try JSONSerialization.data(withJSONObject: root).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try LoadedModel(contentsOf: fixture("keras/tfk_stacked_bilstm.legacy-weights.h5"), architecture: path)) { error in
            let text = "\(error)"
            for fragment in ["2.21.0", "3.15.1", "disagree", "architecture.json"] {
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
