import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit
@testable import RecurrentEngine

/// Every fixture converts to every target it can, and back; the converted files compute the
/// real framework's outputs; impossible conversions are refused with the reason.
final class ConversionTests: XCTestCase {
    /// The conversions that must be refused, with a fragment of the reason. Anything not
    /// listed must convert.
    static let refusals: [String: [ConversionTarget: String]] = [
        "lstm_proj": [.keras: "proj_size", .keras3: "proj_size", .onnx: "proj_size"],
        "lstm_bidir_proj_lengths": [.keras: "proj_size", .keras3: "proj_size", .onnx: "proj_size"],
        "clf_bilstm_max_sigmoid": [.keras: "GlobalMaxPooling1D ignores the mask", .keras3: "GlobalMaxPooling1D ignores the mask"],
        "tfk_gru_reset": [.pytorch: "reset_after=False"],
        "k3_gru_reset": [.pytorch: "reset_after=False"],
        "k3h5_gru_reset": [.pytorch: "reset_after=False"],
        "tfk_lstm_options": [.pytorch: "nn.LSTM computes tanh and sigmoid", .keras3: "hard_sigmoid as Keras 2 defines it"],
        "tfk_lstm_options.to_json": [.pytorch: "nn.LSTM computes tanh and sigmoid", .keras3: "hard_sigmoid as Keras 2 defines it"],
        "k3_lstm_options": [.pytorch: "nn.LSTM computes tanh and sigmoid", .keras: "hard_sigmoid as Keras 3 defines it"],
        "tfk_dense_activations": [.pytorch: "hard_sigmoid as Keras 2 defines it", .keras3: "hard_sigmoid as Keras 2 defines it", .onnx: "gelu, which ONNX has from opset 20"],
        "k3_dense_activations": [.keras: "hard_sigmoid as Keras 3 defines it", .onnx: "gelu, which ONNX has from opset 20"],
        "k3_hard_sigmoid.to_json": [.pytorch: "nn.LSTM computes tanh and sigmoid", .keras: "hard_sigmoid as Keras 3 defines it"],
        "tfk_keras22_lstm.legacy-weights": [.pytorch: "nn.LSTM computes tanh and sigmoid", .keras3: "hard_sigmoid as Keras 2 defines it"],
        "tfk_text_lesson": [.onnx: "takes texts"], "tfk_text_vocab": [.onnx: "takes texts"], "tfk_text_whole": [.onnx: "takes texts"],
        "k3_text_lesson": [.onnx: "takes texts"], "k3_text_vocab": [.onnx: "takes texts"], "k3_text_whole": [.onnx: "takes texts"],
        "k3h5_text_vocab": [.onnx: "takes texts"],
        "tfk_go_backwards": [.onnx: "go_backwards under a Keras mask"], "k3_go_backwards": [.onnx: "go_backwards under a Keras mask"],
    ]

    /// Conversions back to the source's family that must be refused (the converted file
    /// keeps what the source had, and going back meets the same limit), by source and the
    /// target of the first conversion, with a fragment of the reason.
    static let backRefusals: [String: [ConversionTarget: String]] = [
        "clf_bilstm_max_sigmoid": [.pytorch: "GlobalMaxPooling1D ignores the mask"],
        "lstm_proj": [.pytorch: "proj_size"],
        "lstm_bidir_proj_lengths": [.pytorch: "proj_size"],
        "tfk_gru_reset": [.keras: "reset_after=False", .keras3: "reset_after=False", .onnx: "reset_after=False"],
        "k3_gru_reset": [.keras: "reset_after=False", .keras3: "reset_after=False", .onnx: "reset_after=False"],
        "k3h5_gru_reset": [.keras: "reset_after=False", .keras3: "reset_after=False", .onnx: "reset_after=False"],
        "tfk_lstm_options": [.keras: "hard_sigmoid as Keras 2 defines it", .onnx: "nn.LSTM computes tanh and sigmoid"],
        "tfk_lstm_options.to_json": [.keras: "hard_sigmoid as Keras 2 defines it", .onnx: "nn.LSTM computes tanh and sigmoid"],
        "k3_lstm_options": [.keras3: "hard_sigmoid as Keras 3 defines it", .onnx: "nn.LSTM computes tanh and sigmoid"],
        "tfk_dense_activations": [.keras: "hard_sigmoid as Keras 2 defines it"],
        "k3_hard_sigmoid.to_json": [.keras3: "hard_sigmoid as Keras 3 defines it", .onnx: "nn.LSTM computes tanh and sigmoid"],
        "tfk_keras22_lstm.legacy-weights": [.keras: "hard_sigmoid as Keras 2 defines it", .onnx: "nn.LSTM computes tanh and sigmoid"],
    ]

