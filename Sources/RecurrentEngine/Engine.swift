// The inference engine: validates and prepares a model once, then runs it on inputs.

/// Runs a `Model` on batches of sequences.
///
/// Creating an engine validates every weight against the declared sizes and prepares the
/// weights for the recurrence (gate blocks in one internal order, matrices packed for the
/// kernel, pre-summed biases, and for a recurrent layer right after an embedding the input
/// projection of every vocabulary entry, within a size limit); `run` then only validates its
/// input. An engine is immutable and can be shared between tasks.
package final class Engine: Sendable {
    /// The most floats one run may hold in any one tensor: batch × time × width for the
    /// input, each layer's output and a recurrent layer's gate pre-activations
    /// (`G·H` per direction), and batch × width for states (2^26 floats = 256 MiB). A run
    /// holds a few such tensors at once, so this keeps one run near 1 GiB at most; it is
    /// checked before anything is allocated (`checkRunSize(batch:time:)`), for sizes that come
    /// from a file or the command line. The reference workload (batch 64, 256 steps, a
    /// bidirectional LSTM of 256 units: 64 × 256 × 2048 floats) is well within it.
    package static let runElementLimit = 1 << 26

    /// The model as given.
    package let model: Model
    let layers: [PreparedLayer]
    /// Indices in `model.layers` of the recurrent layers, in order.
    let recurrentIndices: [Int]

    /// Validates `model` and prepares its weights.
    ///
    /// Throws `EngineError` naming the layer for any inconsistency: a gate order that is not a
    /// permutation of the cell's gates, a weight whose shape disagrees with the declared
    /// sizes, a layer whose input size differs from what the previous layer emits, a layer
    /// that needs a time axis after one that removed it.
    package init(model: Model) throws {
        self.model = model
        self.layers = try prepareLayers(model)
        self.recurrentIndices = model.layers.indices.filter {
            if case .recurrent = model.layers[$0] { return true }
            return false
        }
    }

    /// The recurrent layers of the model, in order (one `RecurrentState` each).
    package var recurrentLayers: [RecurrentLayer] {
        recurrentIndices.map {
            guard case .recurrent(let layer) = model.layers[$0] else { preconditionFailure("not recurrent") }
            return layer
        }
    }

    /// Zero states for every recurrent layer at `batch`.
    package func zeroStates(batch: Int) -> [RecurrentState] {
        recurrentLayers.map { layer in
            let d = layer.directions.count
            return RecurrentState(h: Tensor(uncheckedZeros: [d, batch, layer.outputSize]),
                                  c: layer.kind == .lstm ? Tensor(uncheckedZeros: [d, batch, layer.hiddenSize]) : nil)
        }
    }

    /// Runs the model on a batch.
    ///
    /// - Parameters:
    ///   - input: features `[batch, time, features]` or token ids `[batch, time]`;
    ///   - lengths: `[batch]`, each in `0...time`: step `t` of sequence `b` is valid iff
    ///     `t < lengths[b]` (right padding). Applied by the model's `lengthsRule`: for
    ///     `.packed` (PyTorch's `pack_padded_sequence`) it combines with masks from `.masking`
    ///     layers and `maskZero` embeddings by logical and; for `.kerasCallMask` it is the mask
    ///     of Keras's `model(x, mask=mask)`, which an embedding or a `.masking` layer replaces
    ///     with its own (an embedding without `maskZero` drops it).
    ///   - initialStates: one per recurrent layer (`h` `[D, batch, outputSize]`, `c`
    ///     `[D, batch, hiddenSize]` for LSTM); zeros when nil.
    ///   - threads: how many threads the run may use (default 1: the calling thread only).
    ///     Directions run in parallel; within a direction, batch rows are split when there are
    ///     at least 8 per thread, else each step's hidden units are (when the hidden size is a
    ///     multiple of 32 and the cell allows it). At such small batches consecutive
    ///     one-direction layers run at once instead, as a pipeline, each on its share of the
    ///     threads. The result is the same, bit for bit, for every thread count.
    /// - Returns: the output (`[batch, time, features]` or `[batch, features]`) and the final
    ///   state of every recurrent layer.
    package func run(_ input: ModelInput, lengths: [Int]? = nil,
                    initialStates: [RecurrentState]? = nil, threads: Int = 1) throws -> RunResult {
        let start = try startInput(input)
        try checkRunSize(batch: start.batch, time: start.time)
        var lengthMask: [Bool]?
        if let lengths {
            guard let time = start.time else {
                throw EngineError(message: "lengths given, but the input \(shapeString(start.shape)) has no time axis")
            }
            guard lengths.count == start.batch else {
                throw EngineError(message: "lengths has \(lengths.count) entries, expected one per batch row (\(start.batch))")
            }
            var mask = [Bool](repeating: false, count: start.batch * time)
            for (b, length) in lengths.enumerated() {
                guard (0...time).contains(length) else {
                    throw EngineError(message: "lengths[\(b)] is \(length), expected a value in 0...\(time)")
                }
                for t in 0..<length { mask[b * time + t] = true }
            }
            lengthMask = mask
        }
        var states = try preparedLayerStates(initialStates, batch: start.batch)
        let output = try forwardLayers(start, mask: lengthMask, states: &states, threads: threads)
        return RunResult(output: Tensor(unchecked: output.shape, values: output.values),
                         finalStates: publicStates(states, batch: start.batch))
    }

    // MARK: - Internals shared with streaming

    /// The input before the first layer.
    enum Start {
        case features(LayerFlow)
        case tokens(ids: [Int], batch: Int, time: Int)

        var batch: Int {
            switch self {
            case .features(let flow): return flow.batch
            case .tokens(_, let batch, _): return batch
            }
        }
        var time: Int? {
            switch self {
            case .features(let flow): return flow.time
            case .tokens(_, _, let time): return time
            }
        }
        var shape: [Int] {
            switch self {
            case .features(let flow): return flow.shape
            case .tokens(_, let batch, let time): return [batch, time]
            }
        }
    }

    /// Checks the input's own consistency and its kind against the first layer.
    func startInput(_ input: ModelInput) throws -> Start {
        if let vectorizer = model.textVectorizer {
            // Texts go through the vectorizer; ids or features would skip its rules.
            guard case .texts(let texts) = input else {
                throw EngineError(layerKind: vectorizer.displayName,
                                  message: "the model takes texts ([batch] strings), but the input is \(input.kindDescription)")
            }
            let (ids, time) = try vectorizer.tokenIDs(texts, maxElements: Self.runElementLimit)
            return .tokens(ids: ids, batch: texts.count, time: time)
        }
        switch input {
        case .texts:
            throw EngineError(layerIndex: model.layers.isEmpty ? nil : 0, layerKind: model.layers.first?.kindName,
                              message: "takes \(model.takesTokenIDs ? "token ids [batch, time]" : "float features [batch, time, features]"), but the input is \(input.kindDescription): only a model with a text vectorizer takes texts")
        case .features(let tensor):
            if model.takesTokenIDs {
                throw EngineError(layerIndex: 0, layerKind: "embedding", message: "the model takes token ids [batch, time] (integers), but the input is float features \(shapeString(tensor.shape))")
            }
            guard tensor.values.count == elementCount(tensor.shape) else {
                throw EngineError(message: "input has \(tensor.values.count) values for shape \(shapeString(tensor.shape))")
            }
            switch tensor.shape.count {
            case 3:
                return .features(LayerFlow(values: tensor.values, batch: tensor.shape[0], time: tensor.shape[1],
                                       features: tensor.shape[2], mask: nil))
            case 2:
                return .features(LayerFlow(values: tensor.values, batch: tensor.shape[0], time: nil,
                                       features: tensor.shape[1], mask: nil))
            default:
                throw EngineError(message: "input has shape \(shapeString(tensor.shape)), expected [batch, time, features] or [batch, features]")
            }
        case .tokens(let ids, let batch, let time):
            guard model.takesTokenIDs else {
                // The features the first weighted layer takes, as `[batch, time, features]`.
                let features = model.layers.lazy.compactMap { layer -> Int? in
                    switch layer {
                    case .recurrent(let recurrent): return recurrent.inputSize
                    case .dense(let dense): return dense.inputSize
                    default: return nil
                    }
                }.first.map(String.init) ?? "features"
                throw EngineError(layerIndex: model.layers.isEmpty ? nil : 0, layerKind: model.layers.first?.kindName,
                                  message: "the model takes float features [batch, time, \(features)], but the input is token ids [\(batch), \(time)] (integers): the model does not start with an embedding")
            }
            guard batch >= 0, time >= 0, ids.count == elementCount([batch, time]) else {
                throw EngineError(message: "\(ids.count) token ids for [batch, time] = [\(batch), \(time)]")
            }
            return .tokens(ids: ids, batch: batch, time: time)
        }
    }

    /// Checks, before anything is allocated, that a run over `batch` sequences of `time` steps
    /// (nil: data without a time axis, or one step of a stream) keeps every tensor within
    /// `runElementLimit`: the input, each layer's output, a recurrent layer's gate
    /// pre-activations and states. Throws `EngineError` naming the layer and the product.
    package func checkRunSize(batch: Int, time: Int?) throws {
        let steps = max(time ?? 1, 1)
        func check(_ width: Int, _ what: String, index: Int?, kind: String?) throws {
            let factors = [batch, steps, width]
            guard let count = elementCount(factors), count <= Self.runElementLimit else {
                let text = factors.map(String.init).joined(separator: " × ")
                let total = elementCount(factors).map { "= \($0) floats, over the limit of \(Self.runElementLimit) by \($0 - Self.runElementLimit)" }
                    ?? "floats (more than \(Int.max)), over the limit of \(Self.runElementLimit)"
                throw EngineError(layerIndex: index, layerKind: kind,
                                  message: "\(what) for batch \(batch) and \(time.map { "\($0) steps" } ?? "no time axis") need batch × steps × width = \(text) \(total) (Engine.runElementLimit)")
            }
        }
        guard batch >= 0, (time ?? 0) >= 0 else {
            throw EngineError(message: "batch \(batch) and time \(time ?? 0) must not be negative")
        }
        var features: Int?
        for (index, layer) in model.layers.enumerated() {
            let kind = layer.kindName
            switch layer {
            case .embedding(let embedding):
                features = embedding.dimension
            case .recurrent(let recurrent):
                if let features { try check(features, "the input", index: index, kind: kind) }
                let directions = recurrent.directions.count
                try check(directions * recurrent.kind.gateCount * recurrent.hiddenSize, "the gate pre-activations",
                          index: index, kind: kind)
                try check(directions * max(recurrent.hiddenSize, recurrent.outputSize), "the output and states",
                          index: index, kind: kind)
                features = recurrent.mergedOutputSize
            case .dense(let dense):
                try check(dense.outputSize, "the output", index: index, kind: kind)
                features = dense.outputSize
            case .flatten:
                if let width = features { features = elementCount([steps, width]) ?? Int.max }
            case .readout(let readout) where readout == .lastHidden || readout == .lastHiddenAllDirections:
                features = nil
            case .masking, .activation, .readout:
                break
            }
            if let features { try check(features, "the data", index: index, kind: kind) }
        }
    }

    /// Validates initial states (or makes zeros) as flat per-layer arrays.
    func preparedLayerStates(_ given: [RecurrentState]?, batch: Int) throws -> [LayerState] {
        let recurrent = recurrentLayers
        if let given, given.count != recurrent.count {
            throw EngineError(message: "\(given.count) initial states given, expected one per recurrent layer (\(recurrent.count))")
        }
        var states: [LayerState] = []
        for (k, layer) in recurrent.enumerated() {
            let d = layer.directions.count
            let hShape = [d, batch, layer.outputSize]
            let cShape = [d, batch, layer.hiddenSize]
            let checker = LayerChecker(index: recurrentIndices[k], kind: layer.kind.rawValue)
            guard let state = given?[k] else {
                states.append(LayerState(
                    h: [Float](repeating: 0, count: hShape.reduce(1, *)),
                    c: layer.kind == .lstm ? [Float](repeating: 0, count: cShape.reduce(1, *)) : nil,
                    carried: [Float](repeating: 0, count: hShape.reduce(1, *))))
                continue
            }
            try checker.check(state.h, hShape, "initial state h")
            if layer.kind == .lstm {
                guard let c = state.c else {
                    throw checker.error("initial state has no c; an LSTM needs c \(shapeString(cShape))")
                }
                try checker.check(c, cShape, "initial state c")
            } else if let c = state.c {
                throw checker.error("initial state has c \(shapeString(c.shape)), but a \(layer.kind.rawValue) layer has no cell state")
            }
            states.append(LayerState(h: state.h.values, c: state.c?.values,
                                      carried: [Float](repeating: 0, count: hShape.reduce(1, *))))
        }
        return states
    }

    /// Turns internal states into `RecurrentState`s.
    func publicStates(_ states: [LayerState], batch: Int) -> [RecurrentState] {
        zip(recurrentLayers, states).map { layer, state in
            let d = layer.directions.count
            return RecurrentState(h: Tensor(unchecked: [d, batch, layer.outputSize], values: state.h),
                                  c: state.c.map { Tensor(unchecked: [d, batch, layer.hiddenSize], values: $0) })
        }
    }

    /// Applies every layer in order. `mask` (`[batch, time]`) is the mask from lengths, if any.
    func forwardLayers(_ start: Start, mask: [Bool]?, states: inout [LayerState], threads: Int = 1) throws -> LayerFlow {
        var (flow, tokens, index) = try enterModel(start)
        // Keras: an embedding (the first layer, applied by `enterModel`) makes the mask, whatever
        // the caller gave.
        let keras = model.lengthsRule == .kerasCallMask
        if let mask, !(keras && index > 0) { flow.intersectMask(mask) }
        var recurrentOrdinal = 0
        // Final h ([D, B, R]) of the most recent recurrent layer, for `.lastHidden` readouts.
        var lastFinal: FinalState?
        while index < layers.endIndex {
            let checker = LayerChecker(index: index, kind: model.layers[index].kindName)
            switch layers[index] {
            case .embedding:
                throw checker.error("an embedding must be the first layer")
            case .masking(let value):
                try applyMasking(&flow, value: value, replacing: keras, checker: checker)
            case .recurrent:
                // This layer and those that run with it as a pipeline.
                let stack = try recurrentStack(at: index, flow: flow, threads: threads, checker: checker)
                let ordinals = recurrentOrdinal..<(recurrentOrdinal + stack.count)
                var stackStates = Array(states[ordinals])
                flow = runRecurrentStack(stack, flow: flow, states: &stackStates, threads: threads,
                                          tokens: index == 1 ? tokens : nil)
                states.replaceSubrange(ordinals, with: stackStates)
                let last = stack[stack.count - 1]
                lastFinal = FinalState(h: stackStates[stackStates.count - 1].h, directions: last.directionCount,
                                        size: last.outputSize)
                recurrentOrdinal += stack.count
                index += stack.count - 1
            case .dense(let dense):
                try runDense(&flow, dense, checker: checker)
            case .activation(let activation):
                activation.apply(to: &flow.values, rowLength: flow.features)
            case .readout(let readout):
                flow = try runReadout(readout, flow, lastFinal: lastFinal, checker: checker)
            case .flatten:
                guard let time = flow.time else { throw checker.needsTime(flow) }
                flow = LayerFlow(values: flow.values, batch: flow.batch, time: nil, features: time * flow.features, mask: nil)
            }
            index += 1
        }
        return flow
    }

    /// The flow entering the first layer that `forwardLayers` applies, that layer's index, and the
    /// token ids for a recurrent layer that looks up its input projection per token
    /// (`foldEmbedding`); the embedding's rows are then not gathered at all.
    private func enterModel(_ start: Start) throws -> (flow: LayerFlow, tokens: [Int]?, index: Int) {
        switch start {
        case .features(let input):
            return (input, nil, 0)
        case .tokens(let ids, let batch, let time):
            guard case .embedding(let table, let vocabulary, let dimension, let maskZero) = layers.first else {
                preconditionFailure("checked by startInput")
            }
            var folded = false
            if layers.count > 1, case .recurrent(let next) = layers[1] { folded = next.directions[0].tokenProjection != nil }
            let flow = try embedTokens(ids: ids, batch: batch, time: time, table: table, vocabulary: vocabulary,
                                  dimension: dimension, maskZero: maskZero, gather: !folded)
            return (flow, folded ? ids : nil, 1)
        }
    }

    /// Keras's Masking: a step whose features all equal `value` is masked, and its features
    /// become 0 (the layer outputs `x · mask`). With `replacing` (Keras), the layer's mask replaces the incoming one (Keras's
    /// `Masking.compute_mask` ignores the mask it is given); else they combine by logical and.
    private func applyMasking(_ flow: inout LayerFlow, value: Float, replacing: Bool, checker: LayerChecker) throws {
        guard let time = flow.time else { throw checker.needsTime(flow) }
        var stepMask = [Bool](repeating: false, count: flow.batch * time)
        let f = flow.features
        for row in 0..<(flow.batch * time) {
            var allEqual = true
            for j in 0..<f where flow.values[row * f + j] != value { allEqual = false; break }
            stepMask[row] = !allEqual
            if allEqual { for j in 0..<f { flow.values[row * f + j] = 0 } }
        }
        if replacing { flow.mask = stepMask } else { flow.intersectMask(stepMask) }
    }

    /// The recurrent layer at `index` and the recurrent layers right after it that run with it
    /// as a pipeline (`pipelineLength`), after checking that `flow` fits the first.
    private func recurrentStack(at index: Int, flow: LayerFlow, threads: Int,
                                 checker: LayerChecker) throws -> [PreparedRecurrent] {
        guard case .recurrent(let layer) = layers[index] else { preconditionFailure("not recurrent") }
        guard flow.time != nil else { throw checker.needsTime(flow) }
        guard flow.features == layer.inputSize else {
            throw checker.error("input has \(flow.features) features, expected \(layer.inputSize) (input size)")
        }
        var stack = [layer]
        var next = index + 1
        while next < layers.endIndex, case .recurrent(let following) = layers[next] {
            guard following.inputSize == stack[stack.count - 1].mergedOutputSize else { break }
            stack.append(following)
            next += 1
        }
        return Array(stack.prefix(pipelineLength(stack[...], threads: threads, batch: flow.batch)))
    }

    /// `y = act(x Wᵀ + b)` on every row of `flow`.
    private func runDense(_ flow: inout LayerFlow, _ dense: PreparedDense, checker: LayerChecker) throws {
        guard flow.features == dense.inputSize else {
            throw checker.error("input has \(flow.features) features, expected \(dense.inputSize) (input size)")
        }
        let rows = flow.values.count / max(1, flow.features)
        var y = [Float](repeating: 0, count: rows * dense.outputSize)
        if rows > 0 { y.withUnsafeMutableBufferPointer { yp in
            flow.values.withUnsafeBufferPointer { x in
                withOptionalBuffer(dense.bias) { bias in
                    affine(x: x.baseAddress, rows: rows, weight: dense.weight, bias: bias, into: yp.baseAddress!)
                }
            }
            dense.activation.apply(to: yp, rowLength: dense.outputSize)
        } }
        flow.values = y
        flow.features = dense.outputSize
    }

    /// A readout: the last recurrent layer's final `h` (`.lastHidden`: the last direction's,
    /// `.lastHiddenAllDirections`: every direction's side by side), or a pooling over steps.
    private func runReadout(_ readout: Readout, _ flow: LayerFlow, lastFinal: FinalState?,
                          checker: LayerChecker) throws -> LayerFlow {
        guard let time = flow.time else { throw checker.needsTime(flow) }
        switch readout {
        case .lastHidden, .lastHiddenAllDirections:
            guard let last = lastFinal else { throw checker.error("needs a recurrent layer before it") }
            let first = readout == .lastHidden ? last.directions - 1 : 0
            let width = (last.directions - first) * last.size
            var values = [Float](repeating: 0, count: flow.batch * width)
            for b in 0..<flow.batch {
                for d in first..<last.directions {
                    for j in 0..<last.size {
                        values[b * width + (d - first) * last.size + j] = last.h[(d * flow.batch + b) * last.size + j]
                    }
                }
            }
            return LayerFlow(values: values, batch: flow.batch, time: nil, features: width, mask: nil)
        case .meanOverValidSteps, .maxOverValidSteps, .maxOverAllSteps, .lastValidStep:
            return poolReadout(flow, time: time, readout: readout)
        }
    }
}

