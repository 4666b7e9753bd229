import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit

/// PyTorch's own containers end to end: every conversion to `.pt` and `.safetensors`
/// computes what the framework computed, a PyTorch source keeps its modules and keys, the
/// container follows OUT's extension, a state_dict without `model_config` gets a skeleton
/// that runs once its readout is chosen, and `--key` picks a checkpoint's entry.
final class PyTorchContainerTests: XCTestCase {
    func testEveryConversionToPtAndSafetensorsComputesTheFrameworksOutputs() throws {
        let folder = try temporaryFolder(self)
        var checked = 0
        for item in try ConversionTests.allCases() where ConversionTests.refusals[item.name]?[.pytorch] == nil {
            let expected = try XCTUnwrap(item.fixture.expected.first { $0.name == "output" }?.tensor)
            let source = try LoadedModel(contentsOf: item.model, architecture: item.architecture,
                                         weightsMatching: item.weightsMatching)
            let states = try source.initialStates(h0: item.fixture.h0, c0: item.fixture.c0, batch: item.fixture.input.batch)
            for (ext, layout) in [("pt", Layout.pytorchSave), ("safetensors", .pytorchSafetensors)] {
                let path = folder.appendingPathComponent("\(item.name).\(ext)").path
                _ = try Converter.convert(item.model, to: .pytorch, output: path, architecture: item.architecture,
                                          weightsMatching: item.weightsMatching)
                let written = try LoadedModel(contentsOf: path)
                XCTAssertEqual(written.layout, layout, path)
                XCTAssertEqual(ModelFingerprint(written.model), ModelFingerprint(source.model), path)
                let actual = try written.run(item.fixture.input, lengths: item.fixture.lengths, initialStates: states).output
                let comparison = Comparison(name: path, actual: actual, expected: expected, atol: 1e-5, rtol: 1e-4)
                XCTAssertTrue(comparison.passed, "\(item.name).\(ext): max abs error \(comparison.maxAbsoluteError)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 80)
    }

    /// A 2-layer bidirectional nn.LSTM stays one module: the written keys are the source's,
    /// so the file loads into `nn.LSTM(num_layers=2, bidirectional=True)` (checked in real
    /// torch by fixtures/convert/check_frameworks.py); a whole model keeps its model_config.
    func testAPyTorchSourceKeepsItsModulesAndKeys() throws {
        let folder = try temporaryFolder(self)
        for name in ["lstm_bidir_2layer_lengths", "rnn_deep_prefix", "clf_embed_bigru_softmax", "clf_lstm2_last_step_mlp"] {
            let input = fixture("pytorch/\(name).h5")
            let sourceFile = HDF5Container(try HDF5File.open(input))
            let sourceKeys = Set(try sourceFile.tensorNames(below: "").map { $0.replacingOccurrences(of: "/", with: ".") })
            let sourceConfig = try sourceFile.stringAttribute("model_config", at: "").map { try PyTorchModelConfig.decode($0, file: input) }
            for ext in ["pt", "safetensors", "h5"] {
                let path = folder.appendingPathComponent("\(name).\(ext)").path
                _ = try Converter.convert(input, to: .pytorch, output: path)
                let container: TensorContainer = switch ext {
                case "pt": try TorchSaveFile.read(path)
                case "safetensors": try SafetensorsFile.read(path)
                default: HDF5Container(try HDF5File.open(path))
                }
                let keys = Set(try container.tensorNames(below: "").map { $0.replacingOccurrences(of: "/", with: ".") })
                XCTAssertEqual(keys, sourceKeys, "\(name).\(ext)")
                let config = try container.stringAttribute("model_config", at: "").map { try PyTorchModelConfig.decode($0, file: path) }
                XCTAssertEqual(config, sourceConfig, "\(name).\(ext)")
            }
        }
        XCTAssertTrue(Set(try TorchSaveFile.read(folder.appendingPathComponent("lstm_bidir_2layer_lengths.pt").path)
            .tensorNames(below: "")).contains("rnn.weight_ih_l1_reverse"))
    }

    func testTheContainerFollowsTheExtensionAndAnythingElseIsRefused() throws {
        let folder = try temporaryFolder(self)
        let model = fixture("pytorch/lstm_basic.h5")
        for (name, target, expected) in [("m.pt", "pytorch", Layout.pytorchSave), ("m.PTH", "pytorch", .pytorchSave),
                                         ("m.safetensors", "pytorch", .pytorchSafetensors), ("m.hdf5", "pytorch", .pytorch)] {
            let path = folder.appendingPathComponent(name).path
            let result = try rnnkit("convert", model, path, "--to", target)
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertEqual(try LoadedModel(contentsOf: path).layout, expected, name)
        }
        for (name, target, mentions) in [("m.bin", "pytorch", ".pt, .pth, .safetensors, .h5 or .hdf5"),
                                         ("m.h5", "keras3", "must end in .keras"), ("m.keras", "keras", "must end in .h5 or .hdf5"),
                                         ("m", "pytorch", ".pt, .pth")] {
            let path = folder.appendingPathComponent(name).path
            let result = try rnnkit("convert", fixture("keras/tfk_text_bilstm.h5"), path, "--to", target)
            XCTAssertEqual(result.status, 2, name)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(mentions), result.stderr)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path)
                               .filter { $0 == name || $0.hasPrefix(".\(name).") }, [], "\(name): nothing written")
        }
    }

