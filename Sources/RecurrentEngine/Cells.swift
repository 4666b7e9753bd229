// The cell arithmetic of one step: the state update of a member's units from the gate
// pre-activations, per cell kind (RNN, LSTM, GRU under either reset rule), specialised for
// the common σ/tanh activations, vectorised sixteen units at a time with scalar tails. The
// fused one-row forms (`_fusedLSTMStep`, `_fusedGRUStep`) pick the same specialisations for
// FusedStep.swift's kernels.

/// The fused LSTM step of one row (`_lstmStepRow`), specialised for σ and tanh.
func _fusedLSTMStep(_ layer: PreparedRecurrent, h: UnsafePointer<Float>, u: UnsafePointer<Float>,
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
func _fusedGRUStep(_ layer: PreparedRecurrent, h: UnsafePointer<Float>, u: UnsafePointer<Float>,
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
func _lstmUpdate(_ layer: PreparedRecurrent, rows: Int, units: Range<Int>, gates: UnsafeMutablePointer<Float>,
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
func _lstmCells<A: _LSTMArithmetic>(
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
func _rnnUpdate(_ layer: PreparedRecurrent, rows: Int, units: Range<Int>, gates: UnsafePointer<Float>,
                        out: UnsafeMutablePointer<Float>) {
    if layer.activation == .tanh {
        _rnnCells(_TanhFunction(), rows: rows, hidden: layer.hiddenSize, units: units, gates: gates, out: out)
    } else {
        _rnnCells(_ActivationFunction(layer.activation), rows: rows, hidden: layer.hiddenSize, units: units,
                  gates: gates, out: out)
    }
}

@inline(__always)
func _rnnCells<P: _LaneFunction>(_ phi: P, rows: Int, hidden: Int, units: Range<Int>,
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
func _gruUpdate(_ layer: PreparedRecurrent, rows: Int, units: Range<Int>, gates: UnsafeMutablePointer<Float>,
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
func _gruCells<S: _LaneFunction, P: _LaneFunction>(
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
