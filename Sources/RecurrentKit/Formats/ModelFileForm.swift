/// The file forms rnnkit tells apart, decided by their structure (never by the file's
/// name), in this one place (spec/architecture.md, "Which container").
///
/// Each form is recognised by what only it has, so that no form is read as another: a
/// safetensors file whose header length starts with the byte `0x80` is not a pickle, an
/// ONNX model is not an HDF5 file that failed to open. The order of the checks settles the
/// rare file that could pass two:
///
/// 1. HDF5 at offset 0: the superblock signature `\x89HDF\r\n\x1a\n`;
/// 2. a zip: `PK\x03\x04`, then its member names (`config.json` → `.keras`, `…/data.pkl` →
///    `torch.save`);
/// 3. safetensors, whole: an 8-byte little-endian header length N with `8 + N` within the
///    file, `{` at byte 8 and the header's last byte that is not JSON whitespace `}`;
/// 4. HDF5 with a user block: the signature at 512, 1024, 2048, … (where HDF5 looks; the
///    user block before it may hold anything);
/// 5. a pickle stream: `0x80` (PROTO), a protocol 2 to 5, and a pickle opcode after it
///    (torch's legacy format, or a bare pickle: the torch reader refuses both, saying which);
/// 6. ONNX: a protobuf `ModelProto` whose first field is `ir_version` (tag `0x08`), whose
///    fields up to its `graph` are `ModelProto`'s own with their wire types and whose
///    lengths stay within the file;
/// 7. a damaged safetensors file: `{` at byte 8 alone (the reader says what is wrong).
///
/// Anything else is `.unrecognized`.
enum ModelFileForm: Equatable {
    case hdf5
    case kerasArchive
    case torchSave
    case safetensors
    case otherZip
    case onnx
    case unrecognized

    var title: String {
        switch self {
        case .hdf5: return "an HDF5 file"
        case .kerasArchive: return "a .keras archive"
        case .torchSave: return "a torch.save file"
        case .safetensors: return "a safetensors file"
        case .otherZip: return "a zip archive"
        case .onnx: return "an ONNX model"
        case .unrecognized: return "a file of no form rnnkit reads"
        }
    }

    /// Why a file of this form is not read, for the forms rnnkit does not read (nil for
    /// the others): one line after the file's name.
    var refusal: String? {
        switch self {
        case .onnx:
            return "is an ONNX model; rnnkit does not read ONNX files yet"
        case .otherZip:
            return "is a zip archive, but neither a Keras 3 .keras archive (config.json) nor a torch.save file (data.pkl)"
        case .unrecognized:
            return "is none of the files rnnkit reads (HDF5: a PyTorch state_dict or a Keras model or weights; a Keras 3 .keras archive; a torch.save .pt/.pth file; a safetensors file): its first bytes match none of them"
        case .hdf5, .kerasArchive, .torchSave, .safetensors:
            return nil
        }
    }

    /// Reads as much of `path` as the decision needs: its first bytes, a few at the offsets
    /// they point to (the end of a safetensors header, HDF5's user-block offsets, an ONNX
    /// model's field tags), and a zip's central directory.
    init(sniffing path: String) throws {
        self = try InputFiles.withProbe(path) { probe in
            let form = try Self.decide(probe)
            guard form == .otherZip else { return form }
            return try Self.zipForm(path)
        }
    }

    /// The same decision from bytes in memory (fuzzing, tests); a zip the zip reader
    /// refuses is `.otherZip`.
    init(bytes: [UInt8]) {
        let probe = FileProbe(size: bytes.count) { offset, count in
            Array(bytes[min(offset, bytes.count) ..< min(offset + count, bytes.count)])
        }
        let form = (try? Self.decide(probe)) ?? .unrecognized
        guard form == .otherZip else {
            self = form
            return
        }
        self = (try? ZipArchive(bytes: bytes, name: "bytes")).map { Self.zipForm(members: $0.names) } ?? .otherZip
    }

