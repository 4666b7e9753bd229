import Foundation
import XCTest
import TestSupport
@testable import RecurrentKit

/// `rnnkit convert --to onnx`: the written graph's operators and inputs (read with the
/// generated protobuf types), refusals, and — through Python with `onnx` and `onnxruntime` —
/// the ONNX checker and ONNX Runtime against fixtures the frameworks computed
/// (`scripts/check_onnx_runtime.py`, which `make test` also runs over every fixture). The numbers come from torch and Keras, never from rnnkit.
final class ONNXWriterTests: XCTestCase {
    private func convert(_ model: String, _ extra: [String] = []) throws -> (CommandResult, String) {
        let folder = try temporaryFolder(self)
        let output = folder.appendingPathComponent("model.onnx").path
        return (try rnnkit(["convert", fixture(model), output, "--to", "onnx"] + extra), output)
    }

    private func graph(_ path: String) throws -> Onnx_ModelProto {
        try ONNXProtobuf.readModel(path)
    }

    /// The lesson's packed LSTM classifier: one LSTM operator, no Loop, a `lengths` input
    /// feeding `sequence_lens` through a Cast, opset 17, dynamic batch and time.
    func testPackedClassifierIsOneLSTMWithLengths() throws {
        let (result, output) = try convert("pytorch/lesson_lstm_pack.h5")
        XCTAssertEqual(result.status, 0, result.stderr)
        let proto = try graph(output)
        let ops = proto.graph.node.map(\.opType)
        XCTAssertEqual(ops.filter { $0 == "LSTM" }.count, 1)
        XCTAssertFalse(ops.contains("Loop"))
        XCTAssertEqual(proto.opsetImport.map(\.version), [17])
        XCTAssertEqual(proto.graph.input.map(\.name), ["input", "lengths", "initial_h", "initial_c"])
        let lstm = try XCTUnwrap(proto.graph.node.first { $0.opType == "LSTM" })
        let cast = try XCTUnwrap(proto.graph.node.first { $0.output.first == lstm.input[4] })
        XCTAssertEqual(cast.opType, "Cast")
        XCTAssertEqual(cast.input, ["lengths"])
        XCTAssertEqual(proto.graph.input[0].type.tensorType.shape.dim.map(\.dimParam), ["batch", "time"])
        XCTAssertEqual(lstm.attribute.first { $0.name == "activations" }?.strings.map { String(decoding: $0, as: UTF8.self) },
                       ["Sigmoid", "Tanh", "Tanh"])
    }

    /// A Keras mask_zero model takes no lengths: sequence_lens is computed from the ids; a
    /// masked LSTM with return_sequences=True repeats its last valid output (GatherND).
    func testKerasMaskIsComputedInTheGraph() throws {
        let (result, output) = try convert("onnx/export/tfk_embed_mask_lstm_sequence.h5")
        XCTAssertEqual(result.status, 0, result.stderr)
        let proto = try graph(output)
        XCTAssertEqual(proto.graph.input.map(\.name), ["input", "initial_h", "initial_c"])
        let ops = Set(proto.graph.node.map(\.opType))
        XCTAssertTrue(ops.isSuperset(of: ["LSTM", "Equal", "Not", "ReduceSum", "GatherND"]), "\(ops)")
        XCTAssertFalse(ops.contains("Loop"))
        // Read back: the embedding masks zero and the layer carries its last output.
        let model = try LoadedModel(contentsOf: output).model
        guard case let .embedding(embedding)? = model.layers.first, case let .recurrent(lstm)? = model.layers[safe: 1] else {
            return XCTFail("read back as \(model.layers)")
        }
        XCTAssertTrue(embedding.maskZero)
        XCTAssertEqual(lstm.maskedOutput, .carry)
    }

