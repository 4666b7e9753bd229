import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit

/// Layers, options and graphs RecurrentKit cannot run exactly are refused by name — never
/// approximated, and nothing from a file is ever executed.
final class KerasRefusalTests: XCTestCase {
    /// A copy of a committed tf-keras model whose config `edit` changes.
    private func editedCopy(of name: String, _ edit: (inout [String: Any]) throws -> Void) throws -> String {
        let path = try temporaryFolder(self).appendingPathComponent(name).path
        try FileManager.default.copyItem(atPath: fixture("keras/\(name)"), toPath: path)
        let file = try HDF5File.openForUpdate(path)
        let text = try XCTUnwrap(file.root.attribute("model_config")?.stringValue)
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        try edit(&config)
        let data = try JSONSerialization.data(withJSONObject: config)
        try file.root.setAttribute("model_config", .string(String(decoding: data, as: UTF8.self)))
        return path
    }

    private func editLayer(_ config: inout [String: Any], named layerName: String, _ edit: (inout [String: Any]) -> Void) throws {
        var inner = try XCTUnwrap(config["config"] as? [String: Any])
        var layers = try XCTUnwrap(inner["layers"] as? [[String: Any]])
        let index = try XCTUnwrap(layers.firstIndex { ($0["config"] as? [String: Any])?["name"] as? String == layerName })
        edit(&layers[index])
        inner["layers"] = layers
        config["config"] = inner
    }

    private func assertRefused(_ path: String, mentions fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try LoadedModel(contentsOf: path), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(path), text, file: file, line: line)
            for fragment in fragments { XCTAssertTrue(text.contains(fragment), "\(text) lacks '\(fragment)'", file: file, line: line) }
        }
    }

    func testUnsupportedLayerClass() throws {
        let path = try editedCopy(of: "tfk_text_rnn.h5") { config in
            try editLayer(&config, named: "dense") { $0["class_name"] = "Conv1D" }
        }
        assertRefused(path, mentions: ["dense (Conv1D)", "layer class 'Conv1D' is not supported"])
    }

    func testLambdaIsNeverExecuted() throws {
        let path = try editedCopy(of: "tfk_text_rnn.h5") { config in
            try editLayer(&config, named: "dense") { $0["class_name"] = "Lambda" }
        }
        assertRefused(path, mentions: ["(Lambda)", "never runs"])
    }

    func testUnsupportedActivation() throws {
        let path = try editedCopy(of: "tfk_text_rnn.h5") { config in
            try editLayer(&config, named: "dense") { layer in
                var inner = layer["config"] as! [String: Any]
                inner["activation"] = "mish"
                layer["config"] = inner
            }
        }
        assertRefused(path, mentions: ["dense (Dense)", "activation 'mish' is not supported"])
    }

    func testMergeModeNoneAndReturnStateAndTimeMajor() throws {
        let merge = try editedCopy(of: "tfk_text_bilstm.h5") { config in
            try editLayer(&config, named: "bidirectional") { layer in
                var inner = layer["config"] as! [String: Any]
                inner["merge_mode"] = NSNull()
                layer["config"] = inner
            }
        }
        assertRefused(merge, mentions: ["bidirectional (Bidirectional)", "merge_mode None"])
        for (option, fragment) in [("return_state", "Sequential model cannot pass on"), ("time_major", "time_major=True")] {
            let path = try editedCopy(of: "tfk_text_rnn.h5") { config in
                try editLayer(&config, named: "simple_rnn") { layer in
                    var inner = layer["config"] as! [String: Any]
                    inner[option] = true
                    layer["config"] = inner
                }
            }
            assertRefused(path, mentions: ["simple_rnn (SimpleRNN)", fragment])
        }
    }

    func testGraphThatIsNotAChain() throws {
        let path = try editedCopy(of: "tfk_functional_masking.h5") { config in
            // Feed the last Dense from two layers, as a Concatenate-style graph would.
            try editLayer(&config, named: "dense_1") { layer in
                layer["inbound_nodes"] = [[["global_average_pooling1d", 0, 0, [:]], ["masking", 0, 0, [:]]]]
            }
        }
        assertRefused(path, mentions: ["layer 'dense_1' (Dense)", "takes 2 inputs", "not a chain"])
    }

    func testWrongWeightShapeNamesLayerAndShapes() throws {
        let path = try editedCopy(of: "tfk_text_rnn.h5") { config in
            try editLayer(&config, named: "simple_rnn") { layer in
                var inner = layer["config"] as! [String: Any]
                inner["units"] = 7
                layer["config"] = inner
            }
        }
        assertRefused(path, mentions: ["simple_rnn (SimpleRNN)", "kernel has shape", "expected [4, 7]"])
    }

    func testWeightsOnlyFileNeedsAnArchitecture() throws {
        let path = fixture("keras/tfk_stacked_bilstm.legacy-weights.h5")
        assertRefused(path, mentions: ["without an architecture", "architecture: MODEL.h5|MODEL.keras|config.json"])
        let listing = try XCTUnwrap(KerasWeightsListing.read(path))
        XCTAssertEqual(listing.form, "legacy")
        XCTAssertTrue(listing.layers.contains { $0.name == "bidirectional" && $0.weights.count == 6 })
        let loaded = try LoadedModel(contentsOf: path, architecture: fixture("keras/tfk_stacked_bilstm.h5"))
        XCTAssertEqual(loaded.parameterCount, listing.parameterCount)
    }

    func testDamagedArchiveIsAnError() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("broken.keras").path
        var bytes = try Data(contentsOf: URL(fileURLWithPath: fixture("keras/k3_text_rnn.keras")))
        bytes = bytes.prefix(bytes.count / 2)
        try bytes.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try LoadedModel(contentsOf: path)) { error in
            XCTAssertTrue("\(error)".hasPrefix(path), "\(error)")
        }
        let result = try rnnkit("inspect", path)
        XCTAssertEqual(result.status, 2)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
    }

    func testReturnStateOutputOtherThanTheLayersOwn() throws {
        // The committed model feeds the Dense from the LSTM's h (output 1), which equals its
        // output; feeding it c (output 2) is refused.
        XCTAssertNoThrow(try LoadedModel(contentsOf: fixture("keras/tfk_return_state.h5")))
        let path = try editedCopy(of: "tfk_return_state.h5") { config in
            try editLayer(&config, named: "dense") { layer in
                let nodes = layer["inbound_nodes"] as! [[[Any]]]
                var reference = nodes[0][0]
                reference[2] = 2
                layer["inbound_nodes"] = [[reference]]
            }
        }
        assertRefused(path, mentions: ["(LSTM)", "return_state=True", "output 2"])
    }
}
