// The cell arithmetic of one step: the state update of a member's units from the gate
// pre-activations, per cell kind (RNN, LSTM, GRU under either reset rule), specialised for
// the common σ/tanh activations, vectorised sixteen units at a time with scalar tails. The
// fused one-row forms (`fusedLSTMStep`, `fusedGRUStep`) pick the same specialisations for
// FusedStep.swift's kernels.

/// The fused LSTM step of one row (`lstmStepRow`), specialised for σ and tanh.
func fusedLSTMStep(_ layer: PreparedRecurrent, h: UnsafePointer<Float>, u: UnsafePointer<Float>,
                            units: Range<Int>, gates: UnsafePointer<Float>, c: UnsafePointer<Float>,
                            newC: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, wait: StepWait?) {
    if layer.recurrentActivation == .sigmoid && layer.activation == .tanh {
        lstmStepRow(SigmoidTanhLSTM(), h: h, k: layer.outputSize, u: u, hidden: layer.hiddenSize,
                     units: units, gates: gates, c: c, newC: newC, out: out, wait: wait)
    } else {
        lstmStepRow(GeneralLSTM(sigma: ActivationFunction(layer.recurrentActivation),
                                  phi: ActivationFunction(layer.activation)),
                     h: h, k: layer.outputSize, u: u, hidden: layer.hiddenSize, units: units, gates: gates, c: c,
                     newC: newC, out: out, wait: wait)
    }
}

