import CHDF5
import Foundation

/// A group or dataset in a file: something that carries attributes.
public class HDF5Object: @unchecked Sendable {
    public let file: HDF5File
    /// Absolute path inside the file (`/` for the root).
    public let path: String
    /// Nil for the root group, which is addressed through the file's own id.
    let handle: Handle?

    init(file: HDF5File, path: String, handle: Handle?) {
        self.file = file
        self.path = path
        self.handle = handle
    }

    var id: hid_t { handle?.id ?? file.handle.id }

    func error(_ kind: HDF5Error.Kind, _ message: String, at subpath: String? = nil, hdf5: Bool = true) -> HDF5Error {
        HDF5Error(kind, file: file.path, path: subpath.map(join) ?? path, message: message,
                  hdf5Message: hdf5 ? HDF5Library.takeErrorMessage() : nil)
    }

    func join(_ name: String) -> String {
        if name.hasPrefix("/") { return name }
        return path == "/" ? "/" + name : path + "/" + name
    }

    // MARK: Attributes

    /// Names of this object's attributes, in name order.
    ///
    /// The corresponding C function is `H5Aiterate2`.
    public func attributeNames() throws -> [String] {
        try HDF5Library.locked {
            final class Collector { var names: [String] = [] }
            let collector = Collector()
            let unmanaged = Unmanaged.passRetained(collector)
            defer { unmanaged.release() }
            var index: hsize_t = 0
            let status = H5Aiterate2(id, H5_INDEX_NAME, H5_ITER_INC, &index, { _, name, _, data in
                guard let name, let data else { return 0 }
                Unmanaged<Collector>.fromOpaque(data).takeUnretainedValue().names.append(String(cString: name))
                return 0
            }, unmanaged.toOpaque())
            guard status >= 0 else { throw error(.readFailed, "cannot list attributes") }
            return collector.names
        }
    }

    /// True when the attribute exists.
    ///
    /// The corresponding C function is `H5Aexists`.
    public func hasAttribute(_ name: String) throws -> Bool {
        try HDF5Library.locked {
            let exists = H5Aexists(id, name)
            guard exists >= 0 else { throw error(.readFailed, "cannot look up attribute '\(name)'") }
            return exists > 0
        }
    }

    /// Reads an attribute, or returns nil when there is none by that name.
    ///
    /// Strings may be scalar or 1-D, fixed- or variable-length, ASCII or UTF-8; numbers
    /// scalar or 1-D. The corresponding C function is `H5Aread`.
    public func attribute(_ name: String) throws -> AttributeValue? {
        try HDF5Library.locked {
            guard try hasAttribute(name) else { return nil }
            let aid = H5Aopen(id, name, chdf5_p_default())
            guard aid >= 0 else { throw error(.readFailed, "cannot open attribute '\(name)'") }
            let attribute = Handle.attribute(aid)
            let type = Handle.datatype(H5Aget_type(attribute.id))
            let space = Handle.dataspace(H5Aget_space(attribute.id))
            let what = "attribute '\(name)'"
            let (shape, count) = try extent(of: space.id, what: what)
            guard shape.count <= 1 else {
                throw error(.unsupportedType, "\(what) has shape \(shape); only scalars and 1-D arrays are read", hdf5: false)
            }
            let scalar = shape.isEmpty
            switch H5Tget_class(type.id) {
            case H5T_STRING:
                let strings = try readStrings(count: count, fileType: type.id, what: what) { mem, buffer in
                    H5Aread(attribute.id, mem, buffer)
                }
                return scalar ? .string(strings.first ?? "") : .strings(strings)
            case H5T_INTEGER:
                let values = try readIntegers(count: count, fileType: type.id, what: what) { mem, buffer in
                    H5Aread(attribute.id, mem, buffer)
                }
                return scalar ? .integer(values.first ?? 0) : .integers(values)
            case H5T_FLOAT:
                var values = [Double](repeating: 0, count: count)
                let status = values.withUnsafeMutableBytes { H5Aread(attribute.id, chdf5_t_native_double(), $0.baseAddress) }
                guard status >= 0 else { throw error(.readFailed, "cannot read \(what)") }
                return scalar ? .double(values.first ?? 0) : .doubles(values)
            default:
                throw error(.unsupportedType, "\(what) is of type \(describe(type: type.id)), not a string or number", hdf5: false)
            }
        }
    }

