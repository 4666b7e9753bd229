// One recurrent step for a single batch row, fused: the state product of a block of 32
// units' gate columns accumulates in registers and the cell arithmetic runs on those
// registers, so the gate pre-activations never go back to memory.
//
// At batch 1 a step is bound by streaming the recurrent weight from the L2 cache; the
// load ports are busy while the FMA and divide units mostly wait. Applying the gates right
// after each block's product lets the out-of-order core overlap the activations of one block
// with the loads of the next, instead of running them in a separate pass.
//
// Each value is computed with exactly the operations, in the same order, of the unfused path
// (`_gemm` then `_lstmCells` / `_gruCells`): every accumulator starts from the same initial
// value and adds `h_p · U[p, j]` for `p` ascending, and the cell expressions are the same.
// Results are bit-identical either way.

/// Where members that split a step's units wait for each other inside the step (one row):
/// each member's slice of `h` is needed only when the product reaches it, so a member starts
/// on the slices already there (its own among them) instead of waiting for every partner at
/// the end of the previous step. The product still runs over `p` ascending.
struct _StepWait {
    let barrier: _SpinBarrier
    let member: Int
    /// The arrivals a partner has made once its part of this step's `h` is written.
    let rounds: Int
    /// `members + 1` unit boundaries: member `m` owns `bounds[m] ..< bounds[m + 1]`.
    let bounds: UnsafePointer<Int>

    /// The end of the slice of `h` that contains `p`, after waiting for its owner.
    @inline(__always)
    func slice(from p: Int, owner: inout Int) -> Int {
        while bounds[owner + 1] <= p { owner += 1 }
        if owner != member { barrier.wait(for: owner, rounds: rounds) }
        return bounds[owner + 1]
    }
}

/// LSTM, one row: for the 32-unit blocks of `units`, gates `g + h U` (`u` packed `[R, 4H]`,
/// `gates` the row's `[4H]` input projection with biases), then
/// `newC = σ(f) ⊙ c + σ(i) ⊙ φ(g)`, `out = σ(o) ⊙ φ(newC)`. `H` and the bounds of `units`
/// are multiples of 32; `newC` may be `c`.
@inline(__always)
func _lstmStepRow<A: _LSTMArithmetic>(
    _ arithmetic: A, h: UnsafePointer<Float>, k: Int, u: UnsafePointer<Float>, hidden: Int,
    units: Range<Int>, gates: UnsafePointer<Float>, c: UnsafePointer<Float>,
    newC: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, wait: _StepWait?
) {
    let width = _PackedMatrix.panelWidth
    let gateStride = (hidden / width) * k * width  // floats from one gate's panel to the next
    var j = units.lowerBound
    while j < units.upperBound {
        var pi = u + (j / width) * k * width
        var pf = pi + gateStride, pg = pf + gateStride, po = pg + gateStride
        var i0 = _load(gates + j), i1 = _load(gates + j + 16)
        var f0 = _load(gates + hidden + j), f1 = _load(gates + hidden + j + 16)
        var g0 = _load(gates + 2 * hidden + j), g1 = _load(gates + 2 * hidden + j + 16)
        var o0 = _load(gates + 3 * hidden + j), o1 = _load(gates + 3 * hidden + j + 16)
        var p = 0, owner = 0
        while p < k {
            // The first block meets each partner's slice of h as it gets there.
            let end = j == units.lowerBound ? wait?.slice(from: p, owner: &owner) ?? k : k
            while p < end {
                let s = SIMD16<Float>(repeating: h[p])
                i0 = _madd(i0, s, _load(pi)); i1 = _madd(i1, s, _load(pi + 16))
                f0 = _madd(f0, s, _load(pf)); f1 = _madd(f1, s, _load(pf + 16))
                g0 = _madd(g0, s, _load(pg)); g1 = _madd(g1, s, _load(pg + 16))
                o0 = _madd(o0, s, _load(po)); o1 = _madd(o1, s, _load(po + 16))
                pi += width; pf += width; pg += width; po += width
                p += 1
            }
        }
        let cell0 = arithmetic.cell(forget: f0, state: _load(c + j), input: i0, candidate: g0)
        let cell1 = arithmetic.cell(forget: f1, state: _load(c + j + 16), input: i1, candidate: g1)
        _store(cell0, newC + j); _store(cell1, newC + j + 16)
        _store(arithmetic.output(o0, cell: cell0), out + j); _store(arithmetic.output(o1, cell: cell1), out + j + 16)
        j += width
    }
}

/// GRU with the reset gate after the product, one row: for the 32-unit blocks of `units`,
/// `r, z = σ(g + h U)` (`u` packed `[H, 2H]`), `m = b_hn + h U_n` (`un` packed `[H, H]`),
/// `n = φ(g_n + r ⊙ m)`, `out = n + z ⊙ (h − n)`. `H` and the bounds of `units` are
/// multiples of 32.
@inline(__always)
func _gruStepRow<S: _LaneFunction, P: _LaneFunction>(
    _ sigma: S, _ phi: P, h: UnsafePointer<Float>, u: UnsafePointer<Float>, un: UnsafePointer<Float>,
    newBias: UnsafePointer<Float>, hidden: Int, units: Range<Int>, gates: UnsafePointer<Float>,
    out: UnsafeMutablePointer<Float>, wait: _StepWait?
) {
    let width = _PackedMatrix.panelWidth
    let k = hidden
    let gateStride = (hidden / width) * k * width
    var j = units.lowerBound
    while j < units.upperBound {
        var pr = u + (j / width) * k * width
        var pz = pr + gateStride
        var pn = un + (j / width) * k * width
        var r0 = _load(gates + j), r1 = _load(gates + j + 16)
        var z0 = _load(gates + hidden + j), z1 = _load(gates + hidden + j + 16)
        var m0 = _load(newBias + j), m1 = _load(newBias + j + 16)
        var p = 0, owner = 0
        while p < k {
            let end = j == units.lowerBound ? wait?.slice(from: p, owner: &owner) ?? k : k
            while p < end {
                let s = SIMD16<Float>(repeating: h[p])
                r0 = _madd(r0, s, _load(pr)); r1 = _madd(r1, s, _load(pr + 16))
                z0 = _madd(z0, s, _load(pz)); z1 = _madd(z1, s, _load(pz + 16))
                m0 = _madd(m0, s, _load(pn)); m1 = _madd(m1, s, _load(pn + 16))
                pr += width; pz += width; pn += width
                p += 1
            }
        }
        let candidate = gates + 2 * hidden + j
        let next0 = phi(_load(candidate) + sigma(r0) * m0)
        let next1 = phi(_load(candidate + 16) + sigma(r1) * m1)
        _store(next0 + sigma(z0) * (_load(h + j) - next0), out + j)
        _store(next1 + sigma(z1) * (_load(h + j + 16) - next1), out + j + 16)
        j += width
    }
}
