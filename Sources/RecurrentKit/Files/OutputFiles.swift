import Foundation
import HDF5
import TextSafety
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file's identity: its device and inode, shared by every name it has (another spelling
/// of the path, a symbolic link to it, a hard link).
struct FileIdentity: Hashable {
    var device: UInt64
    var inode: UInt64

    init(_ status: stat) {
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
    }
}

/// Where a path leads: an existing file, or a name not yet taken in an existing folder.
enum FileLocation: Hashable {
    case existing(FileIdentity)
    case new(folder: FileIdentity, name: String)
}

/// Checks made before anything is written: an output is a file, not a name, and it is never
/// one of the inputs, never a device, FIFO, folder, socket or symbolic link, and never an
/// existing file unless replacing is allowed.
package enum OutputFiles {
    /// Refuses to write `output` when it is one of `inputs` — the same file by any name,
    /// compared by device and inode after following symbolic links — when it exists as
    /// anything but a regular file, or when it exists and `overwrite` is false.
    ///
    /// `inputs` pairs what each input is ("the input file", "the model") with its path; a
    /// nil path is skipped. The error names `output` and the input it would have replaced.
    package static func check(_ output: String, against inputs: KeyValuePairs<String, String?>,
                             overwrite: Bool) throws {
        let target = try location(ofOutput: output)
        for case let (role, path?) in inputs where location(of: path) == target {
            throw ModelError(file: output, message: "is \(role) \(escapedForDisplay(path)), the same file; write the output somewhere else")
        }
        try checkReplaceable(output, overwrite: overwrite)
    }

    /// Refuses `output` when something other than a regular file is there (even when
    /// replacing is allowed), or anything at all when it is not.
    static func checkReplaceable(_ output: String, overwrite: Bool) throws {
        guard let status = linkStatus(output) else { return }
        let kind = status.st_mode & S_IFMT
        guard kind == S_IFREG else {
            throw ModelError(file: output, message: "is \(kindName(kind)), not a regular file; refusing to replace it")
        }
        if !overwrite {
            throw ModelError(file: output, message: "exists; pass \(option: .force) to replace it")
        }
    }

    /// The location `output` would be written to: the existing file, or its folder and name.
    static func location(ofOutput output: String) throws -> FileLocation {
        let (folder, name) = split(output)
        guard !name.isEmpty, name != ".", name != ".." else {
            throw ModelError(file: output, message: "names a folder, not a file")
        }
        guard let location = location(of: output) else {
            throw ModelError(file: output, message: "cannot be written: the folder \(escapedForDisplay(folder)) does not exist")
        }
        return location
    }

    /// Where `path` leads after following symbolic links, or nil when neither it nor its
    /// folder exists.
    static func location(of path: String) -> FileLocation? {
        if let status = fileStatus(path) { return .existing(FileIdentity(status)) }
        let (folder, name) = split(path)
        guard let folderStatus = fileStatus(folder), folderStatus.st_mode & S_IFMT == S_IFDIR else { return nil }
        return .new(folder: FileIdentity(folderStatus), name: name)
    }

    /// A path's folder (as spelled, `.` when there is none) and last component.
    static func split(_ path: String) -> (folder: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let folder = String(path[..<slash])
        return (folder.isEmpty ? "/" : folder, String(path[path.index(after: slash)...]))
    }

    /// `stat(2)`: follows symbolic links; nil when nothing is there.
    static func fileStatus(_ path: String) -> stat? {
        var status = stat()
        return stat(path, &status) == 0 ? status : nil
    }

    /// `lstat(2)`: the name itself, a symbolic link not followed; nil when nothing is there.
    static func linkStatus(_ path: String) -> stat? {
        var status = stat()
        return lstat(path, &status) == 0 ? status : nil
    }

    private static func kindName(_ kind: mode_t) -> String {
        switch kind {
        case S_IFDIR: return "a folder"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "not a regular file"
        }
    }

    /// `error` with every mention of a temporary file replaced by the output it stands for:
    /// a person knows OUT, not `.OUT.1f2e.partial`.
    static func naming(_ renames: [(temporary: String, output: String)], in error: Error) -> Error {
        func replaced(_ text: String) -> String {
            renames.reduce(text) { $0.replacingOccurrences(of: $1.temporary, with: $1.output) }
        }
        switch error {
        case var error as ModelError:
            error.file = error.file.map(replaced)
            error.reason = error.reason.mappingText(replaced)
            return error
        case var error as HDF5Error:
            error.file = replaced(error.file)
            error.message = replaced(error.message)
            error.hdf5Message = error.hdf5Message.map(replaced)
            return error
        default:
            let text = "\(error)"
            let renamed = replaced(text)
            return renamed == text ? error : OutputError(description: renamed)
        }
    }
}

/// An error from writing an output whose text was rewritten to name the output.
struct OutputError: Error, CustomStringConvertible {
    var description: String
}
