import CSystemZlib
import Foundation
import TextSafety
#if canImport(Glibc)
import Glibc
#endif

/// A zip archive whose directory has been read and checked, its members read on request:
/// the one zip reader behind every zip rnnkit reads (the form decision, `torch.save` files,
/// `.keras` archives, their assets, `.keras` architectures).
///
/// Every number in the archive is a claim, checked before it is used:
/// - the end record is looked for only where the format allows it, in the last
///   65,535 + 22 bytes (its comment is at most 65,535 bytes), the last signature there;
/// - ZIP64 records (the locator, the ZIP64 end record, ZIP64 extra fields) are read as
///   unsigned 64-bit values and each is compared with the file's size before it becomes an
///   `Int` or enters any arithmetic; a 32-bit field that is not the ZIP64 escape value must
///   equal the ZIP64 one; an archive on several disks is refused;
/// - the member count is checked against `Limits.archiveMembers` before any entry is read,
///   and the entries must fill the central directory exactly;
/// - names must be UTF-8, not empty, not absolute, without a `..` component or NUL; a name
///   that appears twice is refused (two readers would disagree on which is meant);
/// - members may not overlap (one member's header and data end before the next begins), so
///   reading every member reads each byte of the file once;
/// - a member's local header must agree with its directory entry (name, method, and CRC-32
///   and sizes unless a data descriptor follows);
/// - a member is stored or deflated (zlib); it inflates into at most its declared size,
///   which the caller's limit bounds before anything inflates, and which deflate's largest
///   ratio (1032 to 1) bounds by its compressed size; the bytes produced must be that size
///   and match the CRC-32.
///
/// So memory is at most the central directory, one member and the caller's copy of it: a
/// constant times the file's bytes (spec/security.md, "Zip archives").
package struct ZipArchive {
    /// The file as errors name it.
    let name: String
    /// The entries in directory order.
    let entries: [Entry]
    private let source: Source
    private let index: [String: Int]

    /// One central directory entry, its numbers checked against the file.
    struct Entry {
        let name: String
        let nameBytes: [UInt8]
        let method: UInt16
        let flags: UInt16
        let crc: UInt32
        let compressedSize: Int
        /// The declared uncompressed size: any 64-bit value, compared with a limit before use.
        let size: UInt64
        let localOffset: Int
        /// Where the next member's local header (or the central directory) begins: the
        /// member's header and data end before it.
        fileprivate(set) var end: Int
        let isSymlink: Bool
        let isDirectory: Bool
    }

    /// The escape value of a 16-bit or 32-bit field whose value is in a ZIP64 record.
    private static let escape16: UInt64 = 0xFFFF
    private static let escape32: UInt64 = 0xFFFF_FFFF
    /// The most bytes deflate produces per compressed byte: a 258-byte match in 2 bits.
    static let deflateRatio: UInt64 = 1032

    // MARK: Opening

    /// The archive in the regular file `path`; only its end, its central directory and the
    /// members asked for are read (`pread`).
    package init(path: String) throws {
        try self.init(source: try Source(path: path), name: path)
    }

    /// The archive in `data` (a file already read, within its bound).
    init(data: Data, name: String) throws {
        try self.init(source: Source(data: data, name: name), name: name)
    }

    /// The archive in `bytes` (fuzzing, tests).
    package init(bytes: [UInt8], name: String) throws {
        try self.init(source: Source(data: Data(bytes), name: name), name: name)
    }

    private init(source: Source, name: String) throws {
        self.name = name
        self.source = source
        let size = source.size
        let fileSize = UInt64(size)
        func damaged(_ message: String) -> ModelError {
            ModelError(.unreadableFile, file: name, message: "is a damaged zip archive: \(message)")
        }

        // Offsets and sizes below are checked against the file's size, so that a sum of a few
        // of them cannot overflow.
        guard size <= 1 << 60 else { throw damaged("\(size) bytes, more than rnnkit reads") }
        // The end record: the last signature in the window the format allows.
        guard size >= 22 else { throw damaged("\(size) bytes, shorter than a zip end record (22 bytes)") }
        let windowStart = max(0, size - (0xFFFF + 22))
        let window = try source.read(at: windowStart, count: size - windowStart)
        var found: Int?
        var at = window.count - 22
        while at >= 0 {
            if window[at] == 0x50, window[at + 1] == 0x4B, window[at + 2] == 0x05, window[at + 3] == 0x06 {
                found = at
                break
            }
            at -= 1
        }
        guard let found else {
            throw damaged("no end of central directory record in its last \(window.count) bytes")
        }
        let endRecord = Fields(Array(window[found..<(found + 22)]), what: "its end record", damaged: damaged)
        let endOffset = windowStart + found
        guard UInt64(found + 22) + (try endRecord.u16(20)) <= UInt64(window.count) else {
            throw damaged("its end record's comment runs past the end of the file")
        }
        var disk = try endRecord.u16(4)
        var directoryDisk = try endRecord.u16(6)
        var entriesOnDisk = try endRecord.u16(8)
        var count = try endRecord.u16(10)
        var directorySize = try endRecord.u32(12)
        var directoryOffset = try endRecord.u32(16)
        // The bytes before the end records: the central directory ends inside them.
        var directoryLimit = endOffset

        // ZIP64: a locator just before the end record points to the ZIP64 end record.
        if endOffset >= 20 {
            let locator = Fields(try source.read(at: endOffset - 20, count: 20), what: "its ZIP64 locator", damaged: damaged)
            if try locator.u32(0) == 0x0706_4B50 {
                let locatorOffset = endOffset - 20
                guard try locator.u32(4) == 0, try locator.u32(16) <= 1 else {
                    throw ModelError(.unsupported, file: name, message: "is a zip archive split over several disks; rnnkit reads single-file archives")
                }
                let recordOffset = try locator.u64(8)
                guard recordOffset <= UInt64(locatorOffset), UInt64(locatorOffset) - recordOffset >= 56 else {
                    throw damaged("its ZIP64 end record is said to be at byte \(recordOffset), which leaves no room for it before its locator at byte \(locatorOffset)")
                }
                let record = Int(recordOffset)
                let zip64 = Fields(try source.read(at: record, count: 56), what: "its ZIP64 end record", damaged: damaged)
                guard try zip64.u32(0) == 0x0606_4B50 else {
                    throw damaged("no ZIP64 end record at byte \(record), where its locator points")
                }
                // The record's size counts the bytes after its first 12; it ends at the locator.
                let recordSize = try zip64.u64(4)
                guard recordSize == UInt64(locatorOffset - record - 12) else {
                    throw damaged("its ZIP64 end record declares \(recordSize) bytes, but \(locatorOffset - record - 12) lie between it and its locator")
                }
                let wide = (disk: try zip64.u32(16), directoryDisk: try zip64.u32(20), entriesOnDisk: try zip64.u64(24),
                            count: try zip64.u64(32), directorySize: try zip64.u64(40), directoryOffset: try zip64.u64(48))
                // A 32-bit field either escapes to the ZIP64 value or repeats it.
                func agree(_ narrow: UInt64, _ escape: UInt64, _ value: UInt64, _ field: String) throws -> UInt64 {
                    guard narrow == escape || narrow == value else {
                        throw damaged("its end record gives the \(field) as \(narrow), its ZIP64 end record as \(value)")
                    }
                    return value
                }
                disk = try agree(disk, Self.escape16, wide.disk, "disk number")
                directoryDisk = try agree(directoryDisk, Self.escape16, wide.directoryDisk, "directory's disk")
                entriesOnDisk = try agree(entriesOnDisk, Self.escape16, wide.entriesOnDisk, "member count on this disk")
                count = try agree(count, Self.escape16, wide.count, "member count")
                directorySize = try agree(directorySize, Self.escape32, wide.directorySize, "directory size")
                directoryOffset = try agree(directoryOffset, Self.escape32, wide.directoryOffset, "directory offset")
                directoryLimit = record
            }
        }
        guard disk == 0, directoryDisk == 0, entriesOnDisk == count else {
            throw ModelError(.unsupported, file: name, message: "is a zip archive split over several disks; rnnkit reads single-file archives")
        }
        guard count <= UInt64(Limits.archiveMembers) else {
            throw ModelError(.unreadableFile, file: name, message: "declares \(count) zip members, over the limit of \(Limits.archiveMembers) by \(count - UInt64(Limits.archiveMembers)) (Limits.archiveMembers)")
        }
        guard directoryOffset <= UInt64(directoryLimit), directorySize <= UInt64(directoryLimit) - directoryOffset else {
            throw damaged("its central directory (\(directorySize) bytes at byte \(directoryOffset)) does not lie before its end record at byte \(directoryLimit)")
        }
        // Each entry takes at least 46 bytes.
        guard count <= directorySize / 46 else {
            throw damaged("declares \(count) members, more than its central directory of \(directorySize) bytes holds")
        }
        let directoryStart = Int(directoryOffset)
        let directory = try source.read(at: directoryStart, count: Int(directorySize))

        var entries: [Entry] = []
        entries.reserveCapacity(Int(count))
        var index: [String: Int] = [:]
        var position = 0
        for number in 0..<Int(count) {
            let header = Fields(directory, base: position, what: "central directory entry \(number)", damaged: damaged)
            guard try header.u32(0) == 0x0201_4B50 else {
                throw damaged("central directory entry \(number) (byte \(directoryStart + position)) has no signature")
            }
            let nameLength = Int(try header.u16(28))
            let extraLength = Int(try header.u16(30))
            let commentLength = Int(try header.u16(32))
            let next = position + 46 + nameLength + extraLength + commentLength
            guard next <= directory.count else { throw damaged("central directory entry \(number) runs past the directory") }
            let nameBytes = Array(directory[(position + 46)..<(position + 46 + nameLength)])
            guard let path = String(validating: nameBytes, as: UTF8.self) else {
                throw damaged("central directory entry \(number) has a name that is not UTF-8")
            }
            if let problem = Self.nameProblem(path) {
                throw ModelError(.unreadableFile, file: name, path: path, message: "\(problem); refused")
            }
            var size = try header.u32(24)
            var compressedSize = try header.u32(20)
            var localOffset = try header.u32(42)
            var startDisk = try header.u16(34)
            let extra = Fields(directory, base: position + 46 + nameLength, count: extraLength,
                               what: "the extra field of '\(escapedForDisplay(path))'", damaged: damaged)
            if let zip64 = try extra.zip64Field() {
                // Only the fields whose 32-bit value escapes are in it, in this order.
                var cursor = 0
                func take(_ value: inout UInt64, _ escape: UInt64, _ width: Int) throws {
                    guard value == escape else { return }
                    guard cursor + width <= zip64.count else {
                        throw ModelError(.unreadableFile, file: name, path: path, message: "has a ZIP64 extra field of \(zip64.count) bytes, too short for the values its entry escapes; the archive is damaged")
                    }
                    value = width == 8 ? try zip64.u64(cursor) : try zip64.u32(cursor)
                    cursor += width
                }
                try take(&size, Self.escape32, 8)
                try take(&compressedSize, Self.escape32, 8)
                try take(&localOffset, Self.escape32, 8)
                try take(&startDisk, Self.escape16, 4)
            }
            guard startDisk == 0 else {
                throw ModelError(.unsupported, file: name, path: path, message: "starts on disk \(startDisk); rnnkit reads single-file archives")
            }
            guard compressedSize <= fileSize, localOffset <= fileSize else {
                throw ModelError(.unreadableFile, file: name, path: path, message: "has \(compressedSize) compressed bytes at byte \(localOffset), past the end of the file (\(fileSize) bytes); the archive is damaged")
            }
            let madeByUnix = try header.u16(4) >> 8 == 3
            let mode = try header.u32(38) >> 16 & 0o170000
            let entry = Entry(name: path, nameBytes: nameBytes, method: UInt16(try header.u16(10)), flags: UInt16(try header.u16(8)),
                              crc: UInt32(try header.u32(16)), compressedSize: Int(compressedSize), size: size,
                              localOffset: Int(localOffset), end: directoryStart,
                              isSymlink: madeByUnix && mode == 0o120000,
                              isDirectory: path.hasSuffix("/") || madeByUnix && mode == 0o040000)
            guard index.updateValue(entries.count, forKey: path) == nil else {
                throw ModelError(.unreadableFile, file: name, path: path, message: "appears twice in the archive; readers would disagree on which is meant, so the archive is ambiguous and refused")
            }
            entries.append(entry)
            position = next
        }
        guard position == directory.count else {
            throw damaged("its central directory holds \(directory.count - position) bytes after the \(count) members its end record declares")
        }

        // Members in file order: each header (at least 30 bytes and its name) and data must
        // end before the next member begins, and the last before the central directory.
        let order = entries.indices.sorted { entries[$0].localOffset < entries[$1].localOffset }
        for (rank, number) in order.enumerated() {
            let entry = entries[number]
            let limit = rank + 1 < order.count ? entries[order[rank + 1]].localOffset : directoryStart
            // Each term is at most the file's size, so the sum cannot overflow.
            guard entry.localOffset + 30 + entry.nameBytes.count + entry.compressedSize <= limit else {
                let what = rank + 1 < order.count ? "member '\(escapedForDisplay(entries[order[rank + 1]].name))'" : "the central directory"
                throw ModelError(.unreadableFile, file: name, path: entry.name, message: "overlaps \(what): its header and \(entry.compressedSize) bytes of data at byte \(entry.localOffset) run past byte \(limit); the archive is damaged")
            }
            entries[number].end = limit
        }
        self.entries = entries
        self.index = index
    }

    /// Why a member name is refused, or nil: names become lookups, and could become paths.
    static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "is an empty member name" }
        if name.utf8.contains(0) { return "is a member name holding NUL" }
        if name.hasPrefix("/") || name.hasPrefix("\\") { return "is an absolute member name" }
        let first = name.utf8.prefix(2)
        if first.count == 2, first.last == UInt8(ascii: ":"), first.first.map({ (65...90).contains($0) || (97...122).contains($0) }) == true {
            return "is a member name starting with a drive letter"
        }
        if name.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "/" || $0 == "\\" }).contains("..") {
            return "is a member name with a '..' component"
        }
        return nil
    }

    // MARK: Members

    /// The member names, in directory order.
    package var names: [String] { entries.map(\.name) }

    func entry(_ path: String) -> Entry? {
        index[path].map { entries[$0] }
    }

    /// Refuses a symbolic link or directory entry named `path` (or `path/`): the caller reads
    /// `path` as a file's bytes.
    func requireFile(_ path: String) throws {
        for candidate in [path, path + "/"] {
            guard let entry = entry(candidate) else { continue }
            if entry.isSymlink {
                throw ModelError(.unreadableFile, file: name, path: path, message: "is a symbolic link entry, not a file; refused (links are never followed)")
            }
            if entry.isDirectory || candidate != path {
                throw ModelError(.unreadableFile, file: name, path: path, message: "is a directory entry, not a file; refused")
            }
        }
    }

    /// The bytes of member `path` (nil when absent), refused when it is a link or a folder,
    /// encrypted, compressed other than stored or deflated, when it declares more than
    /// `limit` bytes, when it inflates past what it declares, or when its size or CRC-32
    /// differ from its entry's. `bound` names the limit in errors (`Limits.configJSONBytes`).
    package func member(_ path: String, limit: Int, bound: String) throws -> [UInt8]? {
        try requireFile(path)
        guard let entry = entry(path) else { return nil }
        guard entry.flags & 0x41 == 0 else { throw refusal(entry, "is encrypted; refused", .unsupported) }
        guard entry.method == 0 || entry.method == 8 else {
            throw refusal(entry, "is compressed with zip method \(entry.method); rnnkit reads stored (0) and deflated (8) members", .unsupported)
        }
        let limit = max(limit, 0)
        guard entry.size <= UInt64(limit) else {
            throw refusal(entry, "declares \(entry.size) bytes, over the limit of \(limit) by \(entry.size - UInt64(limit)) (\(bound))")
        }
        let size = Int(entry.size)
        let start = try dataStart(entry)
        let bytes: [UInt8]
        if entry.method == 0 {
            guard entry.compressedSize == size else {
                throw refusal(entry, "is stored with two sizes, \(entry.compressedSize) and \(size) bytes; the archive is damaged")
            }
            bytes = try source.read(at: start, count: size)
        } else {
            let most = UInt64(entry.compressedSize).multipliedReportingOverflow(by: Self.deflateRatio)
            guard most.overflow || entry.size <= most.partialValue else {
                throw refusal(entry, "declares \(entry.size) bytes from \(entry.compressedSize) deflated bytes, more than deflate can produce (\(Self.deflateRatio) to 1); the archive is damaged")
            }
            bytes = try inflate(entry, from: start, size: size, limit: limit, bound: bound)
        }
        let crc = Self.crc32(bytes)
        guard crc == entry.crc else {
            throw refusal(entry, "is damaged: its bytes have CRC-32 \(String(crc, radix: 16)) where its entry says \(String(entry.crc, radix: 16))")
        }
        return bytes
    }

    private func refusal(_ entry: Entry, _ message: String, _ kind: ModelError.Kind = .unreadableFile) -> ModelError {
        ModelError(kind, file: name, path: entry.name, message: message)
    }

    /// Where `entry`'s data begins, after its local header has been checked against its
    /// directory entry.
    private func dataStart(_ entry: Entry) throws -> Int {
        let damaged = { [self] (message: String) in refusal(entry, "\(message); the archive is damaged") }
        let header = Fields(try source.read(at: entry.localOffset, count: 30), what: "its local header", damaged: damaged)
        guard try header.u32(0) == 0x0403_4B50 else {
            throw damaged("has no local header where the directory says (byte \(entry.localOffset))")
        }
        let nameLength = Int(try header.u16(26))
        let extraLength = Int(try header.u16(28))
        // Both lengths are below 2^16; header and data must end before the next member.
        let start = entry.localOffset + 30 + nameLength + extraLength
        guard start <= entry.end, entry.compressedSize <= entry.end - start else {
            throw damaged("has a local header and data that run past byte \(entry.end), where the next member or the directory begins")
        }
        let tail = try source.read(at: entry.localOffset + 30, count: nameLength + extraLength)
        guard tail.prefix(nameLength).elementsEqual(entry.nameBytes) else {
            throw damaged("has a local header naming another member")
        }
        let flags = try header.u16(6)
        guard try header.u16(8) == UInt64(entry.method), flags & 1 == UInt64(entry.flags & 1) else {
            throw damaged("has a local header whose method or flags differ from its directory entry")
        }
        let crc = try header.u32(14)
        var compressed = try header.u32(18)
        var size = try header.u32(22)
        let extra = Fields(tail, base: nameLength, count: extraLength, what: "its local extra field", damaged: damaged)
        if let zip64 = try extra.zip64Field() {
            // As in the directory: the escaped sizes, uncompressed first.
            var cursor = 0
            func take(_ value: inout UInt64) throws {
                guard value == Self.escape32 else { return }
                guard cursor + 8 <= zip64.count else { throw damaged("has a local ZIP64 extra field too short for its sizes") }
                value = try zip64.u64(cursor)
                cursor += 8
            }
            try take(&size)
            try take(&compressed)
        }
        // With a data descriptor after the data (flag bit 3) the local values may be zero.
        let descriptor = flags & 8 != 0
        for (local, central, field) in [(crc, UInt64(entry.crc), "CRC-32"), (compressed, UInt64(entry.compressedSize), "compressed size"),
                                        (size, entry.size, "size")]
            where local != central && !(descriptor && (local == 0 || local == Self.escape32)) {
            throw damaged("has a local header giving its \(field) as \(local), its directory entry as \(central)")
        }
        return start
    }

    /// Inflates `entry`'s deflated data into at most `size` bytes (its declared size, already
    /// within `limit`); a byte more is refused as it arrives.
    private func inflate(_ entry: Entry, from start: Int, size: Int, limit: Int, bound: String) throws -> [UInt8] {
        var stream = z_stream()
        guard csystemzlib_inflate_init_raw(&stream) == Z_OK else {
            throw refusal(entry, "cannot be inflated (zlib could not start)")
        }
        defer { inflateEnd(&stream) }
        let chunk = 1 << 20
        // One byte of room past the declared size tells a stream that goes on from one that ends.
        let capacity = size + 1
        var consumed = 0
        var ended = false
        let bytes = try [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            initialized = 0
            while !ended {
                guard consumed < entry.compressedSize else {
                    throw refusal(entry, "ends inside its deflate stream; the archive is damaged")
                }
                let count = min(chunk, entry.compressedSize - consumed)
                var input = try source.read(at: start + consumed, count: count)
                consumed += count
                try input.withUnsafeMutableBufferPointer { input in
                    stream.next_in = input.baseAddress
                    stream.avail_in = uInt(input.count)
                    defer {
                        stream.next_in = nil
                        stream.avail_in = 0
                    }
                    while true {
                        let room = min(capacity - initialized, Int(UInt32.max))
                        stream.next_out = buffer.baseAddress! + initialized
                        stream.avail_out = uInt(room)
                        let status = CSystemZlib.inflate(&stream, Z_NO_FLUSH)
                        initialized += room - Int(stream.avail_out)
                        if initialized > size {
                            throw size == limit
                                ? refusal(entry, "inflates past \(limit) bytes (\(bound)); refused")
                                : refusal(entry, "inflates past its declared size of \(size) bytes; refused")
                        }
                        switch status {
                        case Z_STREAM_END:
                            ended = true
                            return
                        case Z_OK:
                            continue
                        case Z_BUF_ERROR:
                            // No progress possible: this chunk is used up.
                            return
                        default:
                            let reason = stream.msg.map { String(cString: $0) } ?? "status \(status)"
                            throw refusal(entry, "is not a valid deflate stream (zlib: \(reason)); the archive is damaged")
                        }
                    }
                }
            }
        }
        guard bytes.count == size else {
            throw refusal(entry, "inflates to \(bytes.count) bytes where its entry declares \(size); the archive is damaged")
        }
        return bytes
    }

    /// The zip CRC-32 of `bytes` (zlib's `crc32`).
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { buffer in
            var crc = CSystemZlib.crc32(0, nil, 0)
            var offset = 0
            while offset < buffer.count {
                let count = min(buffer.count - offset, 1 << 30)
                crc = CSystemZlib.crc32(crc, buffer.baseAddress! + offset, uInt(count))
                offset += count
            }
            return UInt32(truncatingIfNeeded: crc)
        }
    }
}

