// Validation of a model and the one-time preparation of its weights: gate blocks permuted
// into the engine's internal order, matrices packed for the kernel, biases pre-summed.

extension CellKind {
    /// The order in which the engine keeps gate blocks internally.
    ///
    /// Layouts declare their own order (`DirectionWeights.gateOrder`); preparation brings
    /// them into this one with `DirectionWeights.reordered(to:)`, the one place that reorders
    /// gate blocks.
    var internalGateOrder: [Gate] { GateOrders.neutral[self] }
}

/// One direction's weights, ready for the recurrence, with `G` gates in internal order,
/// hidden size `H`, input size `I`, recurrent size `R` and projection size `P`.
///
/// Matrices are packed once, here, into the kernel's panel layout (`PackedMatrix`), from the
/// model's `[out, in]` tensors with the gate blocks in internal order: the fused gate weights
/// of all gates are one product per step.
struct PreparedDirection: Sendable {
    /// `W` as `[I → G·H]`.
    var inputWeight: PackedMatrix
    /// RNN and LSTM: `U` as `[R → G·H]`. GRU: `[U_r; U_z]` as `[H → 2H]` only; the new gate's
    /// block is `recurrentNewWeight`, because both reset rules treat it apart.
    var recurrentWeight: PackedMatrix
    /// GRU only: `U_n` as `[H → H]`.
    var recurrentNewWeight: PackedMatrix?
    /// `[G·H]`: the bias added to the input projection. Input and recurrent biases are
    /// summed here wherever they only add up, i.e. everywhere except GRU's new-gate
    /// recurrent bias under `.afterMatmul`, which the reset gate multiplies.
    var bias: [Float]
    /// `[H]`: GRU `.afterMatmul` only, `b_hn` in `n = act(W_n x + b_in + r ⊙ (U_n h + b_hn))`.
    var recurrentNewBias: [Float]?
    /// LSTM with a projection: `W_hr` as `[H → P]`.
    var projection: PackedMatrix?
    /// `[V, G·H]`, for a layer right after an embedding of `V` tokens: row `v` is
    /// `bias + E[v] W`, the input projection of token `v` (see `foldEmbedding`).
    var tokenProjection: [Float]? = nil
    /// LSTM peepholes `[3·H]`, blocks i, f, o (`DirectionWeights.peepholeOrder`), or nil.
    var peepholes: [Float]? = nil
}

/// A cell that computes more than the fast paths do (ONNX's options: peepholes, `clip`,
/// `input_forget`, activations per direction or with parameters), resolved once; such a layer
/// runs the batched step path with the arithmetic of `extendedUpdate` (Cells.swift).
struct ExtendedCell: Sendable {
    /// One set per direction.
    var activations: [CellActivations]
    /// Gate pre-activations clipped to `[−clip, clip]`, or nil.
    var clip: Float?
    var inputForget: Bool
}

/// A recurrent layer ready to run.
struct PreparedRecurrent: Sendable {
    var kind: CellKind
    var inputSize: Int
    var hiddenSize: Int
    var outputSize: Int
    var directions: [PreparedDirection]
    var activation: Activation
    var recurrentActivation: Activation
    var resetRule: GRUResetRule
    var merge: MergeMode
    var goBackwards: Bool
    var maskedOutput: MaskedOutput
    var returnSequences: Bool
    /// ONNX `direction = reverse` (`RecurrentLayer.reversed`).
    var reversed: Bool = false
    /// nil on the fast paths (every Keras and PyTorch layer).
    var extended: ExtendedCell? = nil

    var gateCount: Int { kind.gateCount }
    var directionCount: Int { directions.count }
    var mergedOutputSize: Int { directionCount == 2 && merge == .concat ? 2 * outputSize : outputSize }
}

/// A dense layer ready to run: `y = act(x Wᵀ + b)`.
struct PreparedDense: Sendable {
    /// `W` as `[in → out]`.
    var weight: PackedMatrix
    var bias: [Float]?
    var inputSize: Int
    var outputSize: Int
    var activation: Activation
}

/// One layer ready to run.
enum PreparedLayer: Sendable {
    case embedding(table: [Float], vocabulary: Int, dimension: Int, maskZero: Bool)
    case masking(Float)
    case recurrent(PreparedRecurrent)
    case dense(PreparedDense)
    case activation(Activation)
    case readout(Readout)
    case flatten
}

/// Validates tensors of one layer and reports problems with the layer named.
struct LayerChecker {
    var index: Int
    var kind: String

    func error(_ message: String) -> EngineError {
        EngineError(layerIndex: index, layerKind: kind, message: message)
    }

