import CHDF5
import Foundation

/// A dataset: a typed n-dimensional array in a file.
///
/// Shape and element type are read when it opens; values are read on demand, after the
/// declared size has been checked against the limit and against what the file stores.
public final class HDF5Dataset: HDF5Object, @unchecked Sendable {
    /// Dimensions, outermost first; `[]` for a scalar.
    public let shape: [Int]
    public let elementType: ElementType
    /// Element count (1 for a scalar).
    public let count: Int
    private let elementSize: Int

    init(file: HDF5File, path: String, handle: Handle) throws {
        let type = Handle.datatype(H5Dget_type(handle.id))
        let space = Handle.dataspace(H5Dget_space(handle.id))
        guard type.id >= 0, space.id >= 0 else {
            throw HDF5Error(.readFailed, file: file.path, path: path, message: "cannot read the dataset's type or shape",
                            hdf5Message: HDF5Library.takeErrorMessage())
        }
        // Shapes are read before `self` exists, so the checks run on a temporary object.
        let probe = HDF5Object(file: file, path: path, handle: nil)
        try Self.requireStorageInsideFile(handle.id, probe: probe)
        (shape, count) = try probe.extent(of: space.id, what: "dataset")
        elementType = probe.elementType(of: type.id)
        elementSize = H5Tget_size(type.id)
        super.init(file: file, path: path, handle: handle)
    }

    /// Refuses, when the dataset is opened and before any read, a dataset whose values live
    /// outside the file: EXTERNAL raw storage (any file's bytes, `/dev/zero`, a FIFO) or a
    /// VIRTUAL dataset (source files opened at read time). The corresponding C functions are
    /// `H5Dget_create_plist`, `H5Pget_layout` and `H5Pget_external_count`.
    private static func requireStorageInsideFile(_ dataset: hid_t, probe: HDF5Object) throws {
        let dcpl = Handle.propertyList(H5Dget_create_plist(dataset))
        guard dcpl.id >= 0 else { throw probe.error(.readFailed, "cannot read the dataset's creation properties") }
        if H5Pget_layout(dcpl.id) == H5D_VIRTUAL {
            throw probe.error(.outsideInput, "is a VIRTUAL dataset (its values come from other files); rnnkit reads nothing outside its input",
                              hdf5: false)
        }
        let externalFiles = H5Pget_external_count(dcpl.id)
        guard externalFiles == 0 else {
            _ = HDF5Library.takeErrorMessage()
            throw probe.error(.outsideInput, "has EXTERNAL storage (its values are read from \(max(externalFiles, 1)) other file(s)); rnnkit reads nothing outside its input",
                              hdf5: false)
        }
    }

    /// Names of the filters the dataset's data pass through (`deflate`, `shuffle`, ...).
    public func filters() throws -> [String] {
        try HDF5Library.locked { try filterList().map(\.name) }
    }

    /// Reads a floating-point dataset of any width and byte order as Float, row-major.
    ///
    /// float16 and float64 are converted by HDF5 (float64 rounds to nearest). The
    /// corresponding C function is `H5Dread` with `H5T_NATIVE_FLOAT`.
    public func readFloats() throws -> [Float] {
        try HDF5Library.locked {
            guard elementType.isFloat else {
                throw error(.unsupportedType, "holds \(elementType), not floating-point values", hdf5: false)
            }
            return try readAll(as: Float.self, memoryType: chdf5_t_native_float())
        }
    }

    /// Reads columns `columns` of a 2-D floating-point dataset as Float, `[rows, columns.count]`
    /// row-major; only those columns are read (a hyperslab), so a large matrix can be taken a
    /// block at a time. The corresponding C functions are `H5Sselect_hyperslab` and `H5Dread`
    /// with `H5T_NATIVE_FLOAT`.
    public func readFloats(columns: Range<Int>) throws -> [Float] {
        try HDF5Library.locked {
            guard elementType.isFloat else {
                throw error(.unsupportedType, "holds \(elementType), not floating-point values", hdf5: false)
            }
            guard shape.count == 2, columns.lowerBound >= 0, columns.upperBound <= shape[1] else {
                throw error(.invalidArgument, "has shape \(shape); columns \(columns) asked for", hdf5: false)
            }
            try checkReadable()
            var values = [Float](repeating: 0, count: shape[0] * columns.count)
            guard !values.isEmpty else { return values }
            let (fileSpace, memorySpace) = try block(start: [0, columns.lowerBound], size: [shape[0], columns.count],
                                                     what: "columns \(columns)", failure: .readFailed)
            let status = values.withUnsafeMutableBytes {
                H5Dread(id, chdf5_t_native_float(), memorySpace.id, fileSpace.id, chdf5_p_default(), $0.baseAddress)
            }
            guard status >= 0 else { throw error(.readFailed, "cannot read columns \(columns)") }
            return values
        }
    }

