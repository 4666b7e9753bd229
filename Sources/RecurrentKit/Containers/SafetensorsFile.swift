import Foundation
import TextSafety
import RecurrentEngine

/// A safetensors file (Hugging Face's format) as a flat container: an 8-byte little-endian
/// header size, a JSON header giving each tensor's dtype, shape and byte range, then the
/// tensors' bytes, which the byte ranges must tile exactly.
///
/// Every file is read as if an attacker wrote it. The header size is bounded before anything
/// is allocated; the header is read by the strict JSON reader (`StrictJSON`: a key given
/// twice is refused, numbers keep their text), with nesting bounded to 32 levels; integers
/// must be written as integers, fields exactly the format's; and the byte
/// ranges must cover the data section from 0 with no gap and no overlap, as the format
/// requires and as safetensors itself checks. Tensors are decoded on request, one at a time.
enum SafetensorsFile {
    /// Where errors place the header (`FlatContainer.location`).
    static let headerLocation = "header"

    /// Reads a safetensors file as a flat container: tensors by key; `__metadata__` as the container's metadata.
    ///
    /// The file is read whole (at most `Limits.safetensorsBytes`) and checked before any
    /// tensor is decoded. Throws `ModelError` (one line, keys escaped).
    static func read(_ path: String) throws -> FlatContainer {
        let data = try InputFiles.read(path, limit: Limits.safetensorsBytes, what: "Limits.safetensorsBytes")
        return try parse(data, name: path)
    }

    /// The same from bytes (fuzzing, tests); `name` is the file as errors name it.
    static func read(bytes: [UInt8], name: String) throws -> FlatContainer {
        guard bytes.count <= Limits.safetensorsBytes else {
            throw ModelError(.unreadableFile, file: name,
                             message: "holds more than \(Limits.safetensorsBytes) bytes (Limits.safetensorsBytes); refused")
        }
        return try parse(Data(bytes), name: name)
    }

    /// Writes float32 tensors in the given order with `metadata` as `__metadata__` (string → string).
    ///
    /// The layout is the one `safetensors.torch.save_file` writes: `__metadata__` first (left
    /// out when empty, as safetensors does without metadata; its keys sorted so that the same
    /// input gives the same bytes), compact JSON escaped as serde_json escapes it, padded
    /// with spaces to a multiple of 8 bytes so the data starts aligned, then the data,
    /// float32 little-endian. `path` is created and must not exist: callers write to a
    /// temporary beside the output (`OutputBatch`). Refuses an empty or repeated key and the
    /// key `__metadata__`.
    static func write(_ tensors: [(key: String, tensor: Tensor)], metadata: [String: String], to path: String) throws {
        let contents = try bytes(tensors, metadata: metadata, file: path)
        try writeNewFile(path, contents: Data(contents))
    }

