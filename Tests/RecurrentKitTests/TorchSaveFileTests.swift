import Foundation
import RecurrentEngine
import TestSupport
import XCTest
@testable import RecurrentKit

/// `TorchSaveFile` against files torch 2.15 wrote (fixtures/pytorch-files/unit, made by
/// generate_unit.py): every value equals what `torch.load(weights_only=True)` gave back,
/// recorded in expected.json as float32 bit patterns.
final class TorchSaveFileTests: XCTestCase {
    private static let folder = "pytorch-files/unit"

    private func expected() throws -> [String: Any] {
        try loadJSON("\(Self.folder)/expected.json")
    }

    /// Reads the entry `case` of expected.json and checks every tensor against it: names in
    /// order, shape, dtype, and each value bit for bit (integer tensors refuse `readFloats`).
    private func check(_ caseName: String, order: TensorDType.ByteOrder = .little,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let entry = try XCTUnwrap(try expected()[caseName] as? [String: Any], "expected.json has no \(caseName)")
        let name = try XCTUnwrap(entry["file"] as? String)
        let key = entry["key"] as? String
        let tensors = try XCTUnwrap(entry["tensors"] as? [String: [String: Any]])
        let container = try TorchSaveFile.read(fixture("\(Self.folder)/\(name)"), key: key)
        XCTAssertEqual(Set(try container.tensorNames(below: "")), Set(tensors.keys), caseName, file: file, line: line)
        XCTAssertFalse(tensors.isEmpty, file: file, line: line)
        for (tensorName, record) in tensors {
            let tensor = try XCTUnwrap(try container.tensor(tensorName), "\(caseName): \(tensorName)", file: file, line: line)
            XCTAssertEqual(tensor.shape, record["shape"] as? [Int], "\(caseName): \(tensorName)", file: file, line: line)
            let dtype = try XCTUnwrap(record["dtype"] as? String)
            let shownOrder = order == .big && dtype != "bool" ? " big-endian" : ""
            XCTAssertEqual(tensor.dtype.description, dtype + shownOrder, "\(caseName): \(tensorName)", file: file, line: line)
            guard let bits = record["float32_bits"] as? [Int] else {
                // An integer or bool buffer: listed, and refused as floats naming key and dtype.
                XCTAssertThrowsError(try tensor.readFloats(), file: file, line: line) { error in
                    let text = "\(error)"
                    XCTAssertTrue(text.contains("state_dict key '\(tensorName)'") && text.contains(dtype), text, file: file, line: line)
                }
                continue
            }
            let values = try tensor.readFloats()
            XCTAssertEqual(values.map { $0.bitPattern }, bits.map { UInt32(bitPattern: Int32(truncatingIfNeeded: $0)) },
                           "\(caseName): \(tensorName)", file: file, line: line)
        }
    }

    func testEveryDtypeEqualsTorch() throws {
        try check("dtypes.pt")
    }

    func testBigEndianFileEqualsTorch() throws {
        try check("dtypes_big_endian.pt", order: .big)
    }

    func testNonContiguousAndSharedViewsEqualTorch() throws {
        try check("views.pt")
        try check("views_deflated.pt")
        // The fixture still exercises what it is for: one storage, views that are not the whole of it.
        let entry = try XCTUnwrap(try expected()["views.pt"] as? [String: Any])
        let tensors = try XCTUnwrap(entry["tensors"] as? [String: [String: Any]])
        XCTAssertEqual(tensors["transposed"]?["shape"] as? [Int], [6, 4])
        XCTAssertEqual(tensors["block"]?["shape"] as? [Int], [2, 3])
    }

    func testParametersAndProtocol4EqualTorch() throws {
        try check("parameters.pt")
        try check("protocol4.pt")
    }

    func testCheckpointsWithOptimizerStateAreFoundAutomatically() throws {
        for name in ["checkpoint_adam.pt", "checkpoint_sgd.pth"] {
            let entry = try XCTUnwrap(try expected()[name] as? [String: Any])
            XCTAssertEqual(entry["key"] as? String, "model_state_dict")
            // No key given: the one state_dict is found beside the optimizer's state.
            let container = try TorchSaveFile.read(fixture("\(Self.folder)/\(name)"))
            let tensors = try XCTUnwrap(entry["tensors"] as? [String: [String: Any]])
            XCTAssertEqual(Set(try container.tensorNames(below: "")), Set(tensors.keys), name)
            try check(name)
        }
    }

