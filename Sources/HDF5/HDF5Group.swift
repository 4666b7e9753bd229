import CHDF5
import Foundation

/// A group: a folder of groups and datasets.
public final class HDF5Group: HDF5Object, @unchecked Sendable {

    /// Names of the group's direct members, in name order.
    ///
    /// The corresponding C functions are `H5Gget_info` and `H5Lget_name_by_idx`.
    public func memberNames() throws -> [String] {
        try HDF5Library.locked {
            var info = H5G_info_t()
            guard H5Gget_info(id, &info) >= 0 else { throw error(.readFailed, "cannot list the group") }
            var names: [String] = []
            for index in 0..<info.nlinks {
                let length = H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, HDF5Library.linkAccess)
                guard length >= 0 else { throw error(.readFailed, "cannot read member \(index) of the group") }
                guard length < 1 << 16 else {
                    throw error(.implausibleSize, "member \(index) of the group declares a \(length)-byte name", hdf5: false)
                }
                var buffer = [CChar](repeating: 0, count: Int(length) + 1)
                _ = H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, buffer.count, HDF5Library.linkAccess)
                names.append(String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            return names
        }
    }

    /// What the object at `path` (relative to this group, `/`-separated) is, or nil when
    /// nothing is there. Missing intermediate groups give nil, not an error.
    ///
    /// The corresponding C functions are `H5Lexists`, `H5Lget_info`, `H5Oopen` and `H5Iget_type`.
    public func kind(of path: String) throws -> ObjectKind? {
        try HDF5Library.locked {
            guard let object = try openObject(path) else { return nil }
            switch H5Iget_type(object.id) {
            case H5I_GROUP: return .group
            case H5I_DATASET: return .dataset
            default: return nil
            }
        }
    }

    /// True when a group or dataset exists at `path`.
    public func contains(_ path: String) throws -> Bool {
        try kind(of: path) != nil
    }

    /// Opens the group at `path`.
    public func group(_ path: String) throws -> HDF5Group {
        try HDF5Library.locked {
            guard let object = try openObject(path) else {
                throw error(.notFound, "no group here", at: path, hdf5: false)
            }
            guard H5Iget_type(object.id) == H5I_GROUP else {
                throw error(.wrongKind, "is not a group", at: path, hdf5: false)
            }
            return HDF5Group(file: file, path: join(path), handle: object)
        }
    }

    /// Opens the dataset at `path`.
    public func dataset(_ path: String) throws -> HDF5Dataset {
        try HDF5Library.locked {
            guard let object = try openObject(path) else {
                throw error(.notFound, "no dataset here", at: path, hdf5: false)
            }
            guard H5Iget_type(object.id) == H5I_DATASET else {
                throw error(.wrongKind, "is not a dataset", at: path, hdf5: false)
            }
            return try HDF5Dataset(file: file, path: join(path), handle: object)
        }
    }

    /// Paths (relative to this group) of every dataset below it, depth first, in name order.
    ///
    /// Each group is walked once, however many links reach it (as h5py's `visit` does); a
    /// link back to a group being walked (a cycle) is refused, naming it, and so are groups
    /// nested deeper than `maximumDepth`.
    public func datasetPaths() throws -> [String] {
        var result: [String] = []
        var walk = Walk()
        try collectDatasets(prefix: "", into: &result, walk: &walk, depth: 0)
        return result
    }

    /// The deepest group nesting a dataset walk follows.
    public static let maximumDepth = 64

    /// The groups seen by a walk, and those on the current path from its start.
    private struct Walk {
        var visited: Set<ObjectAddress> = []
        var ancestors: Set<ObjectAddress> = []
    }

