import CHDF5
import Foundation
import Synchronization

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

    /// The most soft links one path may pass through (HDF5's own default, stated here).
    static let softLinkLimit = 16

    /// Initialises the library once: silences its error printing, turns off filter plugin
    /// loading (a file naming an unknown filter must not make the process `dlopen` a library
    /// from `HDF5_PLUGIN_PATH`), and prepares the link access list every lookup uses.
    ///
    /// The corresponding C functions are `H5open`, `H5Eset_auto2` and `H5PLset_loading_state`.
    private static let initialized: Bool = {
        _ = H5open()
        chdf5_silence_errors()
        _ = H5PLset_loading_state(0)
        return true
    }()

    /// The link access property list passed to every call that follows links: soft links
    /// bounded by `softLinkLimit`, and external links refused by a callback before their
    /// file is opened (defence in depth: each link's type is also checked before it is
    /// followed). The corresponding C functions are `H5Pcreate`, `H5Pset_nlinks` and
    /// `H5Pset_elink_cb`.
    static let linkAccess: hid_t = locked {
        let lapl = H5Pcreate(chdf5_p_link_access())
        precondition(lapl >= 0, "HDF5: cannot create a link access property list")
        _ = H5Pset_nlinks(lapl, softLinkLimit)
        _ = H5Pset_elink_cb(lapl, { _, _, _, _, _, _, _ in
            // Runs with the library lock held, inside the lookup that reached the link.
            HDF5Library.refusedExternalLink = true
            return -1
        }, nil)
        return lapl
    }

    /// Set by the external-link callback when it refused a traversal; read (and cleared)
    /// with `takeRefusedExternalLink()` under the lock.
    nonisolated(unsafe) private static var refusedExternalLink = false

    /// True when an external link was refused since the last call; clears the flag.
    static func takeRefusedExternalLink() -> Bool {
        defer { refusedExternalLink = false }
        return refusedExternalLink
    }

    static func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        _ = initialized
        // Marks this thread as inside HDF5 for the fault handler (see `LibraryFaults`); the
        // previous value is this thread's own (a nested call) or none.
        let previous = LibraryFaults.enter()
        defer { LibraryFaults.leave(restoring: previous) }
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

extension HDF5Library {
    /// True when HDF5 would load filter plugins (it never should after initialisation).
    ///
    /// The corresponding C function is `H5PLget_loading_state`.
    static func pluginLoadingEnabled() -> Bool {
        locked {
            var state: UInt32 = 0
            _ = H5PLget_loading_state(&state)
            return state != 0
        }
    }
}
