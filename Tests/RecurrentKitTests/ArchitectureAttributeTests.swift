import Foundation
import HDF5
import RecurrentEngine
import TestSupport
import XCTest
@testable import RecurrentKit

/// An architecture means one thing (spec/fixture-format.md, "Which architecture"): a
/// fixture's `architecture` attribute applies only to the model it was written for; a
/// manifest's `architecture: null` is none; an architecture given for a file that carries
/// its own is compared with it and refused when it differs, never ignored. Every model here
/// is a committed file from the real frameworks, or rnnkit's conversion of one.
final class ArchitectureAttributeTests: XCTestCase {
    private let manager = FileManager.default

    /// `source` converted to `target` (`architecture` for the source) in a fresh folder.
    private func converted(_ source: String, architecture: String?, to target: ConversionTarget, as name: String,
                           paddingID: PaddingID? = nil) throws -> String {
        let output = try temporaryFolder(self).appendingPathComponent(name).path
        _ = try Converter.convert(fixture(source), to: target, output: output,
                                  architecture: architecture.map(fixture), paddingID: paddingID)
        return output
    }

    /// A copy of fixture `name` at `path`: its inputs and expected outputs, with exactly the
    /// `attributes` given (a `model` and `architecture`, or fewer).
    private func copyFixture(_ name: String, to path: String, attributes: [String: String]) throws {
        let original = try Fixture(contentsOf: fixture(name))
        let root = try HDF5File.create(path).root
        switch original.input {
        case let .features(x): try root.write("inputs", floats: x.values, shape: x.shape)
        case let .tokens(ids, batch, time): try root.write("inputs", integers: ids.map(Int64.init), shape: [batch, time])
        case .texts: return XCTFail("features or token ids expected")
        }
        if let lengths = original.lengths { try root.write("lengths", integers: lengths.map(Int64.init), shape: [lengths.count]) }
        for (tensorName, tensor) in original.expected {
            try root.write("expected/\(tensorName)", floats: tensor.values, shape: tensor.shape)
        }
        for (attribute, value) in attributes { try root.setAttribute(attribute, .string(value)) }
    }

    // MARK: - The fixture's attribute follows only its model

    /// `verify CONVERTED ORIGINAL.fixture.h5`: the original's fixture names an architecture
    /// for the original's weights; the converted file, which carries its own, is verified
    /// with its own. Each of these failed before on the architecture of a file never passed.
    func testAFixturesArchitectureDoesNotFollowItToAConvertedModel() throws {
        let cases: [(model: String, fixture: String)] = [
            // Keras weights-only (architecture: a full .h5) → a PyTorch .pt with its model_config.
            (try converted("keras/tfk_stacked_bilstm.weights.h5", architecture: "keras/tfk_stacked_bilstm.h5",
                           to: .pytorch, as: "bilstm.pt"), "keras/tfk_stacked_bilstm.weights.fixture.h5"),
            // Keras 3 .weights.h5 (architecture: the .keras) → safetensors.
            (try converted("keras/k3_stacked_bilstm.weights.h5", architecture: "keras/k3_stacked_bilstm.keras",
                           to: .pytorch, as: "bilstm.safetensors"), "keras/k3_stacked_bilstm.weights.fixture.h5"),
            // A PyTorch .pt (architecture: its model_config JSON) → a tf-keras full model.
            (try converted("pytorch-files/clf_embed_lstm_last_hidden.pt",
                           architecture: "pytorch-files/clf_embed_lstm_last_hidden.config.json",
                           to: .keras, as: "clf.h5", paddingID: .id(0)), "pytorch-files/clf_embed_lstm_last_hidden.fixture.h5"),
        ]
        for (model, fixtureName) in cases {
            let original = try Fixture(contentsOf: fixture(fixtureName))
            XCTAssertNotNil(original.architecture, "\(fixtureName) must name an architecture for this test")
            XCTAssertFalse(original.architectureApplies(to: model, key: nil), model)
            XCTAssertTrue(original.architectureApplies(to: try XCTUnwrap(original.modelPath), key: nil), fixtureName)
            // The two-file form.
            let pair = try rnnkit("verify", model, fixture(fixtureName))
            XCTAssertEqual(pair.status, 0, "\(model): \(pair.stdout) \(pair.stderr)")
            XCTAssertTrue(pair.stdout.contains("ok      "), pair.stdout)
            // A manifest case, and the case in this process.
            let result = VerificationSuite.run(VerificationCase(fixture: fixture(fixtureName), model: model))
            XCTAssertEqual(result.status, .passed, "\(model): \(result.error ?? "")")
            XCTAssertNil(result.verificationCase.architecture, model)
            let manifest = try temporaryFolder(self).appendingPathComponent("cases.yaml").path
            try Data("- {model: \"\(model)\", fixture: \"\(fixture(fixtureName))\"}\n".utf8).write(to: URL(fileURLWithPath: manifest))
            let many = try rnnkit("verify", "--manifest", manifest)
            XCTAssertEqual(many.status, 0, "\(model): \(many.stdout) \(many.stderr)")
        }
        // The original itself still gets the fixture's architecture (it needs it).
        let weights = try rnnkit("verify", fixture("keras/tfk_stacked_bilstm.weights.h5"),
                                 fixture("keras/tfk_stacked_bilstm.weights.fixture.h5"))
        XCTAssertEqual(weights.status, 0, weights.stdout + weights.stderr)
    }

