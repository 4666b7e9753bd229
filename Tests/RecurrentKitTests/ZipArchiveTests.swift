import Foundation
import TestSupport
import XCTest
@testable import RecurrentKit
#if canImport(Glibc)
import Glibc
#endif

/// The one zip reader (`ZipArchive`) on archives an attacker wrote: ZIP64 records and extra
/// fields holding values up to 2^64 − 1, an end record that is not where the format allows,
/// millions of members, names that are paths, members that overlap or whose local header
/// disagrees with the directory. Each is read correctly or refused with one line (exit
/// status 2 through `rnnkit`), never a trap; the form decision, `torch.save` files, `.keras`
/// archives and `--architecture` archives all read through it.
final class ZipArchiveTests: XCTestCase {
    /// Values fed to every offset, size and count field.
    static let extremes: [UInt64] = [0, 1, 1 << 31, 1 << 32, 1 << 53, (1 << 63) - 1, UInt64.max]

    private let weightsOnly = fixture("keras/k3_stacked_bilstm.weights.h5")

    // MARK: Archives built here

    struct Member {
        var name: String
        var bytes: [UInt8]
        var deflated = false
    }

    /// An archive's bytes and where each of its numeric fields lies, by name
    /// (`central 1 ZIP64 offset`), for the sweep over extreme values.
    struct Image {
        var bytes: [UInt8]
        var fields: [(name: String, offset: Int, width: Int)] = []

