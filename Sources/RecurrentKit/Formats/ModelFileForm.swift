/// What a file's bytes say it is: a container one of the formats reads (`Formats.all`),
/// or a form rnnkit refuses (a zip no format claims, bytes no rule recognises). Decided by
/// the formats' signatures in their rank order (`Formats.form(of:)`; spec/architecture.md,
/// "Which container"), never by the file's name.
///
/// Each form is recognised by what only it has, so that no form is read as another: a
/// safetensors file whose header length starts with the byte `0x80` is not a pickle, an
/// ONNX model is not an HDF5 file that failed to open. The rules' ranks settle the rare file
/// that could pass two (the table in spec/architecture.md, "Which container";
/// `FormatRegistryTests.testPrecedence` holds the same list). Anything no rule recognises
/// is `.unrecognized`.
enum ModelFileForm: Equatable {
    /// A container the registry's formats read.
    case container(ModelContainer)
    /// A zip archive no format claims.
    case otherZip
    case unrecognized

    var title: String {
        switch self {
        case let .container(container): return container.fileTitle
        case .otherZip: return "a zip archive"
        case .unrecognized: return "a file of no form rnnkit reads"
        }
    }

    /// Why a file of this form is not read, for the forms no format reads (nil for the
    /// others): one line after the file's name.
    var refusal: String? {
        switch self {
        case .otherZip:
            return Formats.otherZipRefusal
        case .unrecognized:
            return Formats.unrecognizedRefusal
        case .container:
            return nil
        }
    }

    /// The container, nil for a refused form.
    var container: ModelContainer? {
        if case let .container(container) = self { return container }
        return nil
    }

    /// Reads as much of `path` as the decision needs: its first bytes, a few at the offsets
    /// they point to (the end of a safetensors header, HDF5's user-block offsets, an ONNX
    /// model's field tags), and a zip's central directory.
    init(sniffing path: String) throws {
        self = try Formats.form(of: FormatSource(path: path))
    }

    /// The same decision from bytes in memory (fuzzing, tests); a zip the zip reader
    /// refuses is `.otherZip`.
    init(bytes: [UInt8]) {
        self = (try? Formats.form(of: FormatSource(bytes: bytes, name: "bytes"))) ?? .unrecognized
    }

    // The forms of the formats rnnkit reads today, by name (tests, messages).
    static var hdf5: ModelFileForm { .container(.hdf5) }
    static var kerasArchive: ModelFileForm { .container(.kerasArchive) }
    static var torchSave: ModelFileForm { .container(.torchSave) }
    static var safetensors: ModelFileForm { .container(.safetensors) }
}

/// The byte tests the formats' signatures are made of.
extension ModelFileForm {
    // MARK: HDF5

    /// The HDF5 superblock signature (HDF5 File Format Specification, "Format Signature").
    static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// True when the signature is at 512, 1024, 2048, … (a file with a user block), the
    /// offsets HDF5 itself searches.
    static func hasUserBlockHDF5Signature(_ probe: FileProbe) throws -> Bool {
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
}

/// A file's size and bytes read at any offset: what the formats' signatures decide from.
package struct FileProbe {
    package let size: Int
    /// Up to `count` bytes from `offset` (fewer at the end of the file).
    let read: (_ offset: Int, _ count: Int) throws -> [UInt8]

    init(size: Int, read: @escaping (_ offset: Int, _ count: Int) throws -> [UInt8]) {
        self.size = size
        self.read = read
    }

    package func bytes(at offset: Int, count: Int) throws -> [UInt8] {
        guard offset >= 0, count > 0, offset < size else { return [] }
        return try read(offset, min(count, size - offset))
    }
}
