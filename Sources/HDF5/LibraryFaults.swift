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
        if previous == 0 {
            enteredAt.store(monotonicNanoseconds(), ordering: .sequentiallyConsistent)
            capMemory()
            quietStandardError()
        }
        owner.store(currentThread(), ordering: .sequentiallyConsistent)
        return previous
    }

    static func leave(restoring previous: UInt) {
        owner.store(previous, ordering: .sequentiallyConsistent)
        if previous == 0 {
            uncapMemory()
            restoreStandardError()
        }
    }

    // MARK: Memory

    /// Bytes one outermost HDF5 call may add to the process's data (0: no cap).
    nonisolated(unsafe) private static var memoryBudget = 0
    /// The data limit to restore when the call ends.
    nonisolated(unsafe) private static var savedDataLimit = rlimit()

    /// Caps what one HDF5 call can allocate: a hostile file can declare a metadata object of
    /// gigabytes, which libhdf5 allocates and fills before any check of ours runs (found by
    /// fuzzing: 4.2 GB for a 100 KB file). While a call runs, the process's data limit
    /// (`RLIMIT_DATA`) is its data size at the call's start plus `bytes`; an allocation past
    /// it fails, and libhdf5 reports the failure as an error. The limit is put back when the
    /// call ends. For the command line; a library user keeps control of its own limits.
    ///
    /// The corresponding C functions are `getrlimit` and `setrlimit`.
    package static func limitMemory(perCall bytes: Int) {
        #if os(Linux)
        guard getrlimit(__rlimit_resource_t(RLIMIT_DATA.rawValue), &savedDataLimit) == 0 else { return }
        memoryBudget = bytes
        #endif
    }

    private static func capMemory() {
        #if os(Linux)
        guard memoryBudget > 0, let data = dataBytes() else { return }
        var limit = savedDataLimit
        let capped = rlim_t(clamping: data + memoryBudget)
        limit.rlim_cur = min(savedDataLimit.rlim_cur, capped)
        setrlimit(__rlimit_resource_t(RLIMIT_DATA.rawValue), &limit)
        #endif
    }

    private static func uncapMemory() {
        #if os(Linux)
        guard memoryBudget > 0 else { return }
        setrlimit(__rlimit_resource_t(RLIMIT_DATA.rawValue), &savedDataLimit)
        #endif
    }

    /// The process's data size in bytes (`/proc/self/statm`, sixth field, in pages), what
    /// `RLIMIT_DATA` counts.
    private static func dataBytes() -> Int? {
        #if os(Linux)
        let fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 255) }
        guard count > 0 else { return nil }
        let fields = buffer[..<count].split(separator: UInt8(ascii: " "))
        guard fields.count >= 6, let pages = Int(String(decoding: fields[5], as: UTF8.self)) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        return nil
        #endif
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
        if let hangMessage { _ = write(realStandardError, hangMessage, hangMessageLength) }
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
        // SIGABRT too: glibc aborts when libhdf5 corrupts its heap (a double free on a
        // fuzzed file); outside HDF5 an abort stays an abort (the handler returns, abort(3)
        // raises it again with the default action).
        sigaction(SIGSEGV, &action, nil)
        sigaction(SIGBUS, &action, nil)
        sigaction(SIGABRT, &action, nil)
        // glibc writes its own line ("double free or corruption") to standard error before it
        // aborts; while libhdf5 runs, standard error is the null device, and the handler
        // writes to the real one, so that an error stays one line.
        realStandardError = fcntl(2, F_DUPFD_CLOEXEC, 3)
        nullDevice = open("/dev/null", O_WRONLY | O_CLOEXEC)
        if realStandardError < 0 || nullDevice < 0 { realStandardError = 2; nullDevice = -1 }
        #endif
    }

    /// A duplicate of the process's standard error, where the handler and the watchdog write.
    nonisolated(unsafe) private static var realStandardError: Int32 = 2
    /// The null device, put on descriptor 2 while an HDF5 call runs (-1: not installed).
    nonisolated(unsafe) private static var nullDevice: Int32 = -1

    private static func quietStandardError() {
        #if os(Linux)
        if nullDevice >= 0 { dup2(nullDevice, 2) }
        #endif
    }

    private static func restoreStandardError() {
        #if os(Linux)
        if nullDevice >= 0 { dup2(realStandardError, 2) }
        #endif
    }

    /// The handler: inside HDF5, the message and `_exit(2)`; elsewhere, the default action
    /// back and a return, so the fault recurs as the crash it is.
    private static func handle(_ signal: Int32) {
        #if os(Linux)
        if faultIsInsideHDF5() {
            cleanup?()
            if let message { _ = write(realStandardError, message, messageLength) }
            _exit(2)
        }
        var action = sigaction()
        action.__sigaction_handler.sa_handler = nil
        sigemptyset(&action.sa_mask)
        sigaction(signal, &action, nil)
        #endif
    }
}
