import Foundation
import RecurrentEngine
import XCTest
import TestSupport
@testable import RecurrentKit

/// safetensors files written by the real `safetensors` package read to exactly torch's
/// values; hostile headers refused with one line; rnnkit's writer produces the bytes
/// safetensors writes (fixtures/pytorch-files/safetensors-unit, generate_unit.py).
final class SafetensorsFileTests: XCTestCase {
    private static let folder = "pytorch-files/safetensors-unit"

    private func expected() throws -> [String: Any] {
        try loadJSON("\(Self.folder)/expected.json")
    }

    private func expectedFile(_ name: String) throws -> [String: Any] {
        let files = try XCTUnwrap(try expected()["files"] as? [String: Any])
        return try XCTUnwrap(files[name] as? [String: Any], "expected.json has no entry for \(name)")
    }

    /// torch's dtype names as the reader must report them.
    private static let dtypes: [String: TensorDType] = [
        "torch.float16": .float16, "torch.bfloat16": .bfloat16, "torch.float32": .float32, "torch.float64": .float64,
        "torch.int64": TensorDType(kind: .signedInteger, bits: 64, byteOrder: .little),
        "torch.uint8": TensorDType(kind: .unsignedInteger, bits: 8, byteOrder: .little),
        "torch.bool": TensorDType(kind: .other("bool"), bits: 8, byteOrder: .little),
    ]

    private static func bits(_ entry: [String: Any]) -> [UInt32]? {
        (entry["float32_bits"] as? [NSNumber])?.map(\.uint32Value)
    }

    private static func shape(_ entry: [String: Any]) -> [Int] {
        (entry["shape"] as? [NSNumber])?.map(\.intValue) ?? []
    }

    // MARK: - Files written by safetensors

    func testReadsEveryDtypeToTorchsValues() throws {
        let spec = try expectedFile("dtypes.safetensors")
        let tensors = try XCTUnwrap(spec["tensors"] as? [String: [String: Any]])
        let container = try SafetensorsFile.read(fixture("\(Self.folder)/dtypes.safetensors"))

        // The fixture must still exercise what this test is for.
        let stored = try container.memberNames(of: "").compactMap { try container.tensor($0)?.dtype }
        for dtype in ["torch.float16", "torch.bfloat16", "torch.float32", "torch.float64", "torch.int64"] {
            XCTAssertTrue(stored.contains(Self.dtypes[dtype]!), "the fixture lost its \(dtype) tensor")
        }
        let order = try XCTUnwrap(spec["header_order"] as? [String]).filter { $0 != "__metadata__" }
        XCTAssertEqual(try container.memberNames(of: ""), order, "the header's order")
        XCTAssertEqual(Set(order), Set(tensors.keys))

        for (key, entry) in tensors {
            let tensor = try XCTUnwrap(try container.tensor(key), key)
            XCTAssertEqual(tensor.shape, Self.shape(entry), key)
            XCTAssertEqual(tensor.count, Self.shape(entry).reduce(1, *), key)
            XCTAssertEqual(tensor.dtype, Self.dtypes[entry["torch_dtype"] as? String ?? ""], key)
            if let bits = Self.bits(entry) {
                XCTAssertEqual(try tensor.readFloats().map(\.bitPattern), bits, "\(key): torch's float32 values, bit for bit")
            } else {
                XCTAssertThrowsError(try tensor.readFloats(), key) { error in
                    let text = "\(error)"
                    XCTAssertTrue(error is ModelError, text)
                    XCTAssertTrue(text.contains("'\(key)'") && text.contains("only F16, BF16, F32 and F64"), text)
                }
            }
        }
        let steps = try XCTUnwrap(try container.tensor("steps"))
        XCTAssertThrowsError(try steps.readFloats()) { XCTAssertTrue("\($0)".contains("I64"), "\($0)") }

        let metadata = try XCTUnwrap(spec["metadata"] as? [String: String])
        XCTAssertEqual(container.metadata, metadata)
        XCTAssertNotNil(metadata["model_config"])
        XCTAssertEqual(try container.stringAttribute("model_config", at: ""), metadata["model_config"])
        XCTAssertEqual(container.location, "header")
    }