        mutating func append(_ value: UInt64, _ width: Int, field: String? = nil) {
            if let field { fields.append((field, bytes.count, width)) }
            for index in 0..<width { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))) }
        }

        mutating func append(_ bytes: [UInt8]) { self.bytes += bytes }

        /// The image with field `index` set to `value`, cut to the field's width.
        func setting(_ index: Int, to value: UInt64) -> [UInt8] {
            var copy = bytes
            let field = fields[index]
            for byte in 0..<field.width { copy[field.offset + byte] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(byte))) }
            return copy
        }
    }

    /// A deflate stream of one stored block (RFC 1951 §3.2.4): valid raw deflate, the
    /// bytes unchanged after a 5-byte header.
    static func storedDeflate(_ bytes: [UInt8]) -> [UInt8] {
        precondition(bytes.count <= 0xFFFF)
        let length = UInt16(bytes.count)
        return [0x01, UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8(~length >> 8)] + bytes
    }

    /// A zip of `members`. `zip64`: every member's sizes and offset (and start disk) in ZIP64
    /// extra fields, in the local headers too, and a ZIP64 end record and locator with the
    /// end record's fields all escaped. `descriptor`: local CRC and sizes zero, a data
    /// descriptor after each member's data, as torch writes.
    static func build(_ members: [Member], zip64: Bool, descriptor: Bool = false, comment: [UInt8] = []) -> Image {
        var image = Image(bytes: [])
        var central = Image(bytes: [])
        var offsets: [Int] = []
        let escape32: UInt64 = 0xFFFF_FFFF
        for (number, member) in members.enumerated() {
            let name = Array(member.name.utf8)
            let data = member.deflated ? storedDeflate(member.bytes) : member.bytes
            let crc = UInt64(ZipArchive.crc32(member.bytes))
            let flags: UInt64 = 0x0800 | (descriptor ? 8 : 0)
            let method: UInt64 = member.deflated ? 8 : 0
            offsets.append(image.bytes.count)
            let local = "local \(number)"
            image.append(0x0403_4B50, 4)
            image.append(zip64 ? 45 : 20, 2)
            image.append(flags, 2)
            image.append(method, 2)
            image.append(0, 2)
            image.append(0x21, 2)
            image.append(descriptor ? 0 : crc, 4)
            image.append(descriptor ? 0 : zip64 ? escape32 : UInt64(data.count), 4, field: "\(local) compressed size")
            image.append(descriptor ? 0 : zip64 ? escape32 : UInt64(member.bytes.count), 4, field: "\(local) size")
            image.append(UInt64(name.count), 2, field: "\(local) name length")
            image.append(zip64 && !descriptor ? 20 : 0, 2, field: "\(local) extra length")
            image.append(name)
            if zip64 && !descriptor {
                image.append(1, 2)
                image.append(16, 2, field: "\(local) ZIP64 field length")
                image.append(UInt64(member.bytes.count), 8, field: "\(local) ZIP64 size")
                image.append(UInt64(data.count), 8, field: "\(local) ZIP64 compressed size")
            }
            image.append(data)
            if descriptor {
                image.append(0x0807_4B50, 4)
                image.append(crc, 4)
                image.append(UInt64(data.count), zip64 ? 8 : 4)
                image.append(UInt64(member.bytes.count), zip64 ? 8 : 4)
            }
            let entry = "central \(number)"
            central.append(0x0201_4B50, 4)
            central.append(0x031E, 2)
            central.append(zip64 ? 45 : 20, 2)
            central.append(flags, 2)
            central.append(method, 2)
            central.append(0, 2)
            central.append(0x21, 2)
            central.append(crc, 4)
            central.append(zip64 ? escape32 : UInt64(data.count), 4, field: "\(entry) compressed size")
            central.append(zip64 ? escape32 : UInt64(member.bytes.count), 4, field: "\(entry) size")
            central.append(UInt64(name.count), 2, field: "\(entry) name length")
            central.append(zip64 ? 32 : 0, 2, field: "\(entry) extra length")
            central.append(0, 2, field: "\(entry) comment length")
            central.append(zip64 ? 0xFFFF : 0, 2, field: "\(entry) start disk")
            central.append(0, 2)
            central.append(0o100644 << 16, 4)
            central.append(zip64 ? escape32 : UInt64(offsets[number]), 4, field: "\(entry) offset")
            central.append(name)
            if zip64 {
                central.append(1, 2)
                central.append(28, 2, field: "\(entry) ZIP64 field length")
                central.append(UInt64(member.bytes.count), 8, field: "\(entry) ZIP64 size")
                central.append(UInt64(data.count), 8, field: "\(entry) ZIP64 compressed size")
                central.append(UInt64(offsets[number]), 8, field: "\(entry) ZIP64 offset")
                central.append(0, 4, field: "\(entry) ZIP64 start disk")
            }
        }
        let directoryOffset = image.bytes.count
        for field in central.fields { image.fields.append((field.name, field.offset + directoryOffset, field.width)) }
        image.append(central.bytes)
        let count = UInt64(members.count)
        if zip64 {
            let record = image.bytes.count
            image.append(0x0606_4B50, 4)
            image.append(44, 8, field: "ZIP64 end record size")
            image.append(45, 2)
            image.append(45, 2)
            image.append(0, 4, field: "ZIP64 end record disk")
            image.append(0, 4, field: "ZIP64 end record directory disk")
            image.append(count, 8, field: "ZIP64 end record count on disk")
            image.append(count, 8, field: "ZIP64 end record count")
            image.append(UInt64(central.bytes.count), 8, field: "ZIP64 end record directory size")
            image.append(UInt64(directoryOffset), 8, field: "ZIP64 end record directory offset")
            image.append(0x0706_4B50, 4)
            image.append(0, 4, field: "locator disk")
            image.append(UInt64(record), 8, field: "locator offset")
            image.append(1, 4, field: "locator disks")
        }
        image.append(0x0605_4B50, 4)
        image.append(zip64 ? 0xFFFF : 0, 2, field: "end record disk")
        image.append(zip64 ? 0xFFFF : 0, 2, field: "end record directory disk")
        image.append(zip64 ? 0xFFFF : count, 2, field: "end record count on disk")
        image.append(zip64 ? 0xFFFF : count, 2, field: "end record count")
        image.append(zip64 ? escape32 : UInt64(central.bytes.count), 4, field: "end record directory size")
        image.append(zip64 ? escape32 : UInt64(directoryOffset), 4, field: "end record directory offset")
        image.append(UInt64(comment.count), 2, field: "end record comment length")
        image.append(comment)
        return image
    }

    /// The members of a committed archive, read by the reader under test (their values are
    /// checked against the frameworks by the fixture tests).
    private func members(of path: String, deflating: Bool = false) throws -> [Member] {
        let archive = try ZipArchive(path: fixture(path))
        return try archive.names.map { name in
            let bytes = try XCTUnwrap(try archive.member(name, limit: 1 << 24, bound: "test"))
            return Member(name: name, bytes: bytes, deflated: deflating && bytes.count <= 0xFFFF)
        }
    }

    private func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = try temporaryFolder(self).appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// `body` throws one line, a `ModelError` naming `file` and mentioning each of `mentions`.
    private func assertRefused<T>(_ body: @autoclosure () throws -> T, file: String, mentions: [String] = [],
                                  _ message: String = "", sourceFile: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), message, file: sourceFile, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(error is ModelError, "\(message): \(text)", file: sourceFile, line: line)
            XCTAssertTrue(text.hasPrefix(file), "\(message): names \(file): \(text)", file: sourceFile, line: line)
            XCTAssertFalse(text.contains("\n"), message, file: sourceFile, line: line)
            for mention in mentions {
                XCTAssertTrue(text.contains(mention), "\(message): '\(mention)' in: \(text)", file: sourceFile, line: line)
            }
        }
    }

    /// `rnnkit arguments` exits 2 with one line naming `file` and mentioning each of `mentions`.
    private func assertCommandRefused(_ arguments: [String], file: String, mentions: [String] = [],
                                      sourceFile: StaticString = #filePath, line: UInt = #line) throws {
        let result = try rnnkit(arguments)
        XCTAssertEqual(result.status, 2, "\(arguments): \(result.stdout) \(result.stderr)", file: sourceFile, line: line)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr, file: sourceFile, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("rnnkit: error: \(file)"), result.stderr, file: sourceFile, line: line)
        for mention in mentions {
            XCTAssertTrue(result.stderr.contains(mention), "'\(mention)' in: \(result.stderr)", file: sourceFile, line: line)
        }
    }

    // MARK: The reproductions

    /// 162 bytes: `PK\3\4`, zeros, a ZIP64 end record whose directory offset is 2^63
    /// (ZIPFoundation trapped on `off_t(2^63)` while every command sniffed the file).
    static func zip64DirectoryAt2To63() -> [UInt8] {
        var image = Image(bytes: [0x50, 0x4B, 0x03, 0x04] + [UInt8](repeating: 0, count: 60))
        let record = image.bytes.count
        image.append(0x0606_4B50, 4)
        image.append(44, 8)
        image.append(45, 2)
        image.append(45, 2)
        image.append(0, 4)
        image.append(0, 4)
        image.append(1, 8)
        image.append(1, 8)
        image.append(46, 8)
        image.append(1 << 63, 8)
        image.append(0x0706_4B50, 4)
        image.append(0, 4)
        image.append(UInt64(record), 8)
        image.append(1, 4)
        image.append(0x0605_4B50, 4)
        for _ in 0..<4 { image.append(0xFFFF, 2) }
        image.append(0xFFFF_FFFF, 4)
        image.append(0xFFFF_FFFF, 4)
        image.append(0, 2)
        return image.bytes
    }

    func testZip64DirectoryOffsetOf2To63IsRefusedWhereverTheFileIsSniffed() throws {
        let bytes = Self.zip64DirectoryAt2To63()
        XCTAssertEqual(bytes.count, 162)
        let path = try write(bytes, "m.pt")
        let mentions = ["damaged zip archive", "9223372036854775808"]
        assertRefused(try ModelFileForm(sniffing: path), file: path, mentions: mentions)
        assertRefused(try LoadedModel(contentsOf: path), file: path, mentions: mentions)
        assertRefused(try TorchSaveFile.read(path), file: path, mentions: mentions)
        XCTAssertEqual(ModelFileForm(bytes: bytes), .otherZip)
        try assertCommandRefused(["inspect", path], file: path, mentions: mentions)
        let keras = try write(bytes, "m.keras")
        assertRefused(try KerasFile.Architecture(contentsOf: keras), file: keras, mentions: mentions)
        try assertCommandRefused(["inspect", weightsOnly, "--architecture", keras], file: keras, mentions: mentions)
    }

    /// A `.keras` archive whose member's ZIP64 extra field gives `field` the value `value`.
    private func kerasWithZip64(_ member: String, _ field: String, _ value: UInt64) throws -> [UInt8] {
        let image = Self.build(try members(of: "keras/k3_text_rnn.keras"), zip64: true)
        let number = try XCTUnwrap(try members(of: "keras/k3_text_rnn.keras").firstIndex { $0.name == member })
        let index = try XCTUnwrap(image.fields.firstIndex { $0.name == "central \(number) ZIP64 \(field)" })
        return image.setting(index, to: value)
    }

    func testZip64ExtraFieldsOf2To63AreRefusedInModelsAndArchitectures() throws {
        let cases: [(member: String, field: String, mentions: [String])] = [
            ("config.json", "offset", ["config.json", "at byte 9223372036854775808", "past the end of the file"]),
            ("model.weights.h5", "compressed size", ["model.weights.h5", "9223372036854775808 compressed bytes", "past the end of the file"]),
        ]
        for (member, field, mentions) in cases {
            let path = try write(try kerasWithZip64(member, field, 1 << 63), "m.keras")
            assertRefused(try LoadedModel(contentsOf: path), file: path, mentions: mentions, "\(member) \(field)")
            assertRefused(try KerasFile.Architecture(contentsOf: path), file: path, mentions: mentions, "\(member) \(field)")
            try assertCommandRefused(["inspect", path], file: path, mentions: mentions)
            try assertCommandRefused(["inspect", weightsOnly, "--architecture", path], file: path, mentions: mentions)
        }
    }

    /// A sparse 64 MiB file starting `PK\3\4` with no end record: only the last 65,535 + 22
    /// bytes are searched (ZIPFoundation scanned all 64 MiB a byte at a time, > 20 s).
    func testEndRecordIsLookedForOnlyInTheWindowTheFormatAllows() throws {
        let path = try temporaryFolder(self).appendingPathComponent("m.pt").path
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        XCTAssertGreaterThanOrEqual(descriptor, 0)
        XCTAssertEqual(Glibc.write(descriptor, [UInt8]([0x50, 0x4B, 0x03, 0x04]), 4), 4)
        XCTAssertEqual(ftruncate(descriptor, 64 << 20), 0)
        close(descriptor)
        let mentions = ["no end of central directory record in its last 65557 bytes"]
        assertRefused(try ModelFileForm(sniffing: path), file: path, mentions: mentions)
        assertRefused(try LoadedModel(contentsOf: path), file: path, mentions: mentions)
        try assertCommandRefused(["inspect", path], file: path, mentions: mentions)

        // The window is the end record and the longest comment: a record 65,535 bytes before
        // the end (its comment) is found; one byte further back is not.
        let members = [Member(name: "a.txt", bytes: Array("hello".utf8))]
        let longest = Self.build(members, zip64: false, comment: [UInt8](repeating: 0x20, count: 0xFFFF)).bytes
        XCTAssertEqual(try ZipArchive(bytes: longest, name: "z").member("a.txt", limit: 5, bound: "b"), Array("hello".utf8))
        let beyond = Self.build(members, zip64: false).bytes + [UInt8](repeating: 0x20, count: 0x10000)
        assertRefused(try ZipArchive(bytes: beyond, name: "z"), file: "z", mentions: ["no end of central directory record"])
        // The end record's comment must lie within the file.
        var short = Self.build(members, zip64: false).bytes
        short[short.count - 2] = 1
        assertRefused(try ZipArchive(bytes: short, name: "z"), file: "z", mentions: ["comment runs past the end"])
    }

    /// A central directory of 2,000,000 entries with a ZIP64 end record declaring them:
    /// refused by the one member cap before any entry is read, for a model and for an
    /// architecture (the cap was the torch reader's alone; ZIPFoundation read them all,
    /// 1.65 GB and 19.7 s for `--architecture`). Every entry is real, so a reader that
    /// ignores the count would read them.
    func testTwoMillionMembersAreRefusedByTheMemberCap() throws {
        let count = 2_000_000
        let config = try XCTUnwrap(try members(of: "keras/k3_text_rnn.keras").first { $0.name == "config.json" })
        var head = Self.build([config], zip64: false)
        // Drop the end record; keep the local header and data, then the directory.
        let directoryOffset = try XCTUnwrap(head.fields.first { $0.name == "central 0 compressed size" }).offset - 20
        let firstEntry = Array(head.bytes[directoryOffset..<(head.bytes.count - 22)])
        head.bytes.removeSubrange(directoryOffset...)
        var bytes = head.bytes
        bytes.reserveCapacity(bytes.count + count * 54 + 100)
        bytes += firstEntry
        var entry = Image(bytes: [])
        entry.append(0x0201_4B50, 4)
        entry.append(0x031E, 2)
        entry.append(20, 2)
        for _ in 0..<4 { entry.append(0, 2) }
        entry.append(0, 4)
        entry.append(0, 4)
        entry.append(0, 4)
        entry.append(8, 2)
        for _ in 0..<4 { entry.append(0, 2) }
        entry.append(0o100644 << 16, 4)
        entry.append(0, 4)
        XCTAssertEqual(entry.bytes.count, 46)
        let digits = Array("0123456789".utf8)
        for number in 1..<count {
            bytes += entry.bytes
            var name = [UInt8](repeating: UInt8(ascii: "m"), count: 8)
            var rest = number
            for position in (1..<8).reversed() {
                name[position] = digits[rest % 10]
                rest /= 10
            }
            bytes += name
        }
        let directorySize = bytes.count - directoryOffset
        var tail = Image(bytes: [])
        tail.append(0x0606_4B50, 4)
        tail.append(44, 8)
        tail.append(45, 2)
        tail.append(45, 2)
        tail.append(0, 4)
        tail.append(0, 4)
        tail.append(UInt64(count), 8)
        tail.append(UInt64(count), 8)
        tail.append(UInt64(directorySize), 8)
        tail.append(UInt64(directoryOffset), 8)
        tail.append(0x0706_4B50, 4)
        tail.append(0, 4)
        tail.append(UInt64(bytes.count), 8)
        tail.append(1, 4)
        tail.append(0x0605_4B50, 4)
        for _ in 0..<4 { tail.append(0xFFFF, 2) }
        tail.append(0xFFFF_FFFF, 4)
        tail.append(0xFFFF_FFFF, 4)
        tail.append(0, 2)
        bytes += tail.bytes
        let path = try write(bytes, "arch.keras")
        bytes = []
        let mentions = ["declares 2000000 zip members", "over the limit of \(Limits.archiveMembers)", "Limits.archiveMembers"]
        assertRefused(try KerasFile.Architecture(contentsOf: path), file: path, mentions: mentions)
        assertRefused(try LoadedModel(contentsOf: path), file: path, mentions: mentions)
        try assertCommandRefused(["inspect", weightsOnly, "--architecture", path], file: path, mentions: mentions)
    }

    /// An end record declaring fewer members than its directory holds is refused: readers
    /// that go by the count and readers that go by the directory's size would disagree.
    func testDirectoryMustHoldExactlyTheMembersDeclared() throws {
        let members = [Member(name: "a.txt", bytes: Array("a".utf8)), Member(name: "b.txt", bytes: Array("b".utf8))]
        let image = Self.build(members, zip64: false)
        for field in ["end record count", "end record count on disk"] {
            let index = try XCTUnwrap(image.fields.firstIndex { $0.name == field })
            var bytes = image.setting(index, to: 1)
            if field == "end record count" {
                bytes = Image(bytes: bytes, fields: image.fields).setting(index - 1, to: 1)
            }
            assertRefused(try ZipArchive(bytes: bytes, name: "z"), file: "z", field)
        }
    }

    // MARK: Every field, every extreme

    /// 0, 1, 2^31, 2^32, 2^53, 2^63 − 1 and 2^64 − 1 (cut to the field's width) in every
    /// offset, size, length and count field of the end record, the ZIP64 end record and
    /// locator, the central and local headers and their ZIP64 extra fields, of a real
    /// torch.save file re-packed in both forms (and with data descriptors, as torch writes):
    /// each is read exactly as the original or refused with one line, through the zip reader,
    /// the form decision and the torch reader.
    func testExtremeValuesInEveryFieldGiveOneLineOrTheSameRead() throws {
        let original = try members(of: "pytorch-files/unit/views.pt")
        let expected = try TorchSaveFile.read(fixture("pytorch-files/unit/views.pt"))
        let names = try expected.tensorNames(below: "")
        func values(_ container: FlatContainer) throws -> [[UInt32]] {
            try names.map { try XCTUnwrap(try container.tensor($0)).readFloats().map(\.bitPattern) }
        }
        let expectedValues = try values(expected)
        var reads = 0, refusals = 0
        for (zip64, descriptor, deflating) in [(false, false, false), (true, false, true), (true, true, false), (false, true, true)] {
            let image = Self.build(original.map { Member(name: $0.name, bytes: $0.bytes, deflated: deflating && $0.bytes.count < 4096) },
                                   zip64: zip64, descriptor: descriptor)
            // The unmutated image reads as the original.
            let archive = try ZipArchive(bytes: image.bytes, name: "z")
            for member in original {
                XCTAssertEqual(try archive.member(member.name, limit: 1 << 20, bound: "b"), member.bytes)
            }
            XCTAssertEqual(ModelFileForm(bytes: image.bytes), .torchSave)
            XCTAssertEqual(try values(try TorchSaveFile.read(bytes: image.bytes, name: "z")), expectedValues)
            for index in image.fields.indices {
                for value in Self.extremes + [UInt64(image.fields[index].width == 2 ? 0xFFFF : 0xFFFF_FFFF)] {
                    let bytes = image.setting(index, to: value)
                    let label = "zip64 \(zip64), descriptor \(descriptor): \(image.fields[index].name) = \(value)"
                    _ = ModelFileForm(bytes: bytes)
                    do {
                        let archive = try ZipArchive(bytes: bytes, name: "z")
                        for member in original {
                            do {
                                let read = try archive.member(member.name, limit: 1 << 20, bound: "b")
                                XCTAssertEqual(read, member.bytes, label)
                            } catch {
                                XCTAssertTrue(error is ModelError && !"\(error)".contains("\n") && "\(error)".hasPrefix("z: "), "\(label): \(error)")
                            }
                        }
                    } catch {
                        XCTAssertTrue(error is ModelError && !"\(error)".contains("\n") && "\(error)".hasPrefix("z"), "\(label): \(error)")
                    }
                    do {
                        let read = try values(try TorchSaveFile.read(bytes: bytes, name: "z"))
                        XCTAssertEqual(read, expectedValues, label)
                        reads += 1
                    } catch {
                        XCTAssertTrue(error is ModelError && !"\(error)".contains("\n"), "\(label): \(error)")
                        refusals += 1
                    }
                }
            }
        }
        // Both outcomes happen: fields that no reader needs (a 0 in a local size before a data
        // descriptor) read, the rest are refused.
        XCTAssertGreaterThan(reads, 0)
        XCTAssertGreaterThan(refusals, 100)
    }

    /// A few of the sweep's files through the command line: exit 2 and one line.
    func testExtremeFieldsThroughTheCommandLine() throws {
        let original = try members(of: "pytorch-files/unit/views.pt")
        let image = Self.build(original, zip64: true)
        for (field, value) in [("ZIP64 end record count", UInt64.max), ("ZIP64 end record directory offset", (1 << 63) - 1),
                               ("locator offset", 1 << 53), ("central 0 ZIP64 offset", UInt64.max),
                               ("central 1 ZIP64 compressed size", 1 << 63), ("central 2 ZIP64 size", UInt64.max),
                               ("local 0 ZIP64 size", 1 << 32)] {
            let index = try XCTUnwrap(image.fields.firstIndex { $0.name == field }, field)
            let path = try write(image.setting(index, to: value), "m.pt")
            try assertCommandRefused(["inspect", path], file: path)
        }
    }

    // MARK: Real archives in ZIP64 form

    /// A `.keras` archive and a torch.save file re-packed with every ZIP64 record, deflated
    /// members and data descriptors read as the originals do.
    func testZip64FormsOfRealArchivesReadAsTheOriginals() throws {
        let keras = "keras/k3_text_rnn.keras"
        let original = try LoadedModel(contentsOf: fixture(keras))
        for (zip64, descriptor, deflating) in [(true, false, false), (true, true, true), (false, true, true)] {
            let path = try write(Self.build(try members(of: keras, deflating: deflating), zip64: zip64, descriptor: descriptor).bytes, "m.keras")
            let loaded = try LoadedModel(contentsOf: path)
            XCTAssertNil(ModelDifference(original.model, loaded.model), "zip64 \(zip64), descriptor \(descriptor)")
            XCTAssertEqual(loaded.parameterCount, original.parameterCount)
            XCTAssertNoThrow(try KerasFile.Architecture(contentsOf: path))
        }
        let torch = "pytorch-files/lstm_checkpoint.pt"
        let expected = try LoadedModel(contentsOf: fixture(torch))
        let path = try write(Self.build(try members(of: torch, deflating: true), zip64: true, descriptor: true).bytes, "m.pt")
        XCTAssertNil(ModelDifference(expected.model, try LoadedModel(contentsOf: path).model))
    }

    // MARK: Names, overlaps, local headers, contents

    func testMemberNamesThatArePathsOrRepeatAreRefused() throws {
        let good = Member(name: "a.txt", bytes: Array("a".utf8))
        for (name, mention) in [("/etc/passwd", "absolute"), ("\\windows", "absolute"), ("C:evil", "drive letter"),
                                ("a/../../b", "'..' component"), ("..", "'..' component"), ("a\u{0}b", "NUL"), ("", "empty")] {
            let bytes = Self.build([good, Member(name: name, bytes: [1])], zip64: false).bytes
            assertRefused(try ZipArchive(bytes: bytes, name: "z"), file: "z", mentions: [mention], name)
        }
        let twice = Self.build([good, good], zip64: true).bytes
        assertRefused(try ZipArchive(bytes: twice, name: "z"), file: "z", mentions: ["a.txt", "appears twice", "ambiguous"])
        var notUTF8 = Self.build([Member(name: "ab", bytes: [1])], zip64: false)
        let nameAt = try XCTUnwrap(notUTF8.fields.first { $0.name == "central 0 name length" }).offset + 18
        notUTF8.bytes[nameAt] = 0xFF
        assertRefused(try ZipArchive(bytes: notUTF8.bytes, name: "z"), file: "z", mentions: ["not UTF-8"])
    }

    /// Members whose data overlaps another's (the "overlapping files" zip bomb, where one
    /// compressed stream is every member's) or the central directory are refused.
    func testOverlappingMembersAreRefused() throws {
        let members = [Member(name: "a.txt", bytes: [UInt8](repeating: 7, count: 100)), Member(name: "b.txt", bytes: [1, 2])]
        let image = Self.build(members, zip64: false)
        // b's directory entry points at a's local header.
        let offset = try XCTUnwrap(image.fields.firstIndex { $0.name == "central 1 offset" })
        assertRefused(try ZipArchive(bytes: image.setting(offset, to: 0), name: "z"), file: "z", mentions: ["overlaps"])
        // a's data is said to run into b.
        let size = try XCTUnwrap(image.fields.firstIndex { $0.name == "central 0 compressed size" })
        assertRefused(try ZipArchive(bytes: image.setting(size, to: 101), name: "z"), file: "z", mentions: ["a.txt", "overlaps member 'b.txt'"])
    }

    func testLocalHeadersMustAgreeWithTheDirectory() throws {
        let members = [Member(name: "a.txt", bytes: Array("hello".utf8)), Member(name: "b.txt", bytes: Array("world".utf8), deflated: true)]
        let image = Self.build(members, zip64: false)
        let archive = { (bytes: [UInt8]) in try ZipArchive(bytes: bytes, name: "z") }
        // Another name in the local header.
        let nameAt = try XCTUnwrap(image.fields.first { $0.name == "local 0 name length" }).offset + 4
        var renamed = image.bytes
        renamed[nameAt] = UInt8(ascii: "x")
        assertRefused(try archive(renamed).member("a.txt", limit: 100, bound: "b"), file: "z", mentions: ["a.txt", "naming another member"])
        // Another size in the local header.
        let size = try XCTUnwrap(image.fields.firstIndex { $0.name == "local 1 size" })
        assertRefused(try archive(image.setting(size, to: 6)).member("b.txt", limit: 100, bound: "b"), file: "z",
                      mentions: ["b.txt", "local header giving its size as 6, its directory entry as 5"])
        // Another method.
        var method = image.bytes
        method[try XCTUnwrap(image.fields.first { $0.name == "local 1 compressed size" }).offset - 10] = 0
        assertRefused(try archive(method).member("b.txt", limit: 100, bound: "b"), file: "z", mentions: ["method or flags differ"])
    }

    func testContentsAreCheckedAgainstSizeAndCRC() throws {
        let text = Array("hello, hello, hello".utf8)
        let image = Self.build([Member(name: "d.txt", bytes: text, deflated: true), Member(name: "s.txt", bytes: text)], zip64: false)
        let archive = try ZipArchive(bytes: image.bytes, name: "z")
        XCTAssertEqual(try archive.member("d.txt", limit: text.count, bound: "b"), text)
        XCTAssertEqual(try archive.member("s.txt", limit: text.count, bound: "b"), text)
        XCTAssertNil(try archive.member("missing", limit: 10, bound: "b"))
        assertRefused(try archive.member("d.txt", limit: 5, bound: "the bound"), file: "z",
                      mentions: ["d.txt", "declares 19 bytes, over the limit of 5 by 14 (the bound)"])
        // A changed byte of data fails the CRC-32.
        var flipped = image.bytes
        flipped[try XCTUnwrap(image.fields.first { $0.name == "local 1 name length" }).offset + 4 + 5] ^= 1
        assertRefused(try ZipArchive(bytes: flipped, name: "z").member("s.txt", limit: 100, bound: "b"), file: "z", mentions: ["CRC-32"])
        // A declared size below what the stream holds: refused as the bytes arrive, at the
        // declared size or at the limit when they are the same.
        let sizes = ["central 0 size", "local 0 size"].compactMap { name in image.fields.firstIndex { $0.name == name } }
        let smaller = Image(bytes: image.setting(sizes[0], to: 4), fields: image.fields).setting(sizes[1], to: 4)
        assertRefused(try ZipArchive(bytes: smaller, name: "z").member("d.txt", limit: 100, bound: "b"), file: "z",
                      mentions: ["d.txt", "inflates past its declared size of 4 bytes"])
        assertRefused(try ZipArchive(bytes: smaller, name: "z").member("d.txt", limit: 4, bound: "the bound"), file: "z",
                      mentions: ["d.txt", "inflates past 4 bytes (the bound)"])
        // A declared size deflate cannot reach from the compressed bytes.
        let huge = Self.build([Member(name: "d.txt", bytes: text, deflated: true)], zip64: true)
        let wide = ["central 0 ZIP64 size", "local 0 ZIP64 size"].compactMap { name in huge.fields.firstIndex { $0.name == name } }
        let claimed = Image(bytes: huge.setting(wide[0], to: 1 << 40), fields: huge.fields).setting(wide[1], to: 1 << 40)
        assertRefused(try ZipArchive(bytes: claimed, name: "z").member("d.txt", limit: Int.max, bound: "b"), file: "z",
                      mentions: ["more than deflate can produce"])
        // Encrypted and other methods are refused by name.
        var encrypted = image.bytes
        for field in ["local 1 compressed size", "central 1 compressed size"] {
            // The flags lie 12 bytes before the compressed size in both headers.
            let at = try XCTUnwrap(image.fields.first { $0.name == field }).offset - 12
            encrypted[at] |= 1
        }
        assertRefused(try ZipArchive(bytes: encrypted, name: "z").member("s.txt", limit: 100, bound: "b"), file: "z", mentions: ["encrypted"])
    }

    func testLinksAndFoldersAreNotReadAsFiles() throws {
        var image = Self.build([Member(name: "config.json", bytes: Array("{}".utf8)), Member(name: "dir/", bytes: [])], zip64: false)
        let mode = try XCTUnwrap(image.fields.first { $0.name == "central 0 offset" }).offset - 4
        image.bytes[mode + 3] = 0xA1  // 0o120777 << 16: a symbolic link
        let archive = try ZipArchive(bytes: image.bytes, name: "z")
        assertRefused(try archive.member("config.json", limit: 10, bound: "b"), file: "z", mentions: ["symbolic link entry"])
        assertRefused(try archive.member("dir", limit: 10, bound: "b"), file: "z", mentions: ["directory entry"])
    }
}
