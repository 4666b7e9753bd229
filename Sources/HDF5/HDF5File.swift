import CHDF5
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An open HDF5 file.
///
/// Objects opened from a file keep it open; the file closes (`H5Fclose`) when the last
/// reference to it and to every object opened from it is gone: each handle closes in its own
/// `deinit`. There is no `close()`.
public final class HDF5File: @unchecked Sendable {
    /// The path as the caller gave it; every error names it.
    public let path: String
    public let limits: ReadLimits
    let handle: Handle

    private init(path: String, handle: Handle, limits: ReadLimits) {
        self.path = path
        self.handle = handle
        self.limits = limits
    }

    /// Opens an existing file read-only.
    ///
    /// Only a regular file is opened: a FIFO, device or directory is refused before libhdf5
    /// sees the path (a FIFO would block its `open`). `displayName` is what errors call the
    /// file, when not its path. The corresponding C function is `H5Fopen`.
    public static func open(_ path: String, limits: ReadLimits = .default, displayName: String? = nil) throws -> HDF5File {
        let name = displayName ?? path
        try requireRegularFile(path, name: name)
        return try HDF5Library.locked {
            let id = H5Fopen(path, chdf5_f_acc_rdonly(), chdf5_p_default())
            guard id >= 0 else {
                let detail = HDF5Library.takeErrorMessage()
                throw HDF5Error(.cannotOpen, file: name, message: "not a readable HDF5 file", hdf5Message: detail)
            }
            return HDF5File(path: name, handle: .file(id), limits: limits)
        }
    }

    /// Refuses anything but a regular file: opens `path` without blocking (a FIFO with no
    /// writer would otherwise wait forever) and checks the open descriptor's type.
    ///
    /// The corresponding C functions are `stat`, `open` (`O_RDONLY | O_NONBLOCK | O_CLOEXEC`)
    /// and `fstat`.
    static func requireRegularFile(_ path: String, name: String) throws {
        // By name first, so that a device or FIFO is refused without being opened at all.
        var named = stat()
        if stat(path, &named) == 0 { try requireRegular(mode: named.st_mode, name: name) }
        #if canImport(Glibc)
        let descriptor = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        #else
        let descriptor = Darwin.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        #endif
        guard descriptor >= 0 else {
            let reason = errno == ENOENT ? "no such file" : String(cString: strerror(errno))
            throw HDF5Error(.cannotOpen, file: name, message: reason)
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw HDF5Error(.cannotOpen, file: name, message: String(cString: strerror(errno)))
        }
        try requireRegular(mode: info.st_mode, name: name)
    }