    /// A fixture that names no model: its architecture goes to a model found by name that
    /// needs one (Keras weights only), and not to one that carries its own (a converted .pt).
    func testWithoutAModelAttributeTheArchitectureGoesOnlyToAModelThatNeedsOne() throws {
        let folder = try temporaryFolder(self)
        try manager.copyItem(atPath: fixture("keras/tfk_stacked_bilstm.h5"), toPath: folder.appendingPathComponent("arch.h5").path)
        // Weights only, found by name: needs the architecture, gets it.
        try manager.copyItem(atPath: fixture("keras/tfk_stacked_bilstm.weights.h5"),
                             toPath: folder.appendingPathComponent("weights.h5").path)
        try copyFixture("keras/tfk_stacked_bilstm.weights.fixture.h5", to: folder.appendingPathComponent("weights.fixture.h5").path,
                        attributes: ["architecture": "arch.h5"])
        // A converted .pt with its own model_config, found by name: does not need it.
        let pt = try converted("keras/tfk_stacked_bilstm.weights.h5", architecture: "keras/tfk_stacked_bilstm.h5",
                               to: .pytorch, as: "x.pt")
        try manager.copyItem(atPath: pt, toPath: folder.appendingPathComponent("converted.pt").path)
        try copyFixture("keras/tfk_stacked_bilstm.weights.fixture.h5", to: folder.appendingPathComponent("converted.fixture.h5").path,
                        attributes: ["architecture": "arch.h5"])
        XCTAssertTrue(LoadedModel.needsArchitecture(folder.appendingPathComponent("weights.h5").path))
        XCTAssertFalse(LoadedModel.needsArchitecture(folder.appendingPathComponent("converted.pt").path))
        XCTAssertFalse(LoadedModel.needsArchitecture(fixture("keras/tfk_stacked_bilstm.h5")))
        XCTAssertFalse(LoadedModel.needsArchitecture(fixture("keras/k3_stacked_bilstm.keras")))
        XCTAssertFalse(LoadedModel.needsArchitecture(fixture("pytorch/lstm_basic.h5")), "a bare module")
        XCTAssertTrue(LoadedModel.needsArchitecture(fixture("pytorch-files/clf_embed_lstm_last_hidden.pt")))
        XCTAssertFalse(LoadedModel.needsArchitecture(fixture("pytorch-files/clf_lstm2_last_step_mlp.pt")), "carries a model_config")
        let result = try rnnkit("verify", folder.path)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertEqual(result.stdout.split(separator: "\n").last, "2 passed, 0 failed, 0 errors")
    }

    // MARK: - A manifest's null

