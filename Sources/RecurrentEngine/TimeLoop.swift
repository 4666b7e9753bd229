// The time loop of one group member (`runGroup`): per chunk of steps the input projection,
// then each step along the path its plan chose once (`MemberPlan`): the new state (fused or
// batched), where it goes (in place, or committed row by row by the mask), and the meeting
// with the group's other members.

/// Runs one member of one group of a layer's plan (`task.plan.groups[assignment.group]`).
///
/// A member owns the hidden units `units` of its group: it computes their gate columns of the
/// input projection and of every step's product, their state update and their outputs, so it
/// only reads what it writes itself, except `h`, which every member's product reads whole.
/// `h` alternates between two buffers; the members meet once per step, after writing theirs.
///
/// In a pipeline, `task.source` counts the steps each worker of the layer before has finished
/// (its outputs are this layer's inputs `x`), and this member arrives at `task.progress` once
/// per step, after writing its outputs.
func runGroup(_ task: LayerTask, _ assignment: RecurrentLayerPlan.Assignment, batch: Int, time: Int) {
    let loop = GroupLoop(task, assignment, batch: batch, time: time)
    loop.loadInitialState()
    withPinned(loop.layer.directions[loop.direction]) { weights in
        for chunkStart in stride(from: 0, to: time, by: loop.scratch.chunk) {
            let steps = Swift.min(loop.scratch.chunk, time - chunkStart)
            loop.project(chunkStart: chunkStart, steps: steps, weights: weights)
            for slot in 0..<steps { loop.step(chunkStart + slot, slot: slot, weights: weights) }
        }
    }
    loop.storeFinalState()
}

/// One member's view of its group for the time loop: the plan, the sizes, and pointers to
/// its part of the layer's memory.
struct GroupLoop {
    let layer: PreparedRecurrent
    let plan: MemberPlan
    let direction: Int
    let member: Int
    /// The group's batch rows; `m` of them.
    let rows: Range<Int>
    let m: Int
    let time: Int
    /// Whether step `s` processes time `T − 1 − s` (a backward direction, `goBackwards` or
    /// `reversed`).
    let reversed: Bool
    let memory: LayerMemory
    let scratch: StepScratch
    /// This member's `[chunk, m, I]` part of `scratch.inputs`.
    let inputs: UnsafeMutablePointer<Float>
    /// The group's rows of the layer's `h` `[m, R]`, `c` `[m, H]` and `carried` `[m, R]`.
    let stateH: UnsafeMutablePointer<Float>
    let c: UnsafeMutablePointer<Float>?
    let carried: UnsafeMutablePointer<Float>
    let barrier: SpinBarrier?
    let source: SpinBarrier?
    /// In a pipeline, where this member arrives after each step.
    let progress: (barrier: SpinBarrier, slot: Int)?

    var hidden: Int { layer.hiddenSize }
    var recurrentSize: Int { layer.outputSize }
    var inputSize: Int { layer.inputSize }
    var gateWidth: Int { layer.gateCount * layer.hiddenSize }
    var stepWidth: Int { layer.directionCount * layer.outputSize }

    init(_ task: LayerTask, _ assignment: RecurrentLayerPlan.Assignment, batch: Int, time: Int) {
        let group = task.plan.groups[assignment.group]
        let layer = task.layer
        self.layer = layer
        direction = group.direction
        member = assignment.member
        rows = group.rows
        m = group.rows.count
        self.time = time
        reversed = direction == 1 || layer.goBackwards || layer.reversed
        memory = task.memory
        plan = MemberPlan(layer, rows: m, members: group.members, member: member, masked: memory.mask != nil)
        scratch = memory.scratch[assignment.group]
        inputs = scratch.inputs + member * scratch.chunk * m * layer.inputSize
        let first = direction * batch + rows.lowerBound
        stateH = memory.h + first * layer.outputSize
        c = memory.c.map { $0 + first * layer.hiddenSize }
        carried = memory.carried + first * layer.outputSize
        barrier = task.barriers[assignment.group]
        source = task.source
        progress = task.progress.map { ($0, task.plan.slot(assignment)) }
    }

    /// The time index step `s` processes.
    func timeIndex(ofStep s: Int) -> Int { reversed ? time - 1 - s : s }

    /// `[m, R]`: `h` before step `s`.
    func hBuffer(_ s: Int) -> UnsafeMutablePointer<Float> { scratch.hBuffers + (s % 2) * m * recurrentSize }

    /// `h` before the first step, this member's units; then the group's first meeting.
    func loadInitialState() {
        let units = plan.outputUnits
        for b in 0..<m {
            (scratch.hBuffers + b * recurrentSize + units.lowerBound)
                .update(from: stateH + b * recurrentSize + units.lowerBound, count: units.count)
        }
        barrier?.wait(member: member)
    }

