import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes one file through a temporary sibling that is renamed into place on success.
enum AtomicFile {
    /// Calls `body` with a temporary path beside `path` (which `body` creates, exclusively),
    /// then puts it in place. On any failure the temporary is removed and `path` is untouched.
    static func write(to path: String, overwrite: Bool, _ body: (String) throws -> Void) throws {
        try OutputBatch.writing { batch in try batch.write(path, overwrite: overwrite, body) }
    }
}

/// Files written to temporaries beside their targets and put in place together: all of
/// them, or none (a converted model and its emitted Python module, say).
///
/// Each temporary sits in its output's folder, is named after it (`.OUT.<random>.partial`),
/// is created exclusively by the writer (`O_EXCL`: never an existing file or a symbolic
/// link planted under that name), and is registered with `TemporaryFiles` so that SIGINT or
/// SIGTERM removes it. Errors name the output, never the temporary.
final class OutputBatch {
    private struct Pending {
        var output: String
        var temporary: String
        var overwrite: Bool
    }

    private var pending: [Pending] = []
    /// Every temporary this batch named (written files and scratch files), with its slot in
    /// the signal-time table.
    private var temporaries: [(path: String, output: String, slot: Int?)] = []

    private init() {}

    /// Runs `body` with a new batch and commits it; on any error every temporary is removed
    /// and no output is touched.
    static func writing<T>(_ body: (OutputBatch) throws -> T) throws -> T {
        let batch = OutputBatch()
        defer { batch.discard() }
        let result = try body(batch)
        try batch.commit()
        return result
    }

    /// Writes `output`'s contents with `body`, which gets the temporary path and must create
    /// the file there exclusively (`HDF5File.create(_:overwrite: false)`, `writeNewFile`).
    /// `output` is checked first: a regular file or nothing, and nothing unless `overwrite`.
    func write(_ output: String, overwrite: Bool, _ body: (String) throws -> Void) throws {
        _ = try OutputFiles.location(ofOutput: output)
        try OutputFiles.checkReplaceable(output, overwrite: overwrite)
        let temporary = reserve(beside: output, suffix: "partial")
        do {
            try body(temporary)
        } catch {
            throw OutputFiles.naming(temporaries.map { ($0.path, $0.output) }, in: error)
        }
        pending.append(Pending(output: output, temporary: temporary, overwrite: overwrite))
    }

    /// A name for a scratch file beside `output` (`.OUT.<random>.<suffix>`), not yet created,
    /// removed when the batch ends and on a signal.
    func scratchFile(beside output: String, suffix: String) -> String {
        reserve(beside: output, suffix: suffix)
    }

    /// A fresh name beside `output`, registered for removal on a signal.
    private func reserve(beside output: String, suffix: String) -> String {
        let (folder, name) = OutputFiles.split(output)
        // A long name is shortened so that the temporary's stays within NAME_MAX (255 bytes).
        var stem = Substring(name)
        while stem.utf8.count > 180 { stem = stem.dropLast() }
        let random = String(UInt64.random(in: .min ... .max), radix: 16)
        let temporaryName = ".\(stem).\(random).\(suffix)"
        let path = output.contains("/") ? (folder == "/" ? "/" : folder + "/") + temporaryName : temporaryName
        temporaries.append((path, output, TemporaryFiles.register(path)))
        return path
    }

    /// Puts every written file in place. Each target is checked again (nothing was created
    /// there since, or only a regular file when replacing); a file not replacing another is
    /// linked into place, which fails rather than replace one that appeared meanwhile. If one
    /// cannot be placed, those already placed are taken back: a new one removed, a replaced
    /// one restored from a hard link made just before.
    private func commit() throws {
        for item in pending {
            try OutputFiles.checkReplaceable(item.output, overwrite: item.overwrite)
        }
        var placed: [(output: String, replaced: Bool, backup: String?)] = []
        do {
            for item in pending {
                try synchronize(item)
                let replaced = OutputFiles.linkStatus(item.output) != nil
                let backup = replaced ? backUp(item.output) : nil
                try place(item)
                placed.append((item.output, replaced, backup))
            }
        } catch {
            for (output, replaced, backup) in placed.reversed() {
                if let backup {
                    rename(backup, output)
                } else if !replaced {
                    unlink(output)
                }
            }
            throw error
        }
        pending = []
    }

    /// A hard link to `output`'s current file under a registered scratch name, or nil when
    /// the file system has no hard links (then a failed batch cannot restore it).
    private func backUp(_ output: String) -> String? {
        let backup = reserve(beside: output, suffix: "previous")
        return link(output, backup) == 0 ? backup : nil
    }

    /// Renames the temporary onto the output, or (not replacing) links it there and removes
    /// the temporary name. The corresponding C functions are `rename`, `link` and `unlink`.
    private func place(_ item: Pending) throws {
        if item.overwrite {
            guard rename(item.temporary, item.output) == 0 else { throw failure(item.output, errno) }
            return
        }
        if link(item.temporary, item.output) == 0 {
            unlink(item.temporary)
            return
        }
        let error = errno
        guard [EPERM, EXDEV, EMLINK, ENOSYS, EOPNOTSUPP].contains(error) else {
            if error == EEXIST { try OutputFiles.checkReplaceable(item.output, overwrite: false) }
            throw failure(item.output, error)
        }
        // No hard links here: check and rename, the best this file system allows.
        try OutputFiles.checkReplaceable(item.output, overwrite: false)
        guard rename(item.temporary, item.output) == 0 else { throw failure(item.output, errno) }
    }

    /// Flushes the temporary to disk before it replaces anything, so that a crash leaves the
    /// old file or the new one, not an empty one. The corresponding C function is `fsync`.
    private func synchronize(_ item: Pending) throws {
        let descriptor = open(item.temporary, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else { throw failure(item.output, errno) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw failure(item.output, errno) }
    }

    private func failure(_ output: String, _ code: Int32) -> ModelError {
        ModelError(file: output, message: "cannot move the finished file into place: \(String(cString: strerror(code)))")
    }

    /// Removes every temporary still there and forgets them all.
    private func discard() {
        for temporary in temporaries {
            unlink(temporary.path)
            TemporaryFiles.unregister(temporary.slot)
        }
        temporaries = []
        pending = []
    }
}

/// Creates `path`, which must not exist (not even as a symbolic link), and writes `data`
/// to it. The corresponding C functions are `open` (`O_CREAT | O_EXCL`) and `write`.
func writeNewFile(_ path: String, contents data: Data) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666)
    guard descriptor >= 0 else {
        throw ModelError(file: path, message: "cannot create the file: \(String(cString: strerror(errno)))")
    }
    defer { close(descriptor) }
    try data.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                throw ModelError(file: path, message: "cannot write the file: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }
}
