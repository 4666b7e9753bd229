// The recurrence: one recurrent layer over a masked sequence.
//
// Layout for speed: per direction, the input projection of all steps is one matrix product
// `[B·T, I] × [I, G·H]` (biases folded in), stored time-major `[T, B, G·H]` so that one
// step's gates for a block of batch rows are contiguous; the time loop then only accumulates
// the state product `[B, R] × [R, G·H]` into them (the kernel's 8-row blocks run over the
// batch) and applies the gates. Every buffer the loop touches is allocated before it starts.
//
// Threads (`_RecurrentPlan`): directions run in parallel; within a direction, batch rows are
// split when there are at least 8 per thread, else the gate columns of every step are split
// between threads that meet at a barrier after the product and after the state update.

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

    /// - `columnSplittable`: whether a step's state update for one hidden unit needs only
    ///   that unit's gates (not so for a projected LSTM or a `.beforeMatmul` GRU, whose second
    ///   product needs every unit).
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
    /// `[B, T, I]`.
    var x: UnsafePointer<Float>
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

/// Runs one recurrent layer over `flow` (`[B, T, I]`), updating `state` to the final state.
///
/// Per direction and valid step (masked steps keep the state and emit zero or the carried
/// output), with σ the recurrent activation and φ the activation:
/// - RNN: `h' = φ(W x + b_ih + U h + b_hh)`;
/// - LSTM: `i, f, o = σ(·)`, `g = φ(W_g x + b_g + U_g h)`, `c' = f ⊙ c + i ⊙ g`,
///   `h' = o ⊙ φ(c')`, then `h' = W_hr h'` with a projection;
/// - GRU: `r, z = σ(·)`, `n = φ(W_n x + b_in + r ⊙ (U_n h + b_hn))` (`.afterMatmul`) or
///   `n = φ(W_n x + b_n + U_n (r ⊙ h))` (`.beforeMatmul`), `h' = n + z ⊙ (h − n)`.
///
/// Returns `[B, T, merged]` with `returnSequences`, else `[B, merged]` from each
/// direction's final `h`. The result does not depend on `threads`, bit for bit.
func _runRecurrent(_ layer: PreparedRecurrent, flow: _Flow, state: inout _LayerState, threads: Int = 1) -> _Flow {
    let batch = flow.batch
    let time = flow.time ?? 0
    let recurrentSize = layer.outputSize
    let directionCount = layer.directionCount
    let stepWidth = directionCount * recurrentSize  // concat layout of the raw output

    // Raw per-step output, directions side by side (concat layout); merged at the end.
    var raw = [Float](repeating: 0, count: layer.returnSequences ? batch * time * stepWidth : 0)

    if batch > 0 && time > 0 {
        let plan = _RecurrentPlan(
            threads: threads, directions: directionCount, batch: batch,
            columnSplittable: !(layer.kind == .lstm && layer.directions[0].projection != nil)
                && !(layer.kind == .gru && layer.resetRule == .beforeMatmul))
        // The cell state is moved out of `state` for the loop so no copy is made on write.
        var cStorage = state.c ?? []
        state.c = nil
        defer { if layer.kind == .lstm { state.c = cStorage } }
        let groupScratch = plan.groups.map { _StepScratch(layer: layer, rows: $0.rows.count, time: time) }
        let barriers = plan.groups.map { $0.members > 1 ? _SpinBarrier(count: $0.members) : nil }

        flow.values.withUnsafeBufferPointer { x in
        _withOptionalBuffer(flow.mask) { mask in
        state.h.withUnsafeMutableBufferPointer { h in
        state.carried.withUnsafeMutableBufferPointer { carried in
        cStorage.withUnsafeMutableBufferPointer { c in
        raw.withUnsafeMutableBufferPointer { out in
            let memory = _Shared(value: _LayerMemory(
                x: x.baseAddress!, mask: mask, h: h.baseAddress!,
                // Decided by kind, not by baseAddress: an empty array may still have one.
                c: layer.kind == .lstm ? c.baseAddress! : nil, carried: carried.baseAddress!,
                raw: layer.returnSequences ? out.baseAddress! : nil))
            _parallel(plan.work.count) { worker in
                for assignment in plan.work[worker] {
                    _runGroup(layer, group: plan.groups[assignment.group], member: assignment.member,
                              barrier: barriers[assignment.group], scratch: groupScratch[assignment.group],
                              memory: memory.value, batch: batch, time: time)
                }
            }
        }
        }
        }
        }
        }
        }
        for scratch in groupScratch { scratch.deallocate() }
    }

    if layer.returnSequences {
        let merged = _mergeDirections(raw, rows: batch * time, size: recurrentSize,
                                      directions: directionCount, merge: layer.merge)
        // The mask passes on as it came, also after goBackwards (whose outputs are in
        // reversed order): Keras's RNN.compute_mask does the same.
        return _Flow(values: merged, batch: batch, time: time, features: layer.mergedOutputSize, mask: flow.mask)
    } else {
        // Each direction's final h, [D, B, R] → [B, D·R], then merged.
        var last = [Float](repeating: 0, count: batch * stepWidth)
        for d in 0..<directionCount {
            for b in 0..<batch {
                for j in 0..<recurrentSize {
                    last[b * stepWidth + d * recurrentSize + j] = state.h[(d * batch + b) * recurrentSize + j]
                }
            }
        }
        let merged = _mergeDirections(last, rows: batch, size: recurrentSize,
                                      directions: directionCount, merge: layer.merge)
        return _Flow(values: merged, batch: batch, time: nil, features: layer.mergedOutputSize, mask: nil)
    }
}

