// Threads for the engine: a fork–join over dedicated worker threads and a spinning barrier.
//
// Work is split once per layer (directions, batch rows or column panels, see
// `RecurrentLayerPlan`), or once per stack of layers run as a pipeline (`pipelineLength`). Members of one group that split the columns of a step meet at a barrier
// once per step (microseconds apart at batch 1), which is why the barrier spins instead of
// sleeping, and why every member of a fork–join runs on a thread of its own: a spinning
// member always meets its partners.
//
// The worker threads are kept for the life of the process (`WorkerPool`): creating a thread
// costs tens to hundreds of microseconds, paid per layer per run, a few percent of a batch-1
// run. An idle worker spins for about a millisecond, so that back-to-back layers and runs hand
// over work within a cache-line transfer, then sleeps on a condition variable. One fork–join
// uses the pool at a time; a concurrent one (another thread's run) starts threads of its own,
// so that two runs never wait on each other's members.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Runs `body(0)`, ..., `body(count − 1)` concurrently, `body(0)` on the calling thread, and
/// returns when all have returned.
func runParallel(_ count: Int, _ body: @Sendable (Int) -> Void) {
    guard count > 1 else {
        if count == 1 { body(0) }
        return
    }
    if WorkerPool.shared.run(count, body) { return }
    parallelOnNewThreads(count, body)
}

/// `runParallel` on threads started for this call and joined before it returns.
func parallelOnNewThreads(_ count: Int, _ body: @Sendable (Int) -> Void) {
    // The threads are joined before `body` goes out of scope.
    withoutActuallyEscaping(body) { body in
        let threads = (1..<count).map { index in
            guard let thread = startThread({ body(index) }) else { preconditionFailure("pthread_create failed") }
            return thread
        }
        body(0)
        for thread in threads { thread.join() }
    }
}

/// A started thread.
struct WorkerThread {
    #if canImport(Darwin)
    let handle: pthread_t?
    func join() { pthread_join(handle!, nil) }
    func detach() { pthread_detach(handle!) }
    #else
    let handle: pthread_t
    func join() { pthread_join(handle, nil) }
    func detach() { pthread_detach(handle) }
    #endif
}

/// Starts a thread running `body`; nil if the system refuses one.
func startThread(_ body: @escaping @Sendable () -> Void) -> WorkerThread? {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    #if canImport(Darwin)
    var thread: pthread_t?
    #else
    var thread = pthread_t()
    #endif
    let status = pthread_create(&thread, nil, { raw in
        #if canImport(Darwin)
        Unmanaged<Box>.fromOpaque(raw).takeRetainedValue().body()
        #else
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        #endif
        return nil
    }, box)
    guard status == 0 else {
        Unmanaged<Box>.fromOpaque(box).release()
        return nil
    }
    return WorkerThread(handle: thread)
}

/// Worker threads kept for the process, used by one fork–join at a time.
final class WorkerPool: Sendable {
    static let shared = WorkerPool()

    /// The workers, grown on demand; held by one fork–join at a time.
    private let workers = Mutex<[PoolWorker]>([])

    /// Runs `body(1)`, ..., `body(count − 1)` on workers and `body(0)` here, and returns true
    /// once all have returned; returns false at once, running nothing, if the pool is in use.
    func run(_ count: Int, _ body: @Sendable (Int) -> Void) -> Bool {
        let ran = workers.withLockIfAvailable { workers -> Bool in
            while workers.count < count - 1 {
                guard let worker = PoolWorker() else { return false }
                workers.append(worker)
            }
            // The workers have finished with `body` before this returns.
            withoutActuallyEscaping(body) { body in
                let job = Job(body: body)
                for index in 1..<count { workers[index - 1].post(job, index: index) }
                body(0)
                for index in 1..<count { workers[index - 1].waitUntilDone() }
            }
            return true
        }
        return ran ?? false
    }
}

/// What a worker runs: `body(index)`.
final class Job: Sendable {
    let body: @Sendable (Int) -> Void
    init(body: @escaping @Sendable (Int) -> Void) { self.body = body }
}

/// One worker thread: waits for a posted job (spinning, then sleeping), runs it, reports done.
final class PoolWorker: Sendable {
    /// Idle spinning before sleeping, in nanoseconds.
    static let spinNanoseconds = 1_000_000

    /// Bumped by `post`; the worker runs one job per increment.
    private let posted = Atomic<Int>(0)
    /// Set by the worker to the value of `posted` whose job it finished.
    private let finished = Atomic<Int>(0)
    /// True while the worker sleeps, or is about to, on `idle`.
    private let sleeping = Atomic<Bool>(false)
    /// The job and index of the latest post; set before `posted` is bumped.
    private let latest = Mutex<(job: Job?, index: Int)>((nil, 0))
    private let idle = IdleCondition()

