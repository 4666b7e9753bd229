// Threads for the engine: a fork–join over plain threads and a spinning barrier.
//
// Work is split once per layer (directions, batch rows or column panels, see
// `_RecurrentPlan`), so a run starts at most `threads − 1` threads per layer. Members of one
// group that split the columns of a step meet at a barrier twice per step (microseconds
// apart at batch 1), which is why the barrier spins instead of sleeping, and why the workers
// are dedicated threads rather than a shared pool: every member is guaranteed to be running,
// so a spinning member always meets its partners.

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
func _parallel(_ count: Int, _ body: (Int) -> Void) {
    guard count > 1 else {
        if count == 1 { body(0) }
        return
    }
    withoutActuallyEscaping(body) { body in
        final class Job {
            let body: (Int) -> Void
            let index: Int
            init(body: @escaping (Int) -> Void, index: Int) { self.body = body; self.index = index }
        }
        #if canImport(Darwin)
        var threads: [pthread_t?] = []
        #else
        var threads: [pthread_t] = []
        #endif
        for index in 1..<count {
            let job = Unmanaged.passRetained(Job(body: body, index: index)).toOpaque()
            #if canImport(Darwin)
            var thread: pthread_t?
            #else
            var thread = pthread_t()
            #endif
            let status = pthread_create(&thread, nil, { raw in
                #if canImport(Darwin)
                let job = Unmanaged<Job>.fromOpaque(raw).takeRetainedValue()
                #else
                let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
                #endif
                job.body(job.index)
                return nil
            }, job)
            precondition(status == 0, "pthread_create failed with \(status)")
            threads.append(thread)
        }
        body(0)
        for thread in threads {
            #if canImport(Darwin)
            pthread_join(thread!, nil)
            #else
            pthread_join(thread, nil)
            #endif
        }
    }
}

/// A reusable barrier for a fixed number of threads that spins (yielding after a while).
final class _SpinBarrier: Sendable {
    let count: Int
    private let arrived = Atomic<Int>(0)
    private let generation = Atomic<Int>(0)

    init(count: Int) { self.count = count }

    /// Returns once all `count` threads have called `wait()` for this round. Memory written
    /// before a thread's call is visible to every thread after the barrier.
    func wait() {
        let round = generation.load(ordering: .acquiring)
        if arrived.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue == count {
            arrived.store(0, ordering: .relaxed)
            generation.wrappingAdd(1, ordering: .releasing)
            return
        }
        var spins = 0
        while generation.load(ordering: .acquiring) == round {
            spins += 1
            if spins > 20_000 { sched_yield() }
        }
    }
}

/// Wraps a raw pointer (or a struct of them) for use by worker threads that touch disjoint
/// parts of the memory it points to.
struct _Shared<Value>: @unchecked Sendable {
    var value: Value
}