    /// Checks that `tensor` has exactly `expected` shape and a consistent value count.
    func check(_ tensor: Tensor, _ expected: [Int], _ what: String) throws {
        guard tensor.shape == expected else {
            throw error("\(what) has shape \(shapeString(tensor.shape)), expected \(shapeString(expected))")
        }
        guard tensor.values.count == elementCount(expected) else {
            throw error("\(what) has \(tensor.values.count) values for shape \(shapeString(expected))")
        }
    }
}

/// Validates a model and prepares its weights.
///
/// Besides each layer's own weights it checks the chain: the feature count flowing out of a
/// layer against the next one's input size (where it is known statically: after `.flatten`
/// it depends on the number of steps and is checked at run time), and which layers need a
/// time axis.
func prepareLayers(_ model: Model) throws -> [PreparedLayer] {
    var chain = Chain()
    var prepared: [PreparedLayer] = []
    for (index, layer) in model.layers.enumerated() {
        let checker = LayerChecker(index: index, kind: layer.kindName)
        prepared.append(try prepareLayer(layer, index: index, chain: &chain, checker: checker))
    }
    foldEmbedding(&prepared)
    return prepared
}

/// What `prepareLayers` knows of the data flowing from one layer to the next.
struct Chain {
    /// Feature count of the data entering the next layer, nil while unknown.
    var features: Int?
    /// Whether the data has a time axis; nil while unknown (the first layer decides).
    var hasTime: Bool?
    /// The most recent recurrent layer (its final state feeds `.lastHidden` readouts).
    var lastRecurrent: RecurrentLayer?

    func requireTime(_ checker: LayerChecker) throws {
        if hasTime == false {
            throw checker.error("needs data with a time axis [batch, time, features], but the previous layer emits [batch, features]")
        }
    }

    func requireFeatures(_ expected: Int, _ what: String, _ checker: LayerChecker) throws {
        if let features, features != expected {
            throw checker.error("\(what) is \(expected), but the incoming data has \(features) features")
        }
    }
}

/// Validates `layer` (the model's layer `index`) against its own sizes and `chain`, prepares
/// it, and moves `chain` past it.
func prepareLayer(_ layer: Layer, index: Int, chain: inout Chain, checker: LayerChecker) throws -> PreparedLayer {
    switch layer {
    case .embedding(let embedding):
        guard index == 0 else {
            throw checker.error("an embedding must be the first layer (it consumes token ids)")
        }
        guard embedding.table.shape.count == 2, embedding.table.shape[0] >= 1, embedding.table.shape[1] >= 1 else {
            throw checker.error("table has shape \(shapeString(embedding.table.shape)), expected [vocabulary, dim] with both at least 1")
        }
        try checker.check(embedding.table, embedding.table.shape, "table")
        chain.features = embedding.table.shape[1]
        chain.hasTime = true
        return .embedding(table: embedding.table.values, vocabulary: embedding.table.shape[0],
                          dimension: embedding.table.shape[1], maskZero: embedding.maskZero)

    case .masking(let value):
        try chain.requireTime(checker)
        chain.hasTime = true
        return .masking(value)

    case .recurrent(let layer):
        try chain.requireTime(checker)
        try chain.requireFeatures(layer.inputSize, "input size", checker)
        let prepared = try prepareRecurrent(layer, checker: checker)
        chain.features = layer.mergedOutputSize
        chain.hasTime = layer.returnSequences
        chain.lastRecurrent = layer
        return .recurrent(prepared)

    case .dense(let dense):
        let prepared = try prepareDense(dense, chain: chain, checker: checker)
        chain.features = dense.outputSize
        return .dense(prepared)

    case .activation(let activation):
        return .activation(activation)

    case .readout(let readout):
        try chain.requireTime(checker)
        switch readout {
        case .lastHidden, .lastHiddenAllDirections:
            guard let recurrent = chain.lastRecurrent else {
                throw checker.error("needs a recurrent layer before it (it reads that layer's final state)")
            }
            chain.features = readout == .lastHidden ? recurrent.outputSize : recurrent.directions.count * recurrent.outputSize
        case .meanOverValidSteps, .maxOverValidSteps, .maxOverAllSteps, .lastValidStep:
            break
        }
        chain.hasTime = false
        return .readout(readout)

    case .flatten:
        try chain.requireTime(checker)
        chain.features = nil
        chain.hasTime = false
        return .flatten
    }
}

/// Validates a dense layer's weights and input size, and packs its weight.
func prepareDense(_ dense: Dense, chain: Chain, checker: LayerChecker) throws -> PreparedDense {
    guard dense.weight.shape.count == 2, dense.weight.shape[0] >= 1, dense.weight.shape[1] >= 1 else {
        throw checker.error("weight has shape \(shapeString(dense.weight.shape)), expected [out, in] with both at least 1")
    }
    try checker.check(dense.weight, dense.weight.shape, "weight")
    if let bias = dense.bias { try checker.check(bias, [dense.outputSize], "bias") }
    try chain.requireFeatures(dense.inputSize, "input size", checker)
    return PreparedDense(
        weight: PackedMatrix(weight: dense.weight.values, out: dense.outputSize, in: dense.inputSize),
        bias: dense.bias?.values, inputSize: dense.inputSize, outputSize: dense.outputSize,
        activation: dense.activation)
}