    /// How the padding of PyTorch classifiers on token ids without `padding_idx` 0 is marked
    /// for a Keras target (`--padding-id`); `PaddingConversionTests` checks these in depth.
    static let paddingIDs: [String: PaddingID] = [
        "lesson_rnn": .none, "lesson_lstm": .none, "lesson_lstm_pack": .id(0), "lesson_bilstm2_pack": .id(0),
        "lesson_lstm_pack_pad3": .id(3), "char_lstm": .none,
    ]

    struct Case {
        var name: String
        var fixture: Fixture
        var model: String
        var architecture: String?
        var isKeras: Bool
        /// How a legacy Keras weights file pairs with the architecture (the fixture's `weights_matching`).
        var weightsMatching: KerasWeightsMatching { fixture.weightsMatching ?? .order }
    }

    static func allCases() throws -> [Case] {
        var cases: [Case] = []
        for framework in ["pytorch", "keras"] {
            let folder = fixturesFolder.appendingPathComponent(framework)
            for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where file.hasSuffix(".fixture.h5") {
                let fixture = try Fixture(contentsOf: folder.appendingPathComponent(file).path)
                cases.append(Case(name: String(file.dropLast(".fixture.h5".count)), fixture: fixture,
                                  model: try XCTUnwrap(fixture.modelPath), architecture: fixture.architecturePath,
                                  isKeras: framework == "keras"))
            }
        }
        return cases
    }

    private func output(_ path: String, _ target: ConversionTarget) -> String {
        path + (target == .keras3 ? ".keras" : target == .onnx ? ".onnx" : ".h5")
    }