    /// `architecture: null` (YAML's null, `~`, JSON's null) means none — not the fixture's
    /// attribute, and not a file named "null"; a quoted 'null' is a file name.
    func testManifestArchitectureNullMeansNone() throws {
        let folder = try temporaryFolder(self)
        let weights = fixture("keras/tfk_stacked_bilstm.weights.h5")
        let weightsFixture = fixture("keras/tfk_stacked_bilstm.weights.fixture.h5")
        let pt = try converted("keras/tfk_stacked_bilstm.weights.h5", architecture: "keras/tfk_stacked_bilstm.h5",
                               to: .pytorch, as: "x.pt")
        let yaml = folder.appendingPathComponent("cases.yaml").path
        try Data("""
        - {name: converted, model: "\(pt)", fixture: "\(weightsFixture)", architecture: null}
        - {name: tilde, model: "\(pt)", fixture: "\(weightsFixture)", architecture: ~}
        - {name: weights, model: "\(weights)", fixture: "\(weightsFixture)", architecture: null}
        - {name: quoted, model: "\(weights)", fixture: "\(weightsFixture)", architecture: 'null'}

        """.utf8).write(to: URL(fileURLWithPath: yaml))
        let json = folder.appendingPathComponent("cases.json").path
        try Data("""
        [{"name": "converted", "model": "\(pt)", "fixture": "\(weightsFixture)", "architecture": null},
         {"name": "weights", "model": "\(weights)", "fixture": "\(weightsFixture)", "architecture": null}]
        """.utf8).write(to: URL(fileURLWithPath: json))

        let yamlCases = try VerificationSuite.cases(manifest: yaml)
        XCTAssertEqual(yamlCases.map(\.withoutArchitecture), [true, true, true, false])
        XCTAssertEqual(yamlCases.map(\.architecture), [nil, nil, nil, folder.appendingPathComponent("null").path])
        let jsonCases = try VerificationSuite.cases(manifest: json)
        XCTAssertEqual(jsonCases.map(\.withoutArchitecture), [true, true])

        // In this process and through the command line (each case a child process).
        XCTAssertEqual(VerificationSuite.run(yamlCases[0]).status, .passed)
        let none = VerificationSuite.run(yamlCases[2])
        XCTAssertEqual(none.status, .error)
        XCTAssertTrue(none.error?.contains("holds Keras weights without an architecture") ?? false, none.error ?? "")
        let result = try rnnkit("verify", "--manifest", yaml)
        XCTAssertEqual(result.status, 2, result.stdout + result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 5, result.stdout)
        XCTAssertTrue(lines[0].hasPrefix("ok       \(weightsFixture) (x.pt)"), lines[0])
        XCTAssertTrue(lines[1].hasPrefix("ok       \(weightsFixture) (x.pt)"), lines[1])
        XCTAssertTrue(lines[2].contains("holds Keras weights without an architecture"), lines[2])
        XCTAssertTrue(lines[3].contains("\(folder.path)/null: no such file"), lines[3])
        XCTAssertEqual(lines[4], "2 passed, 0 failed, 2 errors")
        let jsonResult = try rnnkit("verify", "--manifest", json)
        XCTAssertEqual(jsonResult.stdout.split(separator: "\n").last, "1 passed, 0 failed, 1 error")
    }

    // MARK: - An architecture given for a file that carries its own

