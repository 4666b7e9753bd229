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
// (`gemm` then `lstmCells` / `gruCells`): every accumulator starts from the same initial
// value and adds `h_p · U[p, j]` for `p` ascending, and the cell expressions are the same.
// Results are bit-identical either way.

/// Where members that split a step's units wait for each other inside the step (one row):
/// each member's slice of `h` is needed only when the product reaches it, so a member starts
/// on the slices already there (its own among them) instead of waiting for every partner at
/// the end of the previous step. The product still runs over `p` ascending.
struct StepWait {
    let barrier: SpinBarrier
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

/// LSTM, one row: for the blocks of `units` (`tiling.stepBlock` units: 32, or 16 where the
/// registers hold only four 16-lane accumulators), gates `g + h U` (`u` packed `[R, 4H]`,
/// `gates` the row's `[4H]` input projection with biases), then
/// `newC = σ(f) ⊙ c + σ(i) ⊙ φ(g)`, `out = σ(o) ⊙ φ(newC)`. `H` and the bounds of `units`
/// are multiples of 32; `newC` may be `c`.
@inline(__always)
func lstmStepRow<A: LSTMArithmetic>(
    _ arithmetic: A, h: UnsafePointer<Float>, k: Int, u: UnsafePointer<Float>, hidden: Int,
    units: Range<Int>, gates: UnsafePointer<Float>, c: UnsafePointer<Float>,
    newC: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, wait: StepWait?,
    tiling: Tiling = .build
) {
    let width = PackedMatrix.panelWidth
    let gateStride = (hidden / width) * k * width  // floats from one gate's panel to the next
    var j = units.lowerBound
    if tiling.stepBlock == 16 {
        // Half a panel per block: 4 accumulators of 16 lanes, 8 of AVX2's 16 registers.
        while j < units.upperBound {
            let panel = u + (j / width) * k * width + j % width
            var i = PanelColumn(panel: panel, initial: gates + j)
            var f = PanelColumn(panel: panel + gateStride, initial: gates + hidden + j)
            var g = PanelColumn(panel: panel + 2 * gateStride, initial: gates + 2 * hidden + j)
            var o = PanelColumn(panel: panel + 3 * gateStride, initial: gates + 3 * hidden + j)
            accumulateStep(h: h, k: k, first: j == units.lowerBound, wait: wait) { s in
                i.add(s); f.add(s); g.add(s); o.add(s)
            }
            let cell = arithmetic.cell(forget: f.value, state: loadLanes(c + j), input: i.value, candidate: g.value)
            storeLanes(cell, newC + j)
            storeLanes(arithmetic.output(o.value, cell: cell), out + j)
            j += 16
        }
        return
    }
    while j < units.upperBound {
        let panel = u + (j / width) * k * width
        var i = PanelColumns(panel: panel, initial: gates + j)
        var f = PanelColumns(panel: panel + gateStride, initial: gates + hidden + j)
        var g = PanelColumns(panel: panel + 2 * gateStride, initial: gates + 2 * hidden + j)
        var o = PanelColumns(panel: panel + 3 * gateStride, initial: gates + 3 * hidden + j)
        accumulateStep(h: h, k: k, first: j == units.lowerBound, wait: wait) { s in
            i.add(s); f.add(s); g.add(s); o.add(s)
        }
        let cell0 = arithmetic.cell(forget: f.low, state: loadLanes(c + j), input: i.low, candidate: g.low)
        let cell1 = arithmetic.cell(forget: f.high, state: loadLanes(c + j + 16), input: i.high, candidate: g.high)
        storeLanes(cell0, newC + j); storeLanes(cell1, newC + j + 16)
        storeLanes(arithmetic.output(o.low, cell: cell0), out + j); storeLanes(arithmetic.output(o.high, cell: cell1), out + j + 16)
        j += width
    }
}

/// GRU with the reset gate after the product, one row: for the blocks of `units`
/// (`tiling.stepBlock` units), `r, z = σ(g + h U)` (`u` packed `[H, 2H]`), `m = b_hn + h U_n`
/// (`un` packed `[H, H]`), `n = φ(g_n + r ⊙ m)`, `out = n + z ⊙ (h − n)`. `H` and the bounds
/// of `units` are multiples of 32.
@inline(__always)
func gruStepRow<S: LaneFunction, P: LaneFunction>(
    _ sigma: S, _ phi: P, h: UnsafePointer<Float>, u: UnsafePointer<Float>, un: UnsafePointer<Float>,
    newBias: UnsafePointer<Float>, hidden: Int, units: Range<Int>, gates: UnsafePointer<Float>,
    out: UnsafeMutablePointer<Float>, wait: StepWait?, tiling: Tiling = .build
) {
    let width = PackedMatrix.panelWidth
    let k = hidden
    let gateStride = (hidden / width) * k * width
    var j = units.lowerBound
    if tiling.stepBlock == 16 {
        while j < units.upperBound {
            let panel = u + (j / width) * k * width + j % width
            var r = PanelColumn(panel: panel, initial: gates + j)
            var z = PanelColumn(panel: panel + gateStride, initial: gates + hidden + j)
            var m = PanelColumn(panel: un + (j / width) * k * width + j % width, initial: newBias + j)
            accumulateStep(h: h, k: k, first: j == units.lowerBound, wait: wait) { s in
                r.add(s); z.add(s); m.add(s)
            }
            let next = phi(loadLanes(gates + 2 * hidden + j) + sigma(r.value) * m.value)
            storeLanes(next + sigma(z.value) * (loadLanes(h + j) - next), out + j)
            j += 16
        }
        return
    }
    while j < units.upperBound {
        let panel = u + (j / width) * k * width
        var r = PanelColumns(panel: panel, initial: gates + j)
        var z = PanelColumns(panel: panel + gateStride, initial: gates + hidden + j)
        var m = PanelColumns(panel: un + (j / width) * k * width, initial: newBias + j)
        accumulateStep(h: h, k: k, first: j == units.lowerBound, wait: wait) { s in
            r.add(s); z.add(s); m.add(s)
        }
        let candidate = gates + 2 * hidden + j
        let next0 = phi(loadLanes(candidate) + sigma(r.low) * m.low)
        let next1 = phi(loadLanes(candidate + 16) + sigma(r.high) * m.high)
        storeLanes(next0 + sigma(z.low) * (loadLanes(h + j) - next0), out + j)
        storeLanes(next1 + sigma(z.high) * (loadLanes(h + j + 16) - next1), out + j + 16)
        j += width
    }
}

/// 32 columns of one packed panel: two accumulators and the panel row they read next.
struct PanelColumns {
    var low: SIMD16<Float>
    var high: SIMD16<Float>
    var row: UnsafePointer<Float>