/// Most floats `foldEmbedding` may add (64 MB).
let tokenProjectionLimit = 1 << 24

/// For an embedding followed directly by a recurrent layer, computes each direction's input
/// projection of every vocabulary entry once (`PreparedDirection.tokenProjection`), so that
/// a run looks up one row per token instead of gathering the embedding and multiplying it.
///
/// Row `v` is `bias + E[v] W` accumulated by the same kernel in the same order as a run's
/// product, so the values are the same bit for bit. Done only while the tables stay within
/// `tokenProjectionLimit` floats: they hold `V·G·H` floats per direction, against `V·dim`
/// for the embedding itself.
func foldEmbedding(_ prepared: inout [PreparedLayer], limit: Int = tokenProjectionLimit) {
    guard prepared.count >= 2,
          case .embedding(let table, let vocabulary, let dimension, _) = prepared[0],
          case .recurrent(var layer) = prepared[1] else { return }
    let width = layer.gateCount * layer.hiddenSize
    guard vocabulary * width * layer.directionCount <= limit, dimension == layer.inputSize else { return }
    for d in layer.directions.indices {
        let direction = layer.directions[d]
        let rows = [Float](unsafeUninitializedCapacity: vocabulary * width) { out, initialized in
            table.withUnsafeBufferPointer { x in
                direction.bias.withUnsafeBufferPointer { bias in
                    affine(x: x.baseAddress, rows: vocabulary, weight: direction.inputWeight, bias: bias.baseAddress,
                            into: out.baseAddress!)
                }
            }
            initialized = vocabulary * width
        }
        layer.directions[d].tokenProjection = rows
    }
    prepared[1] = .recurrent(layer)
}

/// Validates one recurrent layer against its declared sizes and prepares its weights.
func prepareRecurrent(_ layer: RecurrentLayer, checker: LayerChecker) throws -> PreparedRecurrent {
    try checkRecurrentOptions(layer, checker: checker)
    var directions: [PreparedDirection] = []
    for (d, weights) in layer.directions.enumerated() {
        let name = layer.directions.count == 2 ? (d == 0 ? "forward direction" : "backward direction") : "direction 0"
        try checkDirection(weights, of: layer, name: name, checker: checker)
        directions.append(prepareDirection(weights, of: layer))
    }
    return PreparedRecurrent(
        kind: layer.kind, inputSize: layer.inputSize, hiddenSize: layer.hiddenSize, outputSize: layer.outputSize,
        directions: directions, activation: layer.activation, recurrentActivation: layer.recurrentActivation,
        resetRule: layer.gruResetRule, merge: layer.merge, goBackwards: layer.goBackwards,
        maskedOutput: layer.maskedOutput, returnSequences: layer.returnSequences, reversed: layer.reversed,
        extended: layer.needsExtendedCell
            ? ExtendedCell(activations: layer.directions.indices.map { layer.activations(ofDirection: $0) },
                           clip: layer.clip, inputForget: layer.inputForget)
            : nil)
}

extension RecurrentLayer {
    /// True when the cell computes more than the fast paths do: peepholes, `clip`,
    /// `input_forget` or `cellActivations`.
    var needsExtendedCell: Bool {
        cellActivations != nil || clip != nil || inputForget || directions.contains { $0.peepholes != nil }
    }
}

/// Checks a recurrent layer's sizes, directions and activations (not its weights).
func checkRecurrentOptions(_ layer: RecurrentLayer, checker: LayerChecker) throws {
    let kind = layer.kind
    let hidden = layer.hiddenSize
    guard layer.inputSize >= 1, hidden >= 1 else {
        throw checker.error("input size \(layer.inputSize) and hidden size \(hidden) must be at least 1")
    }
    if let projection = layer.projectionSize {
        guard kind == .lstm else { throw checker.error("a projection size is only defined for an LSTM") }
        guard projection >= 1 else { throw checker.error("projection size \(projection) must be at least 1") }
    }
    guard layer.directions.count == 1 || layer.directions.count == 2 else {
        throw checker.error("has \(layer.directions.count) directions, expected 1 or 2")
    }
    if layer.goBackwards && layer.directions.count == 2 {
        throw checker.error("goBackwards is defined for a unidirectional layer only")
    }
    if layer.reversed && (layer.directions.count == 2 || layer.goBackwards) {
        throw checker.error("reversed is defined for a unidirectional layer without goBackwards only")
    }
    if let activations = layer.cellActivations {
        guard activations.count == layer.directions.count else {
            throw checker.error("has \(activations.count) sets of cell activations for \(layer.directions.count) direction(s)")
        }
        guard activations.allSatisfy({ $0.gate.isElementwise && $0.candidate.isElementwise && $0.cellOutput.isElementwise }) else {
            throw checker.error("softmax is not supported as a cell activation")
        }
    }
    if let clip = layer.clip, !(clip.isFinite && clip > 0) {
        throw checker.error("clip \(clip) must be a positive finite number")
    }
    if layer.inputForget && kind != .lstm {
        throw checker.error("inputForget is defined for an LSTM only")
    }
    if layer.needsExtendedCell && layer.projectionSize != nil {
        throw checker.error("peepholes, clip, inputForget and cell activations are not defined with a projection")
    }
    guard layer.activation.isElementwise else {
        throw checker.error("softmax is not supported as a cell activation")
    }
    if kind != .rnn && !layer.recurrentActivation.isElementwise {
        throw checker.error("softmax is not supported as a recurrent (gate) activation")
    }
}

