import Foundation
import XCTest
import TestSupport
@testable import HDF5

/// Reads the files h5py wrote (fixtures/hdf5/generate.py) and compares every value with the
/// generator's own record of what it wrote (dtypes.json, attributes.json).
final class ReadTests: XCTestCase {
    func testEveryDatasetMatchesWhatH5pyWrote() throws {
        let record = try loadJSON("hdf5/dtypes.json")
        let datasets = try XCTUnwrap(record["datasets"] as? [String: [String: Any]])
        XCTAssertGreaterThanOrEqual(datasets.count, 30, "the generator's record lost datasets")
        let file = try HDF5File.open(fixture("hdf5/dtypes.h5"))
        var checkedFloat16 = false, checkedBigEndian = false, checkedGzip = false
        for (path, entry) in datasets.sorted(by: { $0.key < $1.key }) {
            let dataset = try file.root.dataset(path)
            let shape = try XCTUnwrap(entry["shape"] as? [Int])
            XCTAssertEqual(dataset.shape, shape, path)
            let type = try XCTUnwrap(entry["type"] as? [String: Any])
            let size = try XCTUnwrap(type["size"] as? Int)
            let bigEndian = (type["order"] as? String) == "big"
            let values = try XCTUnwrap(entry["values"] as? [NSNumber])
            switch type["class"] as? String {
            case "float":
                XCTAssertEqual(dataset.elementType, .float(bits: size * 8, bigEndian: bigEndian), path)
                let read = try dataset.readFloats()
                // float64 values read as Float round to nearest, as Float(Double) does.
                XCTAssertEqual(read, values.map { Float($0.doubleValue) }, path)
                checkedFloat16 = checkedFloat16 || size == 2
            case "integer":
                let signed = try XCTUnwrap(type["signed"] as? Bool)
                XCTAssertEqual(dataset.elementType, .integer(bits: size * 8, signed: signed, bigEndian: bigEndian), path)
                if signed {
                    XCTAssertEqual(try dataset.readIntegers(), values.map(\.int64Value), path)
                } else {
                    XCTAssertEqual(try dataset.readUnsignedIntegers(), values.map(\.uint64Value), path)
                    if values.contains(where: { $0.uint64Value > UInt64(Int64.max) }) {
                        XCTAssertThrowsError(try dataset.readIntegers(), "\(path): over Int64.max must not wrap") { error in
                            XCTAssertEqual((error as? HDF5Error)?.kind, .unsupportedType)
                        }
                    } else {
                        XCTAssertEqual(try dataset.readIntegers(), values.map(\.int64Value), path)
                    }
                }
            default:
                XCTFail("\(path): unexpected class \(String(describing: type["class"]))")
            }
            checkedBigEndian = checkedBigEndian || bigEndian
            let filters = entry["filters"] as? [String] ?? []
            XCTAssertEqual(try dataset.filters().isEmpty, filters.isEmpty, path)
            checkedGzip = checkedGzip || filters.contains("deflate")
        }
        XCTAssertTrue(checkedFloat16 && checkedBigEndian && checkedGzip, "the record lost float16, big-endian or gzip cases")
    }

    /// Blocks of columns of every 2-D float dataset h5py wrote (float16/32/64, both byte
    /// orders, gzip) equal the same columns of a whole read; bad ranges are refused.
    func testColumnBlocksMatchWholeReads() throws {
        let file = try HDF5File.open(fixture("hdf5/dtypes.h5"))
        var checked = 0
        func visit(_ group: HDF5Group) throws {
            for name in try group.memberNames() {
                switch try group.kind(of: name) {
                case .group?: try visit(group.group(name))
                case .dataset?:
                    let dataset = try group.dataset(name)
                    guard dataset.shape.count == 2, dataset.elementType.isFloat else { continue }
                    let (rows, columns) = (dataset.shape[0], dataset.shape[1])
                    let whole = try dataset.readFloats()
                    for width in 1...max(1, columns) {
                        var first = 0
                        while first < columns {
                            let end = min(columns, first + width)
                            let block = try dataset.readFloats(columns: first..<end)
                            let expected = (0..<rows).flatMap { r in whole[(r * columns + first)..<(r * columns + end)] }
                            XCTAssertEqual(block, expected, "\(dataset.path) columns \(first)..<\(end)")
                            first = end
                        }
                    }
                    XCTAssertThrowsError(try dataset.readFloats(columns: 0..<(columns + 1))) { error in
                        XCTAssertEqual((error as? HDF5Error)?.kind, .invalidArgument)
                    }
                    checked += 1
                default: break
                }
            }
        }
        try visit(file.root)
        XCTAssertGreaterThanOrEqual(checked, 5, "too few 2-D float datasets in the fixture")
        let vector = try file.root.dataset("float32_le_1d")
        XCTAssertThrowsError(try vector.readFloats(columns: 0..<1), "a 1-D dataset has no columns")
    }