// MARK: Bytes

extension ZipArchive {
    /// Where an archive's bytes are: in memory, or in an open regular file read with `pread`.
    final class Source {
        let size: Int
        private let data: Data?
        private let descriptor: Int32
        /// The file as errors name it.
        private let path: String

        init(data: Data, name: String) {
            self.data = data
            size = data.count
            descriptor = -1
            path = name
        }

        /// Opens `path`, a regular file (`InputFiles`), and keeps it open while the archive
        /// is used, so that every read is of the same file.
        ///
        /// The corresponding C functions are `open` and `fstat`.
        init(path: String) throws {
            descriptor = try InputFiles.openRegularFile(path)
            var info = stat()
            guard fstat(descriptor, &info) == 0 else {
                close(descriptor)
                throw ModelError(.unreadableFile, file: path, message: "cannot be examined (\(String(cString: strerror(errno))))")
            }
            size = Int(info.st_size)
            data = nil
            self.path = path
        }

        deinit {
            if descriptor >= 0 { close(descriptor) }
        }

        /// Exactly `count` bytes from `offset`; callers keep both within `size`, and a file
        /// that ends early (it shrank while read) is an error.
        ///
        /// The corresponding C function is `pread`.
        func read(at offset: Int, count: Int) throws -> [UInt8] {
            guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
                throw ModelError(.unreadableFile, file: path, message: "is a damaged zip archive: \(count) bytes at byte \(offset) lie past its end")
            }
            if let data {
                let base = data.startIndex + offset
                return [UInt8](data[base..<(base + count)])
            }
            return try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                initialized = 0
                while initialized < count {
                    let read = pread(descriptor, buffer.baseAddress! + initialized, count - initialized, off_t(offset + initialized))
                    if read < 0, errno == EINTR { continue }
                    guard read > 0 else {
                        let reason = read < 0 ? String(cString: strerror(errno)) : "the file ended early"
                        throw ModelError(.unreadableFile, file: path, message: "cannot be read (\(reason))")
                    }
                    initialized += read
                }
            }
        }
    }

    /// Little-endian fields of a record, each read within the record's bytes (a field past
    /// them is an error, never a trap), as `UInt64`.
    fileprivate struct Fields {
        let bytes: [UInt8]
        let base: Int
        let count: Int
        let what: String
        let damaged: (String) -> ModelError

        init(_ bytes: [UInt8], base: Int = 0, count: Int? = nil, what: String, damaged: @escaping (String) -> ModelError) {
            self.bytes = bytes
            self.base = base
            self.count = count ?? bytes.count - base
            self.what = what
            self.damaged = damaged
        }

        func value(_ at: Int, _ width: Int) throws -> UInt64 {
            guard at >= 0, width <= count, at <= count - width, base + at + width <= bytes.count else {
                throw damaged("\(what) ends before its field at byte \(at)")
            }
            var value: UInt64 = 0
            for index in (0..<width).reversed() { value = value << 8 | UInt64(bytes[base + at + index]) }
            return value
        }

        func u16(_ at: Int) throws -> UInt64 { try value(at, 2) }
        func u32(_ at: Int) throws -> UInt64 { try value(at, 4) }
        func u64(_ at: Int) throws -> UInt64 { try value(at, 8) }

        /// The ZIP64 extended information field (id 1) of an extra field, or nil. Fields are
        /// `id`, `size` and `size` bytes; a field running past the extra field is damage,
        /// fewer than 4 bytes left over are ignored (as Python's `zipfile` ignores them); a
        /// second ZIP64 field is refused.
        func zip64Field() throws -> Fields? {
            var found: Fields?
            var at = 0
            while count - at >= 4 {
                let id = try u16(at)
                let length = Int(try u16(at + 2))
                guard length <= count - at - 4 else { throw damaged("\(what) has a field running past its end") }
                if id == 1 {
                    guard found == nil else { throw damaged("\(what) holds two ZIP64 fields") }
                    found = Fields(bytes, base: base + at + 4, count: length, what: "\(what)'s ZIP64 field", damaged: damaged)
                }
                at += 4 + length
            }
            return found
        }
    }
}
