import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit

/// Every JSON document rnnkit reads goes through one strict reader (`StrictJSON`): a key
/// given twice, an integer that is not written as one, a boolean that is not `true` or
/// `false` are refused with their path, whatever the document (a `model_config`, a Keras
/// config, `metadata.json`, a safetensors header, a verify manifest).
final class StrictJSONTests: XCTestCase {
    private func failure(_ text: String) -> StrictJSON.Failure? {
        do {
            _ = try StrictJSON.parse(Array(text.utf8))
            return nil
        } catch {
            return error as? StrictJSON.Failure
        }
    }

    func testDuplicateKeysAreRefusedWithTheObjectsPath() {
        let cases: [(String, String)] = [
            (#"{"a": 1, "a": 2}"#, "holds key 'a' twice in one object"),
            (#"{"m": [{"x": 1}, {"y": {"k": 1, "k": 1}}]}"#, "m[1].y: holds key 'k' twice in one object"),
            // Keys Swift's String calls equal (é precomposed and e + combining acute).
            ("{\"\u{E9}\": 1, \"e\u{301}\": 2}", "holds key 'é' twice"),
        ]
        for (text, expected) in cases {
            let refusal = failure(text)
            XCTAssertEqual(refusal?.isSyntaxError, false, text)
            XCTAssertTrue(refusal?.description.contains(expected) == true, "\(text): \(String(describing: refusal))")
        }
    }

    func testGrammarAndBounds() {
        for text in ["{", "{\"a\" 1}", "[1,]", "01", "NaN", "[Infinity]", "\"a\u{1}\"", "{\"a\":1} x", "'a'", "[1e]"] {
            XCTAssertEqual(failure(text)?.isSyntaxError, true, text)
        }
        XCTAssertTrue(failure("[1e400]")?.description.contains("[0]: the number 1e400 is beyond a double's range") == true)
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        XCTAssertTrue(failure(deep)?.description.contains("nests JSON deeper than 512 levels") == true)
        let fine = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        XCTAssertNil(failure(fine))
        // A byte order mark before the document is skipped; U+FEFF inside a string is kept.
        let parsed = try? StrictJSONDecoder.parse(Data("\u{FEFF}[\"\u{FEFF}a\"]".utf8)) as? [String]
        XCTAssertEqual(parsed, ["\u{FEFF}a"])
    }

    /// Numbers keep their form: an integer-typed NSNumber only for a number written as an
    /// integer, exact digits beyond 64 bits, booleans as booleans.
    func testFoundationTreeKeepsTheNumbersForm() throws {
        let object = try XCTUnwrap(StrictJSONDecoder.parse(Data(#"[4, 4.0, 1e2, 18446744073709551620, -9223372036854775808, 18446744073709551615, true, null]"#.utf8)) as? [Any])
        let numbers = object.prefix(7).compactMap { $0 as? NSNumber }
        XCTAssertEqual(numbers.map(JSONValue.isWrittenAsInteger), [true, false, false, false, true, true, false])
        XCTAssertEqual(numbers[3].stringValue, "18446744073709551620")
        XCTAssertEqual(numbers[5].uint64Value, UInt64.max)
        XCTAssertTrue(JSONValue.isBoolean(numbers[6]))
        XCTAssertTrue(object[7] is NSNull)
    }

    // MARK: - model_config

    func testModelConfigWithADuplicateKeyIsRefusedWithItsPath() {
        XCTAssertEqual(modelConfigRefusal(modelConfigWithLSTM(#""hidden_size": 4, "hidden_size": 5"#)),
                       "m.h5: model_config: modules[1]: holds key 'hidden_size' twice in one object; refused (JSON readers keep only one)")
        XCTAssertTrue(modelConfigRefusal(#"{"modules": [], "modules": []}"#).hasSuffix("model_config: holds key 'modules' twice in one object; refused (JSON readers keep only one)"))
        XCTAssertEqual(modelConfigRefusal(modelConfigWithLSTM(#""hidden_size": 4"#)), "decoded")
    }

    /// Forms JSONSerialization reads as whole numbers, and JSONDecoder would round or convert,
    /// are refused where an integer is expected.
    func testModelConfigIntegersMustBeWrittenAsIntegers() {
        for value in ["4.0", "4e0", "0.4E1", "1e308", "-0.0", "18446744073709551620", "true", "\"4\""] {
            let text = modelConfigRefusal(modelConfigWithLSTM(#""hidden_size": \#(value)"#))
            XCTAssertTrue(text.contains("modules[1].hidden_size: expected an integer, found"), "\(value): \(text)")
        }
        XCTAssertTrue(modelConfigRefusal(modelConfigWithLSTM(#""hidden_size": 4, "bidirectional": "yes""#))
            .contains("modules[1].bidirectional: expected true or false, found a string"))
    }

    // MARK: - Keras

    /// A copy of a committed tf-keras model whose `model_config` text `edit` changes.
    private func editedCopy(of name: String, _ edit: (String) throws -> String) throws -> String {
        let path = try temporaryFolder(self).appendingPathComponent(name).path
        try FileManager.default.copyItem(atPath: fixture("keras/\(name)"), toPath: path)
        let file = try HDF5File.openForUpdate(path)
        let text = try XCTUnwrap(file.root.attribute("model_config")?.stringValue)
        let edited = try edit(text)
        XCTAssertNotEqual(edited, text)
        try file.root.setAttribute("model_config", .string(edited))
        return path
    }

    private func replacingFirst(_ old: String, with new: String, in text: String) throws -> String {
        let range = try XCTUnwrap(text.range(of: old), "no \(old)")
        return text.replacingCharacters(in: range, with: new)
    }

    private func refusal(_ path: String) -> String {
        do {
            _ = try LoadedModel(contentsOf: path)
            return "read"
        } catch {
            return "\(error)"
        }
    }

    /// `tfk_lstm_options.h5`: layers input_1, masking, lstm (return_sequences true), lstm_1, dense.
    func testKerasBooleansAreOnlyTrueOrFalse() throws {
        let cases: [(String, String)] = [
            (#""yes""#, "is a string, expected true or false"),
            ("1", "is 1, expected true or false"),
            ("null", "is null, expected true or false"),
        ]
        for (value, message) in cases {
            let path = try editedCopy(of: "tfk_lstm_options.h5") {
                try replacingFirst(#""return_sequences": true"#, with: #""return_sequences": \#(value)"#, in: $0)
            }
            let text = refusal(path)
            XCTAssertTrue(text.hasPrefix(path), text)
            XCTAssertTrue(text.contains("lstm (LSTM)") && text.contains("layers[2].config.return_sequences \(message)"), text)
        }
        // Absent takes Keras's default: the file still reads.
        let absent = try editedCopy(of: "tfk_lstm_options.h5") {
            try replacingFirst(#""return_sequences": false, "#, with: "", in: $0)
        }
        XCTAssertEqual(refusal(absent), "read")
    }

    func testKerasConfigWithADuplicateKeyIsRefusedWithItsPath() throws {
        let path = try editedCopy(of: "tfk_lstm_options.h5") {
            try replacingFirst(#""return_sequences": true"#, with: #""return_sequences": true, "return_sequences": false"#, in: $0)
        }
        XCTAssertEqual(refusal(path), "\(path): model_config: config.layers[2].config: holds key 'return_sequences' twice in one object; refused (JSON readers keep only one)")
    }

    func testKerasIntegersMustBeWrittenAsIntegers() throws {
        for (value, message) in [("4.0", "is 4.0, not an integer"), ("1e308", "is 1e+308, not an integer")] {
            let path = try editedCopy(of: "tfk_lstm_options.h5") {
                try replacingFirst(#""units": "#, with: #""units": \#(value), "x_": "#, in: $0)
            }
            let text = refusal(path)
            XCTAssertTrue(text.contains("layers[2].config.units \(message)"), text)
        }
    }

    /// A `.keras` archive's `metadata.json` is read by the same rules.
    func testMetadataWithADuplicateKeyIsRefused() throws {
        let source = fixture("keras/k3_lstm_options.keras")
        let archive = try ZipArchive(path: source)
        var members: [(String, [UInt8])] = []
        for name in ["config.json", "metadata.json", "model.weights.h5"] {
            var bytes = try XCTUnwrap(try archive.member(name, limit: 1 << 26, bound: "test"))
            if name == "metadata.json" {
                bytes = Array(#"{"keras_version": "3.15.1", "keras_version": "2.21.0"}"#.utf8)
            }
            members.append((name, bytes))
        }
        let path = try temporaryFolder(self).appendingPathComponent("dup_metadata.keras").path
        try writeStoredZip(members, to: path)
        XCTAssertEqual(refusal(path), "\(path): metadata.json: holds key 'keras_version' twice in one object; refused (JSON readers keep only one)")
    }

    /// A zip of stored members, as the zip tests build them.
    private func writeStoredZip(_ members: [(String, [UInt8])], to path: String) throws {
        var out: [UInt8] = []
        var central: [UInt8] = []
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) } }
        for (name, bytes) in members {
            let offset = UInt32(out.count)
            let crc = crc32(bytes)
            let header = le16(20) + le16(0) + le16(0) + le16(0) + le16(0) + le32(crc)
                + le32(UInt32(bytes.count)) + le32(UInt32(bytes.count)) + le16(name.utf8.count)
            out += [0x50, 0x4B, 0x03, 0x04] + header + le16(0) + Array(name.utf8) + bytes
            central += [0x50, 0x4B, 0x01, 0x02] + le16(20) + header + le16(0) + le16(0) + le16(0) + le16(0)
                + le32(0) + le32(offset) + Array(name.utf8)
        }
        let start = UInt32(out.count)
        out += central
        out += [0x50, 0x4B, 0x05, 0x06] + le16(0) + le16(0) + le16(members.count) + le16(members.count)
            + le32(UInt32(central.count)) + le32(start) + le16(0)
        try Data(out).write(to: URL(fileURLWithPath: path))
    }

    private func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    // MARK: - Safetensors and manifests

    func testSafetensorsHeaderWithADuplicateKeyIsStillRefused() throws {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"shape":[1]}}"#
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
        bytes += Array(header.utf8) + [0, 0, 0, 0]
        XCTAssertThrowsError(try SafetensorsFile.read(bytes: bytes, name: "s.safetensors")) { error in
            XCTAssertEqual("\(error)", "s.safetensors: header: a: holds key 'shape' twice in one object; refused (JSON readers keep only one)")
        }
    }

    func testJSONManifestWithADuplicateKeyIsRefused() throws {
        let path = try temporaryFolder(self).appendingPathComponent("cases.json").path
        try Data(#"[{"model": "a.h5", "fixture": "a.fixture.h5", "model": "b.h5"}]"#.utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try VerificationSuite.cases(manifest: path)) { error in
            XCTAssertEqual("\(error)", "\(path): [0]: holds key 'model' twice in one object; refused (JSON readers keep only one)")
        }
    }
}