    /// A Keras mask with holes and left padding is compacted: the LSTM runs on the valid
    /// steps gathered first (GatherND by TopK of the mask, largest, sorted), sequence_lens the
    /// mask's sum, and its outputs go back to their steps (GatherND by the inverse order, or by
    /// the cumulative count's places for carried outputs). Read back: mask_zero, carry/zero.
    func testKerasMaskWithHolesIsCompacted() throws {
        func producer(_ proto: Onnx_ModelProto, _ value: String) -> Onnx_NodeProto? {
            proto.graph.node.first { $0.output.contains(value) }
        }
        for (model, kind, carried) in [("onnx/export/tfk_embed_mask_lstm_sequence_holes.h5", "LSTM", true),
                                       ("onnx/export/k3_embed_mask_bilstm_sequence_holes.keras", "LSTM", false),
                                       ("onnx/export/tfk_embed_mask_gru_holes.h5", "GRU", true)] {
            let (result, output) = try convert(model)
            XCTAssertEqual(result.status, 0, result.stderr)
            let proto = try graph(output)
            // The data input; the rest are the initial states, optional (each has a zero initializer).
            let initializers = Set(proto.graph.initializer.map(\.name))
            XCTAssertEqual(proto.graph.input.map(\.name).filter { !initializers.contains($0) }, ["input"], model)
            let topKs = proto.graph.node.filter { $0.opType == "TopK" }
            XCTAssertEqual(topKs.map { $0.attribute.first { $0.name == "largest" }?.i }, [1, 0], model)
            XCTAssertEqual(topKs[1].input[0], topKs[0].output[1], "the inverse sorts the order")
            let node = try XCTUnwrap(proto.graph.node.first { $0.opType == kind }, model)
            // X: Transpose(GatherND(data, Unsqueeze(order), batch_dims 1)).
            let transpose = try XCTUnwrap(producer(proto, node.input[0]))
            let gather = try XCTUnwrap(producer(proto, transpose.input[0]))
            XCTAssertEqual(gather.opType, "GatherND", model)
            XCTAssertEqual(gather.attribute.first { $0.name == "batch_dims" }?.i, 1)
            XCTAssertEqual(producer(proto, gather.input[1])?.input.first, topKs[0].output[1])
            // sequence_lens: Cast(ReduceSum(mask)).
            XCTAssertEqual(producer(proto, node.input[4])?.opType, "Cast")
            XCTAssertEqual(producer(proto, producer(proto, node.input[4])!.input[0])?.opType, "ReduceSum")
            // Y back at its steps: GatherND of Transpose(Y).
            let back = try XCTUnwrap(proto.graph.node.first { $0.opType == "GatherND" && producer(proto, $0.input[0])?.input.first == node.output[0] },
                                     model)
            let indices = try XCTUnwrap(producer(proto, back.input[1]))
            if carried {
                XCTAssertEqual(indices.opType, "Where", model)
                XCTAssertTrue(proto.graph.node.contains { $0.opType == "CumSum" }, model)
            } else {
                XCTAssertEqual(indices.opType, "Unsqueeze", model)
                XCTAssertEqual(indices.input[0], topKs[1].output[1], model)
            }
            let read = try LoadedModel(contentsOf: output).model
            guard case let .embedding(embedding)? = read.layers.first, case let .recurrent(layer)? = read.layers[safe: 1] else {
                return XCTFail("\(model) read back as \(read.layers)")
            }
            XCTAssertTrue(embedding.maskZero, model)
            XCTAssertEqual(layer.maskedOutput, carried ? .carry : .zero, model)
        }
    }

    /// The reader takes a mask's number of valid steps as sequence_lens only on the valid
    /// steps gathered first: the same graph with the LSTM on the steps in time order (exact
    /// for right padding only) is refused.
    func testUncompactedMaskIsRefused() throws {
        let (result, output) = try convert("onnx/export/tfk_embed_mask_lstm_sequence_holes.h5")
        XCTAssertEqual(result.status, 0, result.stderr)
        var proto = try graph(output)
        let lstm = try XCTUnwrap(proto.graph.node.firstIndex { $0.opType == "LSTM" })
        let transpose = try XCTUnwrap(proto.graph.node.firstIndex { $0.output.first == proto.graph.node[lstm].input[0] })
        let gather = try XCTUnwrap(proto.graph.node.first { $0.output.first == proto.graph.node[transpose].input[0] })
        proto.graph.node[transpose].input[0] = gather.input[0]
        let path = try temporaryFolder(self).appendingPathComponent("uncompacted.onnx")
        try proto.serializedData().write(to: path)
        XCTAssertThrowsError(try LoadedModel(contentsOf: path.path)) { error in
            XCTAssertTrue("\(error)".contains("takes the number of unmasked steps as sequence_lens on the steps in time order"), "\(error)")
        }
    }

