// The recurrence: recurrent layers over a masked sequence.
//
// Layout for speed: per direction, the input projection of all steps is one matrix product
// `[B·T, I] × [I, G·H]` (biases folded in), stored time-major `[T, B, G·H]` so that one
// step's gates for a block of batch rows are contiguous; the time loop then only accumulates
// the state product `[B, R] × [R, G·H]` into them (the kernel's 8-row blocks run over the
// batch) and applies the gates. Every buffer the loop touches is allocated before it starts.
// A single row (batch 1) runs each step fused (FusedStep.swift): per block of 32 units, the
// product's accumulators go straight into the cell arithmetic. A layer right after an
// embedding looks its projection up per token (`PreparedDirection.tokenProjection`).
//
// Threads (`_RecurrentPlan`): directions run in parallel; within a direction, batch rows are
// split when there are at least 8 per thread, else the hidden units (their gate columns of
// every product, and their state update) are split between threads that meet once per step
// after writing their part of the new `h` (for a single row, inside the next step's product
// where it reaches a partner's part: `_StepWait`). At such small batches a stack of
// one-direction layers runs as a pipeline instead (`_pipelineLength`): every layer at once on
// threads of its own, each chunk of a layer's steps starting once the layer before has
// written the outputs that chunk projects. Step by step the work is the same, so are the bits.

/// Data flowing between layers.
struct _Flow {
    /// `[batch, time, features]` when `time` is set, else `[batch, features]`.
    var values: [Float]
    var batch: Int
    var time: Int?
    var features: Int
    /// `[batch, time]`, true where a step is valid; nil means every step is valid.
    /// Only present with a time axis.
    var mask: [Bool]?

    var shape: [Int] { time.map { [batch, $0, features] } ?? [batch, features] }

    /// ANDs `other` into the mask.
    mutating func intersectMask(_ other: [Bool]) {
        if let current = mask {
            mask = zip(current, other).map { $0 && $1 }
        } else {
            mask = other
        }
    }
}

/// The running state of one recurrent layer, every direction, as flat arrays.
struct _LayerState: Sendable {
    /// `[D, B, R]`.
    var h: [Float]
    /// `[D, B, H]`, LSTM only.
    var c: [Float]?
    /// `[D, B, R]`: the last output emitted at a valid step (zero before any), which a
    /// `.carry` layer repeats at masked steps. Kept so that streaming in chunks matches a
    /// full run even when a chunk boundary falls inside a masked stretch.
    var carried: [Float]
}

/// How one recurrent layer's work is split over threads.
///
/// A group is one direction over a range of batch rows; its `members` threads split the
/// columns of every step's product and the hidden units of its state update.
struct _RecurrentPlan: Equatable {
    struct Group: Equatable {
        var direction: Int
        var rows: Range<Int>
        var members: Int
    }
    struct Assignment: Equatable {
        var group: Int
        var member: Int
    }
    var groups: [Group]
    /// For each thread, the group members it runs, in order.
    var work: [[Assignment]]

    /// Group members in all (`slot` numbers them).
    var slotCount: Int { groups.reduce(0) { $0 + $1.members } }

    /// A number of its own for each group member, in `0 ..< slotCount`.
    func slot(_ assignment: Assignment) -> Int {
        groups[..<assignment.group].reduce(0) { $0 + $1.members } + assignment.member
    }

    /// - `columnSplittable`: whether a step's state update for one hidden unit needs only
    ///   that unit's gates (not so for a projected LSTM or a `.beforeMatmul` GRU, whose second
    ///   product needs every unit), and the hidden size is a multiple of the panel width, so
    ///   that each member's units are whole column panels of every gate block.
    init(threads: Int, directions: Int, batch: Int, columnSplittable: Bool) {
        let threads = Swift.max(1, threads)
        groups = []
        work = []
        if threads == 1 || directions >= threads {
            groups = (0..<directions).map { Group(direction: $0, rows: 0..<batch, members: 1) }
            let workers = Swift.min(threads, directions)
            work = Array(repeating: [], count: workers)
            for g in groups.indices { work[g % workers].append(Assignment(group: g, member: 0)) }
            return
        }
        let perDirection = threads / directions
        for d in 0..<directions {
            if batch >= 8 * perDirection {
                // Row blocks in multiples of the kernel's 8 rows.
                let chunk = ((batch + perDirection - 1) / perDirection + 7) / 8 * 8
                var start = 0
                while start < batch {
                    groups.append(Group(direction: d, rows: start..<Swift.min(batch, start + chunk), members: 1))
                    work.append([Assignment(group: groups.count - 1, member: 0)])
                    start += chunk
                }
            } else if columnSplittable {
                groups.append(Group(direction: d, rows: 0..<batch, members: perDirection))
                for member in 0..<perDirection { work.append([Assignment(group: groups.count - 1, member: member)]) }
            } else {
                groups.append(Group(direction: d, rows: 0..<batch, members: 1))
                work.append([Assignment(group: groups.count - 1, member: 0)])
            }
        }
    }
}

