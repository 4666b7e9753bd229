import Foundation
import XCTest
import TestSupport
@testable import HDF5

/// Damaged and hostile files give typed errors naming the file — never a crash, a hang or
/// a huge allocation.
final class BadFileTests: XCTestCase {
    private func assertOpenFails(_ name: String, file: StaticString = #filePath, line: UInt = #line) {
        let path = fixture("hdf5/\(name)")
        XCTAssertThrowsError(try HDF5File.open(path), name, file: file, line: line) { error in
            guard let error = error as? HDF5Error else { return XCTFail("\(name): \(error)", file: file, line: line) }
            XCTAssertEqual(error.kind, .cannotOpen, name, file: file, line: line)
            XCTAssertEqual(error.file, path, file: file, line: line)
            XCTAssertTrue(error.description.hasPrefix(path), file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), "one line", file: file, line: line)
        }
    }

    func testUnreadableFilesFailToOpen() {
        assertOpenFails("empty.h5")
        assertOpenFails("not_hdf5.h5")
        assertOpenFails("random.h5")
        assertOpenFails("no_such_file.h5")
        assertOpenFails(".")
    }

    func testTruncatedFileFailsCleanly() throws {
        // HDF5 may notice the truncation at open or only when reading the missing part.
        let path = fixture("hdf5/truncated.h5")
        do {
            let file = try HDF5File.open(path)
            for datasetPath in try file.root.datasetPaths() {
                _ = try file.root.dataset(datasetPath).readFloats()
            }
            XCTFail("a truncated file read completely")
        } catch let error as HDF5Error {
            XCTAssertEqual(error.file, path)
            XCTAssertTrue([.cannotOpen, .readFailed, .implausibleSize].contains(error.kind), "\(error)")
        }
    }

    func testLZFNeedsAFilterThisBuildLacks() throws {
        let file = try HDF5File.open(fixture("hdf5/lzf.h5"))
        XCTAssertThrowsError(try file.root.dataset("lzf").readFloats()) { error in
            guard let error = error as? HDF5Error else { return XCTFail("\(error)") }
            XCTAssertEqual(error.kind, .filterUnavailable)
            XCTAssertTrue(error.message.contains("lzf"), error.message)
            XCTAssertEqual(error.path, "/lzf")
        }
        // The same file's uncompressed dataset still reads.
        XCTAssertFalse(try file.root.dataset("plain").readFloats().isEmpty)
    }

    func testDeclaredTerabyteDatasetIsRefusedBeforeAllocating() throws {
        let path = fixture("hdf5/huge.h5")
        XCTAssertLessThan(try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int), 100_000)
        let file = try HDF5File.open(path)
        let paths = try file.root.datasetPaths()
        XCTAssertFalse(paths.isEmpty)
        for datasetPath in paths {
            // Over the default limit the dataset cannot even be opened for reading...
            do {
                let dataset = try file.root.dataset(datasetPath)
                // ... and under a raised limit the file's own storage refuses it.
                _ = try dataset.readFloats()
                XCTFail("\(datasetPath) read")
            } catch let error as HDF5Error {
                XCTAssertEqual(error.kind, .implausibleSize, "\(error)")
            }
            let permissive = try HDF5File.open(path, limits: ReadLimits(maxElements: Int.max))
            XCTAssertThrowsError(try permissive.root.dataset(datasetPath).readFloats()) { error in
                XCTAssertEqual((error as? HDF5Error)?.kind, .implausibleSize, "\(error)")
            }
        }
    }

    func testConfiguredLimitApplies() throws {
        let file = try HDF5File.open(fixture("hdf5/dtypes.h5"), limits: ReadLimits(maxElements: 10))
        XCTAssertThrowsError(try file.root.dataset("float32_le_1d")) { error in
            XCTAssertEqual((error as? HDF5Error)?.kind, .implausibleSize)
        }
        XCTAssertEqual(try file.root.dataset("a/b/c/data").readFloats().count, 6)
    }

    /// Thousands of open/read/close cycles leave no HDF5 object open.
    func testHandlesAreClosed() throws {
        let baseline = HDF5File.openObjectCount()
        for _ in 0..<2000 {
            let file = try HDF5File.open(fixture("hdf5/dtypes.h5"))
            _ = try file.root.dataset("gzip_float32").readFloats()
            _ = try file.root.group("a").attributeNames()
            _ = try? file.root.dataset("missing")
        }
        XCTAssertEqual(HDF5File.openObjectCount(), baseline)
        let attributes = try HDF5File.open(fixture("hdf5/attributes.h5"))
        for _ in 0..<500 { _ = try attributes.root.attribute("vlen_utf8_array") }
        XCTAssertGreaterThan(HDF5File.openObjectCount(), baseline, "the open file counts")
    }
}