    private func collectDatasets(prefix: String, into result: inout [String], walk: inout Walk, depth: Int) throws {
        guard depth < Self.maximumDepth else {
            throw error(.implausibleSize, "groups nest deeper than \(Self.maximumDepth) levels", hdf5: false)
        }
        let address = try objectAddress()
        guard !walk.ancestors.contains(address) else {
            throw error(.outsideInput, "is a link back to a group that contains it (a cycle)", hdf5: false)
        }
        guard walk.visited.insert(address).inserted else { return }
        walk.ancestors.insert(address)
        defer { walk.ancestors.remove(address) }
        for name in try memberNames() {
            switch try kind(of: name) {
            case .dataset?: result.append(prefix + name)
            case .group?: try group(name).collectDatasets(prefix: prefix + name + "/", into: &result, walk: &walk, depth: depth + 1)
            case nil: continue
            }
        }
    }

    /// Creates a group (and any missing intermediate groups).
    ///
    /// The corresponding C function is `H5Gcreate2`.
    @discardableResult
    public func createGroup(_ path: String) throws -> HDF5Group {
        try HDF5Library.locked {
            let lcpl = try intermediateGroupsList()
            let gid = H5Gcreate2(id, path, lcpl.id, chdf5_p_default(), chdf5_p_default())
            guard gid >= 0 else { throw error(.cannotCreate, "cannot create group", at: path) }
            return HDF5Group(file: file, path: join(path), handle: .group(gid))
        }
    }

    /// Writes a float32 dataset (little-endian), creating intermediate groups.
    ///
    /// `values` is row-major with `shape`; `compression` chunks and gzips it. The
    /// corresponding C functions are `H5Dcreate2` and `H5Dwrite`.
    @discardableResult
    public func write(_ path: String, floats values: [Float], shape: [Int], compression: Compression? = nil) throws -> HDF5Dataset {
        try write(path, values: values, shape: shape, fileType: chdf5_t_ieee_f32le(), memoryType: chdf5_t_native_float(), compression: compression)
    }

    /// Writes an integer dataset, stored as little-endian 64-bit (or 32-bit with `bits: 32`).
    @discardableResult
    public func write(_ path: String, integers values: [Int64], shape: [Int], bits: Int = 64, compression: Compression? = nil) throws -> HDF5Dataset {
        let fileType = bits == 32 ? chdf5_t_std_i32le() : chdf5_t_std_i64le()
        return try write(path, values: values, shape: shape, fileType: fileType, memoryType: chdf5_t_native_int64(), compression: compression)
    }

    /// Writes a 1-D dataset of strings, each element's bytes as given (nothing checks that
    /// they are UTF-8, so a test can write any): variable-length UTF-8 strings as h5py writes
    /// `h5py.string_dtype("utf-8")`, or fixed-length null-padded ones (`.fixedASCII`, a numpy
    /// `S` array). A string's bytes end at its first zero byte. The corresponding C functions
    /// are `H5Dcreate2` and `H5Dwrite`.
    @discardableResult
    public func write(_ path: String, strings: [[UInt8]], form: StringForm = .variableUTF8) throws -> HDF5Dataset {
        try HDF5Library.locked {
            let type = Handle.datatype(H5Tcopy(chdf5_t_c_s1()))
            let shape = [strings.count]
            switch form {
            case .variableUTF8:
                _ = H5Tset_size(type.id, chdf5_variable())
                _ = H5Tset_cset(type.id, H5T_CSET_UTF8)
                let dataset = try create(path, shape: shape, fileType: type.id, compression: nil, writesValues: true)
                let buffers = strings.map { bytes -> UnsafeMutablePointer<CChar> in
                    let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
                    for (index, byte) in bytes.enumerated() { buffer[index] = CChar(bitPattern: byte) }
                    buffer[bytes.count] = 0
                    return buffer
                }
                defer { buffers.forEach { $0.deallocate() } }
                var pointers: [UnsafePointer<CChar>?] = buffers.map { UnsafePointer($0) }
                if !strings.isEmpty {
                    let status = pointers.withUnsafeMutableBytes {
                        H5Dwrite(dataset.id, type.id, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0.baseAddress)
                    }
                    guard status >= 0 else { throw error(.writeFailed, "cannot write dataset", at: path) }
                }
                return try HDF5Dataset(file: file, path: join(path), handle: dataset)
            case .fixedASCII:
                let width = max(1, strings.map(\.count).max() ?? 1)
                _ = H5Tset_size(type.id, width)
                _ = H5Tset_strpad(type.id, H5T_STR_NULLPAD)
                let dataset = try create(path, shape: shape, fileType: type.id, compression: nil, writesValues: true)
                var buffer = [UInt8](repeating: 0, count: width * strings.count)
                for (index, bytes) in strings.enumerated() {
                    buffer.replaceSubrange(index * width ..< index * width + bytes.count, with: bytes)
                }
                if !strings.isEmpty {
                    let status = buffer.withUnsafeMutableBytes {
                        H5Dwrite(dataset.id, type.id, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0.baseAddress)
                    }
                    guard status >= 0 else { throw error(.writeFailed, "cannot write dataset", at: path) }
                }
                return try HDF5Dataset(file: file, path: join(path), handle: dataset)
            }
        }
    }

