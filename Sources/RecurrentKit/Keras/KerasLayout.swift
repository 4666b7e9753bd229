/// The Keras layout's rules, declared once: gate orders, kernel transposes, bias shapes and
/// activation names per Keras version. See spec/keras-layout.md.
///
/// Keras stores `kernel` `[in, G·u]` and `recurrent_kernel` `[u, G·u]` (`y = x K`), so the
/// neutral weights (`y = W x`, `[G·u, in]`) are their transposes; gate blocks run along the
/// columns in the order declared here.
enum KerasLayout {
    /// The major Keras version whose semantics a file carries.
    typealias Version = KerasVersion

    /// Gate blocks along the columns of `kernel`, `recurrent_kernel` and `bias`:
    /// LSTM i, f, c, o; GRU z, r, h.
    static let gateOrders = GateOrders(lstm: [.input, .forget, .cell, .output], gru: [.update, .reset, .new])

    /// Gate blocks along the columns for a cell kind (`gateOrders[kind]`).
    static func gateOrder(_ kind: CellKind) -> [Gate] { gateOrders[kind] }

    /// The recurrent layer classes, their cell kinds and the cell names tf-keras puts in
    /// weight paths (`lstm/lstm_cell/kernel:0`), read both ways.
    private static let recurrentTable: [(kind: CellKind, className: String, cellName: String)] = [
        (.rnn, "SimpleRNN", "simple_rnn_cell"), (.lstm, "LSTM", "lstm_cell"), (.gru, "GRU", "gru_cell"),
    ]

    /// The cell kind of a recurrent layer class (`LSTM` → `.lstm`), nil for other classes.
    static func cellKind(ofClass className: String) -> CellKind? {
        recurrentTable.first { $0.className == className }?.kind
    }

    /// True for `SimpleRNN`, `LSTM` and `GRU`.
    static func isRecurrentClass(_ className: String) -> Bool { cellKind(ofClass: className) != nil }

    /// The Keras layer class for a cell kind.
    static func className(of kind: CellKind) -> String {
        recurrentTable.first { $0.kind == kind }!.className
    }

    /// tf-keras's cell name in weight paths (`lstm_cell`).
    static func cellName(of kind: CellKind) -> String {
        recurrentTable.first { $0.kind == kind }!.cellName
    }

    /// Layers that are the identity at inference and pass the mask on.
    static let identityClasses: Set<String> = [
        "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    ]

    /// Keras 3's name for a layer's group in a `.keras` archive's `model.weights.h5`:
    /// the class name in snake case (`SimpleRNN` → `simple_rnn`,
    /// `GlobalAveragePooling1D` → `global_average_pooling1d`), as `keras.src.utils.naming.to_snake_case`.
    static func snakeCase(_ className: String) -> String {
        var text = className.filter { $0.isLetter || $0.isNumber || $0 == "_" }
        // (.)([A-Z][a-z]+) → \1_\2
        text = text.replacing(/(.)([A-Z][a-z]+)/) { "\($0.1)_\($0.2)" }
        // ([a-z])([A-Z]) → \1_\2
        text = text.replacing(/([a-z])([A-Z])/) { "\($0.1)_\($0.2)" }
        return text.lowercased()
    }

    // MARK: Weights: transposes and bias rows

    /// `[rows, columns]` → `[columns, rows]`: a Keras kernel `[in, G·u]` is the neutral
    /// weight `[G·u, in]` transposed (`y = x K` against `y = W x`), and back.
    static func transpose(_ tensor: Tensor) -> Tensor {
        transpose(tensor, blocks: [.cell], to: [.cell])
    }

    /// The transpose of `tensor.reorderingRowBlocks(from: blocks, to: order)`, made in one
    /// pass (a conversion holds one copy of a tensor, not two).
    static func transpose(_ tensor: Tensor, blocks: [Gate], to order: [Gate]) -> Tensor {
        Tensor(unchecked: [tensor.shape[1], tensor.shape[0]],
               values: transposedRows(tensor, blocks: blocks, to: order, rows: 0..<tensor.shape[1]))
    }

    /// Rows `rows` of `transpose(tensor, blocks:to:)`, row-major: `[rows.count, tensor.shape[0]]`.
    /// Blocks move through `BlockPermutation` (the identity when `order` is not an ordering
    /// of `blocks`).
    static func transposedRows(_ tensor: Tensor, blocks: [Gate], to order: [Gate], rows: Range<Int>) -> [Float] {
        let (height, columns) = (tensor.shape[0], tensor.shape[1])
        let permutation = BlockPermutation(from: blocks, to: order) ?? BlockPermutation(identity: max(blocks.count, 1))
        let ranges = permutation.sourceRanges(blockSize: height / max(blocks.count, 1))
        var values = [Float](repeating: 0, count: rows.count * height)
        tensor.values.withUnsafeBufferPointer { source in
            values.withUnsafeMutableBufferPointer { target in
                var r = 0
                for range in ranges {
                    for sourceRow in range {
                        let from = sourceRow * columns
                        for c in rows { target[(c - rows.lowerBound) * height + r] = source[from + c] }
                        r += 1
                    }
                }
            }
        }
        return values
    }

    /// A GRU with `reset_after=True` keeps its biases as one `[2, G·u]` tensor: row 0 the
    /// input bias, row 1 the recurrent one (`BiasRule.newGateRecurrentApart`).
    static func gruBiasRows(input: Tensor, recurrent: Tensor) -> Tensor {
        Tensor(unchecked: [2, input.count], values: input.values + recurrent.values)
    }

    /// The two rows of a `[2, G·u]` GRU bias: (input bias, recurrent bias).
    static func splitGRUBiasRows(_ bias: Tensor) -> (input: Tensor, recurrent: Tensor) {
        let width = bias.count / 2
        return (Tensor(unchecked: [width], values: Array(bias.values[..<width])),
                Tensor(unchecked: [width], values: Array(bias.values[width...])))
    }

    /// The bias Keras stores for one direction, from the neutral biases in Keras gate order:
    /// both rows when the cell keeps them apart, else their sum (`BiasRule`).
    static func storedBias(input: Tensor, recurrent: Tensor, rule: BiasRule) -> Tensor {
        rule.keepsBothBiases
            ? gruBiasRows(input: input, recurrent: recurrent)
            : Tensor(unchecked: [input.count], values: summedBias(input.values, recurrent.values))
    }
}