    /// Writes (or replaces) an attribute in the forms h5py writes.
    ///
    /// `.string` is written as `form` says (default variable-length UTF-8, like a Python
    /// `str`); `.strings` as a 1-D array in `form` (Keras writes name lists fixed-length
    /// ASCII); numbers as 64-bit little-endian. The corresponding C functions are
    /// `H5Acreate2` and `H5Awrite`.
    public func setAttribute(_ name: String, _ value: AttributeValue, stringForm: StringForm = .variableUTF8) throws {
        try HDF5Library.locked {
            if try hasAttribute(name) {
                guard H5Adelete(id, name) >= 0 else { throw error(.writeFailed, "cannot replace attribute '\(name)'") }
            }
            let what = "attribute '\(name)'"
            switch value {
            case let .string(s):
                try writeStringAttribute(name, [s], scalar: true, form: stringForm, what: what)
            case let .strings(list):
                try writeStringAttribute(name, list, scalar: false, form: stringForm, what: what)
            case let .integer(v):
                try writeNumericAttribute(name, [v], scalar: true, fileType: chdf5_t_std_i64le(), memType: chdf5_t_native_int64(), what: what)
            case let .integers(list):
                try writeNumericAttribute(name, list, scalar: false, fileType: chdf5_t_std_i64le(), memType: chdf5_t_native_int64(), what: what)
            case let .double(v):
                try writeNumericAttribute(name, [v], scalar: true, fileType: chdf5_t_ieee_f64le(), memType: chdf5_t_native_double(), what: what)
            case let .doubles(list):
                try writeNumericAttribute(name, list, scalar: false, fileType: chdf5_t_ieee_f64le(), memType: chdf5_t_native_double(), what: what)
            }
        }
    }

    private func createAttribute(_ name: String, type: hid_t, shape: [Int], what: String) throws -> Handle {
        let space = try makeDataspace(shape: shape, what: what)
        let aid = H5Acreate2(id, name, type, space.id, chdf5_p_default(), chdf5_p_default())
        guard aid >= 0 else { throw error(.writeFailed, "cannot create \(what)") }
        return .attribute(aid)
    }

    private func writeNumericAttribute<T>(_ name: String, _ values: [T], scalar: Bool, fileType: hid_t, memType: hid_t, what: String) throws {
        let attribute = try createAttribute(name, type: fileType, shape: scalar ? [] : [values.count], what: what)
        let status = values.withUnsafeBytes { H5Awrite(attribute.id, memType, $0.baseAddress) }
        guard status >= 0 else { throw error(.writeFailed, "cannot write \(what)") }
    }

    private func writeStringAttribute(_ name: String, _ strings: [String], scalar: Bool, form: StringForm, what: String) throws {
        let type = Handle.datatype(H5Tcopy(chdf5_t_c_s1()))
        let shape = scalar ? [] : [strings.count]
        switch form {
        case .variableUTF8:
            _ = H5Tset_size(type.id, chdf5_variable())
            _ = H5Tset_cset(type.id, H5T_CSET_UTF8)
            let attribute = try createAttribute(name, type: type.id, shape: shape, what: what)
            let cStrings = strings.map { strdup($0) }
            defer { cStrings.forEach { free($0) } }
            var pointers: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
            let status = pointers.withUnsafeMutableBytes { H5Awrite(attribute.id, type.id, $0.baseAddress) }
            guard status >= 0 else { throw error(.writeFailed, "cannot write \(what)") }
        case .fixedASCII:
            let encoded = strings.map { Array($0.utf8) }
            let width = max(1, encoded.map(\.count).max() ?? 1)
            _ = H5Tset_size(type.id, width)
            _ = H5Tset_strpad(type.id, H5T_STR_NULLPAD)
            _ = H5Tset_cset(type.id, H5T_CSET_ASCII)
            let attribute = try createAttribute(name, type: type.id, shape: shape, what: what)
            var buffer = [UInt8](repeating: 0, count: width * max(1, strings.count))
            for (i, bytes) in encoded.enumerated() {
                buffer.replaceSubrange(i * width ..< i * width + bytes.count, with: bytes)
            }
            let status = buffer.withUnsafeMutableBytes { H5Awrite(attribute.id, type.id, $0.baseAddress) }
            guard status >= 0 else { throw error(.writeFailed, "cannot write \(what)") }
        }
    }

    // MARK: Shared readers (called with the lock held)

