import Foundation
import RecurrentEngine
import TestSupport
import XCTest
@testable import RecurrentKit

/// Every offset, size, stride and count a `torch.save` or safetensors file gives, set to the
/// extremes its format can carry — 0, 1, 2^31, 2^32, 2^53, 2^63 − 1 and 2^64 − 1 (and −1,
/// −2^63 where the format has signed integers) — in an `nn.LSTM(1, 1)` state_dict: each
/// file reads correctly or is refused with one line, through the container and through
/// `LoadedModel`; nothing traps. A correct read is checked against the view's elements
/// counted out here, one multi-index at a time.
final class ExtremeFieldTests: XCTestCase {
    /// A value a field is set to: pickle's integer bytes for it, and the value as an `Int`
    /// when it is one (2^64 − 1 is not).
    struct Extreme {
        var label: String
        var int: Int?
        /// The decimal text (safetensors' JSON).
        var text: String
    }

    static let extremes: [Extreme] = [
        Extreme(label: "0", int: 0, text: "0"),
        Extreme(label: "1", int: 1, text: "1"),
        Extreme(label: "2^31", int: 1 << 31, text: "2147483648"),
        Extreme(label: "2^32", int: 1 << 32, text: "4294967296"),
        Extreme(label: "2^53", int: 1 << 53, text: "9007199254740992"),
        Extreme(label: "2^63-1", int: Int.max, text: "9223372036854775807"),
        Extreme(label: "2^64-1", int: nil, text: "18446744073709551615"),
        Extreme(label: "-1", int: -1, text: "-1"),
        Extreme(label: "-2^63", int: Int.min, text: "-9223372036854775808"),
    ]

    // MARK: torch.save

    /// One tensor record: `_rebuild_tensor_v2(storage(numel), offset, size, stride, ...)`.
    struct TorchTensor {
        var key: String
        var storageKey: String
        /// Pickle integers, as written: each an `Int`, or nil for 2^64 − 1.
        var numel: Int?
        var offset: Int?
        var shape: [Int?]
        var strides: [Int?]
        /// The storage's bytes in the archive: float32 values.
        var values: [Float]
    }

    /// A pickle integer: BININT for what 32 bits hold, else LONG1 (two's complement, as few
    /// bytes as keep the sign); nil is 2^64 − 1, nine LONG1 bytes.
    static func pickleInt(_ value: Int?) -> [UInt8] {
        guard let value else { return [0x8A, 9] + Array(repeating: 0xFF, count: 8) + [0] }
        if let small = Int32(exactly: value) {
            return [0x4A] + withUnsafeBytes(of: small.littleEndian) { Array($0) }
        }
        var payload: [UInt8] = []
        var rest = value
        var byte: UInt8
        repeat {
            byte = UInt8(truncatingIfNeeded: rest)
            payload.append(byte)
            rest >>= 8
        } while !(rest == 0 && byte & 0x80 == 0) && !(rest == -1 && byte & 0x80 != 0)
        return [0x8A, UInt8(payload.count)] + payload
    }

    static func pickleString(_ text: String) -> [UInt8] {
        let utf8 = Array(text.utf8)
        return [0x58] + withUnsafeBytes(of: UInt32(utf8.count).littleEndian) { Array($0) } + utf8
    }

    /// `{key: tensor, ...}` as torch.save's data.pkl spells it (a plain dict, protocol 2).
    static func pickle(_ tensors: [TorchTensor]) -> [UInt8] {
        var bytes: [UInt8] = [0x80, 2, 0x7D, 0x28] // PROTO 2, EMPTY_DICT, MARK
        func tuple(_ values: [Int?]) -> [UInt8] { [0x28] + values.flatMap(pickleInt) + [0x74] }
        for tensor in tensors {
            bytes += pickleString(tensor.key)
            bytes += [0x63] + Array("torch._utils\n_rebuild_tensor_v2\n".utf8) + [0x28]
            bytes += [0x28] + pickleString("storage") + [0x63] + Array("torch\nFloatStorage\n".utf8)
                + pickleString(tensor.storageKey) + pickleString("cpu") + pickleInt(tensor.numel) + [0x74, 0x51]
            bytes += pickleInt(tensor.offset) + tuple(tensor.shape) + tuple(tensor.strides)
            bytes += [0x89, 0x7D, 0x74, 0x52] // False, {}, TUPLE, REDUCE
        }
        return bytes + [0x75, 0x2E] // SETITEMS, STOP
    }

