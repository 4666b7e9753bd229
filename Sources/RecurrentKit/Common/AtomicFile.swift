import Foundation

/// Writes a file through a temporary sibling that is renamed into place on success.
enum AtomicFile {
    /// Calls `body` with a temporary path in the target's folder, then renames it to `path`.
    /// On any failure the temporary file is removed and `path` is untouched.
    static func write(to path: String, overwrite: Bool, _ body: (String) throws -> Void) throws {
        let manager = FileManager.default
        let target = URL(fileURLWithPath: path)
        if manager.fileExists(atPath: path) && !overwrite {
            throw ModelError(file: path, message: "exists; pass --force to replace it")
        }
        let folder = target.deletingLastPathComponent()
        let temporary = folder.appendingPathComponent(".\(target.lastPathComponent).\(UUID().uuidString).partial").path
        do {
            try body(temporary)
            // rename(2) replaces the target atomically: readers see the old file or the new one.
            guard rename(temporary, path) == 0 else {
                throw ModelError(file: path, message: "cannot move the finished file into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? manager.removeItem(atPath: temporary)
            throw error
        }
    }
}
