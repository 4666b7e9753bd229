// The memory of a recurrent layer's run: its state in buffers of its own for the run, the
// scratch each group's time loop works in, and the one box (`LayerMemory`) through which
// the threads of a run share them. Everything is allocated before the time loop starts and
// freed after the last thread has returned.

/// Everything one layer's threads read and write during a run, as raw pointers.
///
/// This is the one place the engine shares memory between threads without the compiler's
/// check, and it is safe for two reasons. Disjoint writes: a group owns its direction and
/// batch rows (its slices of `h`, `c`, `carried`, `raw` and its own `scratch`), and within a
/// group each member writes only its own hidden units' columns (`MemberPlan.units`) and its
/// own part of `scratch.inputs`; nothing else is written while threads run. Ordered reads:
/// what a thread reads of another's writes (a partner's slice of the next `h`; in a pipeline
/// the layer before's outputs `x`) it reads only after the writer's arrival at a
/// `SpinBarrier` that it has waited for (a release store and an acquire load). The pointers
/// are allocated before the fork–join (`runParallel`) and freed after it returns.
struct LayerMemory: @unchecked Sendable {
    /// `[B, T, I]`; nil (not read) with `tokens`.
    var x: UnsafePointer<Float>?
    /// `[B, T]` token ids whose input projections the directions' `tokenProjection` holds.
    var tokens: UnsafePointer<Int>?
    /// `[B, T]`, or nil when every step is valid.
    var mask: UnsafePointer<Bool>?
    /// `[D, B, R]`.
    var h: UnsafeMutablePointer<Float>
    /// `[D, B, H]` (LSTM only).
    var c: UnsafeMutablePointer<Float>?
    /// `[D, B, R]`.
    var carried: UnsafeMutablePointer<Float>
    /// `[B, T, D·R]` when the layer returns sequences.
    var raw: UnsafeMutablePointer<Float>?
    /// One per group of the layer's plan.
    var scratch: [StepScratch]
}

/// One layer's part of `runRecurrentStack`: how its work is split, its scratch, and its
/// state in buffers of its own for the run (copied in and written back). It owns the memory
/// and stays on the calling thread; the threads get `task(...)`.
struct LayerRun {
    let layer: PreparedRecurrent
    let plan: RecurrentLayerPlan
    let scratch: [StepScratch]
    let barriers: [SpinBarrier?]
    /// In a pipeline, the steps each worker has finished (one arrival per step, per plan slot),
    /// which the next layer waits for.
    let progress: SpinBarrier?
    /// `[D, B, R]`, `[D, B, H]` (LSTM), `[D, B, R]`.
    let h: UnsafeMutablePointer<Float>
    let c: UnsafeMutablePointer<Float>?
    let carried: UnsafeMutablePointer<Float>
    /// Floats of the raw output, `[B, T, D·R]`, when the layer returns sequences.
    let rawCount: Int

    init(_ layer: PreparedRecurrent, state: LayerState, batch: Int, time: Int, threads: Int, pipelined: Bool) {
        self.layer = layer
        plan = RecurrentLayerPlan(layer, threads: threads, batch: batch)
        // A pipelined layer projects its inputs a few steps at a time (about 16 rows), so that
        // the next layer starts early and finds them written.
        let chunk = pipelined ? Swift.max(1, 16 / Swift.max(1, batch)) : nil
        scratch = plan.groups.map {
            StepScratch(layer: layer, rows: $0.rows.count, members: $0.members, time: time, chunk: chunk)
        }
        barriers = plan.groups.map { $0.members > 1 ? SpinBarrier(count: $0.members) : nil }
        progress = pipelined ? SpinBarrier(count: plan.slotCount) : nil
        h = allocateAligned(state.h.count)
        h.initialize(from: state.h, count: state.h.count)
        if layer.kind == .lstm, let values = state.c {
            let c = allocateAligned(values.count)
            c.initialize(from: values, count: values.count)
            self.c = c
        } else {
            c = nil
        }
        carried = allocateAligned(state.carried.count)
        carried.initialize(from: state.carried, count: state.carried.count)
        rawCount = layer.returnSequences ? batch * time * layer.directionCount * layer.outputSize : 0
    }

    /// What the layer's threads need, with its inputs `x` (or `tokens`), the run's `mask` and
    /// its raw outputs; `source` is the layer before's `progress` in a pipeline.
    func task(x: UnsafePointer<Float>?, tokens: UnsafePointer<Int>?, mask: UnsafePointer<Bool>?,
              raw: UnsafeMutablePointer<Float>?, source: SpinBarrier?) -> LayerTask {
        LayerTask(layer: layer, plan: plan, barriers: barriers, progress: progress, source: source,
                   memory: LayerMemory(x: x, tokens: tokens, mask: mask, h: h, c: c, carried: carried, raw: raw,
                                        scratch: scratch))
    }

    /// The final state.
    func write(to state: inout LayerState) {
        state.h = Array(UnsafeBufferPointer(start: h, count: state.h.count))
        if let c, let count = state.c?.count { state.c = Array(UnsafeBufferPointer(start: c, count: count)) }
        state.carried = Array(UnsafeBufferPointer(start: carried, count: state.carried.count))
    }

    func deallocate() {
        for s in scratch { s.deallocate() }
        h.deallocate(); c?.deallocate(); carried.deallocate()
    }
}

/// One layer of a run as its threads see it.
struct LayerTask: Sendable {
    let layer: PreparedRecurrent
    let plan: RecurrentLayerPlan
    let barriers: [SpinBarrier?]
    let progress: SpinBarrier?
    /// In a pipeline, the layer before's `progress`.
    let source: SpinBarrier?
    let memory: LayerMemory
}

