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
                let length = H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, chdf5_p_default())
                guard length >= 0 else { throw error(.readFailed, "cannot read member \(index) of the group") }
                guard length < 1 << 16 else {
                    throw error(.implausibleSize, "member \(index) of the group declares a \(length)-byte name", hdf5: false)
                }
                var buffer = [CChar](repeating: 0, count: Int(length) + 1)
                _ = H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, buffer.count, chdf5_p_default())
                names.append(String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            return names
        }
    }

    /// What the object at `path` (relative to this group, `/`-separated) is, or nil when
    /// nothing is there. Missing intermediate groups give nil, not an error.
    ///
    /// The corresponding C functions are `H5Lexists`, `H5Oopen` and `H5Iget_type`.
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
    public func datasetPaths() throws -> [String] {
        var result: [String] = []
        try collectDatasets(prefix: "", into: &result, depth: 0)
        return result
    }

    private func collectDatasets(prefix: String, into result: inout [String], depth: Int) throws {
        // Guards against link cycles (a soft link pointing at an ancestor).
        guard depth < 64 else {
            throw error(.readFailed, "groups nest deeper than 64 levels (a link cycle?)", hdf5: false)
        }
        for name in try memberNames() {
            switch try kind(of: name) {
            case .dataset?: result.append(prefix + name)
            case .group?: try group(name).collectDatasets(prefix: prefix + name + "/", into: &result, depth: depth + 1)
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
    private func openObject(_ path: String) throws -> Handle? {
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !components.isEmpty else {
            let oid = H5Oopen(id, ".", chdf5_p_default())
            guard oid >= 0 else { throw error(.readFailed, "cannot open the group") }
            return .object(oid)
        }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for (index, component) in components.enumerated() {
            prefix += (index == 0 ? "" : "/") + component
            let exists = H5Lexists(id, prefix, chdf5_p_default())
            if exists < 0 {
                // An intermediate link that is a dataset, not a group, lands here.
                _ = HDF5Library.takeErrorMessage()
                return nil
            }
            if exists == 0 { return nil }
        }
        let oid = H5Oopen(id, path, chdf5_p_default())
        guard oid >= 0 else { throw error(.readFailed, "cannot open object", at: path) }
        return .object(oid)
    }
}