    func testTwoStateDictsAreRefusedListingBothAndKeyPicksOne() throws {
        let path = fixture("\(Self.folder)/two_state_dicts.pt")
        XCTAssertThrowsError(try TorchSaveFile.read(path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("model (4 tensors)") && text.contains("ema/state_dict (4 tensors)"), text)
            XCTAssertTrue(text.contains("key: NAME"), text)
            XCTAssertEqual((error as? ModelError)?.options, [.key], text)
            XCTAssertFalse(text.contains("\n"))
        }
        try check("two_state_dicts.pt")
        try check("two_state_dicts.pt#ema")
        for key in ["missing", "ema", "ema/decay", "step/x"] {
            XCTAssertThrowsError(try TorchSaveFile.read(path, key: key), key) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("'\(key)'") && text.contains("ema/state_dict (4 tensors)"), text)
            }
        }
    }

    func testWholeModuleTorchScriptAndLegacyFilesAreRefusedWithTheFix() throws {
        let cases: [(String, [String])] = [
            ("whole_module.pt", ["torch.nn.modules.rnn.LSTM", "whole pickled module", "torch.save(model.state_dict()"]),
            ("torchscript.pt", ["TorchScript", "torch.save(model.state_dict()"]),
            ("legacy.pt", ["legacy format", "torch.save(torch.load(OLD, weights_only=True), NEW)"]),
        ]
        for (name, parts) in cases {
            let path = fixture("\(Self.folder)/\(name)")
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            for read in [{ try TorchSaveFile.read(path) }, { try TorchSaveFile.read(bytes: bytes, name: path) }] {
                XCTAssertThrowsError(try read(), name) { error in
                    let text = "\(error)"
                    for part in parts { XCTAssertTrue(text.contains(part), "\(name): \(text)") }
                    XCTAssertFalse(text.contains("\n"), text)
                }
            }
        }
    }

    func testOtherFilesAreNotTorchSaveFiles() throws {
        let folder = try temporaryFolder(self)
        // A zip whose members are in no folder, an HDF5 signature, and text.
        let zipPath = folder.appendingPathComponent("plain.zip").path
        let zip = try ZipWriter(creating: zipPath)
        try zip.add("config.json", Array("{}".utf8))
        try zip.finish()
        XCTAssertThrowsError(try TorchSaveFile.read(zipPath)) { XCTAssertTrue("\($0)".contains("not a torch.save file"), "\($0)") }
        for bytes in [[0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A], Array("hello".utf8), []] as [[UInt8]] {
            XCTAssertThrowsError(try TorchSaveFile.read(bytes: bytes, name: "x.pt")) {
                XCTAssertTrue("\($0)".contains("not a torch.save file"), "\($0)")
            }
        }
    }

    // MARK: Writing

    /// The tensors of a 2-layer bidirectional `nn.LSTM(3, 2)` with values that are exact in
    /// float32: `((7·i + 3·k) mod 17 − 8) / 16` for element `i` of tensor `k`
    /// (check_written.py computes the same in Python).
    static func sampleTensors() throws -> [(key: String, tensor: Tensor)] {
        var result: [(key: String, tensor: Tensor)] = []
        for layer in 0..<2 {
            for suffix in ["", "_reverse"] {
                let input = layer == 0 ? 3 : 4
                for (name, shape) in [("weight_ih", [8, input]), ("weight_hh", [8, 2]), ("bias_ih", [8]), ("bias_hh", [8])] {
                    let k = result.count
                    let count = shape.reduce(1, *)
                    let values = (0..<count).map { Float(((7 * $0 + 3 * k) % 17) - 8) / 16 }
                    result.append((key: "\(name)_l\(layer)\(suffix)", tensor: try Tensor(shape: shape, values: values)))
                }
            }
        }
        return result
    }

    static let sampleConfig = #"{"modules": [{"type": "lstm", "input_size": 3, "hidden_size": 2, "num_layers": 2, "bidirectional": true}]}"#

    func testWriteThenReadGivesTheSameTensorsAndConfig() throws {
        let path = try temporaryFolder(self).appendingPathComponent("m.pt").path
        let tensors = try Self.sampleTensors() + [(key: "empty", tensor: try Tensor(shape: [0, 3], values: [])),
                                                  (key: "scalar", tensor: try Tensor(shape: [], values: [-0.0])),
                                                  (key: "big", tensor: try Tensor(shape: [70_000], values: (0..<70_000).map { Float($0) }))]
        try TorchSaveFile.write(tensors, modelConfig: Self.sampleConfig, to: path)
        let container = try TorchSaveFile.read(path)
        XCTAssertEqual(try container.tensorNames(below: ""), tensors.map(\.key))
        XCTAssertEqual(container.metadata["model_config"], Self.sampleConfig)
        for (key, tensor) in tensors {
            let read = try XCTUnwrap(try container.tensor(key))
            XCTAssertEqual(read.shape, tensor.shape, key)
            XCTAssertEqual(read.dtype, .float32, key)
            XCTAssertEqual(try read.readFloats().map(\.bitPattern), tensor.values.map(\.bitPattern), key)
        }
        // Without a config there is no _metadata, and nothing is invented.
        let bare = try temporaryFolder(self).appendingPathComponent("bare.pt").path
        try TorchSaveFile.write(Array(tensors.prefix(2)), modelConfig: nil, to: bare)
        XCTAssertEqual(try TorchSaveFile.read(bare).metadata, [:])
        // The writer creates its file: an existing one is never overwritten.
        XCTAssertThrowsError(try TorchSaveFile.write(tensors, modelConfig: nil, to: bare))
    }

    /// The committed `written_by_rnnkit.pt` was written by this writer and loaded by real
    /// torch (check_written.py: `torch.load(weights_only=True)`, then `load_state_dict(strict=True)`
    /// into `nn.LSTM(3, 2, num_layers=2, bidirectional=True)`); the writer must still write
    /// exactly those bytes. `RNNKIT_WRITE_SAMPLE=DIR` writes the sample into DIR instead.
    func testWriterStillWritesTheFileTorchLoaded() throws {
        if let folder = ProcessInfo.processInfo.environment["RNNKIT_WRITE_SAMPLE"] {
            let path = URL(fileURLWithPath: folder).appendingPathComponent("written_by_rnnkit.pt").path
            try? FileManager.default.removeItem(atPath: path)
            try TorchSaveFile.write(try Self.sampleTensors(), modelConfig: Self.sampleConfig, to: path)
            print("wrote \(path)")
        }
        let path = try temporaryFolder(self).appendingPathComponent("sample.pt").path
        try TorchSaveFile.write(try Self.sampleTensors(), modelConfig: Self.sampleConfig, to: path)
        let written = try Data(contentsOf: URL(fileURLWithPath: path))
        let committed = try Data(contentsOf: URL(fileURLWithPath: fixture("\(Self.folder)/written_by_rnnkit.pt")))
        XCTAssertEqual(written, committed)
    }
}
