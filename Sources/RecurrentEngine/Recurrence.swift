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
// Threads (`RecurrentLayerPlan`): directions run in parallel; within a direction, batch rows are
// split when there are at least 8 per thread, else the hidden units (their gate columns of
// every product, and their state update) are split between threads that meet once per step
// after writing their part of the new `h` (for a single row, inside the next step's product
// where it reaches a partner's part: `StepWait`). At such small batches a stack of
// one-direction layers runs as a pipeline instead (`pipelineLength`): every layer at once on
// threads of its own, each chunk of a layer's steps starting once the layer before has
// written the outputs that chunk projects. Step by step the work is the same, so are the bits.
//
// Where each part lives: this file runs a stack of layers and assembles its output; planning
// (the split over threads, each member's step path) is in RecurrentPlan.swift, the run's
// buffers and the box that shares them between threads in RecurrentMemory.swift, one group
// member's time loop in TimeLoop.swift, the cell arithmetic in Cells.swift, the fused
// one-row kernels in FusedStep.swift and the threads themselves in Parallel.swift.

/// Data flowing between layers.
struct LayerFlow {
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
struct LayerState: Sendable {
    /// `[D, B, R]`.
    var h: [Float]
    /// `[D, B, H]`, LSTM only.
    var c: [Float]?
    /// `[D, B, R]`: the last output emitted at a valid step (zero before any), which a
    /// `.carry` layer repeats at masked steps. Kept so that streaming in chunks matches a
    /// full run even when a chunk boundary falls inside a masked stretch.
    var carried: [Float]
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
/// More than one layer runs as a pipeline (`pipelineLength`), with the same results, bit for
/// bit, as running them one after the other.
///
/// Returns `[B, T, merged]` with `returnSequences`, else `[B, merged]` from each
/// direction's final `h`. The result does not depend on `threads`, bit for bit.
///
/// With `tokens` (`[B, T]` ids, for a first layer whose directions have a `tokenProjection`), the
/// input projection of each step is looked up by token and `flow.values` is not read.
func runRecurrentStack(_ layers: [PreparedRecurrent], flow: LayerFlow, states: inout [LayerState], threads: Int,
                        tokens: [Int]?) -> LayerFlow {
    let batch = flow.batch
    let time = flow.time ?? 0
    let pipelined = layers.count > 1
    // Threads per layer: an even share, the first layers taking what is left over.
    let shares = layers.indices.map { threads / layers.count + ($0 < threads % layers.count ? 1 : 0) }
    let runs = layers.indices.map { i in
        LayerRun(layers[i], state: states[i], batch: batch, time: time, threads: shares[i], pipelined: pipelined)
    }
    defer { for run in runs { run.deallocate() } }

    // Raw per-step outputs, directions side by side (concat layout), merged at the end.
    // Without a mask every step of every row is written, so no zero fill is needed; masked
    // steps of a `.zero` layer stay zero.
    let outputs = withOutputs(runs.map { $0.rawCount }[...], zero: flow.mask != nil) { raws in
        guard batch > 0 && time > 0 else { return }
        flow.values.withUnsafeBufferPointer { x in
            withOptionalBuffer(tokens) { tokens in
                withOptionalBuffer(flow.mask) { mask in
                    let tasks = runs.indices.map { i in
                        runs[i].task(x: i == 0 ? x.baseAddress : UnsafePointer(raws[i - 1]), tokens: i == 0 ? tokens : nil,
                                     mask: mask, raw: raws[i], source: i > 0 ? runs[i - 1].progress : nil)
                    }
                    runInParallel(tasks, batch: batch, time: time)
                }
            }
        }
    }
    for i in runs.indices { runs[i].write(to: &states[i]) }
    return stackOutput(layers[layers.count - 1], raw: outputs[outputs.count - 1], state: states[states.count - 1],
                        flow: flow)
}

/// Runs every worker of every layer of `tasks` at once, one thread each (in a pipeline each
/// worker runs one group member), and returns when all have finished.
private func runInParallel(_ tasks: [LayerTask], batch: Int, time: Int) {
    let jobs = tasks.indices.flatMap { i in tasks[i].plan.work.indices.map { (layer: i, worker: $0) } }
    runParallel(jobs.count) { job in
        let (i, worker) = jobs[job]
        for assignment in tasks[i].plan.work[worker] {
            runGroup(tasks[i], assignment, batch: batch, time: time)
        }
    }
}

/// The stack's output from its last layer: the merged raw outputs `[B, T, merged]` with
/// `returnSequences`, else each direction's final `h` merged into `[B, merged]`.
private func stackOutput(_ layer: PreparedRecurrent, raw: [Float], state: LayerState, flow: LayerFlow) -> LayerFlow {
    let batch = flow.batch
    let recurrentSize = layer.outputSize
    if layer.returnSequences {
        let time = flow.time ?? 0
        let merged = mergeDirections(raw, rows: batch * time, size: recurrentSize,
                                      directions: layer.directionCount, merge: layer.merge)
        // The mask passes on as it came, also after goBackwards (whose outputs are in
        // reversed order): Keras's RNN.compute_mask does the same.
        return LayerFlow(values: merged, batch: batch, time: time, features: layer.mergedOutputSize, mask: flow.mask)
    }
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
    let merged = mergeDirections(last, rows: batch, size: recurrentSize,
                                  directions: layer.directionCount, merge: layer.merge)
    return LayerFlow(values: merged, batch: batch, time: nil, features: layer.mergedOutputSize, mask: nil)
}

/// Merges `[rows, D·size]` (directions side by side) into `[rows, merged]`.
///
/// concat: unchanged; sum: `a + b`; mul: `a ⊙ b`; ave: `(a + b) / 2`.
func mergeDirections(_ raw: [Float], rows: Int, size: Int, directions: Int, merge: MergeMode) -> [Float] {
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