    private static func requireRegular(mode: mode_t, name: String) throws {
        switch mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: throw HDF5Error(.cannotOpen, file: name, message: "is a directory, not an HDF5 file")
        case S_IFIFO: throw HDF5Error(.cannotOpen, file: name, message: "is a FIFO, not a regular file")
        case S_IFCHR, S_IFBLK: throw HDF5Error(.cannotOpen, file: name, message: "is a device, not a regular file")
        default: throw HDF5Error(.cannotOpen, file: name, message: "is a special file, not a regular file")
        }
    }

    /// Opens an existing file for reading and writing (attributes and datasets may be added
    /// or replaced).
    ///
    /// The corresponding C function is `H5Fopen` with `H5F_ACC_RDWR`.
    public static func openForUpdate(_ path: String) throws -> HDF5File {
        try HDF5Library.locked {
            let id = H5Fopen(path, chdf5_f_acc_rdwr(), chdf5_p_default())
            guard id >= 0 else {
                throw HDF5Error(.cannotOpen, file: path, message: "cannot open for writing",
                                hdf5Message: HDF5Library.takeErrorMessage())
            }
            return HDF5File(path: path, handle: .file(id), limits: .default)
        }
    }

    /// Opens an HDF5 file held in memory (a member of a zip archive, say), read-only.
    ///
    /// `name` is what errors call the file (`model.keras!model.weights.h5`). The image is
    /// copied by HDF5's core driver. The corresponding C functions are `H5Pset_fapl_core`,
    /// `H5Pset_file_image` and `H5Fopen`.
    public static func open(image: [UInt8], name: String, limits: ReadLimits = .default) throws -> HDF5File {
        try HDF5Library.locked {
            let fapl = Handle.propertyList(H5Pcreate(chdf5_p_file_access()))
            guard fapl.id >= 0, H5Pset_fapl_core(fapl.id, 1 << 16, false) >= 0,
                  image.withUnsafeBytes({ H5Pset_file_image(fapl.id, UnsafeMutableRawPointer(mutating: $0.baseAddress), $0.count) }) >= 0 else {
                throw HDF5Error(.cannotOpen, file: name, message: "cannot set up an in-memory file",
                                hdf5Message: HDF5Library.takeErrorMessage())
            }
            let id = H5Fopen(name, chdf5_f_acc_rdonly(), fapl.id)
            guard id >= 0 else {
                throw HDF5Error(.cannotOpen, file: name, message: "not a readable HDF5 file",
                                hdf5Message: HDF5Library.takeErrorMessage())
            }
            return HDF5File(path: name, handle: .file(id), limits: limits)
        }
    }

    /// Creates a new file. Fails when the file exists, unless `overwrite`.
    ///
    /// The corresponding C function is `H5Fcreate`.
    public static func create(_ path: String, overwrite: Bool = false) throws -> HDF5File {
        try HDF5Library.locked {
            let flags = overwrite ? chdf5_f_acc_trunc() : chdf5_f_acc_excl()
            let id = H5Fcreate(path, flags, chdf5_p_default(), chdf5_p_default())
            guard id >= 0 else {
                let detail = HDF5Library.takeErrorMessage()
                throw HDF5Error(.cannotCreate, file: path, message: "cannot create the file", hdf5Message: detail)
            }
            return HDF5File(path: path, handle: .file(id), limits: .default)
        }
    }

    /// The root group, `/`.
    public var root: HDF5Group {
        HDF5Group(file: self, path: "/", handle: nil)
    }

    /// Writes buffered data to disk.
    ///
    /// The corresponding C function is `H5Fflush`.
    public func flush() throws {
        try HDF5Library.locked {
            guard H5Fflush(handle.id, H5F_SCOPE_GLOBAL) >= 0 else {
                throw HDF5Error(.writeFailed, file: path, message: "cannot flush",
                                hdf5Message: HDF5Library.takeErrorMessage())
            }
        }
    }

    /// The file's size in bytes.
    ///
    /// The corresponding C function is `H5Fget_filesize`.
    public func size() throws -> Int {
        try HDF5Library.locked {
            var size: hsize_t = 0
            guard H5Fget_filesize(handle.id, &size) >= 0 else {
                throw HDF5Error(.readFailed, file: path, message: "cannot read the file size",
                                hdf5Message: HDF5Library.takeErrorMessage())
            }
            return Int(clamping: size)
        }
    }

    /// Number of HDF5 objects (files, groups, datasets, attributes, types) open in this
    /// process; tests use it to prove handles are closed.
    ///
    /// The corresponding C function is `H5Fget_obj_count`.
    public static func openObjectCount() -> Int {
        HDF5Library.locked {
            Int(H5Fget_obj_count(chdf5_f_obj_any_file(), chdf5_f_obj_all()))
        }
    }

    /// The version of the libhdf5 this process runs ("1.10.8"): the library loaded at run
    /// time, which a wheel bundles, not the headers it was compiled against.
    ///
    /// The corresponding C function is `H5get_libversion`.
    public static let libraryVersion: String = HDF5Library.locked {
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        guard H5get_libversion(&major, &minor, &release) >= 0 else { return "unknown" }
        return "\(major).\(minor).\(release)"
    }
}
