import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit
import RecurrentEngine

/// Sizes from hostile files and command lines are refused before the work they would cause,
/// by a named bound (`Limits`, `Engine.runElementLimit`), with one escaped line that says which
/// bound and by how much — never a trap, an abort or gigabytes allocated.
final class HostileConfigTests: XCTestCase {
    // MARK: - Helpers

    /// A copy of a committed tf-keras model whose `model_config` JSON text `edit` changes
    /// (text, so that numbers JSONSerialization cannot write, such as 2^64+4, can be put in).
    private func editedCopy(of name: String, _ edit: (String) throws -> String) throws -> String {
        let path = try temporaryFolder(self).appendingPathComponent(name).path
        try FileManager.default.copyItem(atPath: fixture("keras/\(name)"), toPath: path)
        let file = try HDF5File.openForUpdate(path)
        let text = try XCTUnwrap(file.root.attribute("model_config")?.stringValue)
        let edited = try edit(text)
        XCTAssertNotEqual(edited, text, "the edit changed nothing")
        try file.root.setAttribute("model_config", .string(edited))
        return path
    }

    /// `text` with the one occurrence of `old` replaced.
    private func replacing(_ old: String, with new: String, in text: String,
                           file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let parts = text.components(separatedBy: old)
        XCTAssertEqual(parts.count, 2, "'\(old)' occurs \(parts.count - 1) times", file: file, line: line)
        return parts.joined(separator: new)
    }