/// Member `member`'s share of `0..<total` split into `members` parts on multiples of `granule`.
func _share(_ total: Int, members: Int, member: Int, granule: Int = 1) -> Range<Int> {
    guard members > 1 else { return 0..<total }
    let chunks = (total + granule - 1) / granule
    let lower = Swift.min(total, (chunks * member / members) * granule)
    let upper = Swift.min(total, (chunks * (member + 1) / members) * granule)
    return lower..<upper
}

/// The memory one layer's workers share; each writes a disjoint part.
struct _LayerMemory {
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
}

/// How many of `layers` (consecutive recurrent layers, the first first) run as one pipeline
/// on `threads` threads over `batch` rows: 1 when they run one after the other.
///
/// A pipeline runs its layers at once, each on threads of its own, every layer's steps reading
/// the previous layer's outputs as they are written: a stack of one-direction layers at a batch
/// too small to split by rows, where the layers would otherwise split each step's units between
/// threads that meet at every step. A layer can follow the one before when both have one
/// direction, the one before returns sequences and this one runs forward (its step `t` reads
/// output `t`, which the one before writes at its step `t`, forward or `goBackwards`).
func _pipelineLength(_ layers: ArraySlice<PreparedRecurrent>, threads: Int, batch: Int) -> Int {
    guard threads >= 2, batch < 8 * threads, let first = layers.first, first.directionCount == 1 else { return 1 }
    var length = 1
    var previous = first
    for layer in layers.dropFirst() {
        guard length < threads, previous.returnSequences, layer.directionCount == 1, !layer.goBackwards else { break }
        length += 1
        previous = layer
    }
    return length
}

/// Runs `layers` over `flow` (`[B, T, I]`), each one's output the next one's input, updating
/// `states` (one per layer) to their final states, and returns the last layer's output.
///
/// Per direction and valid step (masked steps keep the state and emit zero or the carried
/// output), with σ the recurrent activation and φ the activation:
/// - RNN: `h' = φ(W x + b_ih + U h + b_hh)`;
/// - LSTM: `i, f, o = σ(·)`, `g = φ(W_g x + b_g + U_g h)`, `c' = f ⊙ c + i ⊙ g`,
///   `h' = o ⊙ φ(c')`, then `h' = W_hr h'` with a projection;
/// - GRU: `r, z = σ(·)`, `n = φ(W_n x + b_in + r ⊙ (U_n h + b_hn))` (`.afterMatmul`) or
///   `n = φ(W_n x + b_n + U_n (r ⊙ h))` (`.beforeMatmul`), `h' = n + z ⊙ (h − n)`.
///
/// More than one layer runs as a pipeline (`_pipelineLength`), with the same results, bit for
/// bit, as running them one after the other.
///
/// Returns `[B, T, merged]` with `returnSequences`, else `[B, merged]` from each
/// direction's final `h`. The result does not depend on `threads`, bit for bit.
///
/// With `tokens` (`[B, T]` ids, for a first layer whose directions have a `tokenProjection`), the
/// input projection of each step is looked up by token and `flow.values` is not read.
func _runRecurrentStack(_ layers: [PreparedRecurrent], flow: _Flow, states: inout [_LayerState], threads: Int,
                        tokens: [Int]?) -> _Flow {
    let batch = flow.batch
    let time = flow.time ?? 0
    let pipelined = layers.count > 1
    // Threads per layer: an even share, the first layers taking what is left over.
    let shares = layers.indices.map { threads / layers.count + ($0 < threads % layers.count ? 1 : 0) }
    let runs = layers.indices.map { i in
        _LayerRun(layers[i], state: states[i], batch: batch, time: time, threads: shares[i], pipelined: pipelined)
    }
    defer { for run in runs { run.deallocate() } }

    // Raw per-step outputs, directions side by side (concat layout), merged at the end.
    // Without a mask every step of every row is written, so no zero fill is needed; masked
    // steps of a `.zero` layer stay zero.
    let outputs = _withOutputs(runs.map { $0.rawCount }[...], zero: flow.mask != nil) { raws in
        guard batch > 0 && time > 0 else { return }
        flow.values.withUnsafeBufferPointer { x in
        _withOptionalBuffer(tokens) { tokens in
        _withOptionalBuffer(flow.mask) { mask in
            let memories = runs.indices.map { i in
                _LayerMemory(x: i == 0 ? x.baseAddress : UnsafePointer(raws[i - 1]), tokens: i == 0 ? tokens : nil,
                             mask: mask, h: runs[i].h, c: runs[i].c, carried: runs[i].carried, raw: raws[i])
            }
            // One job per worker of every layer; in a pipeline each has one group member.
            let jobs = runs.indices.flatMap { i in runs[i].plan.work.indices.map { (layer: i, worker: $0) } }
            let shared = _Shared(value: memories)
            _parallel(jobs.count) { job in
                let (i, worker) = jobs[job]
                let run = runs[i]
                for assignment in run.plan.work[worker] {
                    _runGroup(run.layer, group: run.plan.groups[assignment.group], member: assignment.member,
                              barrier: run.barriers[assignment.group], scratch: run.scratch[assignment.group],
                              memory: shared.value[i], batch: batch, time: time,
                              source: i > 0 ? runs[i - 1].progress : nil,
                              progress: run.progress.map { ($0, run.plan.slot(assignment)) })
                }
            }
        }
        }
        }
    }
    for i in runs.indices { runs[i].write(to: &states[i]) }

    let layer = layers[layers.count - 1]
    let state = states[states.count - 1]
    let recurrentSize = layer.outputSize
    if layer.returnSequences {
        let merged = _mergeDirections(outputs[outputs.count - 1], rows: batch * time, size: recurrentSize,
                                      directions: layer.directionCount, merge: layer.merge)
        // The mask passes on as it came, also after goBackwards (whose outputs are in
        // reversed order): Keras's RNN.compute_mask does the same.
        return _Flow(values: merged, batch: batch, time: time, features: layer.mergedOutputSize, mask: flow.mask)
    } else {
        // Each direction's final h, [D, B, R] → [B, D·R], then merged.
        let stepWidth = layer.directionCount * recurrentSize
        var last = [Float](repeating: 0, count: batch * stepWidth)
        for d in 0..<layer.directionCount {
            for b in 0..<batch {
                for j in 0..<recurrentSize {
                    last[b * stepWidth + d * recurrentSize + j] = state.h[(d * batch + b) * recurrentSize + j]
                }
            }
        }
        let merged = _mergeDirections(last, rows: batch, size: recurrentSize,
                                      directions: layer.directionCount, merge: layer.merge)
        return _Flow(values: merged, batch: batch, time: nil, features: layer.mergedOutputSize, mask: nil)
    }
}

