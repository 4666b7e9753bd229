import Foundation
import XCTest
import TestSupport
@testable import HDF5

/// Files we write read back with the same values, types and attribute forms.
final class WriteTests: XCTestCase {
    func testRoundTrip() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("written.h5").path
        let floats: [Float] = (0..<24).map { Float($0) * 0.37 - 4 }
        let ints: [Int64] = [0, -1, 5, Int64.max, Int64.min, 42]
        do {
            let file = try HDF5File.create(path)
            let root = file.root
            try root.write("plain", floats: floats, shape: [2, 3, 4])
            try root.write("model_weights/lstm/lstm/lstm_cell/kernel:0", floats: floats, shape: [4, 6], compression: .gzip)
            try root.write("chunked", floats: floats, shape: [6, 4], compression: Compression(gzipLevel: 9, chunkShape: [2, 4]))
            try root.write("ints", integers: ints, shape: [6])
            try root.write("ints32", integers: [1, -2, 3], shape: [3], bits: 32)
            try root.write("scalar", floats: [2.5], shape: [])
            try root.write("empty", floats: [], shape: [0])
            try root.setAttribute("text", .string("héllo"))
            try root.setAttribute("names", .strings(["lstm", "dense_1"]), stringForm: .fixedASCII)
            try root.setAttribute("vnames", .strings(["a", "bé"]))
            try root.setAttribute("fixed", .string("abc"), stringForm: .fixedASCII)
            try root.setAttribute("n", .integer(-3))
            try root.setAttribute("ns", .integers([1, 2]))
            try root.setAttribute("x", .double(0.125))
            try root.setAttribute("xs", .doubles([1.5, -2]))
            try root.setAttribute("n", .integer(7))  // replacing works
            let group = try root.createGroup("g/h")
            try group.setAttribute("weight_names", .strings(["g/h/kernel:0"]), stringForm: .fixedASCII)
            XCTAssertThrowsError(try root.write("bad", floats: [1, 2], shape: [3])) { error in
                XCTAssertEqual((error as? HDF5Error)?.kind, .invalidArgument)
            }
        }
        let file = try HDF5File.open(path)
        let root = file.root
        XCTAssertEqual(try root.dataset("plain").readFloats(), floats)
        XCTAssertEqual(try root.dataset("plain").shape, [2, 3, 4])
        XCTAssertEqual(try root.dataset("plain").elementType, .float(bits: 32, bigEndian: false))
        let kernel = try root.dataset("model_weights/lstm/lstm/lstm_cell/kernel:0")
        XCTAssertEqual(try kernel.readFloats(), floats)
        XCTAssertEqual(try kernel.filters(), ["deflate"])
        XCTAssertEqual(try root.dataset("chunked").readFloats(), floats)
        XCTAssertEqual(try root.dataset("ints").readIntegers(), ints)
        XCTAssertEqual(try root.dataset("ints32").elementType, .integer(bits: 32, signed: true, bigEndian: false))
        XCTAssertEqual(try root.dataset("ints32").readIntegers(), [1, -2, 3])
        XCTAssertEqual(try root.dataset("scalar").shape, [])
        XCTAssertEqual(try root.dataset("scalar").readFloats(), [2.5])
        XCTAssertEqual(try root.dataset("empty").readFloats(), [])
        XCTAssertEqual(try root.attribute("text"), .string("héllo"))
        XCTAssertEqual(try root.attribute("names"), .strings(["lstm", "dense_1"]))
        XCTAssertEqual(try root.attribute("vnames"), .strings(["a", "bé"]))
        XCTAssertEqual(try root.attribute("fixed"), .string("abc"))
        XCTAssertEqual(try root.attribute("n"), .integer(7))
        XCTAssertEqual(try root.attribute("ns"), .integers([1, 2]))
        XCTAssertEqual(try root.attribute("x"), .double(0.125))
        XCTAssertEqual(try root.attribute("xs"), .doubles([1.5, -2]))
        XCTAssertEqual(try root.group("g/h").attribute("weight_names"), .strings(["g/h/kernel:0"]))
        XCTAssertEqual(try root.memberNames(), ["chunked", "empty", "g", "ints", "ints32", "model_weights", "plain", "scalar"])
    }

    /// A dataset written a block of rows at a time reads back whole; rows not written read as
    /// zeros; blocks that do not fit are refused.
    func testRowBlocksWriteIntoPlace() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("blocks.h5").path
        let values: [Float] = (0..<(7 * 5)).map { Float($0) * 0.25 - 3 }
        do {
            let root = try HDF5File.create(path).root
            let dataset = try root.createFloats("a/b/kernel", shape: [7, 5])
            for rows in [0..<3, 3..<6, 6..<7] {
                try dataset.write(rows: rows, floats: Array(values[(rows.lowerBound * 5)..<(rows.upperBound * 5)]))
            }
            let partial = try root.createFloats("partial", shape: [3, 2, 2])
            try partial.write(rows: 1..<2, floats: [1, 2, 3, 4])
            XCTAssertThrowsError(try dataset.write(rows: 5..<8, floats: [Float](repeating: 0, count: 15))) { error in
                XCTAssertEqual((error as? HDF5Error)?.kind, .invalidArgument)
            }
            XCTAssertThrowsError(try dataset.write(rows: 0..<1, floats: [1, 2, 3])) { error in
                XCTAssertEqual((error as? HDF5Error)?.kind, .invalidArgument)
            }
        }
        let file = try HDF5File.open(path)
        let kernel = try file.root.dataset("a/b/kernel")
        XCTAssertEqual(kernel.elementType, .float(bits: 32, bigEndian: false))
        XCTAssertEqual(try kernel.readFloats(), values)
        XCTAssertEqual(try file.root.dataset("partial").readFloats(), [0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0])
    }

    func testCreateRefusesAnExistingFileUnlessOverwriting() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("exists.h5").path
        _ = try HDF5File.create(path)
        XCTAssertThrowsError(try HDF5File.create(path)) { error in
            XCTAssertEqual((error as? HDF5Error)?.kind, .cannotCreate)
        }
        XCTAssertNoThrow(try HDF5File.create(path, overwrite: true))
        XCTAssertThrowsError(try HDF5File.create(folder.appendingPathComponent("no/such/dir.h5").path))
    }
}

/// A file held in memory (an archive member) reads like one on disk.
final class MemoryImageTests: XCTestCase {
    func testOpenImage() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture("hdf5/dtypes.h5"))))
        let file = try HDF5File.open(image: bytes, name: "archive.zip!dtypes.h5")
        XCTAssertEqual(try file.root.dataset("a/b/c/data").readFloats(), [1, 2, 3, 4, 5, 6])
        XCTAssertThrowsError(try HDF5File.open(image: Array(bytes.prefix(100)), name: "cut.h5")) { error in
            XCTAssertEqual((error as? HDF5Error)?.file, "cut.h5")
        }
    }
}
