import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit

/// What reading `json` as a `model_config` gives: `decoded`, or the one-line refusal.
func modelConfigRefusal(_ json: String) -> String {
    do {
        _ = try PyTorchModelConfig(json: json, file: "m.h5")
        return "decoded"
    } catch {
        return "\(error)"
    }
}

/// A version-2 `model_config` of a Linear and an LSTM whose fields after `input_size` are `fields`.
func modelConfigWithLSTM(_ fields: String) -> String {
    #"{"format": "recurrentkit.pytorch", "version": 2, "modules": [{"type": "Linear", "name": "fc", "in_features": 2, "out_features": 2}, {"type": "LSTM", "name": "rnn", "input_size": 4, \#(fields)}]}"#
}

/// `ModelConfigDocument` decodes strictly (exact integers, JSON types, no unknown fields,
/// bounds), naming the field's path, and the writer's documents encode to the bytes the
/// reader reads back as the same document.
final class ModelConfigDocumentTests: XCTestCase {
    /// Wrong JSON types and inexact integers are refused at the field's path, never
    /// rounded, wrapped or converted.
    func testWrongTypesAndInexactIntegersNameThePath() {
        let cases: [(String, String)] = [
            (#""hidden_size": "4""#, "m.h5: model_config: modules[1].hidden_size: expected an integer, found a string"),
            (#""hidden_size": 4.7"#, "modules[1].hidden_size: expected an integer, found 4.7"),
            (#""hidden_size": 1e308"#, "modules[1].hidden_size: expected an integer, found 1e+308"),
            (#""hidden_size": 18446744073709551620"#, "modules[1].hidden_size: expected an integer, found"),
            (#""hidden_size": true"#, "modules[1].hidden_size: expected an integer, found true"),
            (#""hidden_size": null"#, "modules[1]: missing 'hidden_size'"),
            (#""hidden_size": -3"#, "modules[1].hidden_size: -3 is negative"),
            (#""hidden_size": 16777217"#, "modules[1].hidden_size: 16777217, over the limit of 16777216 by 1 (Limits.dimension)"),
            (#""hidden_size": 4, "bidirectional": 1"#, "modules[1].bidirectional: expected true or false, found 1"),
            (#""hidden_size": 4, "dropout": false"#, "modules[1].dropout: expected a number, found false"),
            (#""hidden_size": 4, "merge_mode": "max""#, "modules[1].merge_mode: 'max' is not one of concat, sum, mul, ave"),
            (#""hidden_size": 4, "recurrent_activation": "mish""#, "modules[1].recurrent_activation: 'mish' is not one of"),
            (#""hidden_size": 4, "nonlinearity": "relu""#, "modules[1]: unknown field 'nonlinearity'"),
            (#""hidden_size": 4, "batch_first": false"#, "modules[1].batch_first: false is not supported"),
            (#""hidden_size": 4, "colour": "red""#, "modules[1]: unknown field 'colour'"),
        ]
        for (fields, expected) in cases {
            let text = modelConfigRefusal(modelConfigWithLSTM(fields))
            XCTAssertTrue(text.contains(expected), "\(fields): \(text)")
            XCTAssertFalse(text.contains("\n"), text)
        }
    }

    func testDocumentLevelRefusals() {
        let cases: [(String, String)] = [
            (#"{"modules": {}}"#, "modules: expected an array, found an object"),
            (#"{"modules": [3]}"#, "modules[0]: expected an object, found 3"),
            (#"{"modules": [{"name": "x"}]}"#, "modules[0]: missing 'type'"),
            (#"{"modules": [{"type": 7}]}"#, "modules[0].type: expected a string, found 7"),
            (#"{"modules": [], "version": 4}"#, "version 4 is not supported (this build reads versions 1 to 3)"),
            (#"{"modules": [{"type": "TextVectorization", "vocabulary": []}], "version": 2}"#, "modules[0]: a TextVectorization module needs version 3"),
            (#"{"modules": [{"type": "TextVectorization", "vocabulary": ["a"], "standardize": "upper"}]}"#, "modules[0].standardize: 'upper' is not one of"),
            (#"{"modules": [{"type": "TextVectorization", "vocabulary": ["a"], "split": "character"}]}"#, "modules[0].split: 'character' is not one of whitespace, none"),
            (#"{"modules": [{"type": "TextVectorization", "vocabulary": ["a"], "output_sequence_length": 0}]}"#, "modules[0].output_sequence_length: 0 steps"),
            (#"{"modules": [{"type": "TextVectorization", "vocabulary": ["a", "b"], "max_tokens": 3}]}"#, "modules[0].max_tokens: 3 is fewer than the vocabulary's 4 ids"),
            (#"{"modules": [{"type": "TextVectorization", "vocabulary": ["a", 7]}]}"#, "modules[0].vocabulary[1]: expected a string"),
            (#"{"modules": [{"type": "TextVectorization", "vocabulary": "vocab.txt"}]}"#, "modules[0].vocabulary: expected an array"),
            (#"{"modules": [], "version": 1.5}"#, "version: expected an integer, found 1.5"),
            (#"{"modules": [], "prefix": ["model."]}"#, "prefix: expected a string, found an array"),
            (#"{"modules": [], "author": "me"}"#, "model_config: unknown field 'author'"),
            (#"{"modules": [{"type": "Softmax", "dim": 1}]}"#, "modules[0].dim: only -1 (the last axis) is supported, got 1"),
            (#"{"modules": [{"type": "Softmax", "name": "s"}]}"#, "modules[0]: unknown field 'name'"),
            (#"{"modules": [{"type": "GELU", "approximate": "erf"}]}"#, "modules[0].approximate: 'erf' is not one of none, tanh"),
            (#"{"modules": [{"type": "Readout", "mode": "median"}]}"#, "modules[0].mode: mode 'median' is not one of"),
            (#"{"modules": [{"type": "Linear", "name": "", "in_features": 1, "out_features": 1}]}"#, "modules[0].name: a module with parameters needs a non-empty 'name'"),
            (#"{"modules": [{"type": "Masking", "mask_value": "0"}]}"#, "modules[0].mask_value: expected a number, found a string"),
            (#"{"modules": [{"type": "Dropout", "p": true}]}"#, "modules[0].p: expected a number, found true"),
        ]
        for (json, expected) in cases {
            let text = modelConfigRefusal(json)
            XCTAssertTrue(text.contains(expected), "\(json): \(text)")
        }
        let many = #"{"modules": ["# + Array(repeating: #"{"type": "ReLU"}"#, count: Limits.layers + 1).joined(separator: ",") + "]}"
        XCTAssertTrue(modelConfigRefusal(many).contains("modules: lists 10001 modules, over the limit of 10000 by 1 (Limits.layers)"), modelConfigRefusal(many))
    }

    /// Names from the file reach messages escaped.
    func testNamesInMessagesAreEscaped() {
        let text = modelConfigRefusal(#"{"modules": [{"type": "Linear\u001b]0;x\u0007", "name": "a"}]}"#)
        XCTAssertTrue(text.contains("module type 'Linear"), text)
        XCTAssertFalse(text.unicodeScalars.contains { $0.value < 0x20 }, text.debugDescription)
        let field = modelConfigRefusal(#"{"modules": [{"type": "ReLU", "\u202Eeman": "a"}]}"#)
        XCTAssertTrue(field.contains("unknown field '"), field)
        XCTAssertFalse(field.unicodeScalars.contains { $0.value == 0x202E }, field.debugDescription)
    }

    /// Every committed config decodes, and its document encodes to JSON that decodes to the
    /// same document; the writer's documents likewise (version 2, keys sorted, no spaces).
    func testDocumentsRoundTrip() throws {
        for name in ["clf_bilstm_max_sigmoid", "clf_embed_bigru_softmax", "clf_embed_lstm_last_hidden",
                     "clf_embed_rnn_mean", "clf_lstm2_last_step_mlp", "rnn_relu"] {
            let json = try XCTUnwrap(try HDF5File.open(fixture("pytorch/\(name).h5")).root.attribute("model_config")?.stringValue)
            let document = try PyTorchModelConfig.decode(json, file: name)
            XCTAssertEqual(document.version, 1, name)
            XCTAssertEqual(try PyTorchModelConfig.decode(document.json(), file: name), document, name)
            let original = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? NSDictionary
            let encoded = try JSONSerialization.jsonObject(with: Data(document.json().utf8)) as? NSDictionary
            XCTAssertEqual(original, encoded, "\(name): the document keeps every field as given")
        }
        let model = try LoadedModel(contentsOf: fixture("keras/tfk_bidi_merges.h5")).model
        let document = try XCTUnwrap(PyTorchWriter.plan(model, file: "tfk_bidi_merges.h5").document)
        let json = try document.json()
        XCTAssertTrue(json.hasPrefix(#"{"format":"recurrentkit.pytorch","lengths":"keras_mask","modules":[{"mask_value":-1,"type":"Masking"},{"bias":true,"bidirectional":true,"hidden_size":3,"input_size":4,"merge_mode":"mul","name":"bidirectional","nonlinearity":"relu","num_layers":1,"type":"RNN"}"#), json)
        XCTAssertTrue(json.hasSuffix(#"{"dim":-1,"type":"Softmax"}],"version":2}"#), json)
        XCTAssertEqual(try PyTorchModelConfig.decode(json, file: "m.h5"), document)
    }
}