    func testEveryFixtureConvertsExactlyOrIsRefused() throws {
        let folder = try temporaryFolder(self)
        var converted = 0, refused = 0, refusedBack = 0
        for item in try Self.allCases() {
            let source = try LoadedModel(contentsOf: item.model, architecture: item.architecture,
                                         weightsMatching: item.weightsMatching)
            // The real framework's output. Initial states are not part of a converted model:
            // the fixture's (PyTorch's stacked h0, c0) are given to every run, one per layer.
            let expected = try XCTUnwrap(item.fixture.expected.first { $0.name == "output" }?.tensor)
            let states = try source.initialStates(h0: item.fixture.h0, c0: item.fixture.c0, batch: item.fixture.input.batch)
            // The ONNX target is also run in ONNX Runtime (ONNXWriterTests, scripts/check_onnx_runtime.py).
            for target in ConversionTarget.allCases {
                let path = output(folder.appendingPathComponent("\(item.name).\(target.rawValue)").path, target)
                let label = "\(item.name) → \(target.rawValue)"
                let paddingID = Self.paddingIDs[item.name]
                // A Keras model converted with --padding-id k ≠ 0 takes ids with 0 and k exchanged.
                var input = item.fixture.input
                // The ONNX graph keeps the source's ids (a PyTorch model's lengths input, a Keras mask of its own).
                let keepsIDs = target == .pytorch || target == .onnx
                if !keepsIDs, case let .id(pad)? = paddingID, pad != 0 { input = exchanging(input, 0, pad) }
                do {
                    _ = try Converter.convert(item.model, to: target, output: path, architecture: item.architecture,
                                              paddingID: keepsIDs ? nil : paddingID, weightsMatching: item.weightsMatching)
                } catch {
                    let reason = try XCTUnwrap(Self.refusals[item.name]?[target], "\(label) refused unexpectedly: \(error)")
                    XCTAssertTrue("\(error)".contains(reason), "\(label): \(error)")
                    XCTAssertTrue("\(error)".hasPrefix(item.model), "\(label): the message names the input: \(error)")
                    XCTAssertFalse(FileManager.default.fileExists(atPath: path), "\(label): a refusal writes nothing")
                    refused += 1
                    continue
                }
                XCTAssertNil(Self.refusals[item.name]?[target], "\(label) was expected to be refused")
                converted += 1
                try assertComputes(path, item: item, input: input, states: states, expected: expected, label: label)
                // And back to the source's own family.
                let back: ConversionTarget = item.isKeras ? (target == .pytorch ? .keras3 : .pytorch) : (target == .pytorch ? .keras : .pytorch)
                let backPath = output(path + ".back", back)
                let backLabel = "\(label) → \(back.rawValue)"
                if back != .pytorch, case let .id(pad)? = paddingID, pad != 0 { input = exchanging(input, 0, pad) }
                do {
                    _ = try Converter.convert(path, to: back, output: backPath, paddingID: back == .pytorch ? nil : paddingID)
                } catch {
                    // Going back may meet the same limits as going there (a Keras 3
                    // hard_sigmoid in a PyTorch file cannot become Keras 2, say): only those listed.
                    let reason = try XCTUnwrap(Self.backRefusals[item.name]?[target], "\(backLabel) refused unexpectedly: \(error)")
                    XCTAssertTrue("\(error)".contains(reason), "\(backLabel): \(error)")
                    XCTAssertTrue("\(error)".hasPrefix(path), "\(backLabel): the message names the input: \(error)")
                    XCTAssertFalse(FileManager.default.fileExists(atPath: backPath), "\(backLabel): a refusal writes nothing")
                    refusedBack += 1
                    continue
                }
                XCTAssertNil(Self.backRefusals[item.name]?[target], "\(backLabel) was expected to be refused")
                try assertComputes(backPath, item: item, input: input, states: states, expected: expected, label: backLabel)
            }
        }
        XCTAssertGreaterThan(converted, 100)
        XCTAssertEqual(refused, Self.refusals.values.reduce(0) { $0 + $1.count })
        XCTAssertEqual(refusedBack, Self.backRefusals.values.reduce(0) { $0 + $1.count })
    }

    private func assertComputes(_ path: String, item: Case, input: ModelInput, states: [RecurrentState]?, expected: Tensor,
                                label: String) throws {
        let model = try LoadedModel(contentsOf: path)
        // A Keras model's call mask (the fixture's lengths) is computed from the padding in an
        // ONNX graph, which takes no lengths; so is the model read back from it.
        let lengths = item.isKeras && path.contains(".onnx") ? nil : item.fixture.lengths
        let actual = try model.run(input, lengths: lengths, initialStates: states).output
        let comparison = Comparison(name: label, actual: actual, expected: expected, atol: 1e-5, rtol: 1e-4)
        XCTAssertTrue(comparison.passed, "\(label): max abs error \(comparison.maxAbsoluteError), shapes \(actual.shape) vs \(expected.shape)")
    }