/// Calls `body` with the array's base address, or nil for a nil array.
private func _withOptionalBuffer<R>(_ values: [Bool]?, _ body: (UnsafePointer<Bool>?) -> R) -> R {
    guard let values else { return body(nil) }
    return values.withUnsafeBufferPointer { body($0.baseAddress) }
}

/// Per-group buffers, `rows` batch rows each, allocated before the loop.
struct _StepScratch: @unchecked Sendable {
    /// `[chunk, rows, G·H]`: the input projections of `chunk` consecutive steps, then their
    /// gate pre-activations in place. A chunk of about 1 MB stays in the L2 cache between
    /// the projection and the steps that read it.
    var gates: UnsafeMutablePointer<Float>
    var chunk: Int
    /// `[rows, R]`: the new `h` before it is committed to valid rows.
    var newH: UnsafeMutablePointer<Float>
    /// `[rows, H]`: the new `c` (LSTM).
    var newC: UnsafeMutablePointer<Float>
    /// `[rows, H]`: LSTM `o ⊙ φ(c')` before the projection; GRU `U_n h + b_hn` or `r ⊙ h`.
    var work: UnsafeMutablePointer<Float>

    init(layer: PreparedRecurrent, rows: Int, time: Int) {
        let gateWidth = layer.gateCount * layer.hiddenSize
        chunk = Swift.max(1, Swift.min(time, (1 << 18) / Swift.max(1, rows * gateWidth)))
        gates = .allocate(capacity: Swift.max(1, chunk * rows * gateWidth))
        newH = .allocate(capacity: Swift.max(1, rows * layer.outputSize))
        newC = .allocate(capacity: Swift.max(1, rows * layer.hiddenSize))
        work = .allocate(capacity: Swift.max(1, rows * layer.hiddenSize))
    }

    func deallocate() {
        gates.deallocate(); newH.deallocate(); newC.deallocate(); work.deallocate()
    }
}

