import Foundation
import TextSafety
import ZIPFoundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A zip archive written one stored (uncompressed) entry at a time, as `torch.save` writes
/// its archives.
///
/// Each entry's data starts at a multiple of `alignment` bytes from the start of the file,
/// as torch aligns its records so that a storage can be mapped in place: the padding is an
/// extra field of the local header (id `FB`, filled with `Z`, as torch's own writer pads).
/// Sizes and CRC-32 are in the local header (no data descriptors). No zip64: an entry,
/// offset or directory past 4 GiB, or more than 65,535 entries, is refused.
final class ZipWriter {
    private let handle: FileHandle
    private let path: String
    private let alignment: Int
    /// Bytes written so far: where the next local header goes.
    private var offset = 0
    private var central: [UInt8] = []
    private var entries = 0
    private static let zip32Limit = Int(UInt32.max)

    /// Creates `path`, which must not exist (not even as a symbolic link).
    ///
    /// The corresponding C function is `open` (`O_CREAT | O_EXCL | O_NOFOLLOW`).
    init(creating path: String, alignment: Int = 64) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else {
            throw ModelError(.unwritableOutput, file: path, message: "cannot create the file: \(String(cString: strerror(errno)))")
        }
        self.handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        self.path = path
        self.alignment = max(alignment, 1)
    }

    /// Writes entry `name` holding `data`, stored.
    func add(_ name: String, _ data: [UInt8]) throws {
        let nameBytes = Array(name.utf8)
        guard nameBytes.count <= Int(UInt16.max), entries < Int(UInt16.max) else {
            throw failure("cannot hold entry '\(escapedForDisplay(name))': more than 65535 entries or a name that long")
        }
        // Pad so that the data after header, name and extra field starts on the alignment.
        let unpadded = offset + 30 + nameBytes.count
        var extra: [UInt8] = []
        if unpadded % alignment != 0 {
            let padding = (alignment - (unpadded + 4) % alignment) % alignment
            extra = [0x46, 0x42] + Self.little(padding, 2) + [UInt8](repeating: 0x5A, count: padding)
        }
        let dataStart = unpadded + extra.count
        guard dataStart <= Self.zip32Limit, data.count <= Self.zip32Limit - dataStart else {
            throw failure("would pass 4 GiB at entry '\(escapedForDisplay(name))'; zip64 archives are not written")
        }
        let crc = Int(Data(data).crc32(checksum: 0))
        // Version 2.0, UTF-8 names (flag bit 11), stored, 1980-01-01 00:00.
        let common = Self.little(20, 2) + Self.little(0x0800, 2) + Self.little(0, 2) + Self.little(0, 2)
            + Self.little(0x21, 2) + Self.little(crc, 4) + Self.little(data.count, 4) + Self.little(data.count, 4)
            + Self.little(nameBytes.count, 2)
        let local = Self.little(0x0403_4B50, 4) + common + Self.little(extra.count, 2) + nameBytes + extra
        // Made by Unix (3), version 2.0; external attributes: a regular file, mode 0644.
        central += Self.little(0x0201_4B50, 4) + Self.little(3 << 8 | 20, 2) + common + Self.little(0, 2)
            + Self.little(0, 2) + Self.little(0, 2) + Self.little(0, 2) + Self.little(0o100644 << 16, 4)
            + Self.little(offset, 4) + nameBytes
        try write(local)
        try write(data)
        offset = dataStart + data.count
        entries += 1
    }

    /// Writes the central directory and the end record, and closes the file.
    func finish() throws {
        guard offset <= Self.zip32Limit, central.count <= Self.zip32Limit - offset else {
            throw failure("would pass 4 GiB with its central directory; zip64 archives are not written")
        }
        let end = Self.little(0x0605_4B50, 4) + Self.little(0, 2) + Self.little(0, 2) + Self.little(entries, 2)
            + Self.little(entries, 2) + Self.little(central.count, 4) + Self.little(offset, 4) + Self.little(0, 2)
        try write(central + end)
        do {
            try handle.synchronize()
            try handle.close()
        } catch {
            throw failure("cannot be finished (\(error.localizedDescription))")
        }
    }

    private func write(_ bytes: [UInt8]) throws {
        do {
            try handle.write(contentsOf: bytes)
        } catch {
            throw failure("cannot be written (\(error.localizedDescription))")
        }
    }

    private func failure(_ message: String) -> ModelError {
        ModelError(.unwritableOutput, file: path, message: message)
    }

    /// `value`'s low `count` bytes, little-endian.
    private static func little(_ value: Int, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}