/// One layer's part of `_runRecurrentStack`: how its work is split, its scratch, and its
/// state in buffers of its own for the run (copied in and written back).
private struct _LayerRun {
    let layer: PreparedRecurrent
    let plan: _RecurrentPlan
    let scratch: [_StepScratch]
    let barriers: [_SpinBarrier?]
    /// In a pipeline, the steps each worker has finished (one arrival per step, per plan slot),
    /// which the next layer waits for.
    let progress: _SpinBarrier?
    /// `[D, B, R]`, `[D, B, H]` (LSTM), `[D, B, R]`.
    let h: UnsafeMutablePointer<Float>
    let c: UnsafeMutablePointer<Float>?
    let carried: UnsafeMutablePointer<Float>
    /// Floats of the raw output, `[B, T, D·R]`, when the layer returns sequences.
    let rawCount: Int

    init(_ layer: PreparedRecurrent, state: _LayerState, batch: Int, time: Int, threads: Int, pipelined: Bool) {
        self.layer = layer
        plan = _RecurrentPlan(
            threads: threads, directions: layer.directionCount, batch: batch,
            columnSplittable: !(layer.kind == .lstm && layer.directions[0].projection != nil)
                && !(layer.kind == .gru && layer.resetRule == .beforeMatmul)
                && layer.hiddenSize % _PackedMatrix.panelWidth == 0)
        // A pipelined layer projects its inputs a few steps at a time (about 16 rows), so that
        // the next layer starts early and finds them written.
        let chunk = pipelined ? Swift.max(1, 16 / Swift.max(1, batch)) : nil
        scratch = plan.groups.map {
            _StepScratch(layer: layer, rows: $0.rows.count, members: $0.members, time: time, chunk: chunk)
        }
        barriers = plan.groups.map { $0.members > 1 ? _SpinBarrier(count: $0.members) : nil }
        progress = pipelined ? _SpinBarrier(count: plan.slotCount) : nil
        h = _allocateAligned(state.h.count)
        h.initialize(from: state.h, count: state.h.count)
        if layer.kind == .lstm, let values = state.c {
            let c = _allocateAligned(values.count)
            c.initialize(from: values, count: values.count)
            self.c = c
        } else {
            c = nil
        }
        carried = _allocateAligned(state.carried.count)
        carried.initialize(from: state.carried, count: state.carried.count)
        rawCount = layer.returnSequences ? batch * time * layer.directionCount * layer.outputSize : 0
    }

    /// The final state.
    func write(to state: inout _LayerState) {
        state.h = Array(UnsafeBufferPointer(start: h, count: state.h.count))
        if let c, let count = state.c?.count { state.c = Array(UnsafeBufferPointer(start: c, count: count)) }
        state.carried = Array(UnsafeBufferPointer(start: carried, count: state.carried.count))
    }

    func deallocate() {
        for s in scratch { s.deallocate() }
        h.deallocate(); c?.deallocate(); carried.deallocate()
    }
}

/// Arrays of `counts` floats, uninitialised unless `zero`, that `body` fills through their
/// base addresses (nil for an empty one).
private func _withOutputs(_ counts: ArraySlice<Int>, zero: Bool,
                          _ body: ([UnsafeMutablePointer<Float>?]) -> Void) -> [[Float]] {
    guard let count = counts.first else {
        body([])
        return []
    }
    var rest: [[Float]] = []
    let first = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        if let base = buffer.baseAddress { _adviseHugePages(base, count: count) }
        if zero { buffer.initialize(repeating: 0) }
        rest = _withOutputs(counts.dropFirst(), zero: zero) { others in
            body([count > 0 ? buffer.baseAddress : nil] + others)
        }
        initialized = count
    }
    return [first] + rest
}

/// Calls `body` with the array's base address, or nil for a nil array.
private func _withOptionalBuffer<Element, R>(_ values: [Element]?, _ body: (UnsafePointer<Element>?) -> R) -> R {
    guard let values else { return body(nil) }
    return values.withUnsafeBufferPointer { body($0.baseAddress) }
}