/// One member's part of one group: the input projection, then every step.
private func _runGroup(_ layer: PreparedRecurrent, group: _RecurrentPlan.Group, member: Int,
                       barrier: _SpinBarrier?, scratch: _StepScratch, memory: _LayerMemory,
                       batch: Int, time: Int) {
    let d = group.direction
    let weights = layer.directions[d]
    let members = group.members
    let hidden = layer.hiddenSize
    let recurrentSize = layer.outputSize
    let inputSize = layer.inputSize
    let gateWidth = layer.gateCount * hidden
    let stepWidth = layer.directionCount * recurrentSize
    let rows = group.rows
    let m = rows.count
    let reversed = d == 1 || layer.goBackwards
    let width = _PackedMatrix.panelWidth
    let h = memory.h + (d * batch + rows.lowerBound) * recurrentSize       // [m, R]
    let c = memory.c.map { $0 + (d * batch + rows.lowerBound) * hidden }   // [m, H]
    let carried = memory.carried + (d * batch + rows.lowerBound) * recurrentSize

    // This member's share of each step: column panels of the products, hidden units of the update.
    let units = _share(hidden, members: members, member: member, granule: 16)
    let recurrentPanels = _share(weights.recurrentWeight.panelCount, members: members, member: member)
    let newPanels = _share(weights.recurrentNewWeight?.panelCount ?? 0, members: members, member: member)
    // Units of h this member commits: all of R with a projection (never column-split).
    let outputUnits = weights.projection == nil ? units : 0..<recurrentSize
    let u = weights.recurrentWeight.values
    let un = weights.recurrentNewWeight?.values ?? []
    let bhn = weights.recurrentNewBias ?? []
    let projectionWeight = weights.projection?.values ?? []

    // This member's column panels of the input projection.
    let inputPanels = _share(weights.inputWeight.panelCount, members: members, member: member)
    let columns = Swift.min(gateWidth, inputPanels.lowerBound * width)..<Swift.min(gateWidth, inputPanels.upperBound * width)

    weights.bias.withUnsafeBufferPointer { bias in
    weights.inputWeight.values.withUnsafeBufferPointer { w in
    u.withUnsafeBufferPointer { u in
    un.withUnsafeBufferPointer { un in
    bhn.withUnsafeBufferPointer { bhn in
    projectionWeight.withUnsafeBufferPointer { pw in
        for chunkStart in stride(from: 0, to: time, by: scratch.chunk) {
            let steps = Swift.min(scratch.chunk, time - chunkStart)
            // Input projection of the chunk's steps (in processing order) for this member's
            // columns: gates[slot, b] = x[b, t] W + bias.
            for slot in 0..<steps {
                for b in 0..<m {
                    (scratch.gates + (slot * m + b) * gateWidth + columns.lowerBound)
                        .update(from: bias.baseAddress! + columns.lowerBound, count: columns.count)
                }
            }
            let firstT = reversed ? time - 1 - chunkStart : chunkStart
            if m >= 8 {
                // One product per step over the rows: rows of x are `time · inputSize` apart.
                for slot in 0..<steps {
                    let t = reversed ? firstT - slot : firstT + slot
                    _gemm(m: m, a: memory.x + (rows.lowerBound * time + t) * inputSize, lda: time * inputSize,
                          b: w.baseAddress!, k: inputSize, n: gateWidth, panels: inputPanels,
                          c: scratch.gates + slot * m * gateWidth, ldc: gateWidth)
                }
            } else {
                // One product per row over the steps (a reversed direction walks x backwards).
                for b in 0..<m {
                    _gemm(m: steps, a: memory.x + ((rows.lowerBound + b) * time + firstT) * inputSize,
                          lda: reversed ? -inputSize : inputSize, b: w.baseAddress!, k: inputSize, n: gateWidth,
                          panels: inputPanels, c: scratch.gates + b * gateWidth, ldc: m * gateWidth)
                }
            }
            barrier?.wait()

        for slot in 0..<steps {
            let s = chunkStart + slot
            let t = reversed ? time - 1 - s : s
            // go_backwards emits in processing order; a backward direction of a
            // bidirectional layer stores each output at its own time index.
            let outT = layer.goBackwards ? s : t
            let gates = scratch.gates + slot * m * gateWidth  // [m, G·H]

            // Gates += h U (GRU: the r and z blocks only; U_n h + b_hn apart, in scratch.work).
            _gemm(m: m, a: h, lda: recurrentSize, b: u.baseAddress!, k: recurrentSize,
                  n: weights.recurrentWeight.columns, panels: recurrentPanels, c: gates, ldc: gateWidth)
            if layer.kind == .gru && layer.resetRule == .afterMatmul {
                let part = Swift.min(hidden, newPanels.lowerBound * width)..<Swift.min(hidden, newPanels.upperBound * width)
                for b in 0..<m {
                    (scratch.work + b * hidden + part.lowerBound).update(from: bhn.baseAddress! + part.lowerBound,
                                                                         count: part.count)
                }
                _gemm(m: m, a: h, lda: hidden, b: un.baseAddress!, k: hidden, n: hidden, panels: newPanels,
                      c: scratch.work, ldc: hidden)
            }
            barrier?.wait()

            // The state update for this member's units: new h into scratch.newH ([m, R]).
            switch layer.kind {
            case .rnn:
                for b in 0..<m {
                    let g = gates + b * gateWidth + units.lowerBound
                    layer.activation._apply(g, count: units.count)
                    (scratch.newH + b * recurrentSize + units.lowerBound).update(from: g, count: units.count)
                }
            case .lstm:
                _lstmUpdate(layer, rows: m, units: units, gates: gates, c: c!, scratch: scratch,
                            projection: weights.projection == nil ? nil : pw.baseAddress!)
            case .gru:
                _gruUpdate(layer, rows: m, units: units, gates: gates, h: h, scratch: scratch,
                           newWeight: un.baseAddress!)
            }

            // Commit valid rows; masked rows keep their state.
            for b in 0..<m {
                let valid = memory.mask?[(rows.lowerBound + b) * time + t] ?? true
                let rowH = h + b * recurrentSize + outputUnits.lowerBound
                let rowCarried = carried + b * recurrentSize + outputUnits.lowerBound
                if valid {
                    rowH.update(from: scratch.newH + b * recurrentSize + outputUnits.lowerBound, count: outputUnits.count)
                    if let c {
                        (c + b * hidden + units.lowerBound).update(from: scratch.newC + b * hidden + units.lowerBound,
                                                                   count: units.count)
                    }
                    rowCarried.update(from: rowH, count: outputUnits.count)
                }
                if let raw = memory.raw, valid || layer.maskedOutput == .carry {
                    (raw + ((rows.lowerBound + b) * time + outT) * stepWidth + d * recurrentSize + outputUnits.lowerBound)
                        .update(from: rowCarried, count: outputUnits.count)
                }
                // else: stays zero.
            }
            barrier?.wait()
        }
        }
    }
    }
    }
    }
    }
    }
}