    /// The final `h`, this member's units (and, when committed in place, the last emitted
    /// output: every step was valid, so it is the final `h`).
    func storeFinalState() {
        let units = plan.outputUnits
        let last = hBuffer(time)
        for b in 0..<m {
            (stateH + b * recurrentSize + units.lowerBound)
                .update(from: last + b * recurrentSize + units.lowerBound, count: units.count)
            if plan.commit == .inPlace && time > 0 {
                (carried + b * recurrentSize + units.lowerBound)
                    .update(from: last + b * recurrentSize + units.lowerBound, count: units.count)
            }
        }
    }

    // MARK: - Input projection

    /// The input projections of steps `chunkStart ..< chunkStart + steps` into `scratch.gates`
    /// (`[steps, m, G·H]`), this member's columns.
    func project(chunkStart: Int, steps: Int, weights: PinnedDirection) {
        if let tokens = memory.tokens, let table = weights.tokenProjection {
            // A fused step reads the token's row of the table in place instead.
            if plan.path == .batched { lookUp(tokens: tokens, table: table, chunkStart: chunkStart, steps: steps) }
        } else {
            // In a pipeline, wait until the layer before has written them (it runs forward in
            // time: x[·, t] is written at its step t).
            if let source {
                for other in 0..<source.count { source.wait(for: other, rounds: chunkStart + steps) }
            }
            // The chunk's inputs, time-major in processing order: inputs[slot, b] = x[b, t].
            for slot in 0..<steps {
                let t = timeIndex(ofStep: chunkStart + slot)
                for b in 0..<m {
                    (inputs + (slot * m + b) * inputSize)
                        .update(from: memory.x! + ((rows.lowerBound + b) * time + t) * inputSize, count: inputSize)
                }
            }
            // Their projection for this member's columns: gates[slot, b] = x[b, t] W + bias.
            for panels in plan.inputPanels {
                gemm(m: steps * m, a: inputs, lda: inputSize, b: weights.w, k: inputSize, n: gateWidth,
                      panels: panels, c: scratch.gates, ldc: gateWidth, initial: weights.bias)
            }
        }
    }

    /// The projection of each step's token, this member's columns:
    /// `gates[slot, b] = tokenProjection[id of x[b, t]]`.
    private func lookUp(tokens: UnsafePointer<Int>, table: UnsafePointer<Float>, chunkStart: Int, steps: Int) {
        let width = PackedMatrix.panelWidth
        for slot in 0..<steps {
            let t = timeIndex(ofStep: chunkStart + slot)
            for b in 0..<m {
                let source = table + tokens[(rows.lowerBound + b) * time + t] * gateWidth
                let target = scratch.gates + (slot * m + b) * gateWidth
                for panels in plan.inputPanels {
                    let columns = (panels.lowerBound * width)..<Swift.min(gateWidth, panels.upperBound * width)
                    (target + columns.lowerBound).update(from: source + columns.lowerBound, count: columns.count)
                }
            }
        }
    }

    // MARK: - One step

    /// Step `s` (the chunk's `slot`): the new state of this member's units along the plan's
    /// path, committed, then the meeting with the other members.
    func step(_ s: Int, slot: Int, weights: PinnedDirection) {
        let t = timeIndex(ofStep: s)
        let gates = scratch.gates + slot * m * gateWidth  // [m, G·H]
        let h = hBuffer(s)                                  // [m, R], read
        let hNext = hBuffer(s + 1)                          // written
        // The new h (and c) go to scratch, or straight to the next h buffer (and over c).
        let inPlace = plan.commit == .inPlace
        let newH = inPlace ? hNext : scratch.newH
        let newC = inPlace ? c : scratch.newC
        switch plan.path {
        case .fused:
            fusedState(s, t: t, gates: gates, h: h, newH: newH, newC: newC, weights: weights)
        case .batched:
            batchedState(gates: gates, h: h, newH: newH, newC: newC, weights: weights)
        }
        // go_backwards emits in processing order; a backward direction of a bidirectional
        // layer, and a reversed one, stores each output at its own time index.
        let outT = layer.goBackwards ? s : t
        switch plan.commit {
        case .inPlace:
            if memory.raw != nil {
                for b in 0..<m { emit(row: b, at: outT, from: hNext + b * recurrentSize) }
            }
        case .masked:
            for b in 0..<m {
                commit(row: b, valid: memory.mask?[(rows.lowerBound + b) * time + t] ?? true,
                       h: h, hNext: hNext, at: outT)
            }
        }
        meet(afterStep: s)
    }