    func testKerasToPyTorchNamesAndShapes() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("text_bilstm.h5").path
        _ = try Converter.convert(fixture("keras/tfk_text_bilstm.h5"), to: .pytorch, output: path)
        let root = try HDF5File.open(path).root
        let keras = try HDF5File.open(fixture("keras/tfk_text_bilstm.h5")).root
        let kernel = try keras.dataset("model_weights/bidirectional/bidirectional/forward_lstm/lstm_cell/kernel:0")
        let units = kernel.shape[1] / 4
        XCTAssertEqual(try root.dataset("embedding.weight").shape, try keras.dataset("model_weights/embedding/embedding/embeddings:0").shape)
        for suffix in ["", "_reverse"] {
            XCTAssertEqual(try root.dataset("bidirectional.weight_ih_l0\(suffix)").shape, [4 * units, kernel.shape[0]])
            XCTAssertEqual(try root.dataset("bidirectional.weight_hh_l0\(suffix)").shape, [4 * units, units])
            // LSTM: bias_ih is Keras's bias, bias_hh is zero.
            XCTAssertTrue(try root.dataset("bidirectional.bias_hh_l0\(suffix)").readFloats().allSatisfy { $0 == 0 })
        }
        let kerasBias = try keras.dataset("model_weights/bidirectional/bidirectional/forward_lstm/lstm_cell/bias:0").readFloats()
        XCTAssertEqual(try root.dataset("bidirectional.bias_ih_l0").readFloats(), kerasBias, "LSTM gate order is the same (i, f, c, o)")
        // W = kernelᵀ.
        let w = try root.dataset("bidirectional.weight_ih_l0").readFloats()
        let k = try kernel.readFloats()
        XCTAssertEqual(w[1 * kernel.shape[0] + 2], k[2 * kernel.shape[1] + 1])
        XCTAssertEqual(try root.dataset("dense.weight").shape.count, 2)
        let config = try XCTUnwrap(root.attribute("model_config")?.stringValue)
        XCTAssertTrue(config.contains("\"mask_zero\":true"), config)
    }

    func testGRUGateOrderBecomesPyTorchs() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("flatten.h5").path
        _ = try Converter.convert(fixture("keras/tfk_flatten_stateful.h5"), to: .pytorch, output: path)
        let keras = try LoadedModel(contentsOf: fixture("keras/tfk_flatten_stateful.h5"))
        let gru = try XCTUnwrap(keras.recurrentLayers.first { $0.kind == .gru })
        let units = gru.hiddenSize
        let root = try HDF5File.open(path).root
        let name = try XCTUnwrap(root.memberNames().first { $0.hasSuffix(".weight_ih_l0") })
        let converted = try root.dataset(name).readFloats()
        // Keras blocks z, r, h; PyTorch r, z, n: PyTorch's first block is Keras's second.
        let kerasWeight = gru.directions[0].inputWeight.values
        let block = units * gru.inputSize
        XCTAssertEqual(Array(converted[0..<block]), Array(kerasWeight[block..<(2 * block)]))
        XCTAssertEqual(Array(converted[block..<(2 * block)]), Array(kerasWeight[0..<block]))
        XCTAssertEqual(Array(converted[(2 * block)...]), Array(kerasWeight[(2 * block)...]))
    }

    func testNothingLost() throws {
        let folder = try temporaryFolder(self)
        let input = fixture("pytorch/lstm_basic.h5")
        // Never onto the input, not even through another spelling of its path.
        let spelled = fixturesFolder.appendingPathComponent("pytorch/../pytorch/lstm_basic.h5").path
        for output in [input, spelled] {
            XCTAssertThrowsError(try Converter.convert(input, to: .keras, output: output)) { error in
                XCTAssertTrue("\(error)".contains("is the input file"), "\(error)")
            }
        }
        // An existing output is kept unless forced.
        let existing = folder.appendingPathComponent("existing.h5").path
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: existing))
        XCTAssertThrowsError(try Converter.convert(input, to: .keras, output: existing)) { error in
            XCTAssertTrue("\(error)".contains("force: true"), "\(error)")
            XCTAssertEqual((error as? ModelError)?.options, [.force], "\(error)")
        }
        XCTAssertEqual(try String(contentsOfFile: existing, encoding: .utf8), "keep me")
        XCTAssertNoThrow(try Converter.convert(input, to: .keras, output: existing, force: true))
        XCTAssertNoThrow(try LoadedModel(contentsOf: existing))
        // A refused conversion leaves no file and no temporary behind.
        let refused = folder.appendingPathComponent("refused.keras").path
        XCTAssertThrowsError(try Converter.convert(fixture("pytorch/lstm_proj.h5"), to: .keras3, output: refused))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(), ["existing.h5"])
    }

    func testConvertCommand() throws {
        let folder = try temporaryFolder(self)
        let out = folder.appendingPathComponent("m.keras").path
        let ok = try rnnkit("convert", fixture("keras/tfk_text_bilstm.h5"), out, "--to", "keras3")
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("wrote \(out)"), ok.stdout)
        let verify = try rnnkit("verify", out, fixture("keras/tfk_text_bilstm.fixture.h5"))
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        let again = try rnnkit("convert", fixture("keras/tfk_text_bilstm.h5"), out, "--to", "keras3")
        XCTAssertEqual(again.status, 2)
        XCTAssertTrue(again.stderr.contains("--force"), again.stderr)
        let refused = try rnnkit("convert", fixture("keras/tfk_gru_reset.h5"), folder.appendingPathComponent("g.h5").path, "--to", "pytorch")
        XCTAssertEqual(refused.status, 2)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("layer gru"), refused.stderr)
        let badTarget = try rnnkit("convert", fixture("keras/tfk_gru_reset.h5"), folder.appendingPathComponent("g.h5").path, "--to", "onnx")
        XCTAssertEqual(badTarget.status, 2)
    }
}