/// Per-group buffers, `rows` batch rows each, allocated (64-byte aligned) before the loop.
struct _StepScratch: @unchecked Sendable {
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

    /// `chunk`: steps per input projection; by default as many as fill about 1 MB of gates.
    init(layer: PreparedRecurrent, rows: Int, members: Int, time: Int, chunk: Int? = nil) {
        let gateWidth = layer.gateCount * layer.hiddenSize
        self.chunk = Swift.max(1, Swift.min(time, chunk ?? (1 << 18) / Swift.max(1, rows * gateWidth)))
        gates = _allocateAligned(self.chunk * rows * gateWidth)
        inputs = _allocateAligned(members * self.chunk * rows * layer.inputSize)
        hBuffers = _allocateAligned(2 * rows * layer.outputSize)
        newH = _allocateAligned(rows * layer.outputSize)
        newC = _allocateAligned(rows * layer.hiddenSize)
        work = _allocateAligned(rows * layer.hiddenSize)
    }

    func deallocate() {
        gates.deallocate(); inputs.deallocate(); hBuffers.deallocate()
        newH.deallocate(); newC.deallocate(); work.deallocate()
    }
}

/// The column panels of `units` of every gate block, for a `[·, gates·H]` packed matrix.
///
/// With one member (`units` is every unit) this is every panel at once; otherwise `H` is a
/// multiple of the panel width (see `_RecurrentPlan`), so each gate's share is whole panels.
func _unitPanels(_ units: Range<Int>, hidden: Int, gates: Int, whole: Bool) -> [Range<Int>] {
    let width = _PackedMatrix.panelWidth
    if whole { return [0..<((gates * hidden + width - 1) / width)] }
    return (0..<gates).map { g in
        ((g * hidden + units.lowerBound) / width)..<((g * hidden + units.upperBound) / width)
    }
}