    func testReadsColumnsOfTwoDimensionalTensors() throws {
        let tensors = try XCTUnwrap(try expectedFile("dtypes.safetensors")["tensors"] as? [String: [String: Any]])
        let container = try SafetensorsFile.read(fixture("\(Self.folder)/dtypes.safetensors"))
        var checked = 0
        for (key, entry) in tensors {
            let shape = Self.shape(entry)
            guard shape.count == 2, shape[0] > 0, let bits = Self.bits(entry) else { continue }
            let tensor = try XCTUnwrap(try container.tensor(key))
            for range in [0..<shape[1], 1..<shape[1], 0..<1, shape[1]..<shape[1]] {
                var want: [UInt32] = []
                for row in 0..<shape[0] { want += bits[(row * shape[1] + range.lowerBound)..<(row * shape[1] + range.upperBound)] }
                XCTAssertEqual(try tensor.readColumns(range).map(\.bitPattern), want, "\(key) columns \(range)")
            }
            XCTAssertThrowsError(try tensor.readColumns(0..<(shape[1] + 1)))
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 3, "2-D float tensors in the fixture")
    }

    func testBytesAndPathReadTheSame() throws {
        let path = fixture("\(Self.folder)/dtypes.safetensors")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(ModelFileForm(bytes: bytes), .safetensors)
        XCTAssertEqual(ModelFileForm(bytes: Array(bytes.prefix(8))), .unrecognized)
        XCTAssertEqual(ModelFileForm(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture("pytorch/lstm_basic.h5"))))), .hdf5)
        let fromBytes = try SafetensorsFile.read(bytes: bytes, name: "memory")
        let fromPath = try SafetensorsFile.read(path)
        XCTAssertEqual(try fromBytes.memberNames(of: ""), try fromPath.memberNames(of: ""))
        for key in try fromPath.memberNames(of: "") where try fromPath.tensor(key)!.dtype.isFloat {
            XCTAssertEqual(try fromBytes.tensor(key)!.readFloats().map(\.bitPattern),
                           try fromPath.tensor(key)!.readFloats().map(\.bitPattern), key)
        }
        XCTAssertEqual(fromBytes.file, "memory")
    }

    // MARK: - Writing

    /// `spec`'s tensors (torch's values) as the writer takes them, in `order`.
    private static func tensors(_ spec: [String: [String: Any]], order: [String]) throws -> [(key: String, tensor: Tensor)] {
        try order.map { key in
            let entry = try XCTUnwrap(spec[key], key)
            let values = try XCTUnwrap(bits(entry), key).map(Float.init(bitPattern:))
            return (key, try Tensor(shape: shape(entry), values: values))
        }
    }

    func testWriterWritesSafetensorsOwnBytes() throws {
        // All float32, one metadata entry: safetensors writes them in name order, so given
        // that order the writer must produce exactly what save_file produced.
        let spec = try expectedFile("float32_sorted.safetensors")
        let order = try XCTUnwrap(spec["header_order"] as? [String]).filter { $0 != "__metadata__" }
        let input = try Self.tensors(try XCTUnwrap(spec["tensors"] as? [String: [String: Any]]), order: order)
        let metadata = try XCTUnwrap(spec["metadata"] as? [String: String])
        let written = try SafetensorsFile.bytes(input, metadata: metadata, file: "out")
        let saved = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture("\(Self.folder)/float32_sorted.safetensors"))))
        XCTAssertEqual(written.count, saved.count)
        XCTAssertTrue(written == saved, "the writer's bytes differ from safetensors.torch.save_file's")
    }

    private func writerSample() throws -> (input: [(key: String, tensor: Tensor)], metadata: [String: String], file: String) {
        let sample = try XCTUnwrap(try expected()["writer_sample"] as? [String: Any])
        let input = try Self.tensors(try XCTUnwrap(sample["tensors"] as? [String: [String: Any]]),
                                     order: try XCTUnwrap(sample["order"] as? [String]))
        return (input, try XCTUnwrap(sample["metadata"] as? [String: String]), try XCTUnwrap(sample["file"] as? String))
    }

    /// The committed sample (read back by safetensors in check_written.py) is what the writer
    /// writes today, byte for byte.
    func testWriterSampleMatchesTheCommittedFile() throws {
        let (input, metadata, file) = try writerSample()
        let committed = fixture("\(Self.folder)/\(file)")
        let output = try temporaryFolder(self).appendingPathComponent("sample.safetensors").path
        try SafetensorsFile.write(input, metadata: metadata, to: output)
        XCTAssertTrue(try Data(contentsOf: URL(fileURLWithPath: output)) == Data(contentsOf: URL(fileURLWithPath: committed)),
                      "\(file) differs from what the writer writes now")
    }

    /// Writes the sample into the folder `RNNKIT_WRITE_SAMPLE` names (for check_written.py).
    func testWriteSampleWhenAsked() throws {
        guard let folder = ProcessInfo.processInfo.environment["RNNKIT_WRITE_SAMPLE"] else {
            throw XCTSkip("RNNKIT_WRITE_SAMPLE is not set")
        }
        let (input, metadata, file) = try writerSample()
        let path = URL(fileURLWithPath: folder).appendingPathComponent(file).path
        try? FileManager.default.removeItem(atPath: path)
        try SafetensorsFile.write(input, metadata: metadata, to: path)
    }

    func testRoundTripKeepsOrderValuesAndMetadata() throws {
        let input: [(key: String, tensor: Tensor)] = [
            ("z.weight", try Tensor(shape: [2, 3], values: [1, -2, 0.1, .nan, -0.0, .infinity])),
            ("scalar", try Tensor(shape: [], values: [Float.leastNonzeroMagnitude])),
            ("empty", try Tensor(shape: [0, 4], values: [])),
            ("a.bias", try Tensor(shape: [3], values: [.greatestFiniteMagnitude, -.infinity, 7])),
        ]
        let metadata = ["model_config": "{\"a\": [1, 2]}", "note": "line\nnext\t\u{1}\u{7F} é ✓ 😀", "": "empty key"]
        let path = try temporaryFolder(self).appendingPathComponent("round.safetensors").path
        try SafetensorsFile.write(input, metadata: metadata, to: path)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let headerSize = bytes.prefix(8).reversed().reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual(headerSize % 8, 0, "the header is padded to a multiple of 8")
        let container = try SafetensorsFile.read(path)
        XCTAssertEqual(try container.memberNames(of: ""), input.map(\.key))
        XCTAssertEqual(container.metadata, metadata)
        for (key, tensor) in input {
            let read = try XCTUnwrap(try container.tensor(key))
            XCTAssertEqual(read.shape, tensor.shape, key)
            XCTAssertEqual(read.dtype, .float32, key)
            XCTAssertEqual(try read.readFloats().map(\.bitPattern), tensor.values.map(\.bitPattern), key)
        }
        // Writing never replaces a file.
        XCTAssertThrowsError(try SafetensorsFile.write(input, metadata: metadata, to: path))
    }

    func testWriterRefusesEmptyRepeatedAndReservedKeys() throws {
        let tensor = try Tensor(shape: [1], values: [1])
        for (keys, fragment) in [([""], "empty key"), (["a", "b", "a"], "key 'a' twice"),
                                 (["__metadata__"], "'__metadata__'")] {
            XCTAssertThrowsError(try SafetensorsFile.bytes(keys.map { ($0, tensor) }, metadata: [:], file: "out")) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)")
            }
        }
    }

    // MARK: - Hostile files

    /// A file from a header text and data, the size field given or computed.
    private static func file(_ header: String, data: [UInt8] = [], size: UInt64? = nil) -> [UInt8] {
        let text = Array(header.utf8)
        var out: [UInt8] = []
        withUnsafeBytes(of: (size ?? UInt64(text.count)).littleEndian) { out += $0 }
        return out + text + data
    }

    private static func entry(_ key: String, _ dtype: String = "F32", shape: String, _ begin: Int, _ end: Int) -> String {
        "\"\(key)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(begin),\(end)]}"
    }

    /// Two float32 tensors, 24 bytes of data: the valid file every hostile case departs from.
    private static let validHeader = "{" + entry("a", shape: "[2,2]", 0, 16) + "," + entry("b", shape: "[2]", 16, 24) + "}"
    private static let validData = RawTensor.littleEndianBytes([1, 2, 3, 4, 5, 6])

    func testTheHostileCasesBaseIsValid() throws {
        let container = try SafetensorsFile.read(bytes: Self.file(Self.validHeader, data: Self.validData), name: "base")
        XCTAssertEqual(try container.tensor("a")?.readFloats(), [1, 2, 3, 4])
        XCTAssertEqual(try container.tensor("b")?.readFloats(), [5, 6])
        // Zero-size tensors at one offset, trailing spaces, escapes in keys: all valid.
        let header = "{\"__metadata__\":{\"k\":\"v\"}," + Self.entry("e1", shape: "[0]", 0, 0) + ","
            + Self.entry("e2", "BF16", shape: "[0, 3]", 0, 0) + "," + Self.entry("x\\u00e9\\/", shape: "[1]", 0, 4) + "}    "
        let other = try SafetensorsFile.read(bytes: Self.file(header, data: [0, 0, 128, 63]), name: "zero")
        XCTAssertEqual(try other.memberNames(of: ""), ["e1", "e2", "xé/"])
        XCTAssertEqual(try other.tensor("xé/")?.readFloats(), [1])
        XCTAssertEqual(other.metadata, ["k": "v"])
    }

    /// Each case: a file and what its one-line error must say.
    private static var hostileCases: [(name: String, bytes: [UInt8], says: String)] {
        let data = validData
        let b = entry("b", shape: "[2]", 16, 24)
        func with(_ a: String, _ rest: String = "," + entry("b", shape: "[2]", 16, 24)) -> [UInt8] {
            file("{" + a + rest + "}", data: data)
        }
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        let many = "[" + Array(repeating: "0", count: Limits.configJSONItems + 10).joined(separator: ",") + "]"
        return [
            ("shorter than the size field", [1, 0, 0], "too short"),
            ("header size past the file", file(validHeader, data: data, size: 4000), "past the end of the file"),
            ("huge header size", file(validHeader, data: data, size: UInt64.max), "over the limit of"),
            ("header size 2^40", file(validHeader, data: data, size: 1 << 40), "Limits.configJSONBytes"),
            ("empty header", file("", data: data), "is empty"),
            ("overlapping offsets", with(entry("a", shape: "[2,2]", 0, 16), "," + entry("b", shape: "[2]", 12, 20)),
             "tensors 'a' [0, 16] and 'b' [12, 20] overlap"),
            ("a gap", file("{" + entry("a", shape: "[2,2]", 0, 16) + "," + entry("b", shape: "[1]", 20, 24) + "}", data: data),
             "bytes [16, 20) between tensors 'a' and 'b' belong to no tensor"),
            ("a gap at the start", file("{" + entry("a", shape: "[1]", 4, 8) + "}", data: Array(data.prefix(8))),
             "bytes [0, 4) before tensor 'a'"),
            ("trailing bytes", file(validHeader, data: data + [0, 0, 0, 0]), "bytes [24, 28) of the data section after tensor 'b'"),
            ("offsets out of bounds", with(entry("a", shape: "[2,2]", 0, 16), "," + entry("b", shape: "[4]", 16, 32)),
             "tensor 'b': data_offsets [16, 32] reach past the data section's 24 bytes"),
            ("wrong byte count", with(entry("a", shape: "[2,3]", 0, 16)), "tensor 'a': data_offsets [0, 16] hold 16 bytes; shape [2, 3] of F32 needs 24"),
            ("begin after end", with(entry("a", shape: "[0]", 16, 0)), "begin after they end"),
            ("three offsets", with("\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,8,16]}"), "expected [begin, end]"),
            ("negative shape", with(entry("a", shape: "[-2,-2]", 0, 16)), "shape[0]: expected an integer ≥ 0, found -2"),
            ("float shape", with(entry("a", shape: "[2,2.0]", 0, 16)), "shape[1]: expected an integer ≥ 0, found 2.0"),
            ("fractional shape", with(entry("a", shape: "[1.5,2]", 0, 16)), "found 1.5"),
            ("exponent shape", with(entry("a", shape: "[1e308,2]", 0, 16)), "found 1e308"),
            ("boolean shape", with(entry("a", shape: "[true,2]", 0, 16)), "found true"),
            ("huge shape entry", with(entry("a", shape: "[99999999999999999999,2]", 0, 16)), "found 99999999999999999999"),
            ("shape overflowing Int", with(entry("a", shape: "[4294967296,4294967296,4]", 0, 16)), "more elements than an Int holds"),
            ("shape overflowing bytes", with(entry("a", shape: "[4611686018427387904]", 0, 16)), "needs more bytes than an Int holds"),
            ("huge offset", with(entry("a", shape: "[2,2]", 0, 16), "," + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,18446744073709551624]}"),
             "data_offsets[1]: expected an integer ≥ 0, found 18446744073709551624"),
            ("duplicate keys", with(entry("a", shape: "[2,2]", 0, 16), "," + b + "," + b), "holds key 'b' twice"),
            ("duplicate field", with("\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"shape\":[4],\"data_offsets\":[0,16]}"),
             "holds key 'shape' twice"),
            ("duplicate metadata", file("{\"__metadata__\":{},\"__metadata__\":{}}"), "holds key '__metadata__' twice"),
            ("duplicate metadata entry", file("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}"), "holds key 'k' twice"),
            ("array header", file("[" + entry("a", shape: "[0]", 0, 0) + "]"), "does not start with '{'"),
            ("string header", file("\"a\""), "does not start with '{'"),
            ("leading whitespace", file(" " + validHeader, data: data), "does not start with '{'"),
            ("metadata with a number", file("{\"__metadata__\":{\"model_config\":1}}"), "__metadata__ entry 'model_config': expected a string, found 1"),
            ("metadata with null", file("{\"__metadata__\":{\"k\":null}}"), "expected a string, found null"),
            ("metadata not an object", file("{\"__metadata__\":[\"k\"]}"), "__metadata__: expected an object of strings, found an array"),
            ("entry not an object", file("{\"a\":[1]}"), "tensor 'a': expected an object"),
            ("unknown dtype", with(entry("a", "F8_E4M3", shape: "[2,2]", 0, 16)), "tensor 'a' has dtype 'F8_E4M3', which rnnkit does not read"),
            ("dtype not a string", with("\"a\":{\"dtype\":4,\"shape\":[2,2],\"data_offsets\":[0,16]}"), "dtype: expected a string, found 4"),
            ("unknown field", with("\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16],\"strides\":[2,1]}"),
             "tensor 'a': unknown field 'strides'"),
            ("missing field", with("\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}"), "tensor 'a': missing 'shape'"),
            ("text after the object", file(validHeader + "x", data: data), "text after the JSON value"),
            ("unclosed object", file("{\"a\":{\"dtype\":\"F32\""), "is not valid JSON"),
            ("unclosed string", file("{\"a"), "a string is not closed"),
            ("raw control character", file("{\"a\u{1}\":{}}"), "a control character inside a string"),
            ("lone surrogate", file("{\"\\ud800\":{}}"), "unpaired surrogate"),
            ("lone low surrogate", file("{\"\\udc00x\":{}}"), "unpaired surrogate"),
            ("bad escape", file("{\"\\x\":{}}"), "an unknown escape"),
            ("leading zero", with(entry("a", shape: "[02,2]", 0, 16)), "is not valid JSON"),
            ("not UTF-8", file("{\"a\u{E9}\":{}}").enumerated().map { $0.offset == 11 ? 0xFF : $0.element }, "is not UTF-8"),
            ("deep nesting", file("{\"__metadata__\":{\"k\":" + deep + "}}"), "deeper than 32 levels"),
            ("too many items", file("{\"__metadata__\":{\"k\":" + many + "}}"), "Limits.configJSONItems"),
        ]
    }

    func testHostileFilesAreRefusedWithOneLine() throws {
        for (name, bytes, says) in Self.hostileCases {
            XCTAssertThrowsError(try SafetensorsFile.read(bytes: bytes, name: "hostile.safetensors"), name) { error in
                let text = "\(error)"
                XCTAssertTrue(error is ModelError, "\(name): \(text)")
                XCTAssertTrue(text.hasPrefix("hostile.safetensors: "), "\(name): \(text)")
                XCTAssertFalse(text.contains("\n"), "\(name): \(text)")
                XCTAssertTrue(text.contains(says), "\(name): expected '\(says)' in: \(text)")
            }
        }
    }

    func testKeysWithTerminalEscapesArePrintedEscaped() throws {
        // JSON escapes a control character, and C1 controls and bidirectional overrides may
        // stand raw in UTF-8: neither may reach a terminal.
        let keys = ["\\u001b]0;owned\\u0007\\u001b[31mred", "\u{9B}31m", "\u{202E}evil", "a\\nb"]
        for key in keys {
            let cases = [
                Self.file("{" + Self.entry(key, "F8_E5M2", shape: "[1]", 0, 1) + "}", data: [0]),
                Self.file("{" + Self.entry(key, shape: "[2]", 0, 4) + "}", data: [0, 0, 0, 0]),
                Self.file("{\"__metadata__\":{\"" + key + "\":1}}"),
            ]
            for bytes in cases {
                XCTAssertThrowsError(try SafetensorsFile.read(bytes: bytes, name: "escape.safetensors")) { error in
                    let text = "\(error)"
                    XCTAssertFalse(text.unicodeScalars.contains {
                        $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || (0x202A...0x202E).contains($0.value)
                    }, "\(key): \(text.debugDescription)")
                    XCTAssertTrue(text.contains("'") && !text.contains("\n"), text.debugDescription)
                }
            }
        }
        // An integer tensor named so: its refusal to decode is escaped too.
        let key = "\\u001b[2Jint"
        let container = try SafetensorsFile.read(bytes: Self.file("{" + Self.entry(key, "I32", shape: "[1]", 0, 4) + "}",
                                                                  data: [0, 0, 0, 0]), name: "int.safetensors")
        let tensor = try XCTUnwrap(try container.tensor("\u{1B}[2Jint"))
        XCTAssertThrowsError(try tensor.readFloats()) { error in
            XCTAssertFalse("\(error)".unicodeScalars.contains { $0.value == 0x1B }, "\(error)".debugDescription)
            XCTAssertTrue("\(error)".contains("I32"), "\(error)")
        }
    }

    func testFilesThatAreNotRegularAreRefused() throws {
        let folder = try temporaryFolder(self)
        XCTAssertThrowsError(try SafetensorsFile.read(folder.path)) { XCTAssertTrue("\($0)".contains("not a regular file"), "\($0)") }
        XCTAssertThrowsError(try SafetensorsFile.read(folder.appendingPathComponent("none").path)) {
            XCTAssertTrue("\($0)".contains("no such file"), "\($0)")
        }
    }
}