    private static func decide(_ probe: FileProbe) throws -> ModelFileForm {
        let head = try probe.bytes(at: 0, count: 16)
        if head.starts(with: hdf5Signature) { return .hdf5 }
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return .otherZip }
        let safetensors = try safetensorsShape(probe, head: head)
        if safetensors == .whole { return .safetensors }
        if try hasUserBlockHDF5Signature(probe) { return .hdf5 }
        if startsLikePickle(head) { return .torchSave }
        if try isONNXModel(probe) { return .onnx }
        if safetensors == .start { return .safetensors }
        return .unrecognized
    }

    // MARK: Zip

    /// A Keras archive names `config.json` at its root; a torch.save file (and a
    /// TorchScript archive, which the torch reader refuses) keeps `data.pkl` or
    /// `constants.pkl` in one folder. The names come from the one zip reader
    /// (`ZipArchive`), which reads only the file's last 64 KiB and its central directory.
    private static func zipForm(_ path: String) throws -> ModelFileForm {
        zipForm(members: try ZipArchive(path: path).names)
    }

    private static func zipForm(members names: [String]) -> ModelFileForm {
        if names.contains("config.json") || names.contains("model.weights.h5") { return .kerasArchive }
        if names.contains(where: { $0.hasSuffix("/data.pkl") || $0.hasSuffix("/constants.pkl") || $0 == "data.pkl" }) {
            return .torchSave
        }
        return .otherZip
    }

    // MARK: HDF5

    /// The HDF5 superblock signature (HDF5 File Format Specification, "Format Signature").
    static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// True when the signature is at 512, 1024, 2048, … (a file with a user block), the
    /// offsets HDF5 itself searches.
    private static func hasUserBlockHDF5Signature(_ probe: FileProbe) throws -> Bool {
        var offset = 512
        while offset + hdf5Signature.count <= probe.size {
            if try probe.bytes(at: offset, count: hdf5Signature.count) == hdf5Signature { return true }
            offset *= 2
        }
        return false
    }

    // MARK: Safetensors

    enum SafetensorsShape {
        /// Length, `{`, and a header that ends in `}` within the file.
        case whole
        /// `{` at byte 8 only: a damaged or truncated safetensors file, if anything.
        case start
        case none
    }

    /// How much of a safetensors file's structure `probe` has (`head`: its first bytes).
    /// The header may end in JSON whitespace (writers pad it with spaces to align the data,
    /// and safetensors reads trailing spaces, tabs, newlines and returns).
    static func safetensorsShape(_ probe: FileProbe, head: [UInt8]) throws -> SafetensorsShape {
        guard head.count >= 10, head[8] == UInt8(ascii: "{") else { return .none }
        var length: UInt64 = 0
        for k in (0..<8).reversed() { length = length << 8 | UInt64(head[k]) }
        // `{` and `}` at least; the whole header inside the file.
        guard length >= 2, length <= UInt64(probe.size - 8) else { return .start }
        let end = 8 + Int(length)
        // The header's tail, back to its last byte that is not whitespace.
        var position = end
        while position > 9 {
            let chunk = try probe.bytes(at: max(9, position - 256), count: min(256, position - 9))
            if let last = chunk.lastIndex(where: { !jsonWhitespace.contains($0) }) {
                return chunk[last] == UInt8(ascii: "}") ? .whole : .start
            }
            position -= chunk.count
            if chunk.isEmpty { break }
        }
        return .start
    }

    private static let jsonWhitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]

    // MARK: Pickle

    /// Every opcode of pickle protocols 0 to 5 (Python's `pickletools.opcodes`).
    static let pickleOpcodes: Set<UInt8> = [
        40, 41, 46, 48, 49, 50, 66, 67, 70, 71, 73, 74, 75, 76, 77, 78, 80, 81, 82, 83, 84, 85, 86, 88, 93, 97, 98,
        99, 100, 101, 103, 104, 105, 106, 108, 111, 112, 113, 114, 115, 116, 117, 125, 128, 129, 130, 131, 132, 133,
        134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145, 146, 147, 148, 149, 150, 151, 152,
    ]

    /// PROTO (`0x80`) with a protocol 2 to 5 (the protocols that begin with it), then an opcode.
    static func startsLikePickle(_ head: [UInt8]) -> Bool {
        head.count >= 3 && head[0] == 0x80 && (2...5).contains(head[1]) && pickleOpcodes.contains(head[2])
    }

    // MARK: ONNX

    /// `ModelProto`'s fields (onnx.proto) and their wire types: 1 `ir_version` (varint),
    /// 2 `producer_name`, 3 `producer_version`, 4 `domain` (strings), 5 `model_version`
    /// (varint), 6 `doc_string`, 7 `graph`, 8 `opset_import`, 14 `metadata_props`,
    /// 20 `training_info`, 25 `functions`, 26 `configuration` (length-delimited).
    private static let onnxModelFields: [UInt64: UInt64] = [
        1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2,
    ]

    /// True for a protobuf `ModelProto`: `ir_version` first (tag `0x08`, a version from 1
    /// to 255), then only `ModelProto`'s fields with their wire types, each within the file,
    /// up to a `graph` field that ends within the file. At most 64 fields are looked at.
    static func isONNXModel(_ probe: FileProbe) throws -> Bool {
        var offset = 0
        var fields = 0
        while fields < 64, offset < probe.size {
            let window = try probe.bytes(at: offset, count: 20)
            var cursor = 0
            guard let tag = varint(window, &cursor), let wireType = onnxModelFields[tag >> 3], tag & 7 == wireType else {
                return false
            }
            if fields == 0 && tag != 0x08 { return false }
            if wireType == 0 {
                guard let value = varint(window, &cursor) else { return false }
                if fields == 0 && !(1...255).contains(value) { return false }
                offset += cursor
            } else {
                guard let length = varint(window, &cursor), length <= UInt64(probe.size - offset - cursor) else {
                    return false
                }
                offset += cursor + Int(length)
                if tag >> 3 == 7 { return true }
            }
            fields += 1
        }
        return false
    }

    /// A protobuf varint at `cursor` in `bytes` (at most 10 bytes), or nil.
    private static func varint(_ bytes: [UInt8], _ cursor: inout Int) -> UInt64? {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 70, by: 7) {
            guard cursor < bytes.count else { return nil }
            let byte = bytes[cursor]
            cursor += 1
            if shift == 63 && byte > 1 { return nil }
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        return nil
    }
}

/// A file's size and bytes read at any offset: what `ModelFileForm` decides from.
struct FileProbe {
    let size: Int
    /// Up to `count` bytes from `offset` (fewer at the end of the file).
    let read: (_ offset: Int, _ count: Int) throws -> [UInt8]

    init(size: Int, read: @escaping (_ offset: Int, _ count: Int) throws -> [UInt8]) {
        self.size = size
        self.read = read
    }

    func bytes(at offset: Int, count: Int) throws -> [UInt8] {
        guard offset >= 0, count > 0, offset < size else { return [] }
        return try read(offset, min(count, size - offset))
    }
}