    @inline(__always)
    init(panel: UnsafePointer<Float>, initial: UnsafePointer<Float>) {
        low = loadLanes(initial)
        high = loadLanes(initial + 16)
        row = panel
    }

    /// Adds `s` times the current row and moves to the next.
    @inline(__always)
    mutating func add(_ s: SIMD16<Float>) {
        low = madd(low, s, loadLanes(row))
        high = madd(high, s, loadLanes(row + 16))
        row += PackedMatrix.panelWidth
    }
}

/// 16 columns of one packed panel: one accumulator and the panel row it reads next.
struct PanelColumn {
    var value: SIMD16<Float>
    var row: UnsafePointer<Float>

    @inline(__always)
    init(panel: UnsafePointer<Float>, initial: UnsafePointer<Float>) {
        value = loadLanes(initial)
        row = panel
    }

    /// Adds `s` times the current row and moves to the next.
    @inline(__always)
    mutating func add(_ s: SIMD16<Float>) {
        value = madd(value, s, loadLanes(row))
        row += PackedMatrix.panelWidth
    }
}

/// Calls `add(h[p])` for `p` in `0 ..< k`, ascending. In a step's first block (`first`), a
/// member that shares the step meets each partner's slice of `h` as the product gets there.
@inline(__always)
func accumulateStep(h: UnsafePointer<Float>, k: Int, first: Bool, wait: StepWait?, _ add: (SIMD16<Float>) -> Void) {
    var p = 0, owner = 0
    while p < k {
        let end = first ? wait?.slice(from: p, owner: &owner) ?? k : k
        while p < end {
            add(SIMD16<Float>(repeating: h[p]))
            p += 1
        }
    }
}
