import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit

/// A state_dict that does not form the module it claims is refused with the key and the
/// expected and actual shapes — never run as something else.
final class PyTorchReaderErrorTests: XCTestCase {
    /// The datasets of a committed fixture model, as key → tensor.
    private func stateDict(_ name: String) throws -> [(String, Tensor)] {
        let root = try HDF5File.open(fixture("pytorch/\(name).h5")).root
        return try root.datasetPaths().map { path in
            let dataset = try root.dataset(path)
            return (path, try Tensor(shape: dataset.shape, values: try dataset.readFloats()))
        }
    }

    private func write(_ entries: [(String, Tensor)], config: String? = nil) throws -> String {
        let path = try temporaryFolder(self).appendingPathComponent("model.h5").path
        let root = try HDF5File.create(path).root
        for (key, tensor) in entries { try root.write(key, floats: tensor.values, shape: tensor.shape) }
        if let config { try root.setAttribute("model_config", .string(config)) }
        return path
    }

    private func assertRefused(_ entries: [(String, Tensor)], config: String? = nil, mentions fragments: [String],
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let path = try write(entries, config: config)
        XCTAssertThrowsError(try LoadedModel(contentsOf: path), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(path), text, file: file, line: line)
            for fragment in fragments { XCTAssertTrue(text.contains(fragment), "\(text) lacks \(fragment)", file: file, line: line) }
        }
    }

    func testMissingKey() throws {
        let entries = try stateDict("lstm_bidir_2layer_lengths").filter { $0.0 != "rnn.bias_hh_l1_reverse" }
        try assertRefused(entries, mentions: ["rnn.bias_hh_l1_reverse", "missing key", "expected shape"])
    }

    func testMisshapedKey() throws {
        var entries = try stateDict("gru_basic")
        let index = try XCTUnwrap(entries.firstIndex { $0.0.hasSuffix("weight_ih_l0") })
        let original = entries[index].1
        entries[index].1 = try Tensor(shape: [original.shape[0], original.shape[1] + 1],
                                  values: original.values + [Float](repeating: 0.5, count: original.shape[0]))
        // The input size is taken from weight_ih_l0 itself, so the mismatch shows in a
        // consistent module only when a config pins it; without one, a reverse layer shows it.
        let config = #"{"format":"recurrentkit.pytorch","version":1,"modules":[{"type":"GRU","name":"rnn","input_size":\#(original.shape[1]),"hidden_size":\#(original.shape[0] / 3)}]}"#
        try assertRefused(entries, config: config, mentions: [entries[index].0, "has shape [\(original.shape[0]), \(original.shape[1] + 1)]", "expected [\(original.shape[0]), \(original.shape[1])]"])
    }

    func testExtraKey() throws {
        var entries = try stateDict("lstm_basic")
        entries.append(("rnn.weight_ih_l0_extra", try Tensor(zeros: [2, 2])))
        try assertRefused(entries, mentions: ["rnn.weight_ih_l0_extra", "not a parameter"])
        var withConfig = try stateDict("clf_embed_lstm_last_hidden")
        let config = try XCTUnwrap(HDF5File.open(fixture("pytorch/clf_embed_lstm_last_hidden.h5")).root.attribute("model_config")?.stringValue)
        // A key outside the config's modules is not read, and counted in a note; one under
        // a module of the config that the module does not use is refused.
        withConfig.append(("fc2.weight", try Tensor(zeros: [3, 3])))
        let path = try write(withConfig, config: config)
        XCTAssertEqual(try LoadedModel(contentsOf: path).notes, ["1 key outside the model_config's modules was not read (fc2.* 1)"])
        withConfig.append(("fc.scale", try Tensor(zeros: [3])))
        try assertRefused(withConfig, config: config, mentions: ["fc.scale", "unexpected key", "[3]"])
    }

    func testLayerBeyondTheStack() throws {
        var entries = try stateDict("gru_basic")
        let (key, tensor) = try XCTUnwrap(entries.first { $0.0.hasSuffix("weight_hh_l0") })
        entries.append((key.replacingOccurrences(of: "_l0", with: "_l2"), tensor))
        try assertRefused(entries, mentions: ["_l1", "missing key"])
    }

    func testSeveralModulesNeedAConfig() throws {
        let entries = try stateDict("gru_basic") + stateDict("lstm_basic").map { ("other.\($0.0)", $0.1) }
        // The skeleton chains what chains (HDF5 lists keys alphabetically: other.rnn first)
        // and leaves out, named, what does not.
        try assertRefused(entries, mentions: ["holds 2 modules and no model_config", "other.rnn (LSTM 4 → 6)", "rnn (GRU 4 → 6)",
                                              "architecture: CONFIG.json", #"{"type": "LSTM", "name": "other.rnn", "input_size": 4, "hidden_size": 6"#,
                                              "left out: rnn (GRU 4 → 6: takes 4 features where the chain before it gives 6)"])
    }

    func testGateCountMustBeOneThreeOrFour() throws {
        let entries: [(String, Tensor)] = try [
            ("rnn.weight_ih_l0", Tensor(zeros: [8, 3])), ("rnn.weight_hh_l0", Tensor(zeros: [8, 4])),
        ]
        try assertRefused(entries, mentions: ["rnn.weight_hh_l0", "2 gate blocks"])
    }

    func testModelConfigErrorsNameTheField() throws {
        let entries = try stateDict("clf_embed_lstm_last_hidden")
        let cases: [(String, String)] = [
            (#"{"modules":[{"type":"Conv1d","name":"c"}]}"#, "module type 'Conv1d' is not supported"),
            (#"{"modules":[{"type":"LSTM","name":"rnn","input_size":4,"hidden_size":4,"colour":"red"}]}"#, "unknown field 'colour'"),
            (#"{"modules":[{"type":"Readout","mode":"median"}]}"#, "mode 'median'"),
            (#"{"modules":[{"type":"LSTM","name":"rnn","hidden_size":4}]}"#, "missing 'input_size'"),
            (#"{"modules":[{"type":"LSTM","name":"rnn","input_size":"4","hidden_size":4}]}"#, "modules[0].input_size: expected an integer, found a string"),
            (#"{"format":"other","modules":[]}"#, "format is 'other'"),
            ("not json", "is not valid JSON: unexpected character at byte 1"),
            ("[1]", "is not a JSON object"),
        ]
        for (config, fragment) in cases {
            try assertRefused(entries, config: config, mentions: ["model_config", fragment])
        }
    }

    func testWrongInputsAreErrorsNotTraps() throws {
        let model = try LoadedModel(contentsOf: fixture("pytorch/lstm_basic.h5"))
        let inputSize = try XCTUnwrap(model.recurrentLayers.first?.inputSize)
        XCTAssertThrowsError(try model.run(.features(Tensor(zeros: [2, 3, inputSize + 1]))))
        XCTAssertThrowsError(try model.run(.features(Tensor(zeros: [2, 3, inputSize])), lengths: [3, 4]))
        XCTAssertThrowsError(try model.run(.features(Tensor(zeros: [2, 3, inputSize])), lengths: [3]))
        XCTAssertThrowsError(try model.run(.tokens(ids: [1, 2], batch: 1, time: 2)))
        XCTAssertThrowsError(try model.run(.features(Tensor(zeros: [2, 3, inputSize])),
                                           initialStates: model.initialStates(h0: Tensor(zeros: [1, 3, 1]), c0: nil, batch: 2)))
        let classifier = try LoadedModel(contentsOf: fixture("pytorch/clf_embed_lstm_last_hidden.h5"))
        XCTAssertThrowsError(try classifier.run(.tokens(ids: [1, 1_000_000], batch: 1, time: 2))) { error in
            XCTAssertTrue("\(error)".contains("1000000"), "\(error)")
        }
        XCTAssertThrowsError(try classifier.run(.tokens(ids: [1, -1], batch: 1, time: 2)))
    }
}