    /// Writes rows `rows` (over the first dimension) of the dataset from `values`, row-major,
    /// `rows.count` times the elements of one row; the other rows are left as they are. The
    /// corresponding C functions are `H5Sselect_hyperslab` and `H5Dwrite` with
    /// `H5T_NATIVE_FLOAT`.
    public func write(rows: Range<Int>, floats values: [Float]) throws {
        try HDF5Library.locked {
            let rowLength = shape.dropFirst().reduce(1, *)
            guard !shape.isEmpty, rows.lowerBound >= 0, rows.upperBound <= shape[0], values.count == rows.count * rowLength else {
                throw error(.invalidArgument, "has shape \(shape); \(values.count) values for rows \(rows) given", hdf5: false)
            }
            guard !values.isEmpty else { return }
            let (fileSpace, memorySpace) = try block(start: [rows.lowerBound] + shape.dropFirst().map { _ in 0 },
                                                     size: [rows.count] + shape.dropFirst(),
                                                     what: "rows \(rows)", failure: .writeFailed)
            let status = values.withUnsafeBytes {
                H5Dwrite(id, chdf5_t_native_float(), memorySpace.id, fileSpace.id, chdf5_p_default(), $0.baseAddress)
            }
            guard status >= 0 else { throw error(.writeFailed, "cannot write rows \(rows)") }
        }
    }

    /// The dataset's dataspace with the block `start ..< start + size` selected, and a
    /// memory dataspace of that block's shape. The corresponding C functions are
    /// `H5Sselect_hyperslab` and `H5Screate_simple`.
    private func block(start: [Int], size: [Int], what: String, failure: HDF5Error.Kind) throws -> (file: Handle, memory: Handle) {
        let fileSpace = Handle.dataspace(H5Dget_space(id))
        let origin = start.map { hsize_t($0) }
        let extent = size.map { hsize_t($0) }
        guard fileSpace.id >= 0, H5Sselect_hyperslab(fileSpace.id, H5S_SELECT_SET, origin, nil, extent, nil) >= 0 else {
            throw error(failure, "cannot select \(what)")
        }
        let memorySpace = Handle.dataspace(H5Screate_simple(Int32(extent.count), extent, nil))
        guard memorySpace.id >= 0 else { throw error(failure, "cannot describe a block of \(what)") }
        return (fileSpace, memorySpace)
    }