    /// One row: product and cell arithmetic per block of 32 units (FusedStep.swift), from the
    /// step's projection, or, after an embedding, the token's row of the table, read in place.
    private func fusedState(_ s: Int, t: Int, gates: UnsafeMutablePointer<Float>, h: UnsafePointer<Float>,
                            newH: UnsafeMutablePointer<Float>, newC: UnsafeMutablePointer<Float>?,
                            weights: PinnedDirection) {
        var projected = UnsafePointer(gates)
        if let tokens = memory.tokens, let table = weights.tokenProjection {
            projected = table + tokens[rows.lowerBound * time + t] * gateWidth
        }
        // Each partner's h of this step is written once it has arrived 1 + s times (the first
        // arrival is the meeting before the loop).
        let wait = plan.meeting == .insideNextProduct
            ? StepWait(barrier: barrier!, member: member, rounds: 1 + s, bounds: scratch.memberBounds)
            : nil
        if layer.kind == .lstm {
            fusedLSTMStep(layer, h: h, u: weights.u, units: plan.units, gates: projected, c: c!,
                           newC: newC!, out: newH, wait: wait)
        } else {
            fusedGRUStep(layer, h: h, u: weights.u, un: weights.un!, newBias: weights.recurrentNewBias!,
                          units: plan.units, gates: projected, out: newH, wait: wait)
        }
    }

    /// The step's products over the group's rows into `gates` (GRU: the r and z blocks only;
    /// `U_n h + b_hn` apart, in `scratch.work`), then the cell update of this member's units.
    private func batchedState(gates: UnsafeMutablePointer<Float>, h: UnsafePointer<Float>,
                              newH: UnsafeMutablePointer<Float>, newC: UnsafeMutablePointer<Float>?,
                              weights: PinnedDirection) {
        for panels in plan.recurrentPanels {
            gemm(m: m, a: h, lda: recurrentSize, b: weights.u, k: recurrentSize, n: weights.recurrentColumns,
                  panels: panels, c: gates, ldc: gateWidth)
        }
        if layer.kind == .gru && layer.resetRule == .afterMatmul {
            for panels in plan.newPanels {
                gemm(m: m, a: h, lda: hidden, b: weights.un!, k: hidden, n: hidden, panels: panels,
                      c: scratch.work, ldc: hidden, initial: weights.recurrentNewBias!)
            }
        }
        if let extended = layer.extended {
            extendedUpdate(layer, extended, direction: direction, rows: m, units: plan.units, gates: gates, c: c,
                           newC: newC, h: h, newH: newH, scratch: scratch, weights: weights)
            return
        }
        switch layer.kind {
        case .rnn:
            rnnUpdate(layer, rows: m, units: plan.units, gates: gates, out: newH)
        case .lstm:
            lstmUpdate(layer, rows: m, units: plan.units, gates: gates, c: c!, newC: newC!, newH: newH,
                        scratch: scratch, projection: weights.projection)
        case .gru:
            gruUpdate(layer, rows: m, units: plan.units, gates: gates, h: h, newH: newH, scratch: scratch,
                       newWeight: weights.un!)
        }
    }

    /// The masking rule, for row `b` of a step whose new state is in scratch: a valid step
    /// takes the new `h` and `c` and emits `h`, which `carried` remembers; a masked step
    /// keeps `h` and `c` and emits the carried output (`.carry`) or nothing (`.zero`: the
    /// output stays zero).
    private func commit(row b: Int, valid: Bool, h: UnsafePointer<Float>, hNext: UnsafeMutablePointer<Float>,
                        at outT: Int) {
        let units = plan.outputUnits
        let rowNext = hNext + b * recurrentSize + units.lowerBound
        let rowCarried = carried + b * recurrentSize + units.lowerBound
        if valid {
            rowNext.update(from: scratch.newH + b * recurrentSize + units.lowerBound, count: units.count)
            if let c {
                let cells = plan.units
                (c + b * hidden + cells.lowerBound).update(from: scratch.newC + b * hidden + cells.lowerBound,
                                                           count: cells.count)
            }
            rowCarried.update(from: rowNext, count: units.count)
        } else {
            rowNext.update(from: h + b * recurrentSize + units.lowerBound, count: units.count)
        }
        if valid || layer.maskedOutput == .carry {
            emit(row: b, at: outT, from: carried + b * recurrentSize)
        }
    }

    /// Writes row `b`'s output for time `outT` (this member's units of `values` `[R]`) into
    /// the raw output, if the layer returns sequences.
    private func emit(row b: Int, at outT: Int, from values: UnsafePointer<Float>) {
        guard let raw = memory.raw else { return }
        let units = plan.outputUnits
        (raw + ((rows.lowerBound + b) * time + outT) * stepWidth + direction * recurrentSize + units.lowerBound)
            .update(from: values + units.lowerBound, count: units.count)
    }

    /// The end of step `s`: in a pipeline the arrival the next layer waits for, then the
    /// meeting with the group's other members.
    private func meet(afterStep s: Int) {
        if let progress { progress.barrier.arrive(member: progress.slot) }
        switch plan.meeting {
        case .alone: break
        case .afterStep: barrier!.wait(member: member)
        case .insideNextProduct: barrier!.arrive(member: member)
        }
    }
}