    /// `text` with field `field` of layer `layer` (its first occurrence after the layer's
    /// name, `"units": 3`) set to the JSON text `value`.
    private func settingField(_ field: String, of layer: String, to value: String, in text: String) throws -> String {
        let start = try XCTUnwrap(text.range(of: #""name": "\#(layer)""#), "no layer \(layer)")
        let found = try XCTUnwrap(text.range(of: #""\#(field)": [^,}]*"#, options: .regularExpression,
                                             range: start.upperBound..<text.endIndex), "no \(field) after \(layer)")
        var edited = text
        edited.replaceSubrange(found, with: #""\#(field)": \#(value)"#)
        return edited
    }

    /// The index of layer `name` in the model config of `path`.
    private func layerIndex(_ name: String, in path: String) throws -> Int {
        let text = try XCTUnwrap(HDF5File.open(path).root.attribute("model_config")?.stringValue)
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let layers = try XCTUnwrap((config["config"] as? [String: Any])?["layers"] as? [[String: Any]])
        return try XCTUnwrap(layers.firstIndex { ($0["config"] as? [String: Any])?["name"] as? String == name })
    }

    /// The library refuses `path` with a message holding every fragment, and the CLI's
    /// `inspect` exits 2 with exactly one stderr line holding them too.
    private func assertRefused(_ path: String, architecture: String? = nil, mentions fragments: [String],
                               file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertThrowsError(try LoadedModel(contentsOf: path, architecture: architecture), file: file, line: line) { error in
            let text = "\(error)"
            for fragment in fragments {
                XCTAssertTrue(text.contains(fragment), "\(text) lacks '\(fragment)'", file: file, line: line)
            }
        }
        var arguments = ["inspect", path]
        if let architecture { arguments += ["--architecture", architecture] }
        try assertCommandRefused(arguments, mentions: fragments, file: file, line: line)
    }

    private func assertCommandRefused(_ arguments: [String], mentions fragments: [String],
                                      file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try rnnkit(arguments)
        XCTAssertEqual(result.status, 2, result.stdout + result.stderr, file: file, line: line)
        XCTAssertEqual(result.stderr.split(separator: "\n", omittingEmptySubsequences: false).count, 2,
                       "one line: \(result.stderr)", file: file, line: line)
        XCTAssertFalse(result.stderr.contains("Fatal error") || result.stderr.contains("backtrace"), result.stderr,
                       file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(result.stderr.contains(fragment), "\(result.stderr) lacks '\(fragment)'", file: file, line: line)
        }
    }

    /// A Keras 3 config JSON file with `layers` (each `[class, config]`), and the committed
    /// weights-only file to pair it with (no layer here reaches its weights).
    private func architecture(_ layers: [String]) throws -> String {
        let path = try temporaryFolder(self).appendingPathComponent("config.json").path
        let json = #"{"class_name": "Sequential", "config": {"name": "m", "layers": ["# + layers.joined(separator: ", ") + "]}}"
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    private let weightsOnly = fixture("keras/k3_stacked_bilstm.weights.h5")
    private let input = #"{"class_name": "InputLayer", "config": {"name": "input", "batch_shape": [null, 5, 4], "dtype": "float32"}}"#

    // MARK: - Sizes in configs

    /// LSTM units 2^61 trapped on `4 · units` before; now refused at the field.
    func testLSTMUnitsBeyondTheDimensionBound() throws {
        let path = try editedCopy(of: "tfk_lstm_options.h5") { text in
            try settingField("units", of: "lstm_1", to: "2305843009213693952", in: text)
        }
        let index = try layerIndex("lstm_1", in: path)
        try assertRefused(path, mentions: ["lstm_1 (LSTM)", "layers[\(index)].config.units is 2305843009213693952",
                                           "over the limit of 16777216 by 2305843009196916736"])
    }

    /// Dense units 1e308 printed `[in, -9223372036854775808]`; 2^64+4 and 4.7 read as 4.
    func testDenseUnitsMustBeExactIntegersInRange() throws {
        let cases: [(String, String)] = [
            ("1e308", "is 1e+308, not an integer"),
            ("4.0", "is 4.0, not an integer"),
            ("18446744073709551620", "is 18446744073709551620, over the limit of 16777216"),
            ("4.7", "is 4.7, not an integer"),
            ("-4", "is -4, below the least allowed value 1"),
            ("0", "is 0, below the least allowed value 1"),
            ("true", "is true, expected an integer in 1...16777216"),
            ("\"4\"", "is 4, expected an integer in 1...16777216"),
        ]
        for (value, message) in cases {
            let path = try editedCopy(of: "tfk_dense_activations.h5") { text in
                try settingField("units", of: "dense_10", to: value, in: text)
            }
            let index = try layerIndex("dense_10", in: path)
            try assertRefused(path, mentions: ["dense_10 (Dense)", "layers[\(index)].config.units \(message)"])
        }
    }

    /// An input shape with 2^62 steps is refused at the InputLayer; steps and features within
    /// the bound whose product is not are refused at the Flatten, before it multiplies them.
    func testFlattenOverHugeStepCounts() throws {
        let huge = try editedCopy(of: "tfk_flatten_stateful.h5") { text in
            try replacing(#""batch_input_shape": [3, 6, 4]"#, with: #""batch_input_shape": [3, 4611686018427387904, 4]"#, in: text)
        }
        try assertRefused(huge, mentions: ["input_1 (InputLayer)", "layers[0].config.batch_input_shape[1] is 4611686018427387904",
                                           "over the limit of 16777216"])
        let product = try editedCopy(of: "tfk_flatten_stateful.h5") { text in
            try replacing(#""batch_input_shape": [3, 6, 4]"#, with: #""batch_input_shape": [3, 16777216, 4]"#, in: text)
        }
        try assertRefused(product, mentions: ["flatten (Flatten)", "16777216 × 4 = 67108864, over the limit of 16777216 by 50331648",
                                              "Limits.dimension"])
    }

    /// The layer count is checked before any per-layer work; the JSON size before parsing.
    func testLayerCountAndConfigSizeBounds() throws {
        let dropout = { (i: Int) in #"{"class_name": "Dropout", "config": {"name": "d\#(i)", "rate": 0.1}}"# }
        let many = try architecture([input] + (0..<10_000).map(dropout))
        try assertRefused(weightsOnly, architecture: many,
                          mentions: ["lists 10001 layers, over the limit of 10000 by 1 (Limits.layers)"])
        // 10^5 layers (7 MB) took 644 MB and seconds to parse: refused by counting first.
        let more = try architecture([input] + (0..<100_000).map(dropout))
        try assertRefused(weightsOnly, architecture: more,
                          mentions: ["holds more than 262144 JSON keys and values (Limits.configJSONItems)"])
        let huge = try temporaryFolder(self).appendingPathComponent("huge.json").path
        let text = #"{"class_name": "Sequential", "config": {"name": "m", "layers": ["#
            + ([input] + (0..<1_000_000).map(dropout)).joined(separator: ", ") + "]}}"
        try Data(text.utf8).write(to: URL(fileURLWithPath: huge))
        // The architecture file is refused by its size as it is read; the config reader
        // checks the same bound on JSON from any source (an HDF5 attribute, an archive).
        try assertRefused(weightsOnly, architecture: huge, mentions: ["16777216", "(Limits.configJSONBytes)"])
        let over = "is \(text.utf8.count) bytes of JSON, over the limit of 16777216 by \(text.utf8.count - 16777216) (Limits.configJSONBytes)"
        XCTAssertThrowsError(try KerasConfig(json: text, file: "m.h5", path: "model_config")) { error in
            XCTAssertTrue("\(error)".contains(over), "\(error)")
        }
        XCTAssertThrowsError(try PyTorchModelConfig(json: text, file: "m.h5")) { error in
            XCTAssertTrue("\(error)".contains(over), "\(error)")
        }
    }

    /// Embedding sizes come from the config too; PyTorch model_config sizes likewise.
    func testEmbeddingAndModelConfigSizes() throws {
        let embedding = try architecture([
            #"{"class_name": "InputLayer", "config": {"name": "ids", "batch_shape": [null, 5], "dtype": "int32"}}"#,
            #"{"class_name": "Embedding", "config": {"name": "embed", "input_dim": 16777216, "output_dim": 16777216}}"#,
        ])
        try assertRefused(weightsOnly, architecture: embedding,
                          mentions: ["embed (Embedding)", "16777216 × 16777216 = 281474976710656, over the limit of 67108864",
                                     "(Limits.parameters)"])
        let json = #"{"format": "recurrentkit.pytorch", "version": 2, "modules": [{"type": "LSTM", "name": "rnn", "input_size": 4, "hidden_size": 2305843009213693952}]}"#
        XCTAssertThrowsError(try PythonEmitter.source(modelConfig: json, weightsFile: "m.h5")) { error in
            XCTAssertTrue("\(error)".contains("modules[0].hidden_size: 2305843009213693952, over the limit of 16777216 by 2305843009196916736 (Limits.dimension)"), "\(error)")
        }
    }

    /// Declared weight sizes are counted against `Limits.parameters` before anything is read:
    /// a dataset declaring 2^28 floats (with no data behind it) is refused by that bound.
    func testWeightsBudgetBeforeReading() throws {
        let path = try temporaryFolder(self).appendingPathComponent("big.h5").path
        do {
            let root = try HDF5File.create(path).root
            try root.createFloats("weight_ih_l0", shape: [1 << 16, 1 << 12])
        }
        try assertRefused(path, mentions: ["weight_ih_l0", "268435456 elements, over the limit of 67108864 by 201326592",
                                           "(Limits.parameters)"])
    }

    // MARK: - Sizes of inputs

    /// `/inputs` declared `[2^40, 0, 4]` holds nothing but would need 2^40-row states.
    func testHugeBatchWithNoElementsIsRefusedBeforeAllocating() throws {
        let model = try LoadedModel(contentsOf: fixture("pytorch/lstm_basic.h5"))
        let features = try XCTUnwrap(model.recurrentLayers.first?.inputSize)
        XCTAssertThrowsError(try model.run(.features(Tensor(shape: [1 << 40, 0, features], values: [])))) { error in
            XCTAssertTrue("\(error)".contains("batch 1099511627776 and 0 steps"), "\(error)")
            XCTAssertTrue("\(error)".contains("(Engine.runElementLimit)"), "\(error)")
        }
        let folder = try temporaryFolder(self)
        let inputs = folder.appendingPathComponent("in.h5").path
        do {
            let root = try HDF5File.create(inputs).root
            try root.write("inputs", floats: [], shape: [1 << 40, 0, features])
        }
        try assertCommandRefused(["run", fixture("pytorch/lstm_basic.h5"), "--input", inputs,
                                  "--output", folder.appendingPathComponent("out.h5").path],
                                 mentions: ["batch 1099511627776", "over the limit of 67108864", "(Engine.runElementLimit)"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("out.h5").path))
    }

    /// Float features given to a model that takes token ids: the message says what it takes.
    func testFloatInputsForATokenModel() throws {
        let model = fixture("keras/tfk_text_rnn.h5")
        let folder = try temporaryFolder(self)
        for withLengths in [false, true] {
            let inputs = folder.appendingPathComponent("in\(withLengths).h5").path
            do {
                let root = try HDF5File.create(inputs).root
                try root.write("inputs", floats: [Float](repeating: 1, count: 2 * 6 * 4), shape: [2, 6, 4])
                if withLengths { try root.write("lengths", integers: [6, 3], shape: [2]) }
            }
            XCTAssertThrowsError(try LoadedModel(contentsOf: model).run(InputFile(contentsOf: inputs).input)) { error in
                XCTAssertTrue("\(error)".contains("the model takes token ids [batch, time] (integers)"), "\(error)")
            }
            try assertCommandRefused(["run", model, "--input", inputs, "--output", folder.appendingPathComponent("o.h5").path],
                                     mentions: ["token ids [batch, time] (integers)"])
        }
    }

    /// Negative, overflowing and over-budget sizes on the command line.
    func testCommandLineSizes() throws {
        let model = fixture("pytorch/lstm_basic.h5")
        let cases: [([String], String)] = [
            (["bench", model, "--batch", "-5"], "--batch must be at least 1"),
            (["bench", model, "--time", "-1"], "--time must be at least 1"),
            (["bench", model, "--repeat", "-2"], "--repeat must be at least 1"),
            (["bench", model, "--threads", "-3"], "--threads must be at least 1"),
            (["verify", model, fixture("pytorch/lstm_basic.fixture.h5"), "--threads", "-3"], "--threads must be at least 1"),
            (["bench", model, "--batch", "1000000000", "--time", "1000000000"],
             "--batch 1000000000 × --time 1000000000 = 1000000000000000000 steps, over the limit of 67108864"),
            (["bench", model, "--batch", "4611686018427387904", "--time", "4"], "more than 9223372036854775807"),
            (["bench", model, "--batch", "100000", "--time", "256"], "(Engine.runElementLimit)"),
        ]
        for (arguments, message) in cases {
            try assertCommandRefused(arguments, mentions: [message])
        }
    }
}
