import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Turns a memory fault inside libhdf5 into a one-line error, and only there.
///
/// libhdf5 (1.10 in particular) can fault on a deliberately damaged file, inside its own
/// code, before any check of ours can run. While a thread is inside `HDF5Library.locked`,
/// its id is kept in `owner`; a SIGSEGV or SIGBUS on that thread writes the prepared
/// message and exits with status 2. A fault anywhere else — the engine, the kernels, another
/// thread while one reads HDF5 — is a real crash: the handler puts back the default action
/// and returns, the faulting instruction runs again, and the process dies of the signal.
package enum LibraryFaults {
    /// The thread inside HDF5 (`pthread_self()`), or 0. An atomic: the handler reads it.
    private static let owner = Atomic<UInt>(0)

    /// When the outermost HDF5 call now running began (`CLOCK_MONOTONIC`, nanoseconds);
    /// stored before `owner`, so a watchdog that sees an owner sees its start or a later one.
    private static let enteredAt = Atomic<UInt64>(0)

    /// The message the handler writes, prepared when it is installed: a signal handler may
    /// only write bytes and exit.
    nonisolated(unsafe) private static var message: UnsafeMutablePointer<CChar>?
    nonisolated(unsafe) private static var messageLength = 0

    /// Called by the handler before it exits on a fault inside HDF5 (it removes the
    /// caller's temporary files); must be async-signal-safe.
    nonisolated(unsafe) private static var cleanup: (@convention(c) () -> Void)?

    /// Marks the calling thread as inside HDF5; returns what to restore in `leave`.
    static func enter() -> UInt {
        let previous = owner.load(ordering: .relaxed)
        if previous == 0 { enteredAt.store(monotonicNanoseconds(), ordering: .sequentiallyConsistent) }
        owner.store(currentThread(), ordering: .sequentiallyConsistent)
        return previous
    }

    static func leave(restoring previous: UInt) {
        owner.store(previous, ordering: .sequentiallyConsistent)
    }

    /// True when a fault on the calling thread now would be libhdf5's: the thread is inside
    /// `HDF5Library.locked`. Async-signal-safe (an atomic load and `pthread_self`).
    package static func faultIsInsideHDF5() -> Bool {
        let inside = owner.load(ordering: .sequentiallyConsistent)
        return inside != 0 && inside == currentThread()
    }

    private static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// Starts a thread that ends the process when one HDF5 call has run for longer than
    /// `seconds`: a hostile file can make libhdf5 loop for ever (a global heap whose
    /// collection points at itself, found by fuzzing), and no check of ours runs while it
    /// does. The watchdog runs `cleanup`, writes `message` (one escaped line ending in a
    /// newline) and exits with status 2, as for a fault.
    package static func watch(calls seconds: Double, message text: String, cleanup: (@convention(c) () -> Void)? = nil) {
        hangMessage = strdup(text)
        hangMessageLength = text.utf8.count
        hangLimit = UInt64(seconds * 1e9)
        hangCleanup = cleanup
        let thread = Thread { while true { usleep(50_000); checkForHang() } }
        thread.name = "HDF5 watchdog"
        thread.start()
    }

    nonisolated(unsafe) private static var hangMessage: UnsafeMutablePointer<CChar>?
    nonisolated(unsafe) private static var hangMessageLength = 0
    nonisolated(unsafe) private static var hangLimit: UInt64 = .max
    nonisolated(unsafe) private static var hangCleanup: (@convention(c) () -> Void)?

    /// The watchdog's check: an HDF5 call running for longer than the limit ends the process.
    private static func checkForHang() {
        let inside = owner.load(ordering: .sequentiallyConsistent)
        let start = enteredAt.load(ordering: .sequentiallyConsistent)
        let now = monotonicNanoseconds()
        guard inside != 0, now > start, now - start > hangLimit else { return }
        hangCleanup?()
        if let hangMessage { _ = write(2, hangMessage, hangMessageLength) }
        _exit(2)
    }

    private static func currentThread() -> UInt {
        #if os(Linux)
        return UInt(pthread_self())
        #else
        return UInt(bitPattern: pthread_self())
        #endif
    }

    /// Installs the SIGSEGV and SIGBUS handler, with `message` (one line, already escaped,
    /// ending in a newline) as what a fault inside HDF5 prints, and `cleanup` (async-signal-
    /// safe) as what runs before it exits. The handler runs on an alternate stack, so that a
    /// stack overflow inside libhdf5 is reported too.
    ///
    /// The corresponding C functions are `sigaltstack` and `sigaction`.
    package static func install(message text: String, cleanup: (@convention(c) () -> Void)? = nil) {
        #if os(Linux)
        self.cleanup = cleanup
        messageLength = text.utf8.count
        message = strdup(text)
        var stack = stack_t()
        let stackSize = 1 << 16
        stack.ss_sp = UnsafeMutableRawPointer.allocate(byteCount: stackSize, alignment: 16)
        stack.ss_size = stackSize
        stack.ss_flags = 0
        sigaltstack(&stack, nil)
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { signal in LibraryFaults.handle(signal) }
        action.sa_flags = SA_ONSTACK
        sigemptyset(&action.sa_mask)
        sigaction(SIGSEGV, &action, nil)
        sigaction(SIGBUS, &action, nil)
        #endif
    }

    /// The handler: inside HDF5, the message and `_exit(2)`; elsewhere, the default action
    /// back and a return, so the fault recurs as the crash it is.
    private static func handle(_ signal: Int32) {
        #if os(Linux)
        if faultIsInsideHDF5() {
            cleanup?()
            if let message { _ = write(2, message, messageLength) }
            _exit(2)
        }
        var action = sigaction()
        action.__sigaction_handler.sa_handler = nil
        sigemptyset(&action.sa_mask)
        sigaction(signal, &action, nil)
        #endif
    }
}