    /// GRU reset_after=False is linear_before_reset 0; Keras 3's hard_sigmoid is HardSigmoid 1/6.
    func testGRUResetRuleAndKeras3HardSigmoid() throws {
        let (gruResult, gruOutput) = try convert("onnx/export/tfk_masking_gru_sequence.h5")
        XCTAssertEqual(gruResult.status, 0, gruResult.stderr)
        let gru = try XCTUnwrap(try graph(gruOutput).graph.node.first { $0.opType == "GRU" })
        XCTAssertEqual(gru.attribute.first { $0.name == "linear_before_reset" }?.i, 0)
        let (result, output) = try convert("keras/k3_hard_sigmoid.to_json.weights.h5",
                                           ["--architecture", fixture("keras/k3_hard_sigmoid.to_json.json")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let node = try XCTUnwrap(try graph(output).graph.node.first { ["LSTM", "GRU", "RNN"].contains($0.opType) })
        XCTAssertEqual(node.attribute.first { $0.name == "activations" }?.strings.first.map { String(decoding: $0, as: UTF8.self) }, "HardSigmoid")
        XCTAssertEqual(node.attribute.first { $0.name == "activation_alpha" }?.floats.first, Float(1.0 / 6.0))
    }

    /// Initial states are optional graph inputs, one per layer (`<layer>_initial_h`, or
    /// `initial_h` / `initial_c` for one recurrent layer), each a zero initializer of one row
    /// expanded to the batch; read back, the graph takes the states of every layer and
    /// computes what PyTorch did from the fixture's h0 (c0).
    func testInitialStatesAreOptionalInputs() throws {
        for (model, names) in [("pytorch/gru_initial_state", ["input", "lengths", "rnn_l0_initial_h", "rnn_l1_initial_h"]),
                               ("pytorch/lstm_initial_state_lengths", ["input", "lengths", "initial_h", "initial_c"])] {
            let (result, output) = try convert(model + ".h5")
            XCTAssertEqual(result.status, 0, result.stderr)
            let proto = try graph(output)
            XCTAssertEqual(proto.graph.input.map(\.name), names)
            let initializers = Dictionary(uniqueKeysWithValues: proto.graph.initializer.map { ($0.name, $0) })
            for input in proto.graph.input.dropFirst(2) {
                let zeros = try XCTUnwrap(initializers[input.name], "\(input.name) is optional: it has an initializer")
                XCTAssertEqual(zeros.dims[1], 1)
                XCTAssertEqual(input.type.tensorType.shape.dim[1].dimParam, "batch")
                XCTAssertTrue(proto.graph.node.contains { $0.opType == "Expand" && $0.input.first == input.name })
            }
            let fixtureFile = try Fixture(contentsOf: fixture(model + ".fixture.h5"))
            let loaded = try LoadedModel(contentsOf: output)
            let states = try loaded.initialStates(h0: fixtureFile.h0, c0: fixtureFile.c0, batch: fixtureFile.input.batch)
            let actual = try loaded.run(fixtureFile.input, lengths: fixtureFile.lengths, initialStates: states).output
            let expected = try XCTUnwrap(fixtureFile.expected.first { $0.name == "output" }?.tensor)
            let comparison = Comparison(name: model, actual: actual, expected: expected, atol: 1e-5, rtol: 1e-4)
            XCTAssertTrue(comparison.passed, "\(model): max abs error \(comparison.maxAbsoluteError)")
        }
    }

    /// Keras go_backwards: the forward operator on the input reversed within each length, its
    /// Y put back in Keras's processing order; Flatten for the fixed number of steps; a Masking
    /// before Dense and max pooling (no recurrent layer). Each reads back as the source.
    func testGoBackwardsFlattenAndMaskingWithoutRecurrentLayer() throws {
        // Without a mask: the input reversed over every step (Slice, step −1), and the output
        // left in Keras's processing order.
        let (backwards, backwardsOutput) = try convert("onnx/export/tfk_rnn_backwards_sequence.h5")
        XCTAssertEqual(backwards.status, 0, backwards.stderr)
        let ops = try graph(backwardsOutput).graph.node.map(\.opType)
        XCTAssertEqual(ops.filter { $0 == "Slice" }.count, 1, "\(ops)")
        XCTAssertFalse(ops.contains("Loop"))
        // Under a Keras mask the steps are compacted forwards: go_backwards is refused there.
        let (masked, _) = try convert("keras/tfk_go_backwards.h5")
        XCTAssertEqual(masked.status, 2)
        XCTAssertTrue(masked.stderr.contains("go_backwards under a Keras mask"), masked.stderr)
        let read = try LoadedModel(contentsOf: backwardsOutput).model
        XCTAssertTrue(read.layers.contains { if case let .recurrent(r) = $0 { return r.goBackwards } else { return false } })
        let (flatten, flattenOutput) = try convert("keras/tfk_flatten_stateful.h5")
        XCTAssertEqual(flatten.status, 0, flatten.stderr)
        let input = try graph(flattenOutput).graph.input[0]
        XCTAssertEqual(input.type.tensorType.shape.dim[1].dimValue, 6)
        XCTAssertTrue(try LoadedModel(contentsOf: flattenOutput).model.layers.contains(.flatten))
        let (masking, maskingOutput) = try convert("keras/k3_masking_dense.keras")
        XCTAssertEqual(masking.status, 0, masking.stderr)
        XCTAssertTrue(try LoadedModel(contentsOf: maskingOutput).model.layers.contains(.readout(.maxOverAllSteps)))
    }

    func testRefusals() throws {
        let (projection, _) = try convert("pytorch/lstm_proj.h5")
        XCTAssertEqual(projection.status, 2)
        XCTAssertTrue(projection.stderr.contains("an LSTM projection (proj_size): ONNX's LSTM has none"), projection.stderr)
        let (opset, _) = try convert("pytorch/lstm_basic.h5", ["--opset", "13"])
        XCTAssertEqual(opset.status, 2)
        XCTAssertTrue(opset.stderr.contains("cannot be written at ONNX opset 13: rnnkit writes opsets 14 to 22"), opset.stderr)
        let (wrongTarget, _) = try convert("pytorch/lstm_basic.h5", ["--opset", "17", "--to", "pytorch"])
        XCTAssertEqual(wrongTarget.status, 2)
    }

    /// The ONNX checker (full_check) and ONNX Runtime on the written graphs, against the
    /// frameworks' fixtures at 1e-5: the packed classifiers (every length 1..6), Keras masks
    /// (every length 1..7 right-padded, left-padded and with holes), merges, stacked and
    /// bidirectional layers.
    func testExportsRunInONNXRuntime() throws {
        let python = ProcessInfo.processInfo.environment["RNNKIT_ONNX_PYTHON"] ?? "python3"
        let probe = try runCommand(URL(fileURLWithPath: "/usr/bin/env"), [python, "-c", "import onnx, onnxruntime, h5py"])
        if probe.status != 0 {
            try missing("\(python) with onnx, onnxruntime and h5py (RNNKIT_ONNX_PYTHON names another)")
        }
        let fixtures = ["onnx/export", "pytorch/lesson_lstm_pack.fixture.h5", "pytorch/lesson_bilstm2_pack.fixture.h5",
                        "pytorch/clf_embed_rnn_mean.fixture.h5", "pytorch/clf_bilstm_max_sigmoid.fixture.h5",
                        "pytorch/gru_bidir_2layer_lengths.fixture.h5", "keras/tfk_bidi_merges.fixture.h5",
                        "keras/k3_stacked_bilstm.fixture.h5", "onnx/torch_packed_lstm_bi_linear_fold.fixture.h5",
                        "pytorch/gru_initial_state.fixture.h5", "pytorch/lstm_initial_state_lengths.fixture.h5",
                        "onnx/node_lstm_bi_lengths_states.fixture.h5", "keras/tfk_go_backwards.fixture.h5",
                        "keras/k3_flatten_stateful.fixture.h5", "keras/tfk_masking_dense.fixture.h5",
                        "keras/tfk_functional_masking.fixture.h5", "keras/k3_functional_masking.fixture.h5"]
        let rnnkitPath = Bundle.main.bundleURL.appendingPathComponent("rnnkit").path
        let binary = FileManager.default.fileExists(atPath: rnnkitPath) ? rnnkitPath
            : URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("rnnkit").path
        let result = try runCommand(URL(fileURLWithPath: "/usr/bin/env"),
                                    [python, fixturesFolder.deletingLastPathComponent().appendingPathComponent("scripts/check_onnx_runtime.py").path, "--rnnkit", binary, "--convert", "yes",
                                     "--no-direct", "--jobs", "1"] + fixtures.map(fixture))
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        // Refused: go_backwards under a Keras mask (five fixtures), not yet written.
        XCTAssertTrue(result.stdout.contains("\nconvert: 31 ok, 5 refused\n"), result.stdout)
    }
}
