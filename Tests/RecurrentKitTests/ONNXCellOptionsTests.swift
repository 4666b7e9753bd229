import Foundation
import RecurrentEngine
import TestSupport
import XCTest
@testable import RecurrentKit

/// What ONNX's recurrent operators define beyond Keras and PyTorch, run by the engine
/// (spec/onnx-layout.md): peepholes, `clip`, `input_forget`, `direction = reverse` alone and
/// activations per gate role and direction with their parameters, against ONNX Runtime's
/// fixtures (fixtures/onnx/generate_models.py, `option_cases`).
final class ONNXCellOptionsTests: XCTestCase {
    private var folder: String { fixture("onnx") }

    /// Each option is read and changes the numbers: the fixture's model with the option taken
    /// away misses ONNX Runtime's outputs, with it they match at atol 1e-5, rtol 1e-4.
    func testEachOptionIsNeededToMatchONNXRuntime() throws {
        let cases: [(String, (inout RecurrentLayer) -> Void)] = [
            ("node_lstm_peepholes_lengths_states", { for d in $0.directions.indices { $0.directions[d].peepholes = nil } }),
            ("node_lstm_bi_peepholes", { for d in $0.directions.indices { $0.directions[d].peepholes = nil } }),
            ("node_lstm_bi_clip_lengths", { $0.clip = nil }),
            ("node_gru_lbr0_clip", { $0.clip = nil }),
            ("node_gru_lbr1_bi_clip_states", { $0.clip = nil }),
            ("node_rnn_reverse_clip_lengths_state", { $0.clip = nil }),
            ("node_lstm_input_forget_peepholes_states", { $0.inputForget = false }),
            ("node_lstm_reverse", { $0.reversed = false }),
            ("node_rnn_reverse_clip_lengths_state", { $0.reversed = false }),
            ("node_gru_lbr0_reverse_lengths_state", { $0.reversed = false }),
            // Each direction's own set, the forward one's, and the layer's defaults.
            ("node_lstm_bi_activations_lengths", { $0.cellActivations![1] = $0.cellActivations![0] }),
            ("node_lstm_bi_activations_lengths", { $0.cellActivations = nil }),
            ("node_gru_bi_activations_states", { $0.cellActivations![1] = $0.cellActivations![0] }),
            ("node_rnn_bi_activations", { $0.cellActivations![0] = $0.cellActivations![1] }),
            ("node_rnn_scaledtanh", { $0.cellActivations = nil }),
            ("node_lstm_softsign_softplus", { $0.cellActivations![0].cellOutput = $0.cellActivations![0].candidate }),
            ("node_lstm_elu_tanh", { $0.cellActivations![0].candidate = .standard(.elu) }),
        ]
        for (name, change) in cases {
            let fixture = try Fixture(contentsOf: folder + "/\(name).fixture.h5")
            let model = try LoadedModel(contentsOf: folder + "/\(name).onnx")
            XCTAssertTrue(try Verification(model: model, fixture: fixture).comparisons.allSatisfy(\.passed), name)
            guard case var .recurrent(layer) = model.model.layers[0] else { return XCTFail("\(name): not recurrent") }
            let before = layer
            change(&layer)
            XCTAssertNotEqual(layer, before, name)
            var changed = model.model
            changed.layers[0] = .recurrent(layer)
            let states = try model.initialStates(h0: fixture.h0, c0: fixture.c0, batch: fixture.input.batch)
            let result = try Engine(model: changed).run(fixture.input, lengths: fixture.lengths, initialStates: states)
            let expected = try XCTUnwrap(fixture.expected.first { $0.name == "output" }?.tensor, name)
            XCTAssertFalse(Comparison(name: "output", actual: result.output, expected: expected, atol: 1e-5, rtol: 1e-4).passed,
                           "\(name): the option changes nothing")
        }
    }