    /// The skeleton `inspect` prints for a classifier's state_dict without model_config
    /// runs once its readout is chosen, and verifies against torch's outputs.
    func testTheSkeletonOfAStateDictWithoutModelConfigRunsOnceItsReadoutIsChosen() throws {
        let folder = try temporaryFolder(self)
        let name = "clf_embed_lstm_last_hidden"
        let stripped = folder.appendingPathComponent("\(name).h5").path
        // The state_dict without its model_config (the handles close at the end of the scope).
        do {
            let source = try HDF5File.open(fixture("pytorch/\(name).h5")).root
            let copy = try HDF5File.create(stripped).root
            for key in try source.datasetPaths() {
                let dataset = try source.dataset(key)
                try copy.write(key, floats: try dataset.readFloats(), shape: dataset.shape)
            }
        }
        let fixtureFile = fixture("pytorch/\(name).fixture.h5")
        let refused = try rnnkit("verify", stripped, fixtureFile)
        XCTAssertEqual(refused.status, 2)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        for part in ["holds 3 modules and no model_config", "embed (Embedding [20, 5])", "rnn (LSTM 5 → 6)", "fc (Linear 6 → 3)",
                     "--architecture CONFIG.json", "CHOOSE ONE: last_hidden"] {
            XCTAssertTrue(refused.stderr.contains(part), "\(part): \(refused.stderr)")
        }
        let inspected = try rnnkit("inspect", stripped)
        XCTAssertEqual(inspected.status, 0, inspected.stderr)
        let skeleton = try XCTUnwrap(inspected.stdout.range(of: "\n{").map { String(inspected.stdout[$0.lowerBound...]) })
        let config = folder.appendingPathComponent("config.json")
        let chosen = skeleton.replacingOccurrences(of: #""CHOOSE ONE: [^"]*""#, with: #""last_hidden""#, options: .regularExpression)
        XCTAssertNotEqual(chosen, skeleton)
        try Data(chosen.utf8).write(to: config)
        let unchosen = folder.appendingPathComponent("unchosen.json")
        try Data(skeleton.utf8).write(to: unchosen)
        let notYet = try rnnkit("verify", stripped, fixtureFile, "--architecture", unchosen.path)
        XCTAssertEqual(notYet.status, 2, "an unchosen readout is not a valid config")
        XCTAssertTrue(notYet.stderr.contains("mode"), notYet.stderr)
        let verified = try rnnkit("verify", stripped, fixtureFile, "--architecture", config.path)
        XCTAssertEqual(verified.status, 0, verified.stdout + verified.stderr)
        XCTAssertTrue(verified.stdout.contains("ok       output"), verified.stdout)
        // A different readout computes something else: the choice is not decoration.
        let other = folder.appendingPathComponent("mean.json")
        try Data(skeleton.replacingOccurrences(of: #""CHOOSE ONE: [^"]*""#, with: #""mean""#, options: .regularExpression).utf8).write(to: other)
        XCTAssertEqual(try rnnkit("verify", stripped, fixtureFile, "--architecture", other.path).status, 1)
    }

    func testKeyPicksTheStateDictOfACheckpointWithSeveral() throws {
        let file = fixture("pytorch-files/unit/two_state_dicts.pt")
        let refused = try rnnkit("inspect", file)
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("model (4 tensors), ema/state_dict (4 tensors)"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("--key"), refused.stderr)
        for key in ["model", "ema/state_dict"] {
            let picked = try rnnkit("inspect", file, "--key", key, "--json")
            XCTAssertEqual(picked.status, 0, picked.stderr)
        }
        let models = try ["model", "ema/state_dict"].map { try LoadedModel(contentsOf: file, key: $0) }
        XCTAssertNotEqual(ModelFingerprint(models[0].model), ModelFingerprint(models[1].model), "the two entries differ")
        let missing = try rnnkit("inspect", file, "--key", "nope")
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("ema/state_dict"), missing.stderr)
        let notTorch = try rnnkit("inspect", fixture("pytorch/lstm_basic.h5"), "--key", "model")
        XCTAssertEqual(notTorch.status, 2)
        XCTAssertTrue(notTorch.stderr.contains("--key picks a state_dict inside a torch.save checkpoint"), notTorch.stderr)
    }

    /// An --architecture document is bounded before anything parses it.
    func testAnArchitectureIsCountedBeforeItIsParsed() throws {
        let folder = try temporaryFolder(self)
        let config = folder.appendingPathComponent("big.json")
        // Shaped like a Keras config, which is otherwise recognised by parsing it.
        try Data(("{\"class_name\": \"Sequential\", \"config\": [" + String(repeating: "1,", count: Limits.configJSONItems) + "1]}").utf8)
            .write(to: config)
        let result = try rnnkit("inspect", fixture("pytorch/lstm_basic.h5"), "--architecture", config.path)
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.contains("Limits.configJSONItems"), result.stderr)
        XCTAssertTrue(result.stderr.contains("refused before parsing"), result.stderr)
    }

    func testABareModulesEmittedPythonIsThatTorchModule() throws {
        let folder = try temporaryFolder(self)
        let out = folder.appendingPathComponent("m.pt").path
        let module = folder.appendingPathComponent("m.py").path
        let result = try rnnkit("convert", fixture("pytorch/lstm_bidir_2layer_lengths.h5"), out, "--to", "pytorch", "--emit-python", module)
        XCTAssertEqual(result.status, 0, result.stderr)
        let python = try String(contentsOfFile: module, encoding: .utf8)
        XCTAssertTrue(python.contains("self.rnn = nn.LSTM(input_size=4, hidden_size=5, num_layers=2, bias=True, batch_first=True, bidirectional=True)"), python)
        XCTAssertTrue(python.contains(#"PREFIX = "rnn."  # before every key in the file"#), python)
        XCTAssertTrue(python.contains("model.rnn.load_state_dict(state, strict=True)"), python)
        XCTAssertTrue(python.contains(#"torch.load(path, weights_only=True, map_location="cpu")"#), python)
    }
}