/// Per-group buffers, `rows` batch rows each, allocated (64-byte aligned) before the loop.
struct StepScratch {
    /// `[chunk, rows, G·H]`: the input projections of `chunk` consecutive steps, then their
    /// gate pre-activations in place. A chunk of about 1 MB stays in the L2 cache between
    /// the projection and the steps that read it.
    var gates: UnsafeMutablePointer<Float>
    var chunk: Int
    /// Per member, `[chunk, rows, I]`: the chunk's inputs, time-major in processing order, as
    /// one contiguous left operand for the input projection.
    var inputs: UnsafeMutablePointer<Float>
    /// `[2, rows, R]`: `h` before and after a step, alternating (step `s` reads buffer `s % 2`
    /// and writes the other), so that members splitting a step's columns need one barrier per
    /// step.
    var hBuffers: UnsafeMutablePointer<Float>
    /// `[rows, R]`: the new `h` before it is committed to valid rows.
    var newH: UnsafeMutablePointer<Float>
    /// `[rows, H]`: the new `c` (LSTM).
    var newC: UnsafeMutablePointer<Float>
    /// `[rows, H]`: LSTM `o ⊙ φ(c')` before the projection; GRU `U_n h + b_hn` or `r ⊙ h`.
    var work: UnsafeMutablePointer<Float>
    /// `members + 1` unit boundaries: member `m` owns hidden units `memberBounds[m] ..<
    /// memberBounds[m + 1]` (read by `StepWait`).
    var memberBounds: UnsafeMutablePointer<Int>

    /// `chunk`: steps per input projection; by default as many as fill about 1 MB of gates.
    init(layer: PreparedRecurrent, rows: Int, members: Int, time: Int, chunk: Int? = nil) {
        let gateWidth = layer.gateCount * layer.hiddenSize
        self.chunk = Swift.max(1, Swift.min(time, chunk ?? (1 << 18) / Swift.max(1, rows * gateWidth)))
        gates = allocateAligned(self.chunk * rows * gateWidth)
        inputs = allocateAligned(members * self.chunk * rows * layer.inputSize)
        hBuffers = allocateAligned(2 * rows * layer.outputSize)
        newH = allocateAligned(rows * layer.outputSize)
        newC = allocateAligned(rows * layer.hiddenSize)
        work = allocateAligned(rows * layer.hiddenSize)
        memberBounds = .allocate(capacity: members + 1)
        for member in 0..<members {
            memberBounds[member] = shareOf(layer.hiddenSize, members: members, member: member,
                                          granule: PackedMatrix.panelWidth).lowerBound
        }
        memberBounds[members] = layer.hiddenSize
    }

    func deallocate() {
        gates.deallocate(); inputs.deallocate(); hBuffers.deallocate()
        newH.deallocate(); newC.deallocate(); work.deallocate(); memberBounds.deallocate()
    }
}

/// Pointers to one direction's prepared weights and tables for the time loop.
struct PinnedDirection {
    /// Packed `W`, `U`, GRU's `U_n` and LSTM's projection `W_hr` (see `PreparedDirection`).
    let w: UnsafePointer<Float>
    let u: UnsafePointer<Float>
    let un: UnsafePointer<Float>?
    let projection: UnsafePointer<Float>?
    /// `[G·H]`, and GRU `.afterMatmul`'s `b_hn` `[H]`.
    let bias: UnsafePointer<Float>
    let recurrentNewBias: UnsafePointer<Float>?
    /// `[V, G·H]` after an embedding.
    let tokenProjection: UnsafePointer<Float>?
    /// Columns of `U` (`G·H`, GRU `2H`).
    let recurrentColumns: Int
}

/// Calls `body` with pointers to `weights`' matrices and arrays, valid inside it.
func withPinned<R>(_ weights: PreparedDirection, _ body: (PinnedDirection) -> R) -> R {
    // The packed matrices stay alive with `weights`; the arrays are pinned one by one.
    withExtendedLifetime(weights) {
        weights.bias.withUnsafeBufferPointer { bias in
            withOptionalBuffer(weights.recurrentNewBias) { recurrentNewBias in
                withOptionalBuffer(weights.tokenProjection) { tokenProjection in
                    body(PinnedDirection(
                        w: weights.inputWeight.base, u: weights.recurrentWeight.base,
                        un: weights.recurrentNewWeight?.base, projection: weights.projection?.base,
                        bias: bias.baseAddress!, recurrentNewBias: recurrentNewBias,
                        tokenProjection: tokenProjection, recurrentColumns: weights.recurrentWeight.columns))
                }
            }
        }
    }
}

/// Arrays of `counts` floats, uninitialised unless `zero`, that `body` fills through their
/// base addresses (nil for an empty one).
func withOutputs(_ counts: ArraySlice<Int>, zero: Bool,
                  _ body: ([UnsafeMutablePointer<Float>?]) -> Void) -> [[Float]] {
    guard let count = counts.first else {
        body([])
        return []
    }
    var rest: [[Float]] = []
    let first = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        if let base = buffer.baseAddress { adviseHugePages(base, count: count) }
        if zero { buffer.initialize(repeating: 0) }
        rest = withOutputs(counts.dropFirst(), zero: zero) { others in
            body([count > 0 ? buffer.baseAddress : nil] + others)
        }
        initialized = count
    }
    return [first] + rest
}

/// Calls `body` with the array's base address, or nil for a nil array.
func withOptionalBuffer<Element, R>(_ values: [Element]?, _ body: (UnsafePointer<Element>?) -> R) -> R {
    guard let values else { return body(nil) }
    return values.withUnsafeBufferPointer { body($0.baseAddress) }
}