/// A recurrent layer's final `h` `[D, B, R]` (`size` = `R`), which `.lastHidden` readouts read.
struct FinalState {
    var h: [Float]
    var directions: Int
    var size: Int
}

extension LayerChecker {
    /// The error for a layer that needs a time axis and got `flow` without one.
    func needsTime(_ flow: LayerFlow) -> EngineError {
        error("needs data with a time axis [batch, time, features], got \(shapeString(flow.shape))")
    }
}

/// Looks up token ids `[batch, time]` in `table` `[vocabulary, dimension]`.
///
/// With `maskZero`, id 0 marks a masked step (Keras `mask_zero`). Without `gather` the ids
/// are only checked and the flow carries no values (the next layer reads the ids).
func embedTokens(ids: [Int], batch: Int, time: Int, table: [Float], vocabulary: Int, dimension: Int,
            maskZero: Bool, gather: Bool = true) throws -> LayerFlow {
    for (position, id) in ids.enumerated() where !(0..<vocabulary).contains(id) {
        throw EngineError(layerIndex: 0, layerKind: "embedding",
                          message: "token id \(id) at [\(position / max(1, time)), \(position % max(1, time))] is outside the vocabulary 0..<\(vocabulary)")
    }
    guard gather else {
        return LayerFlow(values: [], batch: batch, time: time, features: dimension,
                     mask: maskZero ? ids.map { $0 != 0 } : nil)
    }
    // Every row is written: no zero fill first, and one block copy per token.
    let values = [Float](unsafeUninitializedCapacity: ids.count * dimension) { out, initialized in
        if dimension > 0 { table.withUnsafeBufferPointer { rows in
            for (position, id) in ids.enumerated() {
                (out.baseAddress! + position * dimension).initialize(from: rows.baseAddress! + id * dimension,
                                                                     count: dimension)
            }
        } }
        initialized = ids.count * dimension
    }
    return LayerFlow(values: values, batch: batch, time: time, features: dimension,
                 mask: maskZero ? ids.map { $0 != 0 } : nil)
}