    /// The bytes `write(_:metadata:to:)` writes; `file` names the output in errors.
    static func bytes(_ tensors: [(key: String, tensor: Tensor)], metadata: [String: String],
                      file: String) throws -> [UInt8] {
        var seen = Set<String>()
        for (key, _) in tensors {
            guard !key.isEmpty else {
                throw ModelError(.invalidInput, file: file, message: "cannot write a tensor with an empty key")
            }
            guard key != metadataKey else {
                throw ModelError(.invalidInput, file: file,
                                 message: "cannot write a tensor named '\(metadataKey)': the header keeps metadata under that key")
            }
            guard seen.insert(key).inserted else {
                throw ModelError(.invalidInput, file: file, message: "cannot write key '\(escapedForDisplay(key))' twice")
            }
        }
        var members: [[UInt8]] = []
        if !metadata.isEmpty {
            // Byte order, not String's: the same metadata always gives the same header.
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            let pairs = keys.map { jsonString($0) + [UInt8(ascii: ":")] + jsonString(metadata[$0]!) }
            members.append(jsonString(metadataKey) + Array(":{".utf8) + joined(pairs) + Array("}".utf8))
        }
        var offset = 0
        for (key, tensor) in tensors {
            let end = offset + tensor.values.count * 4
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            members.append(jsonString(key) + Array(":{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}".utf8))
            offset = end
        }
        var header = Array("{".utf8) + joined(members) + Array("}".utf8)
        header += [UInt8](repeating: UInt8(ascii: " "), count: (8 - header.count % 8) % 8)
        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out += $0 }
        out += header
        for (_, tensor) in tensors { out += RawTensor.littleEndianBytes(tensor.values) }
        return out
    }

    // MARK: - Reading

    private static let metadataKey = "__metadata__"

    /// Levels of JSON nesting a header may have: the format needs 3.
    private static let headerNesting = 32

    /// One tensor as the header declares it, checked against its dtype.
    private struct Entry {
        var key: String
        var dtypeName: String
        var dtype: TensorDType
        var decodable: Bool
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    private static func parse(_ data: Data, name: String) throws -> FlatContainer {
        func fail(_ message: String) -> ModelError {
            ModelError(.unreadableFile, file: name, path: headerLocation, message: message)
        }
        guard data.count >= 8 else {
            throw ModelError(.unreadableFile, file: name,
                             message: "is \(data.count) bytes, too short for a safetensors file (8 bytes of header size come first)")
        }
        let start = data.startIndex
        var declared: UInt64 = 0
        for k in (0..<8).reversed() { declared = declared << 8 | UInt64(data[start + k]) }
        // Bounded before anything is allocated for it; safetensors itself allows 100 MB.
        guard declared <= UInt64(Limits.configJSONBytes) else {
            throw fail("declares \(declared) bytes, over the limit of \(Limits.configJSONBytes) (Limits.configJSONBytes)")
        }
        let headerSize = Int(declared)
        guard headerSize <= data.count - 8 else {
            throw fail("declares \(headerSize) bytes, past the end of the file (\(data.count - 8) bytes follow the size)")
        }
        let headerBytes = [UInt8](data[(start + 8)..<(start + 8 + headerSize)])
        let (entries, metadata) = try header(headerBytes, fail: fail)

        let dataStart = start + 8 + headerSize
        let dataSize = data.endIndex - dataStart
        try checkCoverage(entries, dataSize: dataSize, fail: fail)

        let tensors = entries.map { entry in
            tensor(entry, bytes: data, range: (dataStart + entry.begin)..<(dataStart + entry.end), file: name)
        }
        return try FlatContainer(file: name, location: headerLocation, tensors: tensors, metadata: metadata)
    }

    /// The header's tensors in the file's order and its metadata, every field checked.
    private static func header(_ bytes: [UInt8], fail: (String) -> ModelError) throws
        -> (entries: [Entry], metadata: [String: String]) {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw fail("is not UTF-8") }
        guard bytes.first == UInt8(ascii: "{") else {
            throw fail(bytes.isEmpty ? "is empty" : "does not start with '{': a safetensors header is a JSON object")
        }
        // Size and item count before parsing: parsing is the costly part of a hostile header.
        if let refusal = Limits.checkJSONSize(text) { throw fail(refusal) }
        let root: JSONValue
        do {
            root = try StrictJSON.parse(bytes, maximumDepth: headerNesting)
        } catch let failure as StrictJSON.Failure {
            throw fail(failure.description)
        }
        guard case let .object(members) = root else { throw fail("is not a JSON object") }

        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        for (key, value) in members {
            if key == metadataKey {
                guard case let .object(pairs) = value else {
                    throw fail("\(metadataKey): expected an object of strings, found \(value.described)")
                }
                for (name, item) in pairs {
                    guard case let .string(text) = item else {
                        throw fail("\(metadataKey) entry '\(escapedForDisplay(name))': expected a string, found \(item.described)")
                    }
                    metadata[name] = text
                }
                continue
            }
            entries.append(try entry(key, value, fail: fail))
        }
        return (entries, metadata)
    }

    /// One tensor's `{"dtype", "shape", "data_offsets"}`, exactly those fields.
    private static func entry(_ key: String, _ value: JSONValue, fail: (String) -> ModelError) throws -> Entry {
        let tensor = "tensor '\(escapedForDisplay(key))'"
        guard case let .object(fields) = value else {
            throw fail("\(tensor): expected an object with dtype, shape and data_offsets, found \(value.described)")
        }
        let known = ["dtype", "shape", "data_offsets"]
        if let unknown = fields.first(where: { !known.contains($0.key) }) {
            throw fail("\(tensor): unknown field '\(escapedForDisplay(unknown.key))'")
        }
        func field(_ name: String) throws -> JSONValue {
            guard let found = fields.first(where: { $0.key == name }) else { throw fail("\(tensor): missing '\(name)'") }
            return found.value
        }
        func integers(_ name: String) throws -> [Int] {
            let value = try field(name)
            guard case let .array(items) = value else {
                throw fail("\(tensor): \(name): expected an array of integers, found \(value.described)")
            }
            return try items.enumerated().map { index, item in
                guard let number = item.exactInteger, number >= 0 else {
                    throw fail("\(tensor): \(name)[\(index)]: expected an integer ≥ 0, found \(item.described)")
                }
                return number
            }
        }

        let dtypeValue = try field("dtype")
        guard case let .string(dtypeName) = dtypeValue else {
            throw fail("\(tensor): dtype: expected a string, found \(dtypeValue.described)")
        }
        guard let known = Self.dtype(dtypeName) else {
            throw fail("\(tensor) has dtype '\(escapedForDisplay(dtypeName))', which rnnkit does not read "
                + "(F16, BF16, F32 and F64 are read; I8 to I64, U8 to U64 and BOOL are listed)")
        }
        let (dtype, size) = known
        let shape = try integers("shape")
        let offsets = try integers("data_offsets")
        guard offsets.count == 2 else {
            throw fail("\(tensor): data_offsets: expected [begin, end], found \(offsets.count) integers")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else {
            throw fail("\(tensor): data_offsets [\(begin), \(end)] begin after they end")
        }
        guard let count = RawTensor.count(shape) else {
            throw fail("\(tensor): shape \(shapeText(shape)) has more elements than an Int holds")
        }
        let (needed, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow else {
            throw fail("\(tensor): shape \(shapeText(shape)) of \(dtypeName) needs more bytes than an Int holds")
        }
        guard end - begin == needed else {
            throw fail("\(tensor): data_offsets [\(begin), \(end)] hold \(end - begin) bytes; "
                + "shape \(shapeText(shape)) of \(dtypeName) needs \(needed)")
        }
        return Entry(key: key, dtypeName: dtypeName, dtype: dtype, decodable: RawTensor.elementSize(dtype) != nil,
                     shape: shape, begin: begin, end: end)
    }

    /// safetensors' dtypes rnnkit knows: the float ones are decoded, the integer and boolean
    /// ones are listed so a layout can name them, and nothing else is accepted.
    private static func dtype(_ name: String) -> (TensorDType, Int)? {
        func integer(_ kind: TensorDType.Kind, _ bits: Int) -> (TensorDType, Int) {
            (TensorDType(kind: kind, bits: bits, byteOrder: .little), bits / 8)
        }
        switch name {
        case "F16": return (.float16, 2)
        case "BF16": return (.bfloat16, 2)
        case "F32": return (.float32, 4)
        case "F64": return (.float64, 8)
        case "I8": return integer(.signedInteger, 8)
        case "I16": return integer(.signedInteger, 16)
        case "I32": return integer(.signedInteger, 32)
        case "I64": return integer(.signedInteger, 64)
        case "U8": return integer(.unsignedInteger, 8)
        case "U16": return integer(.unsignedInteger, 16)
        case "U32": return integer(.unsignedInteger, 32)
        case "U64": return integer(.unsignedInteger, 64)
        case "BOOL": return (TensorDType(kind: .other("bool"), bits: 8, byteOrder: .little), 1)
        default: return nil
        }
    }

    /// The byte ranges, in offset order, must tile `[0, dataSize)`: safetensors refuses a
    /// gap, an overlap or trailing bytes, and so does rnnkit, naming the tensors on either side.
    private static func checkCoverage(_ entries: [Entry], dataSize: Int, fail: (String) -> ModelError) throws {
        for entry in entries where entry.end > dataSize {
            throw fail("tensor '\(escapedForDisplay(entry.key))': data_offsets [\(entry.begin), \(entry.end)] reach past "
                + "the data section's \(dataSize) bytes")
        }
        // A stable sort: empty tensors at one offset keep the file's order.
        let sorted = entries.enumerated().sorted {
            ($0.element.begin, $0.element.end, $0.offset) < ($1.element.begin, $1.element.end, $1.offset)
        }.map(\.element)
        var cursor = 0
        var previous: Entry?
        for entry in sorted {
            if entry.begin < cursor, let previous {
                throw fail("tensors '\(escapedForDisplay(previous.key))' [\(previous.begin), \(previous.end)] and "
                    + "'\(escapedForDisplay(entry.key))' [\(entry.begin), \(entry.end)] overlap")
            }
            if entry.begin > cursor {
                if let previous {
                    throw fail("bytes [\(cursor), \(entry.begin)) between tensors '\(escapedForDisplay(previous.key))' and "
                        + "'\(escapedForDisplay(entry.key))' belong to no tensor")
                }
                throw fail("bytes [0, \(entry.begin)) before tensor '\(escapedForDisplay(entry.key))' belong to no tensor")
            }
            cursor = entry.end
            previous = entry
        }
        guard cursor == dataSize else {
            let after = previous.map { " after tensor '\(escapedForDisplay($0.key))'" } ?? ""
            throw fail("bytes [\(cursor), \(dataSize)) of the data section\(after) belong to no tensor")
        }
    }

    /// `entry` as a container's tensor, decoded from `bytes[range]` when asked for.
    private static func tensor(_ entry: Entry, bytes: Data, range: Range<Int>, file: String) -> NamedTensor {
        let key = entry.key
        let shape = entry.shape
        let dtype = entry.dtype
        guard entry.decodable else {
            let refusal = ModelError(.invalidModel, file: file, path: key,
                                     message: "tensor '\(escapedForDisplay(key))' holds \(entry.dtypeName) (\(dtype)), "
                                         + "not floating-point values; only F16, BF16, F32 and F64 are read as weights")
            return NamedTensor(name: key, location: key, shape: shape, count: RawTensor.count(shape) ?? 0, dtype: dtype,
                               compressed: false, readFloats: { throw refusal }, readColumns: { _ in throw refusal })
        }
        // The view is made per read, from this tensor's bytes only: the file's bytes stay
        // shared, and what a read allocates is this tensor's and no more.
        func decode(_ view: (inout RawTensor) -> Void) throws -> [Float] {
            var raw = RawTensor(bytes: [UInt8](bytes[range]), dtype: dtype, shape: shape)
            view(&raw)
            if let problem = raw.problem() {
                throw ModelError(.unreadableFile, file: file, path: key, message: "tensor '\(escapedForDisplay(key))' \(problem)")
            }
            return raw.floats()
        }
        return NamedTensor(
            name: key, location: key, shape: shape, count: RawTensor.count(shape) ?? 0, dtype: dtype, compressed: false,
            readFloats: { try decode { _ in } },
            readColumns: { columns in
                guard shape.count == 2 else { return try decode { _ in } }
                guard columns.lowerBound >= 0, columns.upperBound <= shape[1] else {
                    throw ModelError(.invalidInput, file: file, path: key,
                                     message: "columns \(columns) are outside the tensor's \(shape[1])")
                }
                return try decode { raw in
                    raw.shape = [shape[0], columns.count]
                    raw.strides = [shape[1], 1]
                    raw.offset = columns.lowerBound
                }
            })
    }

    // MARK: - Writing

    /// `text` as a JSON string the way serde_json (safetensors' encoder) writes it: `"` and
    /// `\` escaped, control characters as `\n`-style or `\u00xx` escapes, everything else as
    /// UTF-8, so that a header rnnkit writes is the one safetensors would write.
    private static func jsonString(_ text: String) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        let hex = Array("0123456789abcdef".utf8)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0C: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0..<0x20: out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
        return out
    }

    private static func joined(_ parts: [[UInt8]]) -> [UInt8] {
        Array(parts.joined(separator: [UInt8(ascii: ",")]))
    }
}