    /// The reader keeps what the engine's fast paths and the converters understand as the
    /// layer's pair (`activation`, `recurrentActivation`), and the rest per direction.
    func testActivationsAreReadByRole() throws {
        func layer(_ name: String) throws -> RecurrentLayer {
            guard case let .recurrent(layer) = try LoadedModel(contentsOf: folder + "/\(name).onnx").model.layers[0] else {
                throw XCTSkip("not recurrent")
            }
            return layer
        }
        let hardSigmoid = try layer("node_gru_hardsigmoid")
        XCTAssertNil(hardSigmoid.cellActivations)
        XCTAssertEqual(hardSigmoid.recurrentActivation, .hardSigmoidKeras2)
        let lstm = try layer("node_lstm_bi_activations_lengths")
        XCTAssertEqual(lstm.cellActivations, [
            CellActivations(gate: .hardSigmoid(alpha: 0.3, beta: 0.45), candidate: .leakyRelu(alpha: 0.2),
                            cellOutput: .thresholdedRelu(alpha: 0.1)),
            CellActivations(gate: .standard(.sigmoid), candidate: .scaledTanh(alpha: 1.7, beta: 0.8),
                            cellOutput: .affine(alpha: 0.6, beta: -0.05)),
        ])
        let gru = try layer("node_gru_bi_activations_states")
        XCTAssertEqual(gru.cellActivations?.map(\.gate), [.hardSigmoid(alpha: 0.25, beta: 0.55), .standard(.sigmoid)])
        XCTAssertEqual(gru.cellActivations?.map(\.candidate), [.standard(.softsign), .elu(alpha: 0.9)])
        // LeakyRelu without its alpha: ONNX's and ONNX Runtime's default, 0.01.
        XCTAssertEqual(try layer("node_gru_lbr0_leakyrelu_lengths").cellActivations?.first?.candidate, .leakyRelu(alpha: 0.01))
        let peepholes = try layer("node_lstm_peepholes_lengths_states")
        XCTAssertEqual(peepholes.directions[0].peepholes?.shape, [12])
        XCTAssertNil(peepholes.cellActivations)
        XCTAssertTrue(try layer("node_lstm_reverse").reversed)
        XCTAssertFalse(try layer("node_lstm_reverse").goBackwards)
    }

    /// Converting a layer with an option PyTorch or Keras cannot express is refused in one
    /// line naming the layer and the option; exit 2, no file written.
    func testConversionsRefuseWhatTheFrameworksCannotExpress() throws {
        let out = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("rnnkit-options-\(UUID().uuidString)").path
        defer { for suffix in [".pt", ".h5", ".keras"] { try? FileManager.default.removeItem(atPath: out + suffix) } }
        let cases: [(String, String, String)] = [
            ("node_lstm_bi_peepholes", "pytorch", "cannot be converted to PyTorch: the layer has peepholes, which nn.LSTM cannot express"),
            ("node_lstm_bi_peepholes", "keras", "cannot be converted to Keras 2: the layer has peepholes, which Keras cannot express"),
            ("node_gru_lbr1_bi_clip_states", "pytorch", "cannot be converted to PyTorch: the layer has clip (±0.8), which nn.GRU cannot express"),
            ("node_lstm_input_forget_peepholes_states", "keras3", "cannot be converted to Keras 3: the layer has peepholes, which Keras cannot express"),
            ("node_lstm_reverse", "pytorch", "cannot be converted to PyTorch: the layer has a lone reverse direction with outputs at their own steps, which nn.LSTM cannot express"),
            ("node_lstm_reverse", "keras", "cannot be converted to Keras 2: the layer has a lone reverse direction with outputs at their own steps, which Keras cannot express"),
            ("node_rnn_bi_activations", "pytorch", "cannot be converted to PyTorch: the layer has activations per gate role or direction, or with parameters, which nn.RNN cannot express"),
            ("node_lstm_softsign_softplus", "keras", "cannot be converted to Keras 2: the layer has activations per gate role or direction, or with parameters, which Keras cannot express"),
        ]
        for (name, target, message) in cases {
            let path = folder + "/\(name).onnx"
            let file = out + (target == "pytorch" ? ".pt" : target == "keras" ? ".h5" : ".keras")
            let result = try rnnkit(["convert", path, file, "--to", target])
            XCTAssertEqual(result.status, 2, name)
            XCTAssertEqual(result.stderr, "rnnkit: error: \(path): layer #0: \(message)\n", name)
            XCTAssertFalse(FileManager.default.fileExists(atPath: file), name)
        }
        // The inputs and input_forget's own message: every feature is named in turn.
        var layer = RecurrentLayer(kind: .lstm, inputSize: 1, hiddenSize: 1,
                                   directions: [DirectionWeights(gateOrder: GateOrders.neutral.lstm,
                                                                 inputWeight: Tensor(uncheckedZeros: [4, 1]),
                                                                 recurrentWeight: Tensor(uncheckedZeros: [4, 1]))])
        XCTAssertEqual(layer.featuresBeyondKerasAndPyTorch, [])
        layer.inputForget = true
        layer.clip = 2
        XCTAssertEqual(layer.featuresBeyondKerasAndPyTorch, ["clip (±2.0)", "input_forget (f = 1 − i)"])
    }