    /// Creates a float32 dataset (little-endian, contiguous) of `shape` whose values are
    /// written afterwards, a block of rows at a time, with `HDF5Dataset.write(rows:floats:)`;
    /// rows not written read as zeros. Creates intermediate groups.
    @discardableResult
    public func createFloats(_ path: String, shape: [Int]) throws -> HDF5Dataset {
        try HDF5Library.locked {
            guard shape.allSatisfy({ $0 >= 0 }) else {
                throw HDF5Error(.invalidArgument, file: file.path, path: join(path), message: "shape \(shape) has a negative size")
            }
            let dataset = try create(path, shape: shape, fileType: chdf5_t_ieee_f32le(), compression: nil, writesValues: false)
            return try HDF5Dataset(file: file, path: join(path), handle: dataset)
        }
    }

    private func write<T>(_ path: String, values: [T], shape: [Int], fileType: hid_t, memoryType: hid_t, compression: Compression?) throws -> HDF5Dataset {
        try HDF5Library.locked {
            guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
                throw HDF5Error(.invalidArgument, file: file.path, path: join(path),
                                message: "\(values.count) values do not fill shape \(shape)")
            }
            let dataset = try create(path, shape: shape, fileType: fileType, compression: compression, writesValues: values.count > 0)
            if values.count > 0 {
                let status = values.withUnsafeBytes {
                    H5Dwrite(dataset.id, memoryType, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0.baseAddress)
                }
                guard status >= 0 else { throw error(.writeFailed, "cannot write dataset", at: path) }
            }
            return try HDF5Dataset(file: file, path: join(path), handle: dataset)
        }
    }

    /// Creates the dataset at `path` (chunked and gzipped with `compression` when it will hold
    /// values); called with the library lock held.
    private func create(_ path: String, shape: [Int], fileType: hid_t, compression: Compression?, writesValues: Bool) throws -> Handle {
        let what = "dataset"
        let space = try makeDataspace(shape: shape, what: what)
        let dcpl = Handle.propertyList(H5Pcreate(chdf5_p_dataset_create()))
        if let compression, !shape.isEmpty, writesValues {
            let chunk = (compression.chunkShape ?? shape).map { hsize_t(max(1, $0)) }
            guard chunk.count == shape.count else {
                throw HDF5Error(.invalidArgument, file: file.path, path: join(path),
                                message: "chunk shape \(chunk) does not match dataset shape \(shape)")
            }
            guard H5Zfilter_avail(H5Z_filter_t(H5Z_FILTER_DEFLATE)) > 0 else {
                throw error(.filterUnavailable, "this HDF5 build lacks gzip (deflate)", at: path)
            }
            _ = H5Pset_chunk(dcpl.id, Int32(chunk.count), chunk)
            _ = H5Pset_deflate(dcpl.id, UInt32(max(0, min(9, compression.gzipLevel))))
        }
        let lcpl = try intermediateGroupsList()
        let did = H5Dcreate2(id, path, fileType, space.id, lcpl.id, dcpl.id, chdf5_p_default())
        guard did >= 0 else { throw error(.cannotCreate, "cannot create dataset", at: path) }
        return Handle.dataset(did)
    }

    private func intermediateGroupsList() throws -> Handle {
        let lcpl = Handle.propertyList(H5Pcreate(chdf5_p_link_create()))
        guard H5Pset_create_intermediate_group(lcpl.id, 1) >= 0 else {
            throw error(.cannotCreate, "cannot set up link creation")
        }
        return lcpl
    }

    /// Opens whatever is at `path`, or nil when a link along the way is missing.
    ///
    /// Each link along the path is looked at before it is followed: hard and soft links are
    /// followed (soft ones at most `HDF5Library.softLinkLimit` deep), external and
    /// user-defined links are refused, naming the path — nothing outside the file is opened.
    /// The corresponding C functions are `H5Lexists`, `H5Lget_info` and `H5Oopen`.
    private func openObject(_ path: String) throws -> Handle? {
        _ = HDF5Library.takeRefusedExternalLink()
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !components.isEmpty else {
            let oid = H5Oopen(id, ".", HDF5Library.linkAccess)
            guard oid >= 0 else { throw error(.readFailed, "cannot open the group") }
            return .object(oid)
        }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for (index, component) in components.enumerated() {
            prefix += (index == 0 ? "" : "/") + component
            let exists = H5Lexists(id, prefix, HDF5Library.linkAccess)
            try refuseIfExternalLinkWasReached(at: prefix)
            if exists < 0 {
                // An intermediate link that is a dataset, not a group, lands here.
                _ = HDF5Library.takeErrorMessage()
                return nil
            }
            if exists == 0 { return nil }
            try requireFollowableLink(prefix)
        }
        let oid = H5Oopen(id, path, HDF5Library.linkAccess)
        try refuseIfExternalLinkWasReached(at: path)
        guard oid >= 0 else { throw error(.readFailed, "cannot open object", at: path) }
        return .object(oid)
    }

    /// Refuses the link named `path` unless it is a hard or soft link.
    ///
    /// The corresponding C function is `H5Lget_info`.
    private func requireFollowableLink(_ path: String) throws {
        var info = H5L_info_t()
        guard H5Lget_info(id, path, &info, HDF5Library.linkAccess) >= 0 else {
            try refuseIfExternalLinkWasReached(at: path)
            throw error(.readFailed, "cannot read the link", at: path)
        }
        switch info.type {
        case H5L_TYPE_HARD, H5L_TYPE_SOFT:
            return
        case H5L_TYPE_EXTERNAL:
            throw error(.outsideInput, "is an external link to another file; rnnkit reads nothing outside its input",
                        at: path, hdf5: false)
        default:
            throw error(.outsideInput, "is a user-defined link (type \(info.type.rawValue)), which is not followed",
                        at: path, hdf5: false)
        }
    }

    /// Throws when the last lookup reached an external link through a soft link (the
    /// library-wide callback refused it).
    private func refuseIfExternalLinkWasReached(at path: String) throws {
        guard HDF5Library.takeRefusedExternalLink() else { return }
        _ = HDF5Library.takeErrorMessage()
        throw error(.outsideInput, "leads through an external link to another file; rnnkit reads nothing outside its input",
                    at: path, hdf5: false)
    }

    /// The object's address in its file, which identifies a group however it is reached.
    ///
    /// The corresponding C function is `H5Oget_info2`.
    func objectAddress() throws -> ObjectAddress {
        try HDF5Library.locked {
            var info = H5O_info_t()
            guard H5Oget_info2(id, &info, UInt32(H5O_INFO_BASIC)) >= 0 else {
                throw error(.readFailed, "cannot read the object's address")
            }
            return ObjectAddress(file: info.fileno, address: info.addr)
        }
    }
}

/// Where an object lives: its file's number and its address in that file.
struct ObjectAddress: Hashable {
    var file: UInt
    var address: haddr_t
}