/// Keras kernels are read and written a block of columns (rows) at a time, so that neither
/// reading nor converting holds a second full copy of a large kernel; the blocks must give
/// exactly the whole-tensor transpose, whatever the block size.
final class KerasBlockTests: XCTestCase {
    func testKernelsReadInColumnBlocksEqualTheWholeTranspose() throws {
        let container = HDF5Container(try HDF5File.open(fixture("keras/tfk_stacked_bilstm.h5")))
        var checked = 0
        for path in ["model_weights/bidirectional/bidirectional/forward_lstm/lstm_cell/kernel:0",
                     "model_weights/bidirectional/bidirectional/backward_lstm/lstm_cell/recurrent_kernel:0"] {
            let weight = try KerasWeight(XCTUnwrap(container.tensor(path)), file: "tfk_stacked_bilstm.h5")
            let whole = KerasLayout.transpose(try weight.tensor())
            for blockFloats in [1, 5, 17, weight.count - 1, weight.count, 1 << 18] {
                XCTAssertEqual(try weight.transposed(blockFloats: blockFloats), whole, "\(path), blocks of \(blockFloats)")
            }
            checked += 1
        }
        XCTAssertEqual(checked, 2)
    }

    func testKernelsWrittenInRowBlocksEqualTheWholeTranspose() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("blocks.h5").path
        let tensor = try Tensor(shape: [12, 5], values: (0..<60).map { Float($0) * 0.5 - 7 })
        let blocks: [Gate] = [.input, .forget, .cell, .output], order: [Gate] = [.forget, .output, .input, .cell]
        let weight = KerasPlan.PlannedWeight.kernel("kernel", tensor, blocks: blocks, order: order)
        let root = try HDF5File.create(path).root
        for blockFloats in [1, 7, 12, 59, 60, 1 << 18] {
            try weight.write(to: root, at: "kernel\(blockFloats)", blockFloats: blockFloats)
        }
        let expected = KerasLayout.transpose(tensor, blocks: blocks, to: order)
        XCTAssertEqual(expected.shape, [5, 12])
        for blockFloats in [1, 7, 12, 59, 60, 1 << 18] {
            let dataset = try root.dataset("kernel\(blockFloats)")
            XCTAssertEqual(dataset.shape, [5, 12])
            XCTAssertEqual(try dataset.readFloats(), expected.values, "blocks of \(blockFloats) floats")
        }
        // The one-pass transpose itself, against its definition.
        let reordered = tensor.reorderingRowBlocks(from: blocks, to: order)
        for r in 0..<12 { for c in 0..<5 { XCTAssertEqual(expected.values[c * 12 + r], reordered.values[r * 5 + c]) } }
    }
}