/// The fused `.afterMatmul` GRU step of one row (`gruStepRow`), specialised for σ and tanh.
func fusedGRUStep(_ layer: PreparedRecurrent, h: UnsafePointer<Float>, u: UnsafePointer<Float>,
                           un: UnsafePointer<Float>, newBias: UnsafePointer<Float>, units: Range<Int>,
                           gates: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, wait: StepWait?) {
    if layer.recurrentActivation == .sigmoid && layer.activation == .tanh {
        gruStepRow(SigmoidFunction(), TanhFunction(), h: h, u: u, un: un, newBias: newBias,
                    hidden: layer.hiddenSize, units: units, gates: gates, out: out, wait: wait)
    } else {
        gruStepRow(ActivationFunction(layer.recurrentActivation), ActivationFunction(layer.activation), h: h,
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
func lstmUpdate(_ layer: PreparedRecurrent, rows: Int, units: Range<Int>, gates: UnsafeMutablePointer<Float>,
                         c: UnsafeMutablePointer<Float>, newC: UnsafeMutablePointer<Float>,
                         newH: UnsafeMutablePointer<Float>, scratch: StepScratch, projection: UnsafePointer<Float>?) {
    let hidden = layer.hiddenSize
    // Without a projection the cell output is h' itself.
    let target = projection == nil ? newH : scratch.work
    if layer.recurrentActivation == .sigmoid && layer.activation == .tanh {
        lstmCells(SigmoidTanhLSTM(), rows: rows, hidden: hidden, units: units, gates: gates,
                   c: c, newC: newC, out: target)
    } else {
        lstmCells(GeneralLSTM(sigma: ActivationFunction(layer.recurrentActivation),
                                phi: ActivationFunction(layer.activation)),
                   rows: rows, hidden: hidden, units: units, gates: gates, c: c, newC: newC, out: target)
    }
    if let projection {
        let size = layer.outputSize
        newH.update(repeating: 0, count: rows * size)
        gemm(m: rows, a: scratch.work, lda: hidden, b: projection, k: hidden, n: size,
              panels: 0..<((size + PackedMatrix.panelWidth - 1) / PackedMatrix.panelWidth),
              c: newH, ldc: size)
    }
}

/// The LSTM cell arithmetic, one pass over the units, sixteen at a time:
/// `newC = σ(f) ⊙ c + σ(i) ⊙ φ(g)`, `out = σ(o) ⊙ φ(newC)` (rows of `H`).
@inline(__always)
func lstmCells<A: LSTMArithmetic>(
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
            let cell0 = arithmetic.cell(forget: loadLanes(forgetGate + j), state: loadLanes(cRow + j),
                                        input: loadLanes(inputGate + j), candidate: loadLanes(candidate + j))
            let cell1 = arithmetic.cell(forget: loadLanes(forgetGate + j + 16), state: loadLanes(cRow + j + 16),
                                        input: loadLanes(inputGate + j + 16), candidate: loadLanes(candidate + j + 16))
            storeLanes(cell0, cNew + j)
            storeLanes(cell1, cNew + j + 16)
            storeLanes(arithmetic.output(loadLanes(outputGate + j), cell: cell0), hRow + j)
            storeLanes(arithmetic.output(loadLanes(outputGate + j + 16), cell: cell1), hRow + j + 16)
            j += 32
        }
        while j + 16 <= n {
            let cell = arithmetic.cell(forget: loadLanes(forgetGate + j), state: loadLanes(cRow + j),
                                       input: loadLanes(inputGate + j), candidate: loadLanes(candidate + j))
            storeLanes(cell, cNew + j)
            storeLanes(arithmetic.output(loadLanes(outputGate + j), cell: cell), hRow + j)
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
func rnnUpdate(_ layer: PreparedRecurrent, rows: Int, units: Range<Int>, gates: UnsafePointer<Float>,
                        out: UnsafeMutablePointer<Float>) {
    if layer.activation == .tanh {
        rnnCells(TanhFunction(), rows: rows, hidden: layer.hiddenSize, units: units, gates: gates, out: out)
    } else {
        rnnCells(ActivationFunction(layer.activation), rows: rows, hidden: layer.hiddenSize, units: units,
                  gates: gates, out: out)
    }
}

@inline(__always)
func rnnCells<P: LaneFunction>(_ phi: P, rows: Int, hidden: Int, units: Range<Int>,
                                         gates: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
    for b in 0..<rows {
        let g = gates + b * hidden + units.lowerBound
        let hRow = out + b * hidden + units.lowerBound
        var j = 0
        while j + 16 <= units.count { storeLanes(phi(loadLanes(g + j)), hRow + j); j += 16 }
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
func gruUpdate(_ layer: PreparedRecurrent, rows: Int, units: Range<Int>, gates: UnsafeMutablePointer<Float>,
                        h: UnsafePointer<Float>, newH: UnsafeMutablePointer<Float>, scratch: StepScratch,
                        newWeight: UnsafePointer<Float>) {
    let hidden = layer.hiddenSize
    let width = 3 * hidden
    switch layer.resetRule {
    case .afterMatmul:
        if layer.recurrentActivation == .sigmoid && layer.activation == .tanh {
            gruCells(SigmoidFunction(), TanhFunction(), rows: rows, hidden: hidden, units: units, gates: gates,
                      recurrent: scratch.work, h: h, out: newH)
        } else {
            gruCells(ActivationFunction(layer.recurrentActivation), ActivationFunction(layer.activation),
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
                resetH[j] = sigma.elementwise(r[j]) * hRow[j]
                z[j] = sigma.elementwise(z[j])
            }
        }
        gemm(m: rows, a: scratch.work, lda: hidden, b: newWeight, k: hidden, n: hidden,
              panels: 0..<((hidden + PackedMatrix.panelWidth - 1) / PackedMatrix.panelWidth),
              c: gates + 2 * hidden, ldc: width)
        for b in 0..<rows {
            let z = gates + b * width + hidden, candidate = z + hidden
            let hRow = h + b * hidden
            let out = newH + b * hidden
            for j in 0..<hidden {
                let next = phi.elementwise(candidate[j])
                out[j] = next + z[j] * (hRow[j] - next)
            }
        }
    }
}

/// The `.afterMatmul` GRU cell arithmetic, one pass over the units, sixteen at a time:
/// `n = φ(g_n + σ(g_r) ⊙ recurrent)`, `out = n + σ(g_z) ⊙ (h − n)`.
@inline(__always)
func gruCells<S: LaneFunction, P: LaneFunction>(
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
            let next = phi(loadLanes(candidate + j) + sigma(loadLanes(r + j)) * loadLanes(u + j))
            storeLanes(next + sigma(loadLanes(z + j)) * (loadLanes(hRow + j) - next), o + j)
            j += 16
        }
        while j < n {
            let next = phi(candidate[j] + sigma(r[j]) * u[j])
            o[j] = next + sigma(z[j]) * (hRow[j] - next)
            j += 1
        }
    }
}

/// The state update of a cell with ONNX's options (`ExtendedCell`: peepholes, `clip`,
/// `input_forget`, activations per direction and with parameters), for `units` of `rows`
/// rows of direction `direction`, one value at a time, in ONNX Runtime's order of operations.
///
/// `gates` `[rows, G·H]` holds `W x + b + U h` in the internal order (GRU: the new gate's
/// block holds `W_n x + b_in`, and `scratch.work` `U_n h + b_hn` under `.afterMatmul`). With
/// `f`, `g`, `h` the direction's gate, candidate and cell-output activations and `clip(x)` =
/// `min(max(x, −clip), clip)` (the identity without a clip):
/// - RNN: `h' = g(clip(a))`;
/// - LSTM: `i = f(clip(a_i + p_i ⊙ c))`, `f = 1 − i` with `input_forget`, else
///   `f(clip(a_f + p_f ⊙ c))`; `c' = f ⊙ c + i ⊙ g(clip(a_c))`, `o = f(clip(a_o + p_o ⊙ c'))`,
///   `h' = o ⊙ h(c')`;
/// - GRU: `r = f(clip(a_r))`, `z = f(clip(a_z))`, `n = g(clip(a_n + r ⊙ (U_n h + b_hn)))`
///   (`.afterMatmul`) or `g(clip(a_n + U_n (r ⊙ h)))` (`.beforeMatmul`, every unit), then
///   `h' = n + z ⊙ (h − n)`.
func extendedUpdate(_ layer: PreparedRecurrent, _ cell: ExtendedCell, direction: Int, rows: Int, units: Range<Int>,
                    gates: UnsafeMutablePointer<Float>, c: UnsafeMutablePointer<Float>?,
                    newC: UnsafeMutablePointer<Float>?, h: UnsafePointer<Float>, newH: UnsafeMutablePointer<Float>,
                    scratch: StepScratch, weights: PinnedDirection) {
    let hidden = layer.hiddenSize
    let width = layer.gateCount * hidden
    let activations = cell.activations[direction]
    let f = activations.gate, g = activations.candidate
    let bound = cell.clip ?? .infinity
    // ONNX Runtime's clip: min with the bound, then max with its negative.
    @inline(__always) func clipped(_ x: Float) -> Float { Swift.max(-bound, Swift.min(bound, x)) }
    switch layer.kind {
    case .rnn:
        for b in 0..<rows {
            let a = gates + b * width, out = newH + b * hidden
            for j in units { out[j] = g(clipped(a[j])) }
        }
    case .lstm:
        let outputActivation = activations.cellOutput
        let peepholes = layer.directions[direction].peepholes
        for b in 0..<rows {
            let a = gates + b * width
            let cRow = c! + b * hidden, cNew = newC! + b * hidden, out = newH + b * hidden
            for j in units {
                let previous = cRow[j]
                let pi = peepholes.map { $0[j] * previous } ?? 0
                let pf = peepholes.map { $0[hidden + j] * previous } ?? 0
                let input = f(clipped(a[j] + pi))
                let forget = cell.inputForget ? 1 - input : f(clipped(a[hidden + j] + pf))
                let state = forget * previous + input * g(clipped(a[2 * hidden + j]))
                let po = peepholes.map { $0[2 * hidden + j] * state } ?? 0
                let output = f(clipped(a[3 * hidden + j] + po))
                cNew[j] = state
                out[j] = output * outputActivation(state)
            }
        }
    case .gru:
        switch layer.resetRule {
        case .afterMatmul:
            for b in 0..<rows {
                let a = gates + b * width, recurrent = scratch.work + b * hidden
                let hRow = h + b * hidden, out = newH + b * hidden
                for j in units {
                    let reset = f(clipped(a[j])), update = f(clipped(a[hidden + j]))
                    let next = g(clipped(a[2 * hidden + j] + reset * recurrent[j]))
                    out[j] = next + update * (hRow[j] - next)
                }
            }
        case .beforeMatmul:
            // Every unit (never split), as `gruUpdate`: r ⊙ h for the product, z kept in place.
            for b in 0..<rows {
                let a = gates + b * width, hRow = h + b * hidden, resetH = scratch.work + b * hidden
                for j in 0..<hidden {
                    resetH[j] = f(clipped(a[j])) * hRow[j]
                    a[hidden + j] = f(clipped(a[hidden + j]))
                }
            }
            gemm(m: rows, a: scratch.work, lda: hidden, b: weights.un!, k: hidden, n: hidden,
                  panels: 0..<((hidden + PackedMatrix.panelWidth - 1) / PackedMatrix.panelWidth),
                  c: gates + 2 * hidden, ldc: width)
            for b in 0..<rows {
                let a = gates + b * width, hRow = h + b * hidden, out = newH + b * hidden
                for j in 0..<hidden {
                    let next = g(clipped(a[2 * hidden + j]))
                    out[j] = next + a[hidden + j] * (hRow[j] - next)
                }
            }
        }
    }
}