    /// Starts the thread; nil if the system refuses one.
    init?() {
        // The thread holds the worker for the life of the process.
        guard let thread = startThread({ [self] in self.loop() }) else { return nil }
        thread.detach()
    }

    func post(_ job: Job, index: Int) {
        latest.withLock { $0 = (job, index) }
        posted.wrappingAdd(1, ordering: .sequentiallyConsistent)
        if sleeping.load(ordering: .sequentiallyConsistent) { idle.signal() }
    }

    /// Spins until the job of the latest `post` has returned.
    func waitUntilDone() {
        let target = posted.load(ordering: .relaxed)
        spinWait { finished.load(ordering: .acquiring) == target }
    }

    /// Takes the latest job and runs it. Its own function so that the worker's reference to
    /// the job is gone when it returns: the poster runs `body` inside
    /// `withoutActuallyEscaping` and checks, once every worker reports done, that no
    /// reference outlives it (a local released after `finished` is stored trips that check).
    @inline(never)
    private func runLatestJob() {
        let (job, index) = latest.withLock { latest in
            defer { latest.job = nil }
            return (latest.job!, latest.index)
        }
        job.body(index)
    }

    private func loop() -> Never {
        var seen = 0
        while true {
            var spins = 0
            var since = monotonicClockNanoseconds()
            while posted.load(ordering: .acquiring) == seen {
                spins += 1
                guard spins & 1023 == 0 else { continue }
                if monotonicClockNanoseconds() - since < Self.spinNanoseconds { continue }
                idle.wait {
                    sleeping.store(true, ordering: .sequentiallyConsistent)
                    return posted.load(ordering: .sequentiallyConsistent) != seen
                }
                sleeping.store(false, ordering: .relaxed)
                since = monotonicClockNanoseconds()
            }
            seen = posted.load(ordering: .acquiring)
            runLatestJob()
            finished.store(seen, ordering: .releasing)
        }
    }
}

/// A pthread mutex and condition variable that an idle worker sleeps on.
///
/// `@unchecked Sendable`: pthread mutexes and condition variables exist to be shared between
/// threads; every access goes through the pthread calls, and the pointers themselves never
/// change after `init` (the objects live as long as the process's workers).
final class IdleCondition: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    /// Sleeps, holding the mutex while `ready()` is evaluated, until `ready()` holds.
    func wait(until ready: () -> Bool) {
        pthread_mutex_lock(mutex)
        while !ready() { pthread_cond_wait(condition, mutex) }
        pthread_mutex_unlock(mutex)
    }

    /// Wakes a sleeper, after any `ready()` check in progress.
    func signal() {
        pthread_mutex_lock(mutex)
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }
}

/// Spins until `done()` holds, yielding the core on each try after the first 20 000.
@inline(__always)
func spinWait(until done: () -> Bool) {
    var spins = 0
    while !done() {
        spins += 1
        if spins > 20_000 { sched_yield() }
    }
}

/// A monotonic clock in nanoseconds.
func monotonicClockNanoseconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int(now.tv_sec) * 1_000_000_000 + Int(now.tv_nsec)
}

/// A reusable barrier for a fixed number of threads that spins (yielding after a while).
///
/// Each member counts its rounds in a slot of its own, on a cache line of its own, and waits
/// until every other member's count has caught up: one store and, when a partner is already
/// there, one cache-line transfer per round, instead of a shared counter that every member
/// modifies.
final class SpinBarrier: Sendable {
    let count: Int
    private let slots: [BarrierSlot]

    init(count: Int) {
        self.count = count
        slots = (0..<count).map { _ in BarrierSlot() }
    }

    /// Returns once all `count` members have called `wait(member:)` as many times as this
    /// member has. Memory written before a member's call is visible to every member after it.
    func wait(member: Int) {
        let round = arrive(member: member)
        for other in 0..<count where other != member { wait(for: other, rounds: round) }
    }

    /// Counts one more round for `member`, without waiting, and returns its count. Memory
    /// written before is visible to a member whose `wait(for:rounds:)` sees the count.
    @discardableResult
    func arrive(member: Int) -> Int {
        let round = slots[member].rounds.load(ordering: .relaxed) &+ 1
        slots[member].rounds.store(round, ordering: .releasing)
        return round
    }

    /// Returns once `other` has arrived `rounds` times.
    func wait(for other: Int, rounds: Int) {
        spinWait { slots[other].rounds.load(ordering: .acquiring) >= rounds }
    }
}

/// One member's round count, alone on its cache line (padding on both sides keeps any other
/// slot's counter at least 64 bytes away).
final class BarrierSlot: Sendable {
    private let before: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
    let rounds = Atomic<Int>(0)
    private let after: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
}