    func testGroupsWalkAndKinds() throws {
        let file = try HDF5File.open(fixture("hdf5/dtypes.h5"))
        XCTAssertEqual(try file.root.kind(of: "a/b"), .group)
        XCTAssertEqual(try file.root.kind(of: "a/b/c/data"), .dataset)
        XCTAssertNil(try file.root.kind(of: "a/missing/c"))
        XCTAssertNil(try file.root.kind(of: "float32_le_1d/below"), "a path through a dataset is absent, not a crash")
        XCTAssertEqual(try file.root.group("a").group("b/c").dataset("data").path, "/a/b/c/data")
        XCTAssertEqual(try file.root.dataset("rnn.weight_ih_l0").shape, [4, 2])
        let paths = try file.root.datasetPaths()
        XCTAssertTrue(paths.contains("a/b/c/data"))
        XCTAssertTrue(paths.contains("rnn.weight_ih_l0"))
        XCTAssertThrowsError(try file.root.dataset("a/b")) { error in
            XCTAssertEqual((error as? HDF5Error)?.kind, .wrongKind)
            XCTAssertEqual((error as? HDF5Error)?.path, "/a/b")
        }
        XCTAssertThrowsError(try file.root.group("nope")) { error in
            XCTAssertEqual((error as? HDF5Error)?.kind, .notFound)
        }
        XCTAssertThrowsError(try file.root.dataset("int32_le_1d").readFloats()) { error in
            XCTAssertEqual((error as? HDF5Error)?.kind, .unsupportedType)
        }
    }

    func testEveryAttributeFormMatchesWhatH5pyWrote() throws {
        let record = try loadJSON("hdf5/attributes.json")
        let attributes = try XCTUnwrap(record["attributes"] as? [[String: Any]])
        let file = try HDF5File.open(fixture("hdf5/attributes.h5"))
        var forms = Set<String>()
        for entry in attributes {
            let objectPath = try XCTUnwrap(entry["object"] as? String)
            let name = try XCTUnwrap(entry["name"] as? String)
            let object: HDF5Object = objectPath == "/" ? file.root
                : try file.root.kind(of: objectPath) == .dataset ? file.root.dataset(objectPath) : file.root.group(objectPath)
            let type = try XCTUnwrap(entry["type"] as? [String: Any])
            let label = "\(objectPath)@\(name)"
            XCTAssertTrue(try object.attributeNames().contains(name), label)
            let scalar = (entry["space"] as? String) == "scalar"
            switch type["class"] as? String {
            case "string":
                forms.insert("\(type["vlen"] as? Bool == true ? "vlen" : "fixed")-\(type["cset"] as? String ?? "")-\(scalar ? "scalar" : "array")")
                let value = try XCTUnwrap(try object.attribute(name), label)
                if scalar {
                    XCTAssertEqual(value, .string(try XCTUnwrap(entry["value"] as? String)), label)
                } else {
                    XCTAssertEqual(value, .strings(try XCTUnwrap(entry["value"] as? [String])), label)
                }
            case "integer":
                let value = try object.attribute(name)
                if scalar {
                    XCTAssertEqual(value, .integer(try XCTUnwrap(entry["value"] as? NSNumber).int64Value), label)
                } else {
                    XCTAssertEqual(value, .integers(try XCTUnwrap(entry["value"] as? [NSNumber]).map(\.int64Value)), label)
                }
            case "float":
                let value = try object.attribute(name)
                if entry["value"] is NSNull {
                    XCTAssertEqual(value, .doubles([]), "\(label): a null dataspace reads as empty")
                } else if scalar {
                    XCTAssertEqual(value, .double(try XCTUnwrap(entry["value"] as? NSNumber).doubleValue), label)
                } else {
                    XCTAssertEqual(value, .doubles(try XCTUnwrap(entry["value"] as? [NSNumber]).map(\.doubleValue)), label)
                }
            default:
                XCTAssertThrowsError(try object.attribute(name), "\(label): an unsupported type is an error") { error in
                    XCTAssertEqual((error as? HDF5Error)?.kind, .unsupportedType)
                }
            }
        }
        for form in ["vlen-utf-8-scalar", "vlen-ascii-scalar", "fixed-ascii-scalar", "fixed-utf-8-scalar",
                     "fixed-ascii-array", "vlen-utf-8-array", "vlen-ascii-array"] {
            XCTAssertTrue(forms.contains(form), "the record lost the \(form) string form")
        }
        XCTAssertNil(try file.root.attribute("no_such_attribute"))
    }

    /// tf-keras splits attributes over 64 KB into `name0`, `name1`, ...; their string lists
    /// joined give the original.
    func testSplitAttributesRejoin() throws {
        let record = try loadJSON("hdf5/attributes.json")
        let splits = try XCTUnwrap(record["split"] as? [[String: Any]])
        XCTAssertFalse(splits.isEmpty, "the record lost its split attribute")
        let file = try HDF5File.open(fixture("hdf5/attributes.h5"))
        for split in splits {
            let group = try file.root.group(try XCTUnwrap(split["object"] as? String))
            let base = try XCTUnwrap(split["name"] as? String)
            let chunks = try XCTUnwrap(split["chunks"] as? [String])
            XCTAssertNil(try group.attribute(base), "a split attribute has no unsplit copy")
            var joined: [String] = []
            var index = 0
            while let part = try group.attribute("\(base)\(index)") {
                joined += try XCTUnwrap(part.stringList)
                index += 1
            }
            XCTAssertEqual(index, chunks.count)
            XCTAssertGreaterThan(index, 1, "the attribute was meant to be split")
            XCTAssertEqual(joined.count, try XCTUnwrap(split["count"] as? Int))
            XCTAssertEqual(Set(joined).count, joined.count, "chunks must not overlap")
        }
    }
}
