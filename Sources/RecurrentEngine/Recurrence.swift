// The recurrence: one recurrent layer over a masked sequence.
//
// Layout for speed: per direction, the input projection of all steps is one matrix product
// `[B·T, I] × [I, G·H]` (biases folded in), so the time loop only multiplies the state
// `[B, R] × [R, G·H]` and applies the gates. Every buffer the loop touches is allocated
// before it starts.

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
/// direction's final `h`.
func _runRecurrent(_ layer: PreparedRecurrent, flow: _Flow, state: inout _LayerState) -> _Flow {
    let batch = flow.batch
    let time = flow.time ?? 0
    let inputSize = layer.inputSize
    let hidden = layer.hiddenSize
    let recurrentSize = layer.outputSize
    let gateWidth = layer.gateCount * hidden
    let directionCount = layer.directionCount
    let stepWidth = directionCount * recurrentSize  // concat layout of the raw output

    // Raw per-step output, directions side by side (concat layout); merged at the end.
    var raw = [Float](repeating: 0, count: layer.returnSequences ? batch * time * stepWidth : 0)

    // Scratch, allocated once for all directions and steps.
    let projection = UnsafeMutablePointer<Float>.allocate(capacity: max(1, batch * time * gateWidth))
    let gates = UnsafeMutablePointer<Float>.allocate(capacity: max(1, batch * gateWidth))
    let recurrentPart = UnsafeMutablePointer<Float>.allocate(capacity: max(1, batch * gateWidth))
    let newH = UnsafeMutablePointer<Float>.allocate(capacity: max(1, batch * recurrentSize))
    let newC = UnsafeMutablePointer<Float>.allocate(capacity: max(1, batch * hidden))
    let cellOut = UnsafeMutablePointer<Float>.allocate(capacity: max(1, batch * hidden))
    defer {
        projection.deallocate(); gates.deallocate(); recurrentPart.deallocate()
        newH.deallocate(); newC.deallocate(); cellOut.deallocate()
    }
    let mask = flow.mask

    // The cell state is moved out of `state` for the loop so no copy is made on write.
    var cStorage = state.c ?? []
    state.c = nil
    defer { if layer.kind == .lstm { state.c = cStorage } }

    for d in 0..<directionCount where batch > 0 && time > 0 {
        let weights = layer.directions[d]
        let reversed = d == 1 || layer.goBackwards

        // Input projection for every step at once: P[b·T + t, :] = x[b, t, :] Wᵀ + bias.
        flow.values.withUnsafeBufferPointer { x in
            weights.inputWeightT.withUnsafeBufferPointer { w in
                weights.bias.withUnsafeBufferPointer { bias in
                    _affine(x: x.baseAddress, rows: batch * time, inputs: inputSize,
                            weightT: w.baseAddress!, outputs: gateWidth, bias: bias.baseAddress!, into: projection)
                }
            }
        }

        let hOffset = d * batch * recurrentSize
        let cOffset = d * batch * hidden
        state.h.withUnsafeMutableBufferPointer { hAll in
        state.carried.withUnsafeMutableBufferPointer { carriedAll in
        raw.withUnsafeMutableBufferPointer { out in
        weights.recurrentWeightT.withUnsafeBufferPointer { recurrentWeightT in
            let h = hAll.baseAddress! + hOffset
            let carried = carriedAll.baseAddress! + hOffset
            let u = recurrentWeightT.baseAddress!
            cStorage.withUnsafeMutableBufferPointer { cAll in
                // Decided by kind, not by baseAddress: an empty array may still have one.
                let c = layer.kind == .lstm ? cAll.baseAddress! + cOffset : nil
                for s in 0..<time {
                    let t = reversed ? time - 1 - s : s
                    // go_backwards emits in processing order; a backward direction of a
                    // bidirectional layer stores each output at its own time index.
                    let outT = layer.goBackwards ? s : t

                    // Gather this step's input projection rows: [B, G·H].
                    for b in 0..<batch {
                        let source = projection + (b * time + t) * gateWidth
                        let target = gates + b * gateWidth
                        target.update(from: source, count: gateWidth)
                    }

                    switch layer.kind {
                    case .rnn:
                        _rnnStep(batch: batch, hidden: hidden, gates: gates, h: h, u: u,
                                 activation: layer.activation, newH: newH)
                    case .lstm:
                        _lstmStep(batch: batch, hidden: hidden, recurrentSize: recurrentSize, gates: gates,
                                  h: h, c: c!, u: u, projectionT: weights.projectionT,
                                  activation: layer.activation, gateActivation: layer.recurrentActivation,
                                  newH: newH, newC: newC, cellOut: cellOut)
                    case .gru:
                        _gruStep(batch: batch, hidden: hidden, gates: gates, recurrentPart: recurrentPart,
                                 h: h, u: u, recurrentNewBias: weights.recurrentNewBias,
                                 resetRule: layer.resetRule, activation: layer.activation,
                                 gateActivation: layer.recurrentActivation, newH: newH, scratch: cellOut)
                    }

                    // Commit valid rows; masked rows keep their state.
                    for b in 0..<batch {
                        let valid = mask?[b * time + t] ?? true
                        let rowH = h + b * recurrentSize
                        let rowCarried = carried + b * recurrentSize
                        if valid {
                            rowH.update(from: newH + b * recurrentSize, count: recurrentSize)
                            if let c { (c + b * hidden).update(from: newC + b * hidden, count: hidden) }
                            rowCarried.update(from: rowH, count: recurrentSize)
                        }
                        if layer.returnSequences {
                            let target = out.baseAddress! + (b * time + outT) * stepWidth + d * recurrentSize
                            if valid || layer.maskedOutput == .carry {
                                target.update(from: rowCarried, count: recurrentSize)
                            }
                            // else: stays zero.
                        }
                    }
                }
            }
        }
        }
        }
        }
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

/// Simple RNN step for all rows: `h' = φ(gates + h Uᵀ)`, `gates` already holding `W x + b`.
@inline(__always)
func _rnnStep(batch: Int, hidden: Int, gates: UnsafeMutablePointer<Float>, h: UnsafePointer<Float>,
              u: UnsafePointer<Float>, activation: Activation, newH: UnsafeMutablePointer<Float>) {
    _gemmAccumulate(m: batch, n: hidden, k: hidden, a: h, lda: hidden, b: u, ldb: hidden, c: gates, ldc: hidden)
    for i in 0..<(batch * hidden) { newH[i] = activation._elementwise(gates[i]) }
}

/// LSTM step for all rows; `gates` holds `W x + b` in order [i, f, g, o], `[B, 4H]`.
///
/// `c' = σ(f) ⊙ c + σ(i) ⊙ φ(g)`, `h' = σ(o) ⊙ φ(c')`, projected by `W_hr` when present.
@inline(__always)
func _lstmStep(batch: Int, hidden: Int, recurrentSize: Int, gates: UnsafeMutablePointer<Float>,
               h: UnsafePointer<Float>, c: UnsafePointer<Float>, u: UnsafePointer<Float>,
               projectionT: [Float]?, activation: Activation, gateActivation: Activation,
               newH: UnsafeMutablePointer<Float>, newC: UnsafeMutablePointer<Float>,
               cellOut: UnsafeMutablePointer<Float>) {
    let width = 4 * hidden
    _gemmAccumulate(m: batch, n: width, k: recurrentSize, a: h, lda: recurrentSize, b: u, ldb: width, c: gates, ldc: width)
    // Without a projection the cell output is h' itself.
    let target = projectionT == nil ? newH : cellOut
    for b in 0..<batch {
        let g = gates + b * width
        let cRow = c + b * hidden
        let cNew = newC + b * hidden
        let out = target + b * hidden
        for j in 0..<hidden {
            let inputGate = gateActivation._elementwise(g[j])
            let forgetGate = gateActivation._elementwise(g[hidden + j])
            let candidate = activation._elementwise(g[2 * hidden + j])
            let outputGate = gateActivation._elementwise(g[3 * hidden + j])
            let cell = forgetGate * cRow[j] + inputGate * candidate
            cNew[j] = cell
            out[j] = outputGate * activation._elementwise(cell)
        }
    }
    if let projectionT {
        for i in 0..<(batch * recurrentSize) { newH[i] = 0 }
        projectionT.withUnsafeBufferPointer { p in
            _gemmAccumulate(m: batch, n: recurrentSize, k: hidden, a: cellOut, lda: hidden,
                            b: p.baseAddress!, ldb: recurrentSize, c: newH, ldc: recurrentSize)
        }
    }
}

/// GRU step for all rows; `gates` holds the input part `W x + b` in order [r, z, n], `[B, 3H]`.
///
/// `r = σ(x_r + U_r h)`, `z = σ(x_z + U_z h)`, then the new gate per `resetRule`, and
/// `h' = n + z ⊙ (h − n)` (PyTorch's form of `(1 − z) ⊙ n + z ⊙ h`).
@inline(__always)
func _gruStep(batch: Int, hidden: Int, gates: UnsafeMutablePointer<Float>,
              recurrentPart: UnsafeMutablePointer<Float>, h: UnsafePointer<Float>, u: UnsafePointer<Float>,
              recurrentNewBias: [Float]?, resetRule: GRUResetRule, activation: Activation,
              gateActivation: Activation, newH: UnsafeMutablePointer<Float>,
              scratch: UnsafeMutablePointer<Float>) {
    let width = 3 * hidden
    switch resetRule {
    case .afterMatmul:
        // U h for all three blocks, kept apart from the input part because r scales U_n h + b_hn.
        recurrentPart.update(repeating: 0, count: batch * width)
        _gemmAccumulate(m: batch, n: width, k: hidden, a: h, lda: hidden, b: u, ldb: width, c: recurrentPart, ldc: width)
        recurrentNewBias!.withUnsafeBufferPointer { bhn in
            for b in 0..<batch {
                let x = gates + b * width
                let rec = recurrentPart + b * width
                let hRow = h + b * hidden
                let out = newH + b * hidden
                for j in 0..<hidden {
                    let r = gateActivation._elementwise(x[j] + rec[j])
                    let z = gateActivation._elementwise(x[hidden + j] + rec[hidden + j])
                    let n = activation._elementwise(x[2 * hidden + j] + r * (rec[2 * hidden + j] + bhn[j]))
                    out[j] = n + z * (hRow[j] - n)
                }
            }
        }
    case .beforeMatmul:
        // r and z first, then U_n (r ⊙ h).
        recurrentPart.update(repeating: 0, count: batch * width)
        _gemmAccumulate(m: batch, n: 2 * hidden, k: hidden, a: h, lda: hidden, b: u, ldb: width,
                        c: recurrentPart, ldc: width)
        for b in 0..<batch {
            let x = gates + b * width
            let rec = recurrentPart + b * width
            let hRow = h + b * hidden
            let resetH = scratch + b * hidden
            for j in 0..<hidden {
                let r = gateActivation._elementwise(x[j] + rec[j])
                resetH[j] = r * hRow[j]
            }
        }
        _gemmAccumulate(m: batch, n: hidden, k: hidden, a: scratch, lda: hidden, b: u + 2 * hidden, ldb: width,
                        c: recurrentPart + 2 * hidden, ldc: width)
        for b in 0..<batch {
            let x = gates + b * width
            let rec = recurrentPart + b * width
            let hRow = h + b * hidden
            let out = newH + b * hidden
            for j in 0..<hidden {
                let z = gateActivation._elementwise(x[hidden + j] + rec[hidden + j])
                let n = activation._elementwise(x[2 * hidden + j] + rec[2 * hidden + j])
                out[j] = n + z * (hRow[j] - n)
            }
        }
    }
}