/// One member's part of one group: per chunk of steps the input projection, then each step.
///
/// A member owns the hidden units `units` of its group: it computes their gate columns of the
/// input projection and of every step's product, their state update and their outputs, so it
/// only reads what it writes itself, except `h`, which every member's product reads whole.
/// `h` alternates between two buffers; the members meet once per step, after writing theirs.
///
/// In a pipeline, `source` counts the steps each worker of the layer before has finished (its
/// outputs are this layer's inputs `x`), and this member arrives at `progress` once per step,
/// after writing its outputs.
private func _runGroup(_ layer: PreparedRecurrent, group: _RecurrentPlan.Group, member: Int,
                       barrier: _SpinBarrier?, scratch: _StepScratch, memory: _LayerMemory,
                       batch: Int, time: Int, source: _SpinBarrier?, progress: (barrier: _SpinBarrier, slot: Int)?) {
    let d = group.direction
    let weights = layer.directions[d]
    let members = group.members
    let hidden = layer.hiddenSize
    let recurrentSize = layer.outputSize
    let inputSize = layer.inputSize
    let gateCount = layer.gateCount
    let gateWidth = gateCount * hidden
    let stepWidth = layer.directionCount * recurrentSize
    let rows = group.rows
    let m = rows.count
    let reversed = d == 1 || layer.goBackwards
    let stateH = memory.h + (d * batch + rows.lowerBound) * recurrentSize   // [m, R]
    let c = memory.c.map { $0 + (d * batch + rows.lowerBound) * hidden }   // [m, H]
    let carried = memory.carried + (d * batch + rows.lowerBound) * recurrentSize

    // This member's hidden units, and the panels of their columns in each product.
    let whole = members == 1
    let units = _share(hidden, members: members, member: member, granule: _PackedMatrix.panelWidth)
    let inputPanels = _unitPanels(units, hidden: hidden, gates: gateCount, whole: whole)
    let recurrentPanels = _unitPanels(units, hidden: hidden, gates: layer.kind == .gru ? 2 : gateCount, whole: whole)
    let newPanels = _unitPanels(units, hidden: hidden, gates: 1, whole: whole)
    // Units of h this member commits: all of R with a projection (never split).
    let outputUnits = weights.projection == nil ? units : 0..<recurrentSize
    let inputs = scratch.inputs + member * scratch.chunk * m * inputSize
    // With every step valid (no mask) and no second product after the cell arithmetic, the
    // update writes the new h straight into the next h buffer and the new c over c (each value
    // is read before it is overwritten, in the same lane): no staging copies, and `carried`
    // (the last emitted output) is the final h, set once after the loop.
    let direct = memory.mask == nil && weights.projection == nil
        && !(layer.kind == .gru && layer.resetRule == .beforeMatmul)

    // One batch row of an LSTM or `.afterMatmul` GRU without projection, in whole panels:
    // each step's product and update fused per block of units.
    let fused = m == 1 && hidden % _PackedMatrix.panelWidth == 0 && weights.projection == nil
        && (layer.kind == .lstm || (layer.kind == .gru && layer.resetRule == .afterMatmul))

    // The packed weights stay alive with `weights` (a local copy of the direction).
    let w = weights.inputWeight.base
    let u = weights.recurrentWeight.base
    let un = weights.recurrentNewWeight?.base
    let pw = weights.projection?.base
    let bhn = weights.recurrentNewBias ?? []

    // h before the first step, this member's units.
    for b in 0..<m {
        (scratch.hBuffers + b * recurrentSize + outputUnits.lowerBound)
            .update(from: stateH + b * recurrentSize + outputUnits.lowerBound, count: outputUnits.count)
    }
    barrier?.wait(member: member)
    // Members of a one-row step meet inside the next step's product, where it reaches each
    // partner's slice of h (`_StepWait`), and only mark the end of a step; others meet at it.
    let meetInside = fused && barrier != nil
    let memberBounds = (0..<members).map {
        _share(hidden, members: members, member: $0, granule: _PackedMatrix.panelWidth).lowerBound
    } + [hidden]

    withExtendedLifetime(weights) {
    memberBounds.withUnsafeBufferPointer { memberBounds in
    weights.bias.withUnsafeBufferPointer { bias in
    _withOptionalBuffer(weights.tokenProjection) { tokenTable in
    bhn.withUnsafeBufferPointer { bhn in
        for chunkStart in stride(from: 0, to: time, by: scratch.chunk) {
            let steps = Swift.min(scratch.chunk, time - chunkStart)
            if let tokens = memory.tokens, let table = tokenTable {
                // The projection of each step's token, this member's columns: gates[slot, b] =
                // tokenProjection[id of x[b, t]]. A fused step reads the row in place instead.
                for slot in 0..<(fused ? 0 : steps) {
                    let s = chunkStart + slot
                    let t = reversed ? time - 1 - s : s
                    for b in 0..<m {
                        let source = table + tokens[(rows.lowerBound + b) * time + t] * gateWidth
                        let target = scratch.gates + (slot * m + b) * gateWidth
                        for panels in inputPanels {
                            let columns = (panels.lowerBound * _PackedMatrix.panelWidth)..<Swift.min(gateWidth, panels.upperBound * _PackedMatrix.panelWidth)
                            (target + columns.lowerBound).update(from: source + columns.lowerBound, count: columns.count)
                        }
                    }
                }
            } else {
                // In a pipeline, wait until the layer before has written them (it runs forward
                // in time: x[·, t] is written at its step t).
                if let source {
                    for other in 0..<source.count { source.wait(for: other, rounds: chunkStart + steps) }
                }
                // The chunk's inputs, time-major in processing order: inputs[slot, b] = x[b, t].
                for slot in 0..<steps {
                    let s = chunkStart + slot
                    let t = reversed ? time - 1 - s : s
                    for b in 0..<m {
                        (inputs + (slot * m + b) * inputSize)
                            .update(from: memory.x! + ((rows.lowerBound + b) * time + t) * inputSize, count: inputSize)
                    }
                }
                // Their projection for this member's columns: gates[slot, b] = x[b, t] W + bias.
                for panels in inputPanels {
                    _gemm(m: steps * m, a: inputs, lda: inputSize, b: w, k: inputSize, n: gateWidth, panels: panels,
                          c: scratch.gates, ldc: gateWidth, initial: bias.baseAddress!)
                }
            }

            for slot in 0..<steps {
                let s = chunkStart + slot
                let t = reversed ? time - 1 - s : s
                // go_backwards emits in processing order; a backward direction of a
                // bidirectional layer stores each output at its own time index.
                let outT = layer.goBackwards ? s : t
                let gates = scratch.gates + slot * m * gateWidth  // [m, G·H]
                let h = scratch.hBuffers + (s % 2) * m * recurrentSize        // [m, R], read
                let hNext = scratch.hBuffers + ((s + 1) % 2) * m * recurrentSize  // written

                // This member's units get their new h in scratch.newH ([m, R]), or straight in
                // hNext (and c) when `direct`.
                let newH = direct ? hNext : scratch.newH
                if fused {
                    // One row: product and cell arithmetic per block of 32 units (FusedStep.swift),
                    // from the step's projection, or, after an embedding, the token's row of the
                    // table, read in place.
                    var projected = UnsafePointer(gates)
                    if let tokens = memory.tokens, let table = tokenTable {
                        projected = table + tokens[rows.lowerBound * time + t] * gateWidth
                    }
                    // Each partner's h of this step is written once it has arrived 1 + s times
                    // (the first arrival is the barrier before the loop).
                    let wait = meetInside
                        ? _StepWait(barrier: barrier!, member: member, rounds: 1 + s, bounds: memberBounds.baseAddress!)
                        : nil
                    if layer.kind == .lstm {
                        _fusedLSTMStep(layer, h: h, u: u, units: units, gates: projected, c: c!,
                                       newC: direct ? c! : scratch.newC, out: newH, wait: wait)
                    } else {
                        _fusedGRUStep(layer, h: h, u: u, un: un!, newBias: bhn.baseAddress!, units: units,
                                      gates: projected, out: newH, wait: wait)
                    }
                } else {
                    // Gates += h U (GRU: the r and z blocks only; U_n h + b_hn apart, in scratch.work).
                    for panels in recurrentPanels {
                        _gemm(m: m, a: h, lda: recurrentSize, b: u, k: recurrentSize,
                              n: weights.recurrentWeight.columns, panels: panels, c: gates, ldc: gateWidth)
                    }
                    if layer.kind == .gru && layer.resetRule == .afterMatmul {
                        for panels in newPanels {
                            _gemm(m: m, a: h, lda: hidden, b: un!, k: hidden, n: hidden, panels: panels,
                                  c: scratch.work, ldc: hidden, initial: bhn.baseAddress!)
                        }
                    }

                    // The state update of this member's units.
                    switch layer.kind {
                    case .rnn:
                        _rnnUpdate(layer, rows: m, units: units, gates: gates, out: newH)
                    case .lstm:
                        _lstmUpdate(layer, rows: m, units: units, gates: gates, c: c!, newC: direct ? c! : scratch.newC,
                                    newH: newH, scratch: scratch, projection: pw)
                    case .gru:
                        _gruUpdate(layer, rows: m, units: units, gates: gates, h: h, newH: newH, scratch: scratch,
                                   newWeight: un!)
                    }
                }
                if direct {
                    if let raw = memory.raw {
                        for b in 0..<m {
                            (raw + ((rows.lowerBound + b) * time + outT) * stepWidth + d * recurrentSize + outputUnits.lowerBound)
                                .update(from: hNext + b * recurrentSize + outputUnits.lowerBound, count: outputUnits.count)
                        }
                    }
                    if let progress { progress.barrier.arrive(member: progress.slot) }
                    if meetInside { barrier!.arrive(member: member) } else { barrier?.wait(member: member) }
                    continue
                }

                // Commit valid rows; masked rows keep their state.
                for b in 0..<m {
                    let valid = memory.mask?[(rows.lowerBound + b) * time + t] ?? true
                    let rowNext = hNext + b * recurrentSize + outputUnits.lowerBound
                    let rowCarried = carried + b * recurrentSize + outputUnits.lowerBound
                    if valid {
                        rowNext.update(from: scratch.newH + b * recurrentSize + outputUnits.lowerBound,
                                       count: outputUnits.count)
                        if let c {
                            (c + b * hidden + units.lowerBound).update(from: scratch.newC + b * hidden + units.lowerBound,
                                                                       count: units.count)
                        }
                        rowCarried.update(from: rowNext, count: outputUnits.count)
                    } else {
                        rowNext.update(from: h + b * recurrentSize + outputUnits.lowerBound, count: outputUnits.count)
                    }
                    if let raw = memory.raw, valid || layer.maskedOutput == .carry {
                        (raw + ((rows.lowerBound + b) * time + outT) * stepWidth + d * recurrentSize + outputUnits.lowerBound)
                            .update(from: rowCarried, count: outputUnits.count)
                    }
                    // else: stays zero.
                }
                if let progress { progress.barrier.arrive(member: progress.slot) }
                if meetInside { barrier!.arrive(member: member) } else { barrier?.wait(member: member) }
            }
        }
    }
    }
    }
    }
    }

    // The final h, this member's units (and, when `direct`, the last emitted output: every
    // step was valid, so it is the final h).
    let last = scratch.hBuffers + (time % 2) * m * recurrentSize
    for b in 0..<m {
        (stateH + b * recurrentSize + outputUnits.lowerBound)
            .update(from: last + b * recurrentSize + outputUnits.lowerBound, count: outputUnits.count)
        if direct && time > 0 {
            (carried + b * recurrentSize + outputUnits.lowerBound)
                .update(from: last + b * recurrentSize + outputUnits.lowerBound, count: outputUnits.count)
        }
    }
}