    /// The torch.save archive of `tensors`, written to `path`.
    static func writeTorchFile(_ tensors: [TorchTensor], to path: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        let zip = try ZipWriter(creating: path)
        try zip.add("archive/data.pkl", pickle(tensors))
        try zip.add("archive/byteorder", Array("little".utf8))
        var written = Set<String>()
        for tensor in tensors where written.insert(tensor.storageKey).inserted {
            try zip.add("archive/data/\(tensor.storageKey)", RawTensor.littleEndianBytes(tensor.values))
        }
        try zip.add("archive/version", Array("3\n".utf8))
        try zip.finish()
    }

    /// nn.LSTM(1, 1)'s state_dict, each tensor in its own storage of values 1, 2, 3, …
    static func lstmTensors() -> [TorchTensor] {
        [("weight_ih_l0", [4, 1]), ("weight_hh_l0", [4, 1]), ("bias_ih_l0", [4]), ("bias_hh_l0", [4])]
            .enumerated().map { index, entry in
                let count = entry.1.reduce(1, *)
                return TorchTensor(key: entry.0, storageKey: "\(index)", numel: count, offset: 0, shape: entry.1,
                                   strides: RawTensor.contiguousStrides(entry.1),
                                   values: (0..<count).map { Float(index * 10 + $0 + 1) })
            }
    }

    /// The elements a view reaches, counted out one multi-index at a time (nil: a view that
    /// does not lie inside its storage, or a field that is not an Int).
    static func expectedValues(_ tensor: TorchTensor) -> [Float]? {
        guard let numel = tensor.numel, numel == tensor.values.count, let offset = tensor.offset, offset >= 0 else { return nil }
        let shape = tensor.shape.compactMap { $0 }
        let strides = tensor.strides.compactMap { $0 }
        guard shape.count == tensor.shape.count, strides.count == tensor.strides.count, shape.allSatisfy({ $0 >= 0 }),
              strides.allSatisfy({ $0 >= 0 }) else { return nil }
        // Small enough to count out: every test shape here that reads has at most 64 elements.
        guard let count = Limits.product(shape, within: 64) else { return nil }
        var values: [Float] = []
        for flat in 0..<count {
            var rest = flat
            var position = offset
            for axis in shape.indices.reversed() {
                let index = rest % shape[axis]
                rest /= shape[axis]
                guard index > 0 else { continue }
                let (step, o1) = index.multipliedReportingOverflow(by: strides[axis])
                let (sum, o2) = position.addingReportingOverflow(step)
                guard !o1, !o2 else { return nil }
                position = sum
            }
            guard position < tensor.values.count else { return nil }
            values.append(tensor.values[position])
        }
        return values
    }

    /// Reads `path` as a container and as a model: each either works (and the view's values
    /// are the ones counted out) or fails with one line naming the file.
    /// Whether the changed tensor's values read (`values`) and the file loaded as a model.
    @discardableResult
    func checkTorchFile(_ path: String, changed: TorchTensor, label: String) -> (values: Bool, model: Bool) {
        let name = URL(fileURLWithPath: path).lastPathComponent
        var read = false
        do {
            let container = try TorchSaveFile.read(path)
            let tensor = try XCTUnwrap(try container.tensor(changed.key), label)
            if tensor.count <= 64 {
                do {
                    let values = try tensor.readFloats()
                    XCTAssertEqual(values, Self.expectedValues(changed), "\(label): read, so its values must be the view's")
                    read = true
                } catch {
                    assertOneLine(error, file: name, label: label)
                }
            }
        } catch {
            assertOneLine(error, file: name, label: label)
        }
        do {
            let model = try LoadedModel(contentsOf: path)
            XCTAssertFalse(model.model.layers.isEmpty, label)
            return (read, true)
        } catch {
            assertOneLine(error, file: name, label: label)
            return (read, false)
        }
    }