/// LSTM state update of `units` for `rows` rows; `gates` `[rows, 4H]` holds the
/// pre-activations in order [i, f, g, o] and is overwritten.
///
/// `c' = σ(f) ⊙ c + σ(i) ⊙ φ(g)`, `h' = σ(o) ⊙ φ(c')`, projected by `W_hr` when present
/// (then `units` is every unit).
@inline(__always)
private func _lstmUpdate(_ layer: PreparedRecurrent, rows: Int, units: Range<Int>, gates: UnsafeMutablePointer<Float>,
                         c: UnsafeMutablePointer<Float>, scratch: _StepScratch, projection: UnsafePointer<Float>?) {
    let hidden = layer.hiddenSize
    let n = units.count
    let j0 = units.lowerBound
    // Without a projection the cell output is h' itself.
    let target = projection == nil ? scratch.newH : scratch.work
    for b in 0..<rows {
        let g = gates + b * 4 * hidden
        let inputGate = g + j0, forgetGate = g + hidden + j0, candidate = g + 2 * hidden + j0
        let outputGate = g + 3 * hidden + j0
        layer.recurrentActivation._apply(inputGate, count: n)
        layer.recurrentActivation._apply(forgetGate, count: n)
        layer.activation._apply(candidate, count: n)
        layer.recurrentActivation._apply(outputGate, count: n)
        let cRow = c + b * hidden + j0
        let cNew = scratch.newC + b * hidden + j0
        let out = target + b * hidden + j0
        for j in 0..<n {
            let cell = forgetGate[j] * cRow[j] + inputGate[j] * candidate[j]
            cNew[j] = cell
            out[j] = cell
        }
        layer.activation._apply(out, count: n)
        for j in 0..<n { out[j] = outputGate[j] * out[j] }
    }
    if let projection {
        let size = layer.outputSize
        scratch.newH.update(repeating: 0, count: rows * size)
        _gemm(m: rows, a: scratch.work, lda: hidden, b: projection, k: hidden, n: size,
              panels: 0..<((size + _PackedMatrix.panelWidth - 1) / _PackedMatrix.panelWidth),
              c: scratch.newH, ldc: size)
    }
}

/// GRU state update of `units` for `rows` rows; `gates` `[rows, 3H]` holds `W x + b` in
/// order [r, z, n] with `U_r h`, `U_z h` already added, and is overwritten.
///
/// `r = σ(·)`, `z = σ(·)`, then the new gate per the reset rule (`.afterMatmul`:
/// `scratch.work` holds `U_n h + b_hn`; `.beforeMatmul`: `U_n (r ⊙ h)` is computed here, for
/// every unit), and `h' = n + z ⊙ (h − n)` (PyTorch's form of `(1 − z) ⊙ n + z ⊙ h`).
@inline(__always)
private func _gruUpdate(_ layer: PreparedRecurrent, rows: Int, units: Range<Int>, gates: UnsafeMutablePointer<Float>,
                        h: UnsafePointer<Float>, scratch: _StepScratch, newWeight: UnsafePointer<Float>) {
    let hidden = layer.hiddenSize
    let width = 3 * hidden
    let n = units.count
    let j0 = units.lowerBound
    for b in 0..<rows {
        let g = gates + b * width
        layer.recurrentActivation._apply(g + j0, count: n)
        layer.recurrentActivation._apply(g + hidden + j0, count: n)
    }
    switch layer.resetRule {
    case .afterMatmul:
        for b in 0..<rows {
            let r = gates + b * width + j0
            let candidate = gates + b * width + 2 * hidden + j0
            let recurrent = scratch.work + b * hidden + j0
            for j in 0..<n { candidate[j] = candidate[j] + r[j] * recurrent[j] }
        }
    case .beforeMatmul:
        for b in 0..<rows {
            let r = gates + b * width
            let hRow = h + b * hidden
            let resetH = scratch.work + b * hidden
            for j in 0..<hidden { resetH[j] = r[j] * hRow[j] }
        }
        _gemm(m: rows, a: scratch.work, lda: hidden, b: newWeight, k: hidden, n: hidden,
              panels: 0..<((hidden + _PackedMatrix.panelWidth - 1) / _PackedMatrix.panelWidth),
              c: gates + 2 * hidden, ldc: width)
    }
    for b in 0..<rows {
        let z = gates + b * width + hidden + j0
        let candidate = gates + b * width + 2 * hidden + j0
        let hRow = h + b * hidden + j0
        let out = scratch.newH + b * hidden + j0
        layer.activation._apply(candidate, count: n)
        for j in 0..<n { out[j] = candidate[j] + z[j] * (hRow[j] - candidate[j]) }
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