/// The fused LSTM step of one row (`_lstmStepRow`), specialised for σ and tanh.
private func _fusedLSTMStep(_ layer: PreparedRecurrent, h: UnsafePointer<Float>, u: UnsafePointer<Float>,
                            units: Range<Int>, gates: UnsafePointer<Float>, c: UnsafePointer<Float>,
                            newC: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, wait: _StepWait?) {
    if layer.recurrentActivation == .sigmoid && layer.activation == .tanh {
        _lstmStepRow(_SigmoidTanhLSTM(), h: h, k: layer.outputSize, u: u, hidden: layer.hiddenSize,
                     units: units, gates: gates, c: c, newC: newC, out: out, wait: wait)
    } else {
        _lstmStepRow(_GeneralLSTM(sigma: _ActivationFunction(layer.recurrentActivation),
                                  phi: _ActivationFunction(layer.activation)),
                     h: h, k: layer.outputSize, u: u, hidden: layer.hiddenSize, units: units, gates: gates, c: c,
                     newC: newC, out: out, wait: wait)
    }
}

/// The fused `.afterMatmul` GRU step of one row (`_gruStepRow`), specialised for σ and tanh.
private func _fusedGRUStep(_ layer: PreparedRecurrent, h: UnsafePointer<Float>, u: UnsafePointer<Float>,
                           un: UnsafePointer<Float>, newBias: UnsafePointer<Float>, units: Range<Int>,
                           gates: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, wait: _StepWait?) {
    if layer.recurrentActivation == .sigmoid && layer.activation == .tanh {
        _gruStepRow(_SigmoidFunction(), _TanhFunction(), h: h, u: u, un: un, newBias: newBias,
                    hidden: layer.hiddenSize, units: units, gates: gates, out: out, wait: wait)
    } else {
        _gruStepRow(_ActivationFunction(layer.recurrentActivation), _ActivationFunction(layer.activation), h: h,
                    u: u, un: un, newBias: newBias, hidden: layer.hiddenSize, units: units, gates: gates, out: out,
                    wait: wait)
    }
}