    /// Reads an integer dataset (8 to 64 bits, signed or unsigned, either byte order).
    ///
    /// The corresponding C function is `H5Dread` with `H5T_NATIVE_INT64`.
    public func readIntegers() throws -> [Int64] {
        try HDF5Library.locked {
            guard elementType.isInteger else {
                throw error(.unsupportedType, "holds \(elementType), not integers", hdf5: false)
            }
            try checkReadable()
            let type = Handle.datatype(H5Dget_type(id))
            return try readIntegers(count: count, fileType: type.id, what: "dataset") { mem, buffer in
                H5Dread(id, mem, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), buffer)
            }
        }
    }

    /// Reads an unsigned integer dataset as UInt64 (for uint64 values over `Int64.max`).
    ///
    /// The corresponding C function is `H5Dread` with `H5T_NATIVE_UINT64`.
    public func readUnsignedIntegers() throws -> [UInt64] {
        try HDF5Library.locked {
            guard case .integer(_, false, _) = elementType else {
                throw error(.unsupportedType, "holds \(elementType), not unsigned integers", hdf5: false)
            }
            return try readAll(as: UInt64.self, memoryType: chdf5_t_native_uint64())
        }
    }

    /// Checks, allocates and reads the whole dataset converted to `memoryType` (lock held).
    private func readAll<T: Numeric>(as: T.Type, memoryType: hid_t) throws -> [T] {
        try checkReadable()
        var values = [T](repeating: 0, count: count)
        let status = values.withUnsafeMutableBytes {
            H5Dread(id, memoryType, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0.baseAddress)
        }
        guard status >= 0 else { throw error(.readFailed, "cannot read the dataset's values") }
        return values
    }

    /// Reads a string dataset (scalar or 1-D), fixed- or variable-length.
    public func readStrings() throws -> [String] {
        try HDF5Library.locked {
            guard case .string = elementType else {
                throw error(.unsupportedType, "holds \(elementType), not strings", hdf5: false)
            }
            let type = Handle.datatype(H5Dget_type(id))
            return try readStrings(count: count, fileType: type.id, what: "dataset") { mem, buffer in
                H5Dread(id, mem, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), buffer)
            }
        }
    }

    /// Reads a string dataset of texts (scalar or 1-D; fixed- or variable-length), each of
    /// which must be valid UTF-8, within bounds checked before the strings are made.
    ///
    /// - Parameters:
    ///   - maxStringBytes: the most bytes one string may hold (its terminating or padding
    ///     zeros not counted);
    ///   - maxTotalBytes: the most bytes the strings may hold together, checked before the
    ///     read (for variable-length strings from the sizes HDF5 reports, for fixed-length
    ///     ones from count × width).
    /// - Throws: `HDF5Error` `.implausibleSize` past a bound, `.unsupportedType` for a
    ///   dataset that is not strings or a string that is not valid UTF-8 (naming its index
    ///   and the offset of its first bad byte).
    ///
    /// The corresponding C functions are `H5Dvlen_get_buf_size` and `H5Dread`.
    public func readUTF8Strings(maxStringBytes: Int, maxTotalBytes: Int) throws -> [String] {
        try HDF5Library.locked {
            guard case .string(let variableLength, _) = elementType else {
                throw error(.unsupportedType, "holds \(elementType), not strings", hdf5: false)
            }
            try checkReadable()
            let fileType = Handle.datatype(H5Dget_type(id))
            var chunks: [[UInt8]] = []
            chunks.reserveCapacity(count)
            if variableLength {
                let memory = Handle.datatype(H5Tcopy(chdf5_t_c_s1()))
                _ = H5Tset_size(memory.id, chdf5_variable())
                _ = H5Tset_cset(memory.id, H5Tget_cset(fileType.id))
                let space = Handle.dataspace(H5Dget_space(id))
                var needed: hsize_t = 0
                guard space.id >= 0, H5Dvlen_get_buf_size(id, memory.id, space.id, &needed) >= 0 else {
                    throw error(.readFailed, "cannot read the sizes of the strings")
                }
                guard needed <= hsize_t(maxTotalBytes) else {
                    throw error(.implausibleSize, "holds \(count) strings of \(needed) bytes together, over the limit of \(maxTotalBytes) by \(needed - hsize_t(maxTotalBytes))", hdf5: false)
                }
                var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
                let status = pointers.withUnsafeMutableBytes {
                    H5Dread(id, memory.id, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0.baseAddress)
                }
                defer { for pointer in pointers where pointer != nil { H5free_memory(pointer) } }
                guard status >= 0 else { throw error(.readFailed, "cannot read the strings") }
                for (index, pointer) in pointers.enumerated() {
                    guard let pointer else { chunks.append([]); continue }
                    let length = strnlen(pointer, maxStringBytes + 1)
                    guard length <= maxStringBytes else {
                        throw error(.implausibleSize, "string \(index) holds more than \(maxStringBytes) bytes, over the limit", hdf5: false)
                    }
                    chunks.append(pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
                        Array(UnsafeBufferPointer(start: $0, count: length))
                    })
                }
            } else {
                let width = H5Tget_size(fileType.id)
                guard width > 0, width <= maxStringBytes else {
                    throw error(.implausibleSize, "holds strings of \(width) bytes each, over the limit of \(maxStringBytes)", hdf5: false)
                }
                let (total, overflow) = count.multipliedReportingOverflow(by: width)
                guard !overflow, total <= maxTotalBytes else {
                    throw error(.implausibleSize, "holds \(count) strings of \(width) bytes, over the limit of \(maxTotalBytes) bytes together", hdf5: false)
                }
                let memory = Handle.datatype(H5Tcopy(fileType.id))
                var buffer = [UInt8](repeating: 0, count: total)
                let status = buffer.withUnsafeMutableBytes {
                    H5Dread(id, memory.id, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0.baseAddress)
                }
                guard status >= 0 else { throw error(.readFailed, "cannot read the strings") }
                let spacePadded = H5Tget_strpad(fileType.id) == H5T_STR_SPACEPAD
                for index in 0..<count {
                    var bytes = buffer[index * width ..< (index + 1) * width]
                    if let zero = bytes.firstIndex(of: 0) { bytes = bytes[..<zero] }
                    if spacePadded { while bytes.last == 0x20 { bytes.removeLast() } }
                    chunks.append(Array(bytes))
                }
            }
            return try chunks.enumerated().map { index, bytes in
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    let offset = Self.firstInvalidUTF8Offset(bytes)
                    throw error(.unsupportedType, "string \(index) is not valid UTF-8 (byte \(offset) of \(bytes.count))", hdf5: false)
                }
                return text
            }
        }
    }

    /// The offset of the first byte that does not continue a valid UTF-8 sequence.
    static func firstInvalidUTF8Offset(_ bytes: [UInt8]) -> Int {
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar)
            case .emptyInput: return offset
            case .error: return offset
            }
        }
    }

    private struct Filter { let id: H5Z_filter_t; let name: String }

    private func filterList() throws -> [Filter] {
        let dcpl = Handle.propertyList(H5Dget_create_plist(id))
        guard dcpl.id >= 0 else { throw error(.readFailed, "cannot read the dataset's creation properties") }
        let n = H5Pget_nfilters(dcpl.id)
        guard n >= 0 else { throw error(.readFailed, "cannot read the dataset's filters") }
        return (0..<n).map { index in
            var flags: UInt32 = 0
            var elements = 0
            var name = [CChar](repeating: 0, count: 256)
            var config: UInt32 = 0
            let filter = H5Pget_filter2(dcpl.id, UInt32(index), &flags, &elements, nil, name.count, &name, &config)
            let text = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return Filter(id: filter, name: text.isEmpty ? "filter \(filter)" : text)
        }
    }

    /// Refuses, before any allocation, data that cannot be read: a filter this HDF5 build
    /// lacks, or a declared size the file cannot back (a 2 KB file declaring a terabyte).
    private func checkReadable() throws {
        let filters = try filterList()
        for filter in filters where H5Zfilter_avail(filter.id) <= 0 {
            _ = HDF5Library.takeErrorMessage()
            let known = filter.id == 32000 ? " (h5py's lzf; re-save with gzip or no compression)" : ""
            throw error(.filterUnavailable,
                        "needs compression filter '\(filter.name)' (id \(filter.id)), which this HDF5 build lacks\(known)",
                        hdf5: false)
        }
        guard elementType.isFloat || elementType.isInteger else { return }
        // A damaged file can declare anything: every product here saturates instead of trapping.
        let (needed, overflow) = count.multipliedReportingOverflow(by: max(elementSize, 0))
        guard !overflow, elementSize > 0, elementSize <= 16 else {
            throw error(.implausibleSize, "declares \(count) elements of \(elementSize) bytes", hdf5: false)
        }
        guard needed > 0 else { return }
        let stored = Int(clamping: H5Dget_storage_size(id))
        // Uncompressed data must be stored in full; compressed data cannot shrink more than
        // deflate's limit of about 1032:1.
        let (bound, boundOverflow) = stored.multipliedReportingOverflow(by: 1100)
        let plausible = filters.isEmpty ? stored >= needed : (boundOverflow || needed <= bound + 4096)
        guard plausible else {
            throw error(.implausibleSize,
                        "declares shape \(shape) (\(needed) bytes) but the file stores only \(stored) bytes for it",
                        hdf5: false)
        }
    }
}
