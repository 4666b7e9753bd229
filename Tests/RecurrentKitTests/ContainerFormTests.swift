import Foundation
import RecurrentEngine
import TestSupport
import XCTest
@testable import RecurrentKit

/// Which container a file is, decided by its structure alone (`ModelFileForm`,
/// spec/architecture.md "Which container"): safetensors, pickle, HDF5, zip and ONNX never
/// read as one another. Files from the real `safetensors` and `onnx` packages
/// (fixtures/pytorch-files/safetensors-unit/generate_header_lengths.py, fixtures/onnx).
final class ContainerFormTests: XCTestCase {
    private static let unit = "pytorch-files/safetensors-unit"

    private func headerLengths() throws -> [String: Any] {
        try loadJSON("\(Self.unit)/header_lengths.json")
    }

    /// A safetensors file as generate_header_lengths.py checks that safetensors loads it:
    /// `header` padded with spaces to `length` bytes, then `values` as float32.
    private func paddedFile(header: String, length: Int, values: [Float]) -> [UInt8] {
        var bytes = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(length) >> (8 * UInt64($0))) }
        bytes += Array(header.utf8) + [UInt8](repeating: 0x20, count: length - header.utf8.count)
        for value in values { bytes += (0..<4).map { UInt8(truncatingIfNeeded: value.bitPattern >> (8 * UInt32($0))) } }
        return bytes
    }

    // MARK: - Safetensors

    /// Every low byte 0…255 of the header length: the file is safetensors, and reads (the
    /// whole path, `LoadedModel`) to the weights it holds. safetensors itself loads each of
    /// these 256 files (generate_header_lengths.py checks the same construction).
    func testEveryLowByteOfTheSafetensorsHeaderLength() throws {
        let padded = try XCTUnwrap(try headerLengths()["padded_header"] as? [String: Any])
        let header = try XCTUnwrap(padded["header"] as? String)
        let values = try XCTUnwrap(padded["values"] as? [NSNumber]).map(\.floatValue)
        XCTAssertEqual(padded["low_bytes_loaded"] as? Int, 256)
        let folder = try temporaryFolder(self)
        var formsSeenBefore: Set<String> = []
        for low in 0..<256 {
            let length = header.utf8.count + ((low - header.utf8.count) % 256 + 256) % 256
            let bytes = paddedFile(header: header, length: length, values: values)
            XCTAssertEqual(Int(bytes[0]), low)
            XCTAssertEqual(ModelFileForm(bytes: bytes), .safetensors, "header length \(length)")
            let path = folder.appendingPathComponent("low_\(low).safetensors").path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            XCTAssertEqual(try ModelFileForm(sniffing: path), .safetensors, "header length \(length)")
            do {
                let model = try LoadedModel(contentsOf: path)
                XCTAssertEqual(model.layout, .pytorchSafetensors)
                let layer = try XCTUnwrap(model.recurrentLayers.first)
                XCTAssertEqual(layer.directions[0].recurrentWeight.values, [values[0]], "header length \(length)")
                XCTAssertEqual(layer.directions[0].inputWeight.values, [values[1]], "header length \(length)")
            } catch {
                XCTFail("header length \(length) (first byte 0x\(String(low, radix: 16))): \(error)")
            }
            // What a first-byte reader would have taken these for: the test must cover them.
            if low == 0x80 { formsSeenBefore.insert("pickle PROTO") }
            if low == 0x08 { formsSeenBefore.insert("ONNX ir_version tag") }
            if low == 0x89 { formsSeenBefore.insert("HDF5 signature byte") }
            if low == 0x50 { formsSeenBefore.insert("zip P") }
        }
        XCTAssertEqual(formsSeenBefore.count, 4)
    }

    /// A header long enough that its length's first three bytes are PROTO, protocol 2 and a
    /// pickle opcode (`(`, MARK): still safetensors, because the whole structure says so.
    func testAHeaderLengthThatStartsLikeAPickleStream() throws {
        let padded = try XCTUnwrap(try headerLengths()["padded_header"] as? [String: Any])
        let header = try XCTUnwrap(padded["header"] as? String)
        let length = 0x28_02_80
        let bytes = paddedFile(header: header, length: length, values: [0.5, -0.25])
        XCTAssertEqual(Array(bytes[0..<3]), [0x80, 0x02, 0x28])
        XCTAssertTrue(ModelFileForm.startsLikePickle(bytes), "the case must look like pickle at its start")
        XCTAssertEqual(ModelFileForm(bytes: bytes), .safetensors)
        let container = try SafetensorsFile.read(bytes: bytes, name: "long-header")
        XCTAssertEqual(try XCTUnwrap(try container.tensor("weight_ih_l0")).readFloats(), [-0.25])
        // Cut short, the same bytes are no safetensors file; they are refused as pickle.
        XCTAssertEqual(ModelFileForm(bytes: Array(bytes.prefix(length))), .torchSave)
    }

    /// Files `safetensors.torch.save_file` wrote, with header lengths 384, 640, … whose first
    /// byte is 0x80 (and 264, 336: 0x08, 'P'): each reads, to torch's values.
    func testFilesTheSafetensorsLibraryWrote() throws {
        let files = try XCTUnwrap(try headerLengths()["files"] as? [String: [String: Any]])
        XCTAssertGreaterThanOrEqual(files.values.filter { ($0["first_bytes"] as? [Int])?.first == 0x80 }.count, 5,
                                    "the fixtures lost their 0x80 header lengths")
        for (name, entry) in files.sorted(by: { $0.key < $1.key }) {
            let path = fixture("\(Self.unit)/\(name)")
            let raw = try Data(contentsOf: URL(fileURLWithPath: path))
            let length = try XCTUnwrap(entry["header_length"] as? Int)
            XCTAssertEqual(Array(raw.prefix(4)), try XCTUnwrap(entry["first_bytes"] as? [Int]).map(UInt8.init), name)
            XCTAssertEqual(Int(raw[0]) | Int(raw[1]) << 8, length, name)
            XCTAssertEqual(try ModelFileForm(sniffing: path), .safetensors, name)
            let model = try LoadedModel(contentsOf: path)
            XCTAssertEqual(model.layout, .pytorchSafetensors, name)
            let container = try SafetensorsFile.read(path)
            let tensors = try XCTUnwrap(entry["tensors"] as? [String: [String: Any]])
            XCTAssertEqual(Set(try container.memberNames(of: "")), Set(tensors.keys), name)
            for (key, tensor) in tensors {
                let bits = try XCTUnwrap(tensor["float32_bits"] as? [NSNumber]).map(\.uint32Value)
                XCTAssertEqual(try XCTUnwrap(try container.tensor(key)).readFloats().map(\.bitPattern), bits, "\(name) \(key)")
            }
        }
        // The command line reads them too (it used to say "pickle: is pickle protocol 1").
        let result = try rnnkit("inspect", fixture("\(Self.unit)/header_384.safetensors"))
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("layout:     PyTorch state_dict (safetensors)"), result.stdout)
    }

    /// rnnkit's own `convert X.pt OUT.safetensors` reads its output back: a bare module's key
    /// prefix is lengthened until the written header's length has first byte 0x80 (and
    /// second 0x01 or more), and that conversion succeeds and reads back to the same weights.
    func testConvertedSafetensorsWithA0x80HeaderLengthReadsBack() throws {
        let folder = try temporaryFolder(self)
        var found: String?
        for prefixLength in 1...96 {
            let prefix = String(repeating: "m", count: prefixLength) + "."
            let tensors: [(key: String, tensor: Tensor)] = try [
                ("weight_ih_l0", [8, 3]), ("weight_hh_l0", [8, 2]), ("bias_ih_l0", [8]), ("bias_hh_l0", [8]),
            ].enumerated().map { index, entry in
                let count = entry.1.reduce(1, *)
                return (prefix + entry.0, try Tensor(shape: entry.1, values: (0..<count).map { Float($0 * 7 + index) / 13 - 1 }))
            }
            let source = folder.appendingPathComponent("src\(prefixLength).pt").path
            try TorchSaveFile.write(tensors, modelConfig: nil, to: source)
            let output = folder.appendingPathComponent("out\(prefixLength).safetensors").path
            do {
                _ = try Converter.convert(source, to: .pytorch, output: output)
            } catch {
                XCTFail("prefix of \(prefixLength): \(error)")
                continue
            }
            let head = [UInt8](try Data(contentsOf: URL(fileURLWithPath: output)).prefix(2))
            guard head[0] == 0x80, head[1] >= 1 else { continue }
            // Read back as a model, to the weights of the source.
            let model = try LoadedModel(contentsOf: output)
            let layer = try XCTUnwrap(model.recurrentLayers.first)
            XCTAssertEqual(layer.directions[0].inputWeight.values, tensors[0].tensor.values)
            XCTAssertEqual(try rnnkit("inspect", output).status, 0)
            found = output
            break
        }
        XCTAssertNotNil(found, "no prefix length gave a header length with first byte 0x80: the test covers nothing")
    }

    // MARK: - ONNX and the rest

    /// ONNX models written by `onnx.save` are decided as ONNX and read by the ONNX reader
    /// (ONNXTests checks what they compute); never "not a readable HDF5 file".
    func testONNXModelsAreReadAsONNX() throws {
        for name in ["lstm.onnx", "lstm_documented.onnx"] {
            let path = fixture("onnx/\(name)")
            XCTAssertEqual(try ModelFileForm(sniffing: path), .onnx, name)
            XCTAssertEqual(try LoadedModel(contentsOf: path).layout, .onnx, name)
            let result = try rnnkit(["inspect", path])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertTrue(result.stdout.contains("layout:     ONNX model (protobuf)"), result.stdout)
        }
        // Recognised conservatively: the same bytes cut inside the graph are not an ONNX model.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture("onnx/lstm.onnx"))))
        XCTAssertEqual(bytes.first, 0x08)
        XCTAssertEqual(ModelFileForm(bytes: Array(bytes.prefix(100))), .unrecognized)
        XCTAssertEqual(ModelFileForm(bytes: [0x08, 0x07, 0x12, 0x02, 0x41]), .unrecognized)
    }

    private var scratch: URL?
    private func folder() -> URL {
        if let scratch { return scratch }
        let made = try! temporaryFolder(self)
        scratch = made
        return made
    }

    /// Every committed file of every form is that form and no other; text and random bytes
    /// are none, with one line naming what rnnkit reads.
    func testEveryFormIsRecognizedAsItself() throws {
        let cases: [(String, ModelFileForm)] = [
            ("pytorch/lstm_basic.h5", .hdf5),
            ("keras/tfk_lstm_options.h5", .hdf5),
            ("keras/k3_lstm_options.keras", .kerasArchive),
            ("pytorch-files/lstm_bidir_2layer_lengths.pt", .torchSave),
            ("pytorch-files/refused_legacy_format.pt", .torchSave),
            ("pytorch-files/refused_pickled_module.pt", .torchSave),
            ("pytorch-files/lstm_proj_lengths.safetensors", .safetensors),
            ("\(Self.unit)/dtypes.safetensors", .safetensors),
            ("onnx/lstm.onnx", .onnx),
            ("hdf5/random.h5", .unrecognized),
            ("hdf5/not_hdf5.h5", .unrecognized),
            ("hdf5/truncated.h5", .hdf5),
        ]
        for (name, form) in cases {
            XCTAssertEqual(try ModelFileForm(sniffing: fixture(name)), form, name)
        }
        let random = fixture("hdf5/random.h5")
        XCTAssertThrowsError(try LoadedModel(contentsOf: random)) { error in
            XCTAssertEqual((error as? ModelError)?.kind, .unreadableFile)
            XCTAssertEqual("\(error)", "\(random): is none of the files rnnkit reads (HDF5: a PyTorch state_dict or a Keras model or weights; a Keras 3 .keras archive; a torch.save .pt/.pth file; a safetensors file): its first bytes match none of them")
        }
        // The legacy torch format keeps its own refusal (the pickle reader's).
        let legacy = fixture("pytorch-files/refused_legacy_format.pt")
        XCTAssertThrowsError(try LoadedModel(contentsOf: legacy)) { error in
            XCTAssertTrue("\(error)".contains("legacy format"), "\(error)")
        }
    }

    /// An HDF5 file with a user block (its signature at 512) is HDF5, whatever the block
    /// holds — here bytes that start like a pickle stream.
    func testHDF5WithAUserBlock() throws {
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture("pytorch/lstm_basic.h5"))))
        var block = [UInt8](repeating: 0, count: 512)
        block[0..<3] = [0x80, 0x02, 0x5D]
        let path = try temporaryFolder(self).appendingPathComponent("userblock.h5").path
        try Data(block + original).write(to: URL(fileURLWithPath: path))
        XCTAssertTrue(ModelFileForm.startsLikePickle(block))
        XCTAssertEqual(try ModelFileForm(sniffing: path), .hdf5)
        XCTAssertEqual(try LoadedModel(contentsOf: path).layout, .pytorch)
    }
}