/// LSTM state update of `units` for `rows` rows; `gates` `[rows, 4H]` holds the
/// pre-activations in order [i, f, g, o].
///
/// `c' = σ(f) ⊙ c + σ(i) ⊙ φ(g)`, `h' = σ(o) ⊙ φ(c')`, projected by `W_hr` when present
/// (then `units` is every unit).
@inline(__always)
private func _lstmUpdate(_ layer: PreparedRecurrent, rows: Int, units: Range<Int>, gates: UnsafeMutablePointer<Float>,
                         c: UnsafeMutablePointer<Float>, newC: UnsafeMutablePointer<Float>,
                         newH: UnsafeMutablePointer<Float>, scratch: _StepScratch, projection: UnsafePointer<Float>?) {
    let hidden = layer.hiddenSize
    // Without a projection the cell output is h' itself.
    let target = projection == nil ? newH : scratch.work
    if layer.recurrentActivation == .sigmoid && layer.activation == .tanh {
        _lstmCells(_SigmoidTanhLSTM(), rows: rows, hidden: hidden, units: units, gates: gates,
                   c: c, newC: newC, out: target)
    } else {
        _lstmCells(_GeneralLSTM(sigma: _ActivationFunction(layer.recurrentActivation),
                                phi: _ActivationFunction(layer.activation)),
                   rows: rows, hidden: hidden, units: units, gates: gates, c: c, newC: newC, out: target)
    }
    if let projection {
        let size = layer.outputSize
        newH.update(repeating: 0, count: rows * size)
        _gemm(m: rows, a: scratch.work, lda: hidden, b: projection, k: hidden, n: size,
              panels: 0..<((size + _PackedMatrix.panelWidth - 1) / _PackedMatrix.panelWidth),
              c: newH, ldc: size)
    }
}

/// The LSTM cell arithmetic, one pass over the units, sixteen at a time:
/// `newC = σ(f) ⊙ c + σ(i) ⊙ φ(g)`, `out = σ(o) ⊙ φ(newC)` (rows of `H`).
@inline(__always)
private func _lstmCells<A: _LSTMArithmetic>(
    _ arithmetic: A, rows: Int, hidden: Int, units: Range<Int>, gates: UnsafePointer<Float>,
    c: UnsafePointer<Float>, newC: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>
) {
    let n = units.count
    let j0 = units.lowerBound
    for b in 0..<rows {
        let g = gates + b * 4 * hidden
        let inputGate = g + j0, forgetGate = g + hidden + j0, candidate = g + 2 * hidden + j0
        let outputGate = g + 3 * hidden + j0
        let cRow = c + b * hidden + j0
        let cNew = newC + b * hidden + j0
        let hRow = out + b * hidden + j0
        var j = 0
        // Two vectors per iteration: independent chains of exp and division, interleaved.
        while j + 32 <= n {
            let cell0 = arithmetic.cell(forget: _load(forgetGate + j), state: _load(cRow + j),
                                        input: _load(inputGate + j), candidate: _load(candidate + j))
            let cell1 = arithmetic.cell(forget: _load(forgetGate + j + 16), state: _load(cRow + j + 16),
                                        input: _load(inputGate + j + 16), candidate: _load(candidate + j + 16))
            _store(cell0, cNew + j)
            _store(cell1, cNew + j + 16)
            _store(arithmetic.output(_load(outputGate + j), cell: cell0), hRow + j)
            _store(arithmetic.output(_load(outputGate + j + 16), cell: cell1), hRow + j + 16)
            j += 32
        }
        while j + 16 <= n {
            let cell = arithmetic.cell(forget: _load(forgetGate + j), state: _load(cRow + j),
                                       input: _load(inputGate + j), candidate: _load(candidate + j))
            _store(cell, cNew + j)
            _store(arithmetic.output(_load(outputGate + j), cell: cell), hRow + j)
            j += 16
        }
        while j < n {
            let cell = arithmetic.cell(forget: forgetGate[j], state: cRow[j], input: inputGate[j], candidate: candidate[j])
            cNew[j] = cell
            hRow[j] = arithmetic.output(outputGate[j], cell: cell)
            j += 1
        }
    }
}

/// RNN state update of `units` for `rows` rows: `h' = φ(gates)`.
@inline(__always)
private func _rnnUpdate(_ layer: PreparedRecurrent, rows: Int, units: Range<Int>, gates: UnsafePointer<Float>,
                        out: UnsafeMutablePointer<Float>) {
    if layer.activation == .tanh {
        _rnnCells(_TanhFunction(), rows: rows, hidden: layer.hiddenSize, units: units, gates: gates, out: out)
    } else {
        _rnnCells(_ActivationFunction(layer.activation), rows: rows, hidden: layer.hiddenSize, units: units,
                  gates: gates, out: out)
    }
}

