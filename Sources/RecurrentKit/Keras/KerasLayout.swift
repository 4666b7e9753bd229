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

    /// Whether a layer of this class holds weights once built (what Keras's `load_weights`
    /// filters on when it pairs a file's layers with a model's in order): true for Embedding,
    /// Dense, TimeDistributed, the recurrent classes and Bidirectional; false for the classes
    /// the reader knows to hold none; nil for a class it does not know.
    static func hasWeights(className: String) -> Bool? {
        switch className {
        case "Embedding", "Dense", "TimeDistributed", "Bidirectional": return true
        case let name where isRecurrentClass(name): return true
        case "InputLayer", "Masking", "Activation", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "Flatten",
             "TextVectorization", "Lambda", "NotEqual", "Any":
            return false
        case let name where identityClasses.contains(name): return false
        default: return nil
        }
    }

    /// What a legacy HDF5 layer's `weight_names` say about the layer that wrote them, where
    /// they say anything: an Embedding (`…/embeddings:0`), a Dense-like layer (`kernel`,
    /// `bias` only), or a recurrent layer (a `recurrent_kernel`), whose cell kind the names
    /// give when they hold tf-keras's cell name (`lstm/lstm_cell/kernel:0`; Keras 2.2 wrote
    /// `lstm_1/kernel:0`, which does not tell the kind).
    enum WrittenBy: Equatable {
        case embedding
        case dense
        case recurrent(CellKind?)

        /// From weight names; nil when they fit none of the forms above.
        init?(weightNames: [String]) {
            let parts = weightNames.map { name -> (last: String, parent: String?) in
                var components = name.split(separator: "/").map(String.init)
                var last = components.popLast() ?? name
                if let colon = last.lastIndex(of: ":") { last = String(last[..<colon]) }
                return (last, components.last)
            }
            guard !parts.isEmpty else { return nil }
            if let recurrent = parts.first(where: { $0.last == "recurrent_kernel" }) {
                self = .recurrent(recurrentTable.first { $0.cellName == recurrent.parent }?.kind)
            } else if parts.allSatisfy({ $0.last == "embeddings" }) {
                self = .embedding
            } else if parts.allSatisfy({ $0.last == "kernel" || $0.last == "bias" }) {
                self = .dense
            } else {
                return nil
            }
        }

        /// What a config layer's weights are; nil for a class without a known form.
        init?(node: KerasConfig.Node) {
            switch node.className {
            case "Embedding": self = .embedding
            case "Dense", "TimeDistributed": self = .dense
            case "Bidirectional":
                let inner = (node.config["layer"] as? [String: Any])?["class_name"] as? String
                self = .recurrent(inner.flatMap(cellKind(ofClass:)))
            case let name where isRecurrentClass(name): self = .recurrent(cellKind(ofClass: name))
            default: return nil
            }
        }

        /// False when the two certainly differ (an unknown cell kind fits any).
        func fits(_ other: WrittenBy) -> Bool {
            switch (self, other) {
            case (.embedding, .embedding), (.dense, .dense): return true
            case let (.recurrent(a), .recurrent(b)): return a == nil || b == nil || a == b
            default: return false
            }
        }

        var title: String {
            switch self {
            case .embedding: return "Embedding"
            case .dense: return "Dense"
            case let .recurrent(kind?): return className(of: kind)
            case .recurrent(nil): return "recurrent"
            }
        }
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
