// The rules about gate blocks and biases that every layout shares, each written once
// (spec/architecture.md lists where every rule lives). Layouts declare their gate orders as
// `GateOrders` values; everything that moves blocks goes through `BlockPermutation`; every
// place that combines `b_ih` and `b_hh` asks `BiasRule`.

/// The order of gate blocks along the rows of a layout's weights, per cell kind, as data.
///
/// A layout declares one value (`PyTorchLayout.gateOrders`, `KerasLayout.gateOrders`); the
/// neutral model's own order is `GateOrders.neutral`.
package struct GateOrders: Sendable, Equatable {
    package let rnn: [Gate]
    package let lstm: [Gate]
    package let gru: [Gate]

    package init(rnn: [Gate] = [.cell], lstm: [Gate], gru: [Gate]) {
        self.rnn = rnn
        self.lstm = lstm
        self.gru = gru
    }

    /// The block order of `kind`'s weights in this layout.
    package subscript(kind: CellKind) -> [Gate] {
        switch kind {
        case .rnn: return rnn
        case .lstm: return lstm
        case .gru: return gru
        }
    }

    /// The neutral model's order, in which the engine computes and the converter's
    /// fingerprint hashes: LSTM i, f, c, o; GRU r, z, n.
    package static let neutral = GateOrders(lstm: [.input, .forget, .cell, .output], gru: [.reset, .update, .new])
}

/// The one permutation of gate blocks: from the order a tensor's blocks are in to another
/// order of the same gates.
///
/// A tensor with `G` blocks of `n` values each (rows `[G·H, ...]`, so `n = H·columns`) is
/// read block by block through `sourceRanges(blockSize:)`; copying, transposing and hashing
/// all walk the same ranges.
package struct BlockPermutation: Sendable, Equatable {
    /// For each block of the target order, the index of the source block it comes from.
    package let sourceBlocks: [Int]

    /// nil when `to` is not an ordering of the same gates as `from`.
    package init?(from: [Gate], to: [Gate]) {
        guard from.count == to.count, Set(from) == Set(to), Set(from).count == from.count else { return nil }
        sourceBlocks = to.map { from.firstIndex(of: $0)! }
    }

    /// The identity on `count` blocks.
    package init(identity count: Int) {
        sourceBlocks = Array(0..<count)
    }

    package var isIdentity: Bool { sourceBlocks.enumerated().allSatisfy { $0 == $1 } }

    /// The source index range of each target block, in target order, for blocks of
    /// `blockSize` consecutive values.
    package func sourceRanges(blockSize: Int) -> [Range<Int>] {
        sourceBlocks.map { $0 * blockSize ..< ($0 + 1) * blockSize }
    }
}

extension Tensor {
    /// The same blocks of rows in another order: `[G·H, ...]` with blocks labelled `from`
    /// becomes blocks labelled `to` (a permutation of the same gates; traps otherwise, as
    /// the engine checks gate orders before it permutes).
    package func reorderingRowBlocks(from: [Gate], to: [Gate]) -> Tensor {
        guard let permutation = BlockPermutation(from: from, to: to) else {
            preconditionFailure("gate orders \(from) and \(to) differ")
        }
        guard !permutation.isIdentity else { return self }
        var result = [Float]()
        result.reserveCapacity(count)
        for range in permutation.sourceRanges(blockSize: count / from.count) { result += values[range] }
        return Tensor(unchecked: shape, values: result)
    }
}

/// How a recurrent cell combines its input bias `b_ih` and recurrent bias `b_hh`.
///
/// Every layout and the engine ask this rule; none decides on its own.
package enum BiasRule: Sendable, Equatable {
    /// The two biases only ever add up (simple RNN, LSTM, GRU with the reset gate before
    /// the product): the cell sees `b = b_ih + b_hh`, and a layout may store the sum alone.
    case sum
    /// GRU with the reset gate after the product (PyTorch; Keras `reset_after=True`):
    /// r and z see `b_ih + b_hh`, but the new gate computes `tanh(W_n x + b_in + r ⊙ (U_n h + b_hn))`,
    /// so `b_hn` stays apart and both biases must be kept.
    case newGateRecurrentApart

    package init(kind: CellKind, resetRule: GRUResetRule) {
        self = kind == .gru && resetRule == .afterMatmul ? .newGateRecurrentApart : .sum
    }

    /// True when a layout must keep both biases, false when their sum says everything.
    package var keepsBothBiases: Bool { self == .newGateRecurrentApart }
}

/// `b_ih + b_hh`, element by element.
package func summedBias(_ input: [Float], _ recurrent: [Float]) -> [Float] {
    zip(input, recurrent).map { $0 + $1 }
}

extension RecurrentLayer {
    /// How this layer's cell combines its biases.
    package var biasRule: BiasRule { BiasRule(kind: kind, resetRule: gruResetRule) }

    /// True when any direction has a bias (an absent one counts as zeros).
    package var hasBias: Bool { directions.contains { $0.inputBias != nil || $0.recurrentBias != nil } }
}

extension DirectionWeights {
    /// The biases as the cell adds them, in this weight set's gate order, with `G` gates
    /// and hidden size `H` (absent biases count as zeros):
    /// - `added` `[G·H]`: `b_ih + b_hh` in every block, except under
    ///   `.newGateRecurrentApart` the new gate's block, which holds `b_in` alone;
    /// - `newGateRecurrent` `[H]`: `b_hn` under `.newGateRecurrentApart`, else nil.
    package func effectiveBiases(_ rule: BiasRule) -> (added: [Float], newGateRecurrent: [Float]?) {
        let rows = inputWeight.shape[0]
        var added = inputBias?.values ?? [Float](repeating: 0, count: rows)
        switch rule {
        case .sum:
            if let recurrent = recurrentBias?.values { added = summedBias(added, recurrent) }
            return (added, nil)
        case .newGateRecurrentApart:
            let blockSize = rows / max(gateOrder.count, 1)
            let newBlock = (gateOrder.firstIndex(of: .new) ?? gateOrder.count - 1) * blockSize
            let newRange = newBlock ..< newBlock + blockSize
            guard let recurrent = recurrentBias?.values else {
                return (added, [Float](repeating: 0, count: blockSize))
            }
            for i in 0..<rows where !newRange.contains(i) { added[i] += recurrent[i] }
            return (added, Array(recurrent[newRange]))
        }
    }
}