    func assertOneLine(_ error: Error, file: String, label: String, line: UInt = #line) {
        let text = "\(error)"
        XCTAssertTrue(error is ModelError, "\(label): \(text)", line: line)
        XCTAssertTrue(text.contains(file), "\(label): \(text)", line: line)
        XCTAssertFalse(text.contains("\n"), "\(label): \(text)", line: line)
    }

    func testTheTorchBaseReadsAndCountsOutItsValues() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("base.pt").path
        let tensors = Self.lstmTensors()
        try Self.writeTorchFile(tensors, to: path)
        let container = try TorchSaveFile.read(path)
        for tensor in tensors {
            XCTAssertEqual(try container.tensor(tensor.key)?.readFloats(), Self.expectedValues(tensor), tensor.key)
        }
        XCTAssertNoThrow(try LoadedModel(contentsOf: path))
    }

    /// Every field of `weight_ih_l0`'s record — its storage's numel, its offset, each size
    /// and each stride — at each extreme, alone and on an axis of size 1.
    func testEveryTorchFieldAtEveryExtreme() throws {
        let folder = try temporaryFolder(self)
        var files = 0
        var loaded: [String] = []
        var read: [String] = []
        for extreme in Self.extremes {
            var variants: [(String, TorchTensor)] = []
            var base = Self.lstmTensors()[0]
            func variant(_ field: String, _ change: (inout TorchTensor) -> Void) {
                var tensor = base
                change(&tensor)
                variants.append(("\(field)=\(extreme.label)", tensor))
            }
            variant("numel") { $0.numel = extreme.int }
            variant("offset") { $0.offset = extreme.int }
            variant("size0") { $0.shape[0] = extreme.int }
            variant("size1") { $0.shape[1] = extreme.int }
            variant("stride0") { $0.strides[0] = extreme.int }
            variant("stride1") { $0.strides[1] = extreme.int }
            // torch's own case: [4, 1] with strides (1, x) over a storage of 5 from offset 1.
            base = TorchTensor(key: "weight_ih_l0", storageKey: "0", numel: 5, offset: 1, shape: [4, 1], strides: [1, 1],
                               values: [1, 2, 3, 4, 5])
            variant("size-1 stride1") { $0.strides[1] = extreme.int }
            // [1, 4] with a stride x on the first axis, and a view with no elements.
            base.shape = [1, 4]
            variant("size-1 stride0") { $0.strides[0] = extreme.int }
            base.shape = [0, 4]
            variant("empty stride0") { $0.strides = [extreme.int, extreme.int] }
            variant("empty offset") { $0.offset = extreme.int }
            for (label, tensor) in variants {
                var tensors = Self.lstmTensors()
                tensors[0] = tensor
                let path = folder.appendingPathComponent("f\(files).pt").path
                files += 1
                try Self.writeTorchFile(tensors, to: path)
                let outcome = checkTorchFile(path, changed: tensor, label: label)
                if outcome.values { read.append(label) }
                if outcome.model { loaded.append(label) }
            }
        }
        XCTAssertEqual(files, Self.extremes.count * 10)
        // What torch itself loads reads: any stride ≥ 0 on an axis of size 1 (and the model
        // loads where the shape is the LSTM's), any stride or offset of a view with no
        // elements, strides that stay inside the storage.
        let valid = Self.extremes.filter { ($0.int ?? -1) >= 0 }.map(\.label)
        let sizeOne = valid.map { "size-1 stride1=\($0)" }
        XCTAssertEqual(Set(sizeOne).subtracting(loaded), [], "loaded: \(loaded)")
        let views = valid.flatMap { ["size-1 stride0=\($0)", "empty stride0=\($0)", "empty offset=\($0)"] }
        XCTAssertEqual(Set(sizeOne + views).subtracting(read), [], "read: \(read)")
        XCTAssertTrue(Set(["offset=0", "stride0=0", "stride1=0", "stride1=1", "stride1=2^63-1"]).isSubset(of: loaded), "\(loaded)")
    }

    /// The strides torch writes on an axis of size 1 (`as_strided((4, 1), (1, 2**63 - 1), 1)`)
    /// read as torch reads them.
    func testHugeStrideOnAnAxisOfSizeOneReads() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("m.pt").path
        var tensors = Self.lstmTensors()
        tensors[0] = TorchTensor(key: "weight_ih_l0", storageKey: "0", numel: 5, offset: 1, shape: [4, 1],
                                 strides: [1, Int.max], values: [1, 2, 3, 4, 5])
        try Self.writeTorchFile(tensors, to: path)
        XCTAssertEqual(try TorchSaveFile.read(path).tensor("weight_ih_l0")?.readFloats(), [2, 3, 4, 5])
    }

    // MARK: safetensors

    /// An LSTM(1, 1) safetensors file whose fields are given as text.
    static func safetensors(size: String? = nil, shape: [String] = ["4", "1"], begin: String = "0",
                            end: String = "16") -> [UInt8] {
        let names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
        var members = ["\"weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[\(shape.joined(separator: ","))],\"data_offsets\":[\(begin),\(end)]}"]
        for (index, name) in names.enumerated().dropFirst() {
            let tensorShape = index == 1 ? "[4,1]" : "[4]"
            members.append("\"\(name)\":{\"dtype\":\"F32\",\"shape\":\(tensorShape),\"data_offsets\":[\(16 * index),\(16 * index + 16)]}")
        }
        let header = Array(("{" + members.joined(separator: ",") + "}").utf8)
        var out: [UInt8] = []
        if let size {
            // The size field is 8 bytes: the value's low 64 bits, as the format stores it.
            let value = size.hasPrefix("-") ? UInt64(bitPattern: Int64(size)!) : UInt64(size)!
            withUnsafeBytes(of: value.littleEndian) { out += $0 }
        } else {
            withUnsafeBytes(of: UInt64(header.count).littleEndian) { out += $0 }
        }
        return out + header + RawTensor.littleEndianBytes((0..<16).map { Float($0 + 1) })
    }

    func testEverySafetensorsFieldAtEveryExtreme() throws {
        let folder = try temporaryFolder(self)
        let base = folder.appendingPathComponent("base.safetensors").path
        try Data(Self.safetensors()).write(to: URL(fileURLWithPath: base))
        XCTAssertEqual(try SafetensorsFile.read(base).tensor("weight_ih_l0")?.readFloats(), [1, 2, 3, 4])
        XCTAssertNoThrow(try LoadedModel(contentsOf: base))
        var files = 0
        for extreme in Self.extremes {
            let value = extreme.text
            let variants: [(String, [UInt8])] = [
                ("header size", Self.safetensors(size: value)),
                ("begin", Self.safetensors(begin: value)),
                ("end", Self.safetensors(end: value)),
                ("begin and end", Self.safetensors(begin: value, end: value)),
                ("shape0", Self.safetensors(shape: [value, "1"])),
                ("shape1", Self.safetensors(shape: ["4", value])),
                ("shape0 and an empty axis", Self.safetensors(shape: [value, "0"], end: "0")),
            ]
            for (field, bytes) in variants {
                let label = "\(field)=\(extreme.label)"
                let path = folder.appendingPathComponent("f\(files).safetensors").path
                files += 1
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                do {
                    let container = try SafetensorsFile.read(path)
                    let tensor = try XCTUnwrap(try container.tensor("weight_ih_l0"), label)
                    if tensor.count <= 64 {
                        do {
                            // The only extremes a valid file can hold keep the four values.
                            let values = try tensor.readFloats()
                            XCTAssertEqual(values, [1, 2, 3, 4].prefix(tensor.count).map { $0 }, label)
                        } catch {
                            assertOneLine(error, file: path, label: label)
                        }
                    }
                } catch {
                    assertOneLine(error, file: path, label: label)
                }
                do {
                    _ = try LoadedModel(contentsOf: path)
                } catch {
                    assertOneLine(error, file: path, label: label)
                }
            }
        }
    }
}
