import Foundation
import ZIPFoundation

/// A zip file's central directory, read to tell a `.keras` archive from a `torch.save` file
/// before either reader opens it.
enum ZipDirectory {
    /// The member names of the zip archive `path`, at most `Limits.configJSONItems` of them
    /// (a directory claiming more is refused: no model file has that many members).
    static func memberNames(_ path: String) throws -> [String] {
        let archive: Archive
        do {
            archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw ModelError(file: path, message: "is not a readable zip archive (\(error))")
        }
        var names: [String] = []
        for entry in archive {
            guard names.count < Limits.configJSONItems else {
                throw ModelError(file: path, message: "holds more than \(Limits.configJSONItems) zip members (Limits.configJSONItems); refused")
            }
            names.append(entry.path)
        }
        return names
    }
}