@inline(__always)
private func _rnnCells<P: _LaneFunction>(_ phi: P, rows: Int, hidden: Int, units: Range<Int>,
                                         gates: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
    for b in 0..<rows {
        let g = gates + b * hidden + units.lowerBound
        let hRow = out + b * hidden + units.lowerBound
        var j = 0
        while j + 16 <= units.count { _store(phi(_load(g + j)), hRow + j); j += 16 }
        while j < units.count { hRow[j] = phi(g[j]); j += 1 }
    }
}

/// GRU state update of `units` for `rows` rows; `gates` `[rows, 3H]` holds `W x + b` in
/// order [r, z, n] with `U_r h`, `U_z h` already added.
///
/// `r = σ(·)`, `z = σ(·)`, then the new gate per the reset rule (`.afterMatmul`:
/// `scratch.work` holds `U_n h + b_hn`; `.beforeMatmul`: `U_n (r ⊙ h)` is computed here, for
/// every unit), and `h' = n + z ⊙ (h − n)` (PyTorch's form of `(1 − z) ⊙ n + z ⊙ h`).
@inline(__always)
private func _gruUpdate(_ layer: PreparedRecurrent, rows: Int, units: Range<Int>, gates: UnsafeMutablePointer<Float>,
                        h: UnsafePointer<Float>, newH: UnsafeMutablePointer<Float>, scratch: _StepScratch,
                        newWeight: UnsafePointer<Float>) {
    let hidden = layer.hiddenSize
    let width = 3 * hidden
    switch layer.resetRule {
    case .afterMatmul:
        if layer.recurrentActivation == .sigmoid && layer.activation == .tanh {
            _gruCells(_SigmoidFunction(), _TanhFunction(), rows: rows, hidden: hidden, units: units, gates: gates,
                      recurrent: scratch.work, h: h, out: newH)
        } else {
            _gruCells(_ActivationFunction(layer.recurrentActivation), _ActivationFunction(layer.activation),
                      rows: rows, hidden: hidden, units: units, gates: gates, recurrent: scratch.work, h: h,
                      out: newH)
        }
    case .beforeMatmul:
        // Every unit (never split): r ⊙ h for the product, σ(z) kept in place for the update.
        let sigma = layer.recurrentActivation, phi = layer.activation
        for b in 0..<rows {
            let r = gates + b * width, z = r + hidden
            let hRow = h + b * hidden
            let resetH = scratch.work + b * hidden
            for j in 0..<hidden {
                resetH[j] = sigma._elementwise(r[j]) * hRow[j]
                z[j] = sigma._elementwise(z[j])
            }
        }
        _gemm(m: rows, a: scratch.work, lda: hidden, b: newWeight, k: hidden, n: hidden,
              panels: 0..<((hidden + _PackedMatrix.panelWidth - 1) / _PackedMatrix.panelWidth),
              c: gates + 2 * hidden, ldc: width)
        for b in 0..<rows {
            let z = gates + b * width + hidden, candidate = z + hidden
            let hRow = h + b * hidden
            let out = newH + b * hidden
            for j in 0..<hidden {
                let next = phi._elementwise(candidate[j])
                out[j] = next + z[j] * (hRow[j] - next)
            }
        }
    }
}

/// The `.afterMatmul` GRU cell arithmetic, one pass over the units, sixteen at a time:
/// `n = φ(g_n + σ(g_r) ⊙ recurrent)`, `out = n + σ(g_z) ⊙ (h − n)`.
@inline(__always)
private func _gruCells<S: _LaneFunction, P: _LaneFunction>(
    _ sigma: S, _ phi: P, rows: Int, hidden: Int, units: Range<Int>, gates: UnsafePointer<Float>,
    recurrent: UnsafePointer<Float>, h: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>
) {
    let n = units.count
    let j0 = units.lowerBound
    for b in 0..<rows {
        let r = gates + b * 3 * hidden + j0, z = r + hidden, candidate = r + 2 * hidden
        let u = recurrent + b * hidden + j0
        let hRow = h + b * hidden + j0
        let o = out + b * hidden + j0
        var j = 0
        while j + 16 <= n {
            let next = phi(_load(candidate + j) + sigma(_load(r + j)) * _load(u + j))
            _store(next + sigma(_load(z + j)) * (_load(hRow + j) - next), o + j)
            j += 16
        }
        while j < n {
            let next = phi(candidate[j] + sigma(r[j]) * u[j])
            o[j] = next + sigma(z[j]) * (hRow[j] - next)
            j += 1
        }
    }
}

/// Merges `[rows, D·size]` (directions side by side) into `[rows, merged]`.
///
/// concat: unchanged; sum: `a + b`; mul: `a ⊙ b`; ave: `(a + b) / 2`.
func _mergeDirections(_ raw: [Float], rows: Int, size: Int, directions: Int, merge: MergeMode) -> [Float] {
    guard directions == 2, merge != .concat else { return raw }
    var out = [Float](repeating: 0, count: rows * size)
    for r in 0..<rows {
        for j in 0..<size {
            let a = raw[r * 2 * size + j]
            let b = raw[r * 2 * size + size + j]
            switch merge {
            case .sum: out[r * size + j] = a + b
            case .mul: out[r * size + j] = a * b
            case .ave: out[r * size + j] = (a + b) / 2
            case .concat: break
            }
        }
    }
    return out
}
