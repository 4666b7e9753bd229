import CHDF5
import Foundation

/// Process-wide HDF5 state: one-time initialisation and a lock around every call.
///
/// Debian's libhdf5 is built without thread safety, so every call into it goes through
/// `HDF5Library.locked`. The lock is recursive because objects close their handles in
/// `deinit`, which may run inside another locked operation.
enum HDF5Library {
    private static let lock: NSRecursiveLock = {
        let lock = NSRecursiveLock()
        lock.name = "HDF5Library"
        return lock
    }()

    private static let initialized: Bool = {
        // The corresponding C functions are `H5open` and `H5Eset_auto2`.
        _ = H5open()
        chdf5_silence_errors()
        return true
    }()

    static func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        _ = initialized
        return try body()
    }

    /// Reads HDF5's current error stack into one line and clears it.
    ///
    /// The corresponding C functions are `H5Ewalk2` and `H5Eclear2`.
    static func takeErrorMessage() -> String? {
        final class Collector { var lines: [String] = [] }
        let collector = Collector()
        let unmanaged = Unmanaged.passRetained(collector)
        defer { unmanaged.release() }
        _ = H5Ewalk2(chdf5_e_default(), H5E_WALK_DOWNWARD, { _, error, data in
            guard let error, let data else { return 0 }
            let collector = Unmanaged<Collector>.fromOpaque(data).takeUnretainedValue()
            if let desc = error.pointee.desc {
                let text = String(cString: desc).trimmingCharacters(in: .whitespaces)
                if !text.isEmpty, collector.lines.last != text { collector.lines.append(text) }
            }
            return 0
        }, unmanaged.toOpaque())
        _ = H5Eclear2(chdf5_e_default())
        guard !collector.lines.isEmpty else { return nil }
        // The outermost and innermost descriptions say the most; the middle repeats them.
        if collector.lines.count <= 2 { return collector.lines.joined(separator: ": ") }
        return collector.lines.first! + ": " + collector.lines.last!
    }
}

/// An owned HDF5 identifier that closes itself exactly once.
final class Handle: @unchecked Sendable {
    let id: hid_t
    private let closer: (hid_t) -> herr_t

    init(_ id: hid_t, closer: @escaping (hid_t) -> herr_t) {
        self.id = id
        self.closer = closer
    }

    deinit {
        HDF5Library.locked { _ = closer(id) }
    }

    static func file(_ id: hid_t) -> Handle { Handle(id, closer: H5Fclose) }
    static func group(_ id: hid_t) -> Handle { Handle(id, closer: H5Gclose) }
    static func dataset(_ id: hid_t) -> Handle { Handle(id, closer: H5Dclose) }
    static func attribute(_ id: hid_t) -> Handle { Handle(id, closer: H5Aclose) }
    static func dataspace(_ id: hid_t) -> Handle { Handle(id, closer: H5Sclose) }
    static func datatype(_ id: hid_t) -> Handle { Handle(id, closer: H5Tclose) }
    static func propertyList(_ id: hid_t) -> Handle { Handle(id, closer: H5Pclose) }
    static func object(_ id: hid_t) -> Handle { Handle(id, closer: H5Oclose) }
}