    /// `inspect` shows the options as the node has them.
    func testInspectShowsTheOptions() throws {
        let result = try rnnkit(["inspect", folder + "/node_lstm_reverse_peepholes_clip_lengths.onnx"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("#0 (LSTM): input=3 hidden_size=4 direction=reverse layout=0 activations=Sigmoid, Tanh, Tanh bias (B)=true clip=2.0 peepholes (P)=true gates=[input,output,forget,cell] params=156"), result.stdout)
        let activations = try rnnkit(["inspect", folder + "/node_lstm_bi_activations_lengths.onnx"])
        XCTAssertTrue(activations.stdout.contains("activations=HardSigmoid, LeakyRelu, ThresholdedRelu, Sigmoid, ScaledTanh, Affine activation_alpha=0.3, 0.2, 0.1, 1.7, 0.6 activation_beta=0.45, 0.8, -0.05"), activations.stdout)
        let forget = try rnnkit(["inspect", folder + "/node_lstm_input_forget_peepholes_states.onnx"])
        XCTAssertTrue(forget.stdout.contains("input_forget=1 peepholes (P)=true"), forget.stdout)
    }

    /// A reversed layer needs the whole sequence, so it does not stream; the engine's checks
    /// of the options name the layer.
    func testEngineChecksTheOptions() throws {
        let model = try LoadedModel(contentsOf: folder + "/node_lstm_reverse.onnx")
        XCTAssertThrowsError(try Engine(model: model.model).makeStreamingSession(batch: 1)) { error in
            XCTAssertTrue("\(error)".contains("cannot stream a reversed layer"), "\(error)")
        }
        guard case let .recurrent(base) = try LoadedModel(contentsOf: folder + "/node_lstm_bi_peepholes.onnx").model.layers[0] else {
            return XCTFail("not recurrent")
        }
        let edits: [((inout RecurrentLayer) -> Void, String)] = [
            ({ $0.reversed = true }, "reversed is defined for a unidirectional layer without goBackwards only"),
            ({ $0.clip = 0 }, "clip 0.0 must be a positive finite number"),
            ({ $0.clip = .infinity }, "clip inf must be a positive finite number"),
            ({ $0.cellActivations = [] }, "has 0 sets of cell activations for 2 direction(s)"),
            ({ $0.directions[1].peepholes = Tensor(uncheckedZeros: [4]) }, "backward direction peepholes has shape [4], expected [12]"),
            ({ $0.kind = .gru; $0.inputForget = true }, "inputForget is defined for an LSTM only"),
        ]
        for (edit, message) in edits {
            var layer = base
            edit(&layer)
            XCTAssertThrowsError(try Engine(model: Model(layers: [.recurrent(layer)])), message) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }
}
