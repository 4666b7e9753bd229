import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit

/// `rnnkit run` with the states of whole models (spec/fixture-format.md, "States of a whole
/// model"): states out of one run start the next, so a sequence run in two halves gives the
/// outputs of one run over the whole; errors name the real cause and the layer as the file
/// names it.
final class RunStatesTests: XCTestCase {
    /// Unidirectional whole models of every reader and shape of states: a PyTorch 2-layer
    /// LSTM (float features), an Embedding → LSTM → Linear on token ids, a Keras LSTM(4) →
    /// LSTM(3) (layers of different sizes, masking) and a Keras GRU → LSTM (a layer with no
    /// cell state beside one with).
    static let chainedModels = [
        "pytorch/clf_lstm2_last_step_mlp",
        "pytorch/clf_embed_lstm_last_hidden",
        "keras/k3_lstm_options",
        "keras/tfk_return_state",
    ]

    func testStatesOutOfOneRunStartTheNext() throws {
        let folder = try temporaryFolder(self)
        for name in Self.chainedModels {
            let model = fixture(name + (name.hasPrefix("keras/k3_") ? ".keras" : ".h5"))
            let original = try Fixture(contentsOf: fixture(name + ".fixture.h5"))
            let time = try XCTUnwrap(original.input.time, name)
            let half = time / 2
            func path(_ file: String) -> String { folder.appendingPathComponent("\(name.replacingOccurrences(of: "/", with: "_"))_\(file).h5").path }
            try writeInputs(original.input, steps: 0..<time, to: path("whole"))
            try writeInputs(original.input, steps: 0..<half, to: path("first"))
            try writeInputs(original.input, steps: half..<time, to: path("second"))
            for part in ["whole", "first", "second"] where part != "second" {
                let result = try rnnkit("run", model, "--input", path(part), "--output", path(part + "_out"))
                XCTAssertEqual(result.status, 0, "\(name) \(part): \(result.stderr)")
            }
            // The first half's final states, as written, are the second half's initial states.
            let first = try HDF5File.open(path("first_out")).root
            let recurrent = try LoadedModel(contentsOf: model).recurrentLayers
            XCTAssertEqual(try first.group("h_n").memberNames(), recurrent.indices.map(String.init), name)
            XCTAssertEqual(try first.kind(of: "c_n") != nil, recurrent.contains { $0.kind == .lstm }, name)
            do {
                let second = try HDF5File.openForUpdate(path("second")).root
                for (from, to) in [("h_n", "h0"), ("c_n", "c0")] where try first.kind(of: from) != nil {
                    for member in try first.group(from).memberNames() {
                        let dataset = try first.dataset("\(from)/\(member)")
                        try second.write("\(to)/\(member)", floats: try dataset.readFloats(), shape: dataset.shape)
                    }
                }
            }
            let chained = try rnnkit("run", model, "--input", path("second"), "--output", path("second_out"))
            XCTAssertEqual(chained.status, 0, "\(name): \(chained.stderr)")
            XCTAssertTrue(chained.stdout.contains("h_n/0 "), chained.stdout)
            let whole = try HDF5File.open(path("whole_out")).root
            let second = try HDF5File.open(path("second_out")).root
            XCTAssertEqual(try second.datasetPaths(), try whole.datasetPaths(), name)
            for dataset in try whole.datasetPaths() {
                var expected = try whole.dataset(dataset).readFloats()
                let actual = try second.dataset(dataset).readFloats()
                if dataset == "output", try whole.dataset(dataset).shape.count == 3 {
                    // Per-step outputs: the second half's steps of the whole run.
                    let shape = try whole.dataset(dataset).shape
                    expected = (0..<shape[0]).flatMap { b in expected[(b * shape[1] + half) * shape[2] ..< (b + 1) * shape[1] * shape[2]] }
                }
                XCTAssertEqual(actual.count, expected.count, "\(name) \(dataset)")
                let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-6, "\(name) \(dataset)")
            }
            // The states matter: the second half alone, from zeros, computes something else.
            try writeInputs(original.input, steps: half..<time, to: path("alone"))
            XCTAssertEqual(try rnnkit("run", model, "--input", path("alone"), "--output", path("alone_out")).status, 0)
            XCTAssertNotEqual(try HDF5File.open(path("alone_out")).root.dataset("output").readFloats(),
                              try whole.dataset("output").readFloats(), "\(name): the states changed nothing")
            // And the whole run is what the framework computed, where the fixture runs every step.
            if original.lengths == nil || original.exercises.contains("masking") {
                let expected = try XCTUnwrap(original.expected.first { $0.name == "output" }?.tensor)
                let output = try Tensor(shape: try whole.dataset("output").shape, values: try whole.dataset("output").readFloats())
                XCTAssertTrue(Comparison(name: "output", actual: output, expected: expected, atol: 1e-5, rtol: 1e-4).passed, name)
            }
        }
    }

    /// A bidirectional layer takes initial states as PyTorch and Keras do (row 0 forward,
    /// row 1 backward: the backward direction starts from it at the sequence's end); there is
    /// nothing ambiguous to refuse. Its states do not chain two halves, which the
    /// documentation says.
    func testBidirectionalLayersTakeStates() throws {
        let folder = try temporaryFolder(self)
        let model = fixture("keras/k3_text_bilstm.keras")
        let original = try Fixture(contentsOf: fixture("keras/k3_text_bilstm.fixture.h5"))
        let input = folder.appendingPathComponent("in.h5").path
        try writeInputs(original.input, steps: 0..<(original.input.time ?? 0), to: input)
        XCTAssertEqual(try rnnkit("run", model, "--input", input, "--output", folder.appendingPathComponent("zero.h5").path).status, 0)
        do {
            let root = try HDF5File.openForUpdate(input).root
            try root.write("h0/0", floats: (0..<(2 * 3 * 4)).map { Float($0 % 5) / 5 - 0.4 }, shape: [2, 3, 4])
        }
        let out = folder.appendingPathComponent("out.h5").path
        let result = try rnnkit("run", model, "--input", input, "--output", out)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("h_n/0 [2, 3, 4], c_n/0 [2, 3, 4]"), result.stdout)
        XCTAssertNotEqual(try HDF5File.open(out).root.dataset("output").readFloats(),
                          try HDF5File.open(folder.appendingPathComponent("zero.h5").path).root.dataset("output").readFloats())
    }

    /// States that do not fit: one line naming IN, the dataset, the layer as the file names it
    /// and the shape expected.
    func testStateMismatchesNameTheLayerAndShape() throws {
        let folder = try temporaryFolder(self)
        let keras = fixture("keras/tfk_return_state.h5")  // GRU(3) then LSTM(4), batch 3
        let pytorch = fixture("pytorch/clf_lstm2_last_step_mlp.h5")  // nn.LSTM(num_layers=2), batch 4
        let bare = fixture("pytorch/lstm_basic.h5")
        let cases: [(String, [(String, [Int])], String)] = [
            (keras, [("h0/1", [1, 3, 3])], "/h0/1: layer lstm (LSTM): has shape [1, 3, 3], expected [1, 3, 4] [directions, batch, hidden_out]"),
            (keras, [("c0/0", [1, 3, 3])], "/c0/0: layer gru (GRU): a gru layer has no cell state"),
            (keras, [("h0/2", [1, 3, 4])], "/h0/2: names no recurrent layer; /h0 holds one dataset per recurrent layer, named 0 to 1 in model order"),
            (keras, [("h0/01", [1, 3, 4])], "/h0/01: names no recurrent layer"),
            (keras, [("h0", [2, 3, 4])], "/h0: is one dataset; this model takes a group with one dataset per recurrent layer in model order: /h0/0 [1, 3, 3], /h0/1 [1, 3, 4]"),
            (pytorch, [("c0/1", [2, 4, 6])], "/c0/1: layer rnn (LSTM, layer 1): has shape [2, 4, 6], expected [1, 4, 6] [directions, batch, hidden]"),
            (bare, [("h0/0", [1, 3, 6])], "/h0: is a group; a bare recurrent module takes one dataset [layers × directions, batch, hidden_out], PyTorch's h0"),
        ]
        for (index, (model, datasets, message)) in cases.enumerated() {
            let input = folder.appendingPathComponent("in\(index).h5").path
            let features = try XCTUnwrap(LoadedModel(contentsOf: model).inputFeatures)
            let batch = datasets[0].1[1]
            do {
                let root = try HDF5File.create(input).root
                try root.write("inputs", floats: [Float](repeating: 0.5, count: batch * 6 * features), shape: [batch, 6, features])
                for (path, shape) in datasets { try root.write(path, floats: [Float](repeating: 0.1, count: shape.reduce(1, *)), shape: shape) }
            }
            let result = try rnnkit("run", model, "--input", input, "--output", folder.appendingPathComponent("out.h5").path)
            XCTAssertEqual(result.status, 2, "\(model): \(result.stdout)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.hasPrefix("rnnkit: error: \(input): \(message)"), "\(result.stderr)\nexpected: \(message)")
        }
    }

    /// A fixture's states are a bare module's; a per-layer group is refused, not read as zeros.
    func testFixturesRefusePerLayerStates() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("states.fixture.h5").path
        do {
            let root = try HDF5File.create(path).root
            try root.write("inputs", floats: [Float](repeating: 0.5, count: 3 * 6 * 4), shape: [3, 6, 4])
            try root.write("h0/0", floats: [Float](repeating: 0.1, count: 9), shape: [1, 3, 3])
            try root.write("expected/output", floats: [0, 0, 0, 0, 0, 0], shape: [3, 2])
        }
        let result = try rnnkit("verify", fixture("keras/tfk_return_state.h5"), path)
        XCTAssertEqual(result.status, 2, result.stdout)
        XCTAssertEqual(result.stderr, "rnnkit: error: \(path): /h0: is a group; a fixture's states are a bare module's, one dataset [layers × directions, batch, hidden] (spec/fixture-format.md)\n")
    }

    /// The input's kind is the first thing judged: float features for a token model (with or
    /// without /lengths, even lengths that would not fit them), token ids for a feature model.
    func testTheWrongKindOfInputIsTheError() throws {
        let folder = try temporaryFolder(self)
        let tokenModel = fixture("pytorch/clf_embed_lstm_last_hidden.h5")
        let featureModel = fixture("keras/k3_lstm_options.keras")
        let cases: [(model: String, floats: Bool, shape: [Int], lengths: [Int64]?, message: String)] = [
            (tokenModel, true, [6, 12], nil, "/inputs: holds floats of shape [6, 12]; the model takes token ids [batch, time] (integers)"),
            (tokenModel, true, [6, 12], [12, 3, 4, 5, 6, 7], "/inputs: holds floats of shape [6, 12]; the model takes token ids [batch, time] (integers)"),
            (tokenModel, true, [6, 12], [13, 3, 4, 5, 6, 7], "/inputs: holds floats of shape [6, 12]; the model takes token ids [batch, time] (integers)"),
            (tokenModel, true, [6, 12, 3], [12, 3, 4, 5, 6, 7], "/inputs: holds floats of shape [6, 12, 3]; the model takes token ids [batch, time] (integers)"),
            (featureModel, false, [6, 12], nil, "/inputs: holds integers of shape [6, 12]; the model takes float features [batch, time, 4]"),
            (featureModel, false, [6, 12], [13, 3, 4, 5, 6, 7], "/inputs: holds integers of shape [6, 12]; the model takes float features [batch, time, 4]"),
        ]
        for (index, item) in cases.enumerated() {
            let input = folder.appendingPathComponent("in\(index).h5").path
            do {
                let root = try HDF5File.create(input).root
                let count = item.shape.reduce(1, *)
                if item.floats {
                    try root.write("inputs", floats: [Float](repeating: 1, count: count), shape: item.shape)
                } else {
                    try root.write("inputs", integers: [Int64](repeating: 1, count: count), shape: item.shape)
                }
                if let lengths = item.lengths { try root.write("lengths", integers: lengths, shape: [lengths.count]) }
            }
            let result = try rnnkit("run", item.model, "--input", input, "--output", folder.appendingPathComponent("out.h5").path)
            XCTAssertEqual(result.status, 2, result.stdout)
            XCTAssertEqual(result.stderr, "rnnkit: error: \(input): \(item.message)\n", "case \(index)")
        }
        // The library says the same of token ids given to a feature model.
        let loaded = try LoadedModel(contentsOf: featureModel)
        XCTAssertThrowsError(try loaded.run(.tokens(ids: [1, 2, 3, 4], batch: 2, time: 2))) { error in
            XCTAssertTrue("\(error)".hasSuffix("the model takes float features [batch, time, 4], but the input is token ids [2, 2] (integers): the model does not start with an embedding"), "\(error)")
        }
    }

    /// Streaming refusals and run errors name the layer the user wrote: a Keras
    /// `Bidirectional` by its own name, not the LSTM it wraps.
    func testErrorsNameTheLayerAsTheFileDoes() throws {
        let keras = try LoadedModel(contentsOf: fixture("keras/k3_text_bilstm.keras"))
        XCTAssertThrowsError(try keras.makeStream(batch: 1)) { error in
            let error = error as? ModelError
            XCTAssertEqual(error?.layer, "bidirectional (Bidirectional(LSTM))")
            XCTAssertEqual(error?.description.hasSuffix("layer bidirectional (Bidirectional(LSTM)): cannot stream a bidirectional layer (its backward direction needs the whole sequence)"), true, "\(String(describing: error))")
        }
        let goBackwards = try LoadedModel(contentsOf: fixture("keras/tfk_go_backwards.h5"))
        XCTAssertThrowsError(try goBackwards.makeStream(batch: 1)) { error in
            XCTAssertEqual((error as? ModelError)?.layer, "lstm (LSTM)", "\(error)")
        }
        let lastStep = try LoadedModel(contentsOf: fixture("keras/k3_lstm_options.keras"))
        XCTAssertThrowsError(try lastStep.makeStream(batch: 1)) { error in
            XCTAssertEqual((error as? ModelError)?.layer, "lstm_1 (LSTM)", "\(error)")
        }
        // A stream's own errors too: a token id outside the vocabulary.
        let chars = try LoadedModel(contentsOf: fixture("pytorch/char_lstm.h5"))
        XCTAssertThrowsError(try chars.makeStream(batch: 1).step(.tokens(ids: [99], batch: 1, time: 1))) { error in
            XCTAssertEqual("\(error)", "\(fixture("pytorch/char_lstm.h5")): layer embed (Embedding): token id 99 at [0, 0] is outside the vocabulary 0..<27")
        }
        // A stacked PyTorch module's layers: the module and the layer in it.
        let stacked = try LoadedModel(contentsOf: fixture("pytorch/lstm_bidir_2layer_lengths.h5"))
        XCTAssertThrowsError(try stacked.makeStream(batch: 1)) { error in
            XCTAssertEqual((error as? ModelError)?.layer, "rnn (LSTM, layer 0)", "\(error)")
        }
    }

    /// Writes `/inputs` holding `steps` of `input`'s time axis.
    private func writeInputs(_ input: ModelInput, steps: Range<Int>, to path: String) throws {
        let root = try HDF5File.create(path).root
        switch input {
        case let .features(x):
            let (batch, time, features) = (x.shape[0], x.shape[1], x.shape[2])
            let values = (0..<batch).flatMap { b in x.values[(b * time + steps.lowerBound) * features ..< (b * time + steps.upperBound) * features] }
            try root.write("inputs", floats: Array(values), shape: [batch, steps.count, features])
        case let .tokens(ids, batch, time):
            let values = (0..<batch).flatMap { b in ids[(b * time + steps.lowerBound) ..< (b * time + steps.upperBound)] }
            try root.write("inputs", integers: values.map(Int64.init), shape: [batch, steps.count])
        default:
            XCTFail("features or token ids expected")
        }
    }
}
