import Foundation
import HDF5
import XCTest
import TestSupport
import TextSafety
@testable import RecurrentKit

/// Names from files (layer names, keys, class names) reach terminals only escaped: `inspect`
/// (text and JSON), the weights-only listing, PyTorch key prefixes and every error line.
final class DisplayEscapingTests: XCTestCase {
    /// Retitles and clears a terminal when printed raw.
    static let terminalAttack = "\u{1B}]0;title\u{07}\u{1B}[2J"
    static let escapedAttack = "\\x1b]0;title\\x07\\x1b[2J"
    /// A C1 control (CSI) and a right-to-left override, which JSONSerialization leaves raw.
    static let c1AndBidi = "a\u{9B}31m\u{202E}b"

    /// True when `text` holds a scalar that could act on a terminal.
    private func hasUnsafeScalar(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0 != "\n" && isUnsafeForDisplay($0) }
    }

    /// A bare nn.RNN (input 2, hidden 3) whose keys sit under the group `prefix`.
    private func bareRNN(prefix: String) throws -> String {
        let path = try temporaryFolder(self).appendingPathComponent("rnn.h5").path
        do {
            let root = try HDF5File.create(path).root
            try root.write("\(prefix)/weight_ih_l0", floats: [Float](repeating: 0.1, count: 6), shape: [3, 2])
            try root.write("\(prefix)/weight_hh_l0", floats: [Float](repeating: 0.1, count: 9), shape: [3, 3])
        }
        return path
    }

    /// A Keras 3 weights-only file whose one layer group is named `name`.
    private func weightsOnlyListing(layer name: String) throws -> String {
        let path = try temporaryFolder(self).appendingPathComponent("w.weights.h5").path
        do {
            let root = try HDF5File.create(path).root
            try root.write("layers/\(name)/vars/0", floats: [1, 2], shape: [2])
        }
        return path
    }

    private func assertInspectIsEscaped(_ path: String, name: String, escaped: String,
                                        jsonName: ([String: Any]) -> String?, file: StaticString = #filePath, line: UInt = #line) throws {
        let text = try rnnkit("inspect", path)
        XCTAssertEqual(text.status, 0, text.stderr, file: file, line: line)
        XCTAssertFalse(hasUnsafeScalar(text.stdout), text.stdout.debugDescription, file: file, line: line)
        XCTAssertTrue(text.stdout.contains(escaped), text.stdout, file: file, line: line)
        let json = try rnnkit("inspect", path, "--json")
        XCTAssertEqual(json.status, 0, json.stderr, file: file, line: line)
        XCTAssertFalse(hasUnsafeScalar(json.stdout), json.stdout.debugDescription, file: file, line: line)
        // The JSON still decodes to the file's own name.
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any],
                                   file: file, line: line)
        XCTAssertEqual(jsonName(object), name, file: file, line: line)
    }

    private func firstLayerName(_ object: [String: Any]) -> String? {
        (object["layers"] as? [[String: Any]])?.first?["name"] as? String
    }

    func testPyTorchKeyPrefixesPrintEscaped() throws {
        for (name, escaped) in [(Self.terminalAttack, Self.escapedAttack), (Self.c1AndBidi, "a\\x9b31m\\u{202e}b")] {
            try assertInspectIsEscaped(try bareRNN(prefix: name), name: name, escaped: escaped, jsonName: firstLayerName)
        }
    }

    func testWeightsOnlyListingPrintsEscaped() throws {
        for (name, escaped) in [(Self.terminalAttack, Self.escapedAttack), (Self.c1AndBidi, "a\\x9b31m\\u{202e}b")] {
            try assertInspectIsEscaped(try weightsOnlyListing(layer: name), name: name, escaped: escaped, jsonName: firstLayerName)
        }
    }

    /// A 5000-character name is shortened with its length noted, in output and in errors.
    func testLongNamesAreShortened() throws {
        let long = String(repeating: "a", count: 5000)
        let text = try rnnkit("inspect", try bareRNN(prefix: long))
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("…(+4800 more characters)"), text.stdout)
        XCTAssertFalse(text.stdout.contains(String(repeating: "a", count: 201)))

        let path = try temporaryFolder(self).appendingPathComponent("bad.h5").path
        do {
            let root = try HDF5File.create(path).root
            try root.write(long + Self.terminalAttack, floats: [1], shape: [1])
        }
        let result = try rnnkit("inspect", path)
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.contains("more characters"), result.stderr)
        XCTAssertLessThan(result.stderr.count, 1200, result.stderr)
    }

    /// An error naming a hostile key is one escaped line, from the library and the CLI.
    func testErrorsNamingHostileKeysAreOneEscapedLine() throws {
        let path = try temporaryFolder(self).appendingPathComponent("bad.h5").path
        let key = "x" + Self.terminalAttack + "\nweight\r"
        do {
            let root = try HDF5File.create(path).root
            try root.write(key, floats: [1], shape: [1])
        }
        XCTAssertThrowsError(try LoadedModel(contentsOf: path)) { error in
            XCTAssertFalse(hasUnsafeScalar("\(error)"), "\(error)".debugDescription)
            XCTAssertTrue("\(error)".contains("x" + Self.escapedAttack + "\\x0aweight\\x0d"), "\(error)")
        }
        for arguments in [["inspect", path], ["inspect", path, "--json"], ["bench", path], ["convert", path,
                          try temporaryFolder(self).appendingPathComponent("o.h5").path, "--to", "keras"]] {
            let result = try rnnkit(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("x" + Self.escapedAttack + "\\x0aweight\\x0d"), result.stderr)
            XCTAssertEqual(result.stderr.split(separator: "\n", omittingEmptySubsequences: false).count, 2, result.stderr)
            XCTAssertFalse(hasUnsafeScalar(result.stderr) || hasUnsafeScalar(result.stdout), result.stderr.debugDescription)
        }
    }

    /// Layer and class names from a Keras config, quoted in messages, are escaped.
    func testKerasConfigNamesInErrorsAreEscaped() throws {
        let folder = try temporaryFolder(self)
        let config = folder.appendingPathComponent("config.json").path
        let layers: [[String: Any]] = [
            ["class_name": "InputLayer", "config": ["name": "in", "batch_shape": [NSNull(), 5, 4], "dtype": "float32"]],
            ["class_name": "Conv" + Self.terminalAttack, "config": ["name": "n" + Self.c1AndBidi]],
        ]
        let object: [String: Any] = ["class_name": "Sequential", "config": ["name": "m", "layers": layers]]
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: config))
        let weights = fixture("keras/k3_stacked_bilstm.weights.h5")
        XCTAssertThrowsError(try LoadedModel(contentsOf: weights, architecture: config)) { error in
            let text = "\(error)"
            XCTAssertFalse(hasUnsafeScalar(text), text.debugDescription)
            XCTAssertTrue(text.contains("layer class 'Conv\(Self.escapedAttack)' is not supported"), text)
            XCTAssertTrue(text.contains("na\\x9b31m\\u{202e}b"), text)
        }
        let result = try rnnkit("inspect", weights, "--architecture", config)
        XCTAssertEqual(result.status, 2)
        XCTAssertEqual(result.stderr.split(separator: "\n", omittingEmptySubsequences: false).count, 2, result.stderr)
        XCTAssertFalse(hasUnsafeScalar(result.stderr), result.stderr.debugDescription)
    }

    /// `ModelError.description` escapes every field itself, whoever builds the error.
    func testModelErrorDescriptionEscapesItsFields() {
        let error = ModelError(file: "f" + Self.terminalAttack, path: "p\n", layer: "l\u{202E}", message: "m\r\u{85}")
        XCTAssertEqual(error.description, "f\(Self.escapedAttack): p\\x0a: layer l\\u{202e}: m\\x0d\\x85")
    }
}
