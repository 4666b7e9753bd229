import Foundation
import HDF5
import TextSafety
#if canImport(Glibc)
import Glibc
#endif

/// Every file the library reads as an input — a model, a run's input, a fixture, an
/// architecture, a JSON architecture, the first bytes of a file sniffed for a zip — is checked here first:
/// it must be a regular file. A FIFO is opened without blocking and refused (so it never
/// hangs the tool), a device or a folder is refused, each with one line.
package enum InputFiles {
    /// Refuses `path` unless it is a regular file.
    ///
    /// The corresponding C functions are `stat` (a device or FIFO is refused without being
    /// opened), `open` (`O_RDONLY | O_NONBLOCK | O_CLOEXEC`) and `fstat` on the descriptor
    /// (the name could change in between).
    package static func requireRegularFile(_ path: String) throws {
        let descriptor = try openRegularFile(path)
        close(descriptor)
    }

    /// Refuses `path` when its name leads (symbolic links followed) to anything but a regular
    /// file, without opening it; a name that does not exist passes (opening it says so).
    ///
    /// The corresponding C function is `stat`.
    package static func requireRegularByName(_ path: String) throws {
        var named = stat()
        if stat(path, &named) == 0, named.st_mode & S_IFMT != S_IFREG {
            throw ModelError(file: path, message: "is \(kind(named.st_mode)), not a regular file; only regular files are read")
        }
    }

    /// Reads the whole of `path`, a regular file, refusing it when it holds more than
    /// `limit` bytes (the limit is checked against the bytes read, not the size `fstat`
    /// reports). `what` names the bound in the error (`Limits.configJSONBytes`).
    package static func read(_ path: String, limit: Int, what: String) throws -> Data {
        let descriptor = try openRegularFile(path)
        defer { close(descriptor) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw ModelError(file: path, message: "cannot be read (\(errorText()))") }
            if count == 0 { return data }
            guard data.count + count <= limit else {
                throw ModelError(file: path, message: "holds more than \(limit) bytes (\(what)); refused")
            }
            data.append(contentsOf: buffer[..<count])
        }
    }

    /// Reads at most the first `count` bytes of `path`, a regular file.
    package static func prefix(_ path: String, count: Int) throws -> [UInt8] {
        let descriptor = try openRegularFile(path)
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let read = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + filled, count - filled) }
            if read < 0, errno == EINTR { continue }
            guard read > 0 else { break }
            filled += read
        }
        return Array(buffer.prefix(filled))
    }

    /// Opens `path`, a regular file, and hands `body` a probe that reads bytes at any offset
    /// of it (`ModelFileForm` decides a file's form from a few of them).
    ///
    /// The corresponding C functions are `fstat` (the size) and `pread`.
    static func withProbe<T>(_ path: String, _ body: (FileProbe) throws -> T) throws -> T {
        let descriptor = try openRegularFile(path)
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw ModelError(file: path, message: "cannot be examined (\(errorText()))") }
        let probe = FileProbe(size: Int(info.st_size)) { offset, count in
            var buffer = [UInt8](repeating: 0, count: count)
            var filled = 0
            while filled < count {
                let read = buffer.withUnsafeMutableBytes {
                    pread(descriptor, $0.baseAddress! + filled, count - filled, off_t(offset + filled))
                }
                if read < 0, errno == EINTR { continue }
                guard read >= 0 else { throw ModelError(file: path, message: "cannot be read (\(errorText()))") }
                if read == 0 { break }
                filled += read
            }
            return Array(buffer.prefix(filled))
        }
        return try body(probe)
    }

    /// Opens `path` read-only without blocking and returns the descriptor when it is a
    /// regular file; otherwise closes it and throws one line naming the file and its kind.
    static func openRegularFile(_ path: String) throws -> Int32 {
        // A look by name first, so that a device is never opened at all (opening some has
        // effects); the descriptor's own type is what counts after the open.
        try requireRegularByName(path)
        let descriptor = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ModelError(file: path, message: errno == ENOENT ? "no such file" : "cannot be opened (\(errorText()))")
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            let text = errorText()
            close(descriptor)
            throw ModelError(file: path, message: "cannot be examined (\(text))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(descriptor)
            throw ModelError(file: path, message: "is \(kind(info.st_mode)), not a regular file; only regular files are read")
        }
        // Reads block as usual from here (O_NONBLOCK only kept a FIFO's open from waiting).
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
        return descriptor
    }

    /// Whether `path`, its symbolic links followed, lies inside `folder` (also resolved):
    /// the one containment check (a fixture's `model` and `architecture`, a folder's listed
    /// fixtures and the models paired with them, the folders reports stay out of). False when
    /// either cannot be resolved.
    ///
    /// The real paths (`realpath(3)`) are compared as bytes, component by component: Swift's
    /// `String` calls canonically equivalent spellings equal (`café` in NFC and NFD), and
    /// Linux, which keeps names as bytes, holds two different folders under them.
    package static func resolves(_ path: String, inside folder: String) -> Bool {
        guard let realFolder = realPath(folder), let realTarget = realPath(path) else { return false }
        return isInside(realTarget, realFolder)
    }

    /// Whether the real path `path` lies below the real path `folder` (both as `realPath`
    /// gives them): `folder`'s bytes, then `/`, then at least one more byte.
    package static func isInside(_ path: [UInt8], _ folder: [UInt8]) -> Bool {
        let slash = UInt8(ascii: "/")
        let base = folder.last == slash ? folder : folder + [slash]
        return path.count > base.count && path.starts(with: base)
    }

    /// The canonical absolute path of `path` as the bytes `realpath(3)` gives (no decoding,
    /// so a name that is not UTF-8 stays what it is), or nil when it cannot be resolved.
    package static func realPath(_ path: String) -> [UInt8]? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return Array(UnsafeBufferPointer(start: UnsafeRawPointer(resolved).assumingMemoryBound(to: UInt8.self),
                                         count: strlen(resolved)))
    }

    private static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "a special file"
        }
    }

    private static func errorText() -> String {
        String(cString: strerror(errno))
    }
}

/// Installs the handler that turns a memory fault inside libhdf5 — and only there — into
/// one line naming `files`, after `prefix` (a tool's own, such as `tool: error: `), and exit
/// status 2 (`HDF5.LibraryFaults`); a fault anywhere else stays a crash. A command-line tool
/// calls it once, before reading anything.
package func installLibraryFaultHandler(reading files: [String], prefix: String) {
    let names = files.isEmpty ? "the input" : files.map { escapedForDisplay($0) }.joined(separator: ", ")
    let line = escapedForDisplay("\(names): damaged file: the HDF5 library failed reading it (memory fault)", limit: 4000)
    // A fault while a written file is read back must not leave its temporary behind.
    LibraryFaults.install(message: "\(prefix)\(line)\n",
                          cleanup: { TemporaryFiles.removeAllFromSignalHandler() })
    let seconds = Limits.hdf5CallSeconds
    let hang = escapedForDisplay("\(names): damaged file: the HDF5 library did not finish one read within \(Int(seconds)) s (a loop in the file's structure)", limit: 4000)
    LibraryFaults.watch(calls: seconds, message: "\(prefix)\(hang)\n",
                        cleanup: { TemporaryFiles.removeAllFromSignalHandler() })
    LibraryFaults.limitMemory(perCall: Limits.hdf5CallBytes)
}
