import Foundation
import TextSafety
#if canImport(Glibc)
import Glibc
#endif

/// An initializer whose values live in a file beside the model (`data_location = EXTERNAL`,
/// `external_data` with `location`, `offset`, `length`; the dynamo exporter's default writes
/// them to `NAME.onnx.data`). Read only from a regular file in the model's own folder: the
/// location is relative, names no `.` or `..` component, resolves to exactly that path in the
/// folder (no symbolic link anywhere on it), the file has one link (no hard link to a file
/// elsewhere), and the offset and length lie within it and give exactly the tensor's bytes.
/// The bytes read over a model are bounded by `Limits.torchFileBytes`, as the model file is.
struct ONNXExternalData {
    /// The model's folder; nil for a model given as bytes (no folder: external data refused).
    let folder: String?
    let file: String
    /// Bytes read so far over the model.
    private(set) var bytesRead = 0

    init(folder: String?, file: String) {
        self.folder = folder
        self.file = file
    }

    /// The folder of the model at `path`.
    static func folder(of path: String) -> String {
        let parent = (path as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }

    /// `proto` with its external values read into `raw_data`; `proto` as it is when it keeps
    /// its values in the model.
    mutating func resolve(_ proto: Onnx_TensorProto, what: String) throws -> Onnx_TensorProto {
        guard proto.dataLocation == .external || !proto.externalData.isEmpty else { return proto }
        func refuse(_ message: String) -> ModelError { ModelError(.unsupported, file: file, path: what, message: message) }
        func invalid(_ message: String) -> ModelError { ModelError(.unreadableFile, file: file, path: what, message: message) }
        guard proto.dataLocation == .external else {
            throw invalid("lists external_data without data_location = EXTERNAL")
        }
        guard let folder else {
            throw refuse("keeps its values in external data (data_location = EXTERNAL), and this model was given without its folder")
        }
        var entries: [String: String] = [:]
        for entry in proto.externalData {
            guard ["location", "offset", "length", "checksum"].contains(entry.key) else {
                throw refuse("has the external_data key \(escapedForDisplay(entry.key)); rnnkit reads location, offset, length (and checksum)")
            }
            guard entries.updateValue(entry.value, forKey: entry.key) == nil else {
                throw invalid("lists the external_data key \(entry.key) twice")
            }
        }
        guard let location = entries["location"], !location.isEmpty else { throw invalid("has external data without a location") }
        let shown = escapedForDisplay(location)
        let components = location.split(separator: "/", omittingEmptySubsequences: false)
        guard !location.hasPrefix("/"), !location.contains("\0"),
              components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw refuse("keeps its values in \(shown), which is not a plain path inside the model's folder (absolute, empty, . or .. components); refused")
        }
        if proto.hasRawData || !proto.floatData.isEmpty || !proto.int32Data.isEmpty || !proto.int64Data.isEmpty
            || !proto.doubleData.isEmpty || !proto.uint64Data.isEmpty || !proto.stringData.isEmpty {
            throw invalid("keeps its values in external data and in the model too; refused")
        }
        func number(_ key: String) throws -> Int? {
            guard let text = entries[key] else { return nil }
            guard !text.isEmpty, text.count <= 18, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text) else {
                throw invalid("has external_data \(key) \(escapedForDisplay(text)), not a number of bytes")
            }
            return value
        }
        let offset = try number("offset") ?? 0
        let givenLength = try number("length")

        // The path must resolve to itself inside the folder: no symbolic link on the way.
        let path = folder + "/" + location
        guard let realFolder = InputFiles.realPath(folder), let realFile = InputFiles.realPath(path) else {
            throw refuse("keeps its values in \(shown), which cannot be found beside the model")
        }
        let slash = UInt8(ascii: "/")
        let expected = (realFolder.last == slash ? realFolder : realFolder + [slash]) + Array(location.utf8)
        guard realFile == expected else {
            throw refuse("keeps its values in \(shown), whose real path is not that file in the model's folder (a symbolic link, or a path out of it); refused")
        }
        let descriptor = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else { throw refuse("keeps its values in \(shown), which cannot be opened (\(String(cString: strerror(errno))))") }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw refuse("keeps its values in \(shown), which is not a regular file; refused")
        }
        guard info.st_nlink == 1 else {
            throw refuse("keeps its values in \(shown), which has \(info.st_nlink) hard links (one may lie outside the model's folder); refused")
        }
        let size = Int(info.st_size)
        let length = givenLength ?? max(size - offset, 0)
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= size else {
            throw invalid("reads bytes \(offset)..<\(overflow ? "past Int.max" : String(end)) of \(shown), which holds \(size)")
        }
        // The tensor's own bytes: its dims and element type say how many (checked again when decoded).
        let dims = proto.dims.map { Int(clamping: $0) }
        let elementSize = [1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8][Int(proto.dataType)]
        guard let elementSize, let count = elementCount(dims), count <= Limits.parameters else {
            throw refuse("has element type \(proto.dataType) or dims \(shapeText(dims)) rnnkit does not read from external data")
        }
        guard length == count * elementSize else {
            throw invalid("reads \(length) bytes of \(shown); dims \(shapeText(dims)) hold \(count * elementSize)")
        }
        let (total, past) = bytesRead.addingReportingOverflow(length)
        guard !past, total <= ONNXProtobuf.fileBytes else {
            throw refuse("its external data passes \(ONNXProtobuf.fileBytes) bytes over the model (the ONNX model bound, Limits.torchFileBytes)")
        }
        var bytes = [UInt8](repeating: 0, count: length)
        var filled = 0
        while filled < length {
            let read = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + filled, length - filled, off_t(offset + filled)) }
            if read < 0, errno == EINTR { continue }
            guard read > 0 else { throw invalid("ends before byte \(offset + length) of \(shown)") }
            filled += read
        }
        bytesRead = total
        var resolved = proto
        resolved.externalData = []
        resolved.dataLocation = .default
        resolved.rawData = Data(bytes)
        return resolved
    }
}