    /// Shape and element count of a dataspace, refusing implausible counts before any
    /// allocation.
    func extent(of space: hid_t, what: String) throws -> (shape: [Int], count: Int) {
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0 else { throw error(.readFailed, "cannot read the shape of \(what)") }
        if H5Sget_simple_extent_type(space) == H5S_NULL { return ([0], 0) }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        if rank > 0 {
            guard H5Sget_simple_extent_dims(space, &dims, nil) >= 0 else {
                throw error(.readFailed, "cannot read the shape of \(what)")
            }
        }
        var count = 1
        for d in dims {
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(clamping: d))
            guard !overflow, d <= hsize_t(Int.max) else {
                throw error(.implausibleSize, "\(what) declares shape \(dims) (more elements than can be addressed)", hdf5: false)
            }
            count = product
        }
        guard count <= file.limits.maxElements else {
            throw error(.implausibleSize, "\(what) declares shape \(dims) = \(count) elements, over the limit of \(file.limits.maxElements)", hdf5: false)
        }
        return (dims.map { Int($0) }, count)
    }

    func readStrings(count: Int, fileType: hid_t, what: String, read: (hid_t, UnsafeMutableRawPointer?) -> herr_t) throws -> [String] {
        let cset = H5Tget_cset(fileType)
        if H5Tis_variable_str(fileType) > 0 {
            let mem = Handle.datatype(H5Tcopy(chdf5_t_c_s1()))
            _ = H5Tset_size(mem.id, chdf5_variable())
            _ = H5Tset_cset(mem.id, cset)
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            let status = pointers.withUnsafeMutableBytes { read(mem.id, $0.baseAddress) }
            defer { for p in pointers where p != nil { H5free_memory(p) } }
            guard status >= 0 else { throw error(.readFailed, "cannot read \(what)") }
            return pointers.map { $0.map { String(cString: $0) } ?? "" }
        }
        let width = H5Tget_size(fileType)
        guard width > 0, width < 1 << 28 else {
            throw error(.implausibleSize, "\(what) declares strings of \(width) bytes", hdf5: false)
        }
        let mem = Handle.datatype(H5Tcopy(fileType))
        var buffer = [UInt8](repeating: 0, count: width * count)
        let status = buffer.withUnsafeMutableBytes { read(mem.id, $0.baseAddress) }
        guard status >= 0 else { throw error(.readFailed, "cannot read \(what)") }
        let spacePadded = H5Tget_strpad(fileType) == H5T_STR_SPACEPAD
        return (0..<count).map { i in
            var bytes = buffer[i * width ..< (i + 1) * width]
            if let nul = bytes.firstIndex(of: 0) { bytes = bytes[..<nul] }
            var text = String(decoding: bytes, as: UTF8.self)
            if spacePadded { while text.hasSuffix(" ") { text.removeLast() } }
            return text
        }
    }

    func readIntegers(count: Int, fileType: hid_t, what: String, read: (hid_t, UnsafeMutableRawPointer?) -> herr_t) throws -> [Int64] {
        let unsigned64 = H5Tget_sign(fileType) == H5T_SGN_NONE && H5Tget_size(fileType) >= 8
        if unsigned64 {
            var values = [UInt64](repeating: 0, count: count)
            let status = values.withUnsafeMutableBytes { read(chdf5_t_native_uint64(), $0.baseAddress) }
            guard status >= 0 else { throw error(.readFailed, "cannot read \(what)") }
            return try values.map { v in
                guard v <= UInt64(Int64.max) else {
                    throw error(.unsupportedType, "\(what) holds \(v), too large for a signed 64-bit integer", hdf5: false)
                }
                return Int64(v)
            }
        }
        var values = [Int64](repeating: 0, count: count)
        let status = values.withUnsafeMutableBytes { read(chdf5_t_native_int64(), $0.baseAddress) }
        guard status >= 0 else { throw error(.readFailed, "cannot read \(what)") }
        return values
    }

    func makeDataspace(shape: [Int], what: String) throws -> Handle {
        if shape.isEmpty {
            let sid = H5Screate(H5S_SCALAR)
            guard sid >= 0 else { throw error(.writeFailed, "cannot create a dataspace for \(what)") }
            return .dataspace(sid)
        }
        let dims = shape.map { hsize_t($0) }
        let sid = H5Screate_simple(Int32(dims.count), dims, nil)
        guard sid >= 0 else { throw error(.writeFailed, "cannot create a dataspace of shape \(shape) for \(what)") }
        return .dataspace(sid)
    }

    func describe(type: hid_t) -> String {
        elementType(of: type).description
    }

    func elementType(of type: hid_t) -> ElementType {
        let size = H5Tget_size(type)
        let bigEndian = H5Tget_order(type) == H5T_ORDER_BE
        switch H5Tget_class(type) {
        case H5T_FLOAT: return .float(bits: size * 8, bigEndian: bigEndian)
        case H5T_INTEGER: return .integer(bits: size * 8, signed: H5Tget_sign(type) != H5T_SGN_NONE, bigEndian: bigEndian)
        case H5T_STRING: return .string(variableLength: H5Tis_variable_str(type) > 0, utf8: H5Tget_cset(type) == H5T_CSET_UTF8)
        case H5T_COMPOUND: return .other("compound")
        case H5T_ENUM: return .other("enum")
        case H5T_REFERENCE: return .other("reference")
        case H5T_ARRAY: return .other("array")
        case H5T_VLEN: return .other("variable-length sequence")
        case H5T_OPAQUE: return .other("opaque")
        case H5T_BITFIELD: return .other("bitfield")
        default: return .other("unknown type")
        }
    }
}