    /// The `config.json` of a `.keras` archive, edited by `edit`, written beside the test.
    private func archiveConfig(_ archive: String, name: String, edit: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        let members = try KerasFile.archiveMembers(fixture(archive), names: ["config.json"])
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: try XCTUnwrap(members["config.json"])) as? [String: Any])
        edit(&config)
        let path = try temporaryFolder(self).appendingPathComponent(name).path
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Every `recurrent_activation` of `sigmoid` in a config made `hard_sigmoid`.
    private static func hardSigmoid(_ value: Any) -> Any {
        if var object = value as? [String: Any] {
            for (key, item) in object {
                object[key] = key == "recurrent_activation" && item as? String == "sigmoid" ? "hard_sigmoid" : hardSigmoid(item)
            }
            return object
        }
        if let list = value as? [Any] { return list.map(hardSigmoid) }
        return value
    }

    /// A `.keras` archive given an architecture: its own config (or the archive itself) is
    /// accepted; a config whose LSTMs use `hard_sigmoid` where the file's use `sigmoid` — which
    /// verified silently before — is refused naming the layer, the option and both values.
    func testAnArchitectureGivenForAKerasArchiveIsCompared() throws {
        let archive = fixture("keras/k3_stacked_bilstm.keras")
        let fixtureFile = fixture("keras/k3_stacked_bilstm.fixture.h5")
        let same = try archiveConfig("keras/k3_stacked_bilstm.keras", name: "same.json")
        for architecture in [same, archive] {
            let result = try rnnkit("verify", archive, fixtureFile, "--architecture", architecture)
            XCTAssertEqual(result.status, 0, "\(architecture): \(result.stdout) \(result.stderr)")
        }
        let hard = try archiveConfig("keras/k3_stacked_bilstm.keras", name: "hard.json") {
            $0 = Self.hardSigmoid($0) as! [String: Any]
        }
        let message = "\(archive): layer bidirectional (Bidirectional(LSTM)): carries its own architecture, and the one given (\(hard)) differs: recurrent_activation is sigmoid in the file, hard_sigmoid as Keras 3 defines it, clip(x/6 + 0.5, 0, 1) in the architecture given; give none, or one that agrees"
        XCTAssertThrowsError(try LoadedModel(contentsOf: archive, architecture: hard)) { error in
            XCTAssertEqual((error as? ModelError)?.kind, .invalidInput)
            XCTAssertEqual("\(error)", message)
        }
        for arguments in [["verify", archive, fixtureFile, "--architecture", hard],
                          ["inspect", archive, "--architecture", hard],
                          ["convert", archive, try temporaryFolder(self).appendingPathComponent("o.pt").path,
                           "--to", "pytorch", "--architecture", hard]] {
            let result = try rnnkit(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stdout)")
            XCTAssertEqual(result.stderr, "rnnkit: error: \(message)\n", "\(arguments)")
        }
        // Another merge mode on the second Bidirectional: named, with both values.
        let merge = try archiveConfig("keras/k3_stacked_bilstm.keras", name: "merge.json") { config in
            var inner = config["config"] as! [String: Any]
            var layers = inner["layers"] as! [[String: Any]]
            var layer = layers[3]["config"] as! [String: Any]
            XCTAssertEqual(layer["merge_mode"] as? String, "sum", "the fixture changed")
            layer["merge_mode"] = "mul"
            layers[3]["config"] = layer
            inner["layers"] = layers
            config["config"] = inner
        }
        XCTAssertThrowsError(try LoadedModel(contentsOf: archive, architecture: merge)) { error in
            XCTAssertEqual((error as? ModelError)?.layer, "bidirectional_1 (Bidirectional(LSTM))")
            XCTAssertTrue("\(error)".hasSuffix("differs: merge_mode is sum in the file, mul in the architecture given; give none, or one that agrees"), "\(error)")
        }
        // Other units: the architecture cannot even hold the file's weights.
        let units = try archiveConfig("keras/k3_stacked_bilstm.keras", name: "units.json") { config in
            let text = String(decoding: try! JSONSerialization.data(withJSONObject: config), as: UTF8.self)
            config = try! JSONSerialization.jsonObject(with: Data(text.replacingOccurrences(of: "\"units\":3", with: "\"units\":5").utf8)) as! [String: Any]
        }
        XCTAssertThrowsError(try LoadedModel(contentsOf: archive, architecture: units)) { error in
            XCTAssertEqual((error as? ModelError)?.kind, .invalidInput)
            XCTAssertTrue("\(error)".hasPrefix("\(archive): carries its own architecture, and the one given (\(units)) does not describe it: "), "\(error)")
        }
    }

    /// A tf-keras full-model `.h5` given an architecture: its own `model_config` (or the file
    /// itself) is accepted; `hard_sigmoid` where the file has `sigmoid` is refused.
    func testAnArchitectureGivenForAFullModelH5IsCompared() throws {
        let model = fixture("keras/tfk_stacked_bilstm.h5")
        let fixtureFile = fixture("keras/tfk_stacked_bilstm.fixture.h5")
        let text = try XCTUnwrap(try HDF5File.open(model).root.attribute("model_config")?.stringValue)
        let folder = try temporaryFolder(self)
        let same = folder.appendingPathComponent("same.json").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: same))
        for architecture in [same, model] {
            let result = try rnnkit("verify", model, fixtureFile, "--architecture", architecture)
            XCTAssertEqual(result.status, 0, "\(architecture): \(result.stdout) \(result.stderr)")
        }
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)))
        let hard = folder.appendingPathComponent("hard.json").path
        try JSONSerialization.data(withJSONObject: Self.hardSigmoid(object)).write(to: URL(fileURLWithPath: hard))
        let result = try rnnkit("verify", model, fixtureFile, "--architecture", hard)
        XCTAssertEqual(result.status, 2, result.stdout)
        XCTAssertTrue(result.stderr.contains("recurrent_activation is sigmoid in the file, hard_sigmoid as Keras 2 defines it, clip(0.2x + 0.5, 0, 1) in the architecture given"), result.stderr)
        XCTAssertTrue(result.stderr.hasPrefix("rnnkit: error: \(model): layer bidirectional (Bidirectional(LSTM)): "), result.stderr)
    }
}