/// Pools `[B, T, F]` into `[B, F]` over each sequence's valid steps.
///
/// mean: `Σ_valid x_t / n_valid` (zeros when `n_valid = 0`); max: element-wise maximum over
/// valid steps (zeros when none); maxOverAllSteps: the same over every step, ignoring the
/// mask; lastValidStep: `x` at the last valid step (zeros when none).
func poolReadout(_ flow: LayerFlow, time: Int, readout: Readout) -> LayerFlow {
    let f = flow.features
    var out = [Float](repeating: 0, count: flow.batch * f)
    for b in 0..<flow.batch {
        let valid = (0..<time).filter { readout == .maxOverAllSteps || (flow.mask?[b * time + $0] ?? true) }
        guard !valid.isEmpty else { continue }
        for j in 0..<f {
            let column = valid.map { flow.values[(b * time + $0) * f + j] }
            switch readout {
            case .meanOverValidSteps:
                var sum: Float = 0
                for v in column { sum += v }
                out[b * f + j] = sum / Float(column.count)
            case .maxOverValidSteps, .maxOverAllSteps:
                var maximum = column[0]
                for v in column.dropFirst() where v > maximum || v.isNaN { maximum = v }
                out[b * f + j] = maximum
            case .lastValidStep:
                out[b * f + j] = column[column.count - 1]
            case .lastHidden, .lastHiddenAllDirections:
                preconditionFailure("not a pooling readout")
            }
        }
    }
    return LayerFlow(values: out, batch: flow.batch, time: nil, features: f, mask: nil)
}