/// Checks one direction's gate order and weight shapes against the layer's declared sizes.
func checkDirection(_ weights: DirectionWeights, of layer: RecurrentLayer, name: String,
                     checker: LayerChecker) throws {
    let kind = layer.kind
    let gateCount = kind.gateCount
    let hidden = layer.hiddenSize
    let recurrentSize = layer.outputSize
    let rows = gateCount * hidden
    let internalOrder = kind.internalGateOrder
    guard weights.gateOrder.count == gateCount, Set(weights.gateOrder) == kind.gates else {
        throw checker.error("\(name) gate order [\(weights.gateOrder.map(\.rawValue).joined(separator: ", "))] is not a permutation of the \(kind.rawValue) gates [\(internalOrder.map(\.rawValue).joined(separator: ", "))]")
    }
    try checker.check(weights.inputWeight, [rows, layer.inputSize], "\(name) input weight")
    try checker.check(weights.recurrentWeight, [rows, recurrentSize], "\(name) recurrent weight")
    if let bias = weights.inputBias { try checker.check(bias, [rows], "\(name) input bias") }
    if let bias = weights.recurrentBias { try checker.check(bias, [rows], "\(name) recurrent bias") }
    if let peepholes = weights.peepholes {
        guard kind == .lstm else { throw checker.error("\(name) has peepholes, which only an LSTM has") }
        try checker.check(peepholes, [3 * hidden], "\(name) peepholes")
    }
    switch (layer.projectionSize, weights.projection) {
    case let (size?, projection?):
        try checker.check(projection, [size, hidden], "\(name) projection")
    case (nil, let projection?):
        throw checker.error("\(name) has a projection \(shapeString(projection.shape)) but the layer declares no projection size")
    case (let size?, nil):
        throw checker.error("\(name) has no projection weight but the layer declares projection size \(size)")
    case (nil, nil):
        break
    }
}

/// One checked direction's weights ready for the recurrence: gate blocks in internal order,
/// matrices packed, biases combined.
func prepareDirection(_ weights: DirectionWeights, of layer: RecurrentLayer) -> PreparedDirection {
    let kind = layer.kind
    let hidden = layer.hiddenSize
    let recurrentSize = layer.outputSize
    let rows = kind.gateCount * hidden
    let internalOrder = kind.internalGateOrder
    // Gate blocks in internal order. `reorderingRowBlocks` returns the tensor itself when
    // the orders agree (PyTorch's and Keras's LSTM), so a copy is only made, one direction
    // at a time, for a layout that declares another order.
    let weights = weights.reordered(to: internalOrder)
    func packed(_ tensor: Tensor, columns: Int, rows: Range<Int>) -> PackedMatrix {
        tensor.values.withUnsafeBufferPointer { w in
            PackedMatrix(rows: columns, columns: rows.count) { j, p in w[(rows.lowerBound + j) * columns + p] }
        }
    }
    // r and z add both biases; under .afterMatmul the new gate keeps b_hn apart because
    // r scales it (`BiasRule`).
    let (bias, recurrentNewBias) = weights.effectiveBiases(layer.biasRule)

    let gru = kind == .gru
    return PreparedDirection(
        inputWeight: packed(weights.inputWeight, columns: layer.inputSize, rows: 0..<rows),
        recurrentWeight: packed(weights.recurrentWeight, columns: recurrentSize,
                                rows: 0..<(gru ? 2 * hidden : rows)),
        recurrentNewWeight: gru ? packed(weights.recurrentWeight, columns: recurrentSize,
                                         rows: (2 * hidden)..<rows) : nil,
        bias: bias,
        recurrentNewBias: recurrentNewBias,
        projection: weights.projection.map { PackedMatrix(weight: $0.values, out: recurrentSize, in: hidden) },
        peepholes: weights.peepholes?.values)
}
