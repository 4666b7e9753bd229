import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The temporary files that exist now, kept where a signal handler can remove them.
///
/// An interrupted conversion must not leave hundreds of megabytes of `.partial` files behind.
/// Only async-signal-safe calls may run in a signal handler — no allocation, no locks, no
/// Swift runtime — so the table is prepared beforehand: a fixed array of atomic words, each
/// 0 or the address of a NUL-terminated path. Registering stores the address, unregistering
/// stores 0; the handler loads each word and calls `unlink(2)`, then `_exit(2)`.
///
/// The path strings are never freed: a handler running on another thread may be reading one
/// while the owner unregisters it. That costs a few hundred bytes per written file.
package enum TemporaryFiles {
    /// How many temporaries can be live at once and still be removed on a signal. A
    /// conversion uses two or three; a temporary registered past this bound is still removed
    /// on error, only not on a signal.
    static let capacity = 64

    /// The table: `capacity` atomic words, allocated and zeroed once, never freed.
    nonisolated(unsafe) private static let slots: UnsafeMutablePointer<Atomic<UInt>> = {
        let slots = UnsafeMutablePointer<Atomic<UInt>>.allocate(capacity: capacity)
        for index in 0..<capacity { (slots + index).initialize(to: Atomic(0)) }
        return slots
    }()

    /// Records `path` as a live temporary and returns its slot (nil when the table is full).
    static func register(_ path: String) -> Int? {
        guard let copy = strdup(path) else { return nil }
        let address = UInt(bitPattern: copy)
        for index in 0..<capacity {
            if slots[index].compareExchange(expected: 0, desired: address, ordering: .acquiringAndReleasing).exchanged {
                return index
            }
        }
        return nil
    }

    /// Forgets a temporary that was renamed into place or removed.
    static func unregister(_ slot: Int?) {
        guard let slot else { return }
        slots[slot].store(0, ordering: .releasing)
    }

    /// The paths registered now (for tests).
    static var livePaths: [String] {
        (0..<capacity).compactMap { index in
            UnsafePointer<CChar>(bitPattern: slots[index].load(ordering: .acquiring)).map { String(cString: $0) }
        }
    }

    /// Installs handlers for SIGINT, SIGTERM and SIGHUP that remove every registered
    /// temporary and exit with status 128 + the signal (130, 143, 129), as a shell reports a
    /// process killed by it. A signal the process inherited as ignored stays ignored (a job
    /// started with `nohup`, or in the background by a non-interactive shell).
    ///
    /// For a command-line tool; a library user decides about its own signals. The
    /// corresponding C function is `sigaction`.
    package static func removeOnInterrupt() {
        _ = slots  // The table must exist before a handler can run: initialising it allocates.
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            var current = sigaction()
            guard sigaction(signal, nil, &current) == 0, !isIgnored(current) else { continue }
            var action = sigaction()
            #if os(Linux)
            action.__sigaction_handler.sa_handler = { received in TemporaryFiles.removeAllAndExit(received) }
            #else
            action.__sigaction_u.__sa_handler = { received in TemporaryFiles.removeAllAndExit(received) }
            #endif
            sigemptyset(&action.sa_mask)
            sigaction(signal, &action, nil)
        }
    }

    private static func isIgnored(_ action: sigaction) -> Bool {
        #if os(Linux)
        let handler = action.__sigaction_handler.sa_handler
        #else
        let handler = action.__sigaction_u.__sa_handler
        #endif
        return unsafeBitCast(handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
    }

    /// Removes every registered temporary. Async-signal-safe: atomic loads and `unlink(2)`
    /// only, so a fault or signal handler may call it.
    package static func removeAllFromSignalHandler() {
        for index in 0..<capacity {
            if let path = UnsafePointer<CChar>(bitPattern: slots[index].load(ordering: .acquiring)) {
                unlink(path)
            }
        }
    }

    private static func removeAllAndExit(_ signal: Int32) {
        removeAllFromSignalHandler()
        _exit(128 + signal)
    }
}
