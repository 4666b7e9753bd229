// The framework-neutral model: what a recurrent network computes, with no file format in it.
//
// Weights follow one convention everywhere in this module: a matrix is row-major
// `[rows, columns]` with the output along the rows, as `y = W x` (PyTorch's convention).
// Gate blocks are stacked along the rows, and every weight set declares its own gate order
// as data (`gateOrder`); the engine permutes blocks into its internal order once, at load.
// The gate and bias rules themselves are in GateRules.swift.

/// A gate (or block) of a recurrent cell.
///
/// A simple RNN has one block, called `.cell`. LSTM uses `.input`, `.forget`, `.cell`,
/// `.output`; GRU uses `.reset`, `.update`, `.new`.
public enum Gate: String, Sendable, Hashable, CaseIterable, Codable {
    case input, forget, cell, output
    case reset, update, new
}

/// The kind of recurrent cell.
package enum CellKind: String, Sendable, Hashable, Codable {
    case rnn, lstm, gru

    /// The gates a cell of this kind has, as a set (their order is a layout's business).
    package var gates: Set<Gate> { Set(GateOrders.neutral[self]) }

    package var gateCount: Int { gates.count }
}

/// An element-wise (or, for softmax, last-axis) activation function.
package enum Activation: String, Sendable, Hashable, Codable, CaseIterable {
    case linear
    case relu
    case tanh
    case sigmoid
    /// Keras 2 / tf-keras: `clip(0.2·x + 0.5, 0, 1)`.
    case hardSigmoidKeras2
    /// Keras 3 (and PyTorch's `Hardsigmoid`): `clip(x/6 + 0.5, 0, 1)`.
    case hardSigmoid
    case softmax
    case elu
    case selu
    case softplus
    case softsign
    /// `x · sigmoid(x)`.
    case swish
    /// Exact GELU: `0.5·x·(1 + erf(x/√2))`.
    case gelu
    /// Tanh-approximated GELU.
    case geluTanh
}

/// An element-wise activation of a recurrent cell, with the parameters `α`, `β` that ONNX's
/// recurrent operators give some of theirs (`activations`, `activation_alpha`,
/// `activation_beta`; spec/onnx-layout.md has the table).
///
/// `.standard` is one of the engine's own activations, computed exactly as for a Keras or
/// PyTorch layer; the other cases are ONNX's parameterised functions.
package enum CellActivation: Sendable, Hashable {
    case standard(Activation)
    /// `α·x + β`.
    case affine(alpha: Float, beta: Float)
    /// `x` for `x ≥ 0`, else `α·x`.
    case leakyRelu(alpha: Float)
    /// `x` for `x > α`, else 0.
    case thresholdedRelu(alpha: Float)
    /// `α·tanh(β·x)`.
    case scaledTanh(alpha: Float, beta: Float)
    /// `min(1, max(0, α·x + β))`.
    case hardSigmoid(alpha: Float, beta: Float)
    /// `x` for `x ≥ 0`, else `α·(eˣ − 1)`.
    case elu(alpha: Float)
}

/// The activations of one direction of a recurrent cell, by the role ONNX gives each:
/// `gate` (ONNX `f`: LSTM i, f, o; GRU r, z; unused by a simple RNN), `candidate` (`g`: the
/// LSTM cell candidate, the GRU new gate, a simple RNN's only one) and `cellOutput` (`h`,
/// LSTM only: applied to `c_t` in `h_t = o ⊙ h(c_t)`).
package struct CellActivations: Sendable, Hashable {
    package var gate: CellActivation
    package var candidate: CellActivation
    package var cellOutput: CellActivation

    package init(gate: CellActivation, candidate: CellActivation, cellOutput: CellActivation) {
        self.gate = gate
        self.candidate = candidate
        self.cellOutput = cellOutput
    }
}

/// The number of elements of `shape`, without trapping: 0 when any dimension is 0 (a shape
/// `[2^40, 2^40, 0]` holds nothing), nil when a dimension is negative or the product
/// overflows.
package func elementCount(_ shape: [Int]) -> Int? {
    guard shape.allSatisfy({ $0 >= 0 }) else { return nil }
    if shape.contains(0) { return 0 }
    var count = 1
    for dimension in shape {
        let (next, overflow) = count.multipliedReportingOverflow(by: dimension)
        if overflow { return nil }
        count = next
    }
    return count
}

/// How a GRU applies its reset gate.
package enum GRUResetRule: String, Sendable, Hashable, Codable {
    /// PyTorch and Keras `reset_after=True`:
    /// `n = tanh(W_n x + b_in + r ⊙ (U_n h + b_hn))`.
    case afterMatmul
    /// Keras `reset_after=False`: `n = tanh(W_n x + U_n (r ⊙ h) + b_n)`; one bias only.
    case beforeMatmul
}

/// The weights of one direction of one recurrent layer.
///
/// With `G` gates, hidden size `H`, input size `I` and recurrent (output) size `R`
/// (`R = P` with a projection, else `H`):
/// - `inputWeight`: `[G·H, I]`
/// - `recurrentWeight`: `[G·H, R]`
/// - `inputBias`, `recurrentBias`: `[G·H]` or absent (absent means zero)
/// - `projection`: `[P, H]` (LSTM only), `h_t = projection · (o ⊙ tanh(c_t))`
/// - `peepholes`: `[3·H]` (LSTM only, ONNX's `P`), blocks in the order
///   `DirectionWeights.peepholeOrder` (i, f, o): `i` and `f` add `p_i ⊙ c_{t−1}`,
///   `p_f ⊙ c_{t−1}` to their pre-activations, `o` adds `p_o ⊙ c_t`; absent means none
package struct DirectionWeights: Sendable, Equatable {
    package var gateOrder: [Gate]
    package var inputWeight: Tensor
    package var recurrentWeight: Tensor
    package var inputBias: Tensor?
    package var recurrentBias: Tensor?
    package var projection: Tensor?
    package var peepholes: Tensor? = nil

    /// The order of the blocks of `peepholes`, whatever `gateOrder` is.
    package static let peepholeOrder: [Gate] = [.input, .forget, .output]

    /// Elements of the direction's tensors, as a layer's summary counts its parameters.
    package var parameterCount: Int {
        [inputWeight, recurrentWeight, inputBias, recurrentBias, projection, peepholes].reduce(0) { $0 + ($1?.count ?? 0) }
    }

    /// The same weights with gate blocks in `order` (rows of the weights and biases).
    package func reordered(to order: [Gate]) -> DirectionWeights {
        DirectionWeights(gateOrder: order,
                         inputWeight: inputWeight.reorderingRowBlocks(from: gateOrder, to: order),
                         recurrentWeight: recurrentWeight.reorderingRowBlocks(from: gateOrder, to: order),
                         inputBias: inputBias?.reorderingRowBlocks(from: gateOrder, to: order),
                         recurrentBias: recurrentBias?.reorderingRowBlocks(from: gateOrder, to: order),
                         projection: projection, peepholes: peepholes)
    }

    package init(gateOrder: [Gate], inputWeight: Tensor, recurrentWeight: Tensor,
                inputBias: Tensor? = nil, recurrentBias: Tensor? = nil, projection: Tensor? = nil,
                peepholes: Tensor? = nil) {
        self.gateOrder = gateOrder
        self.inputWeight = inputWeight
        self.recurrentWeight = recurrentWeight
        self.inputBias = inputBias
        self.recurrentBias = recurrentBias
        self.projection = projection
        self.peepholes = peepholes
    }
}

/// How the outputs of a forward and a backward direction are merged.
package enum MergeMode: String, Sendable, Hashable, Codable {
    case concat, sum, mul, ave
}

/// What a recurrent layer emits at a step the mask excludes.
package enum MaskedOutput: String, Sendable, Hashable, Codable {
    /// Zero (PyTorch's packed sequences; Keras with `zero_output_for_mask`).
    case zero
    /// The output of the last unmasked step (Keras's default), zero before the first one.
    case carry
}

/// One recurrent layer: one or two directions over the same input.
///
/// A PyTorch `nn.LSTM(num_layers: 2, bidirectional: true)` is two of these, each with two
/// directions merged by `.concat`. A Keras `Bidirectional(LSTM)` is one.
package struct RecurrentLayer: Sendable, Equatable {
    package var kind: CellKind
    package var inputSize: Int
    package var hiddenSize: Int
    /// LSTM projection size (`proj_size`), or nil.
    package var projectionSize: Int?
    /// One entry for a unidirectional layer; `[forward, backward]` for a bidirectional one.
    package var directions: [DirectionWeights]
    /// Candidate / output activation (tanh for LSTM and GRU; tanh or relu for a simple RNN).
    package var activation: Activation
    /// Gate activation (sigmoid unless a Keras file says otherwise). Unused by a simple RNN.
    package var recurrentActivation: Activation
    package var gruResetRule: GRUResetRule
    package var merge: MergeMode
    /// Keras `go_backwards` on a unidirectional layer: run over the reversed sequence and
    /// emit outputs in processing order (reversed), as Keras does.
    package var goBackwards: Bool
    package var maskedOutput: MaskedOutput
    /// When false the layer emits only its last output (`[batch, features]`).
    package var returnSequences: Bool
    /// ONNX `direction = reverse` on a unidirectional layer: run from the last step to the
    /// first, each output at its own step (unlike `goBackwards`, which emits them reversed),
    /// as the backward half of a bidirectional layer does.
    package var reversed: Bool = false
    /// Activations per direction (`[forward]` or `[forward, backward]`) that replace
    /// `recurrentActivation` (gates), `activation` (candidate and LSTM cell output), or nil:
    /// what ONNX expresses and Keras and PyTorch do not (parameterised functions, another set
    /// per direction, an LSTM cell-output activation other than its candidate's).
    package var cellActivations: [CellActivations]? = nil
    /// ONNX `clip`: every gate pre-activation (bias and peephole included) is clipped to
    /// `[−clip, clip]` before its activation; nil for none.
    package var clip: Float? = nil
    /// ONNX `input_forget` (LSTM): the forget gate is `1 − i` (its own weights are unused).
    package var inputForget: Bool = false

    package init(kind: CellKind, inputSize: Int, hiddenSize: Int, projectionSize: Int? = nil,
                directions: [DirectionWeights], activation: Activation = .tanh,
                recurrentActivation: Activation = .sigmoid, gruResetRule: GRUResetRule = .afterMatmul,
                merge: MergeMode = .concat, goBackwards: Bool = false,
                maskedOutput: MaskedOutput = .zero, returnSequences: Bool = true) {
        self.kind = kind
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        self.projectionSize = projectionSize
        self.directions = directions
        self.activation = activation
        self.recurrentActivation = recurrentActivation
        self.gruResetRule = gruResetRule
        self.merge = merge
        self.goBackwards = goBackwards
        self.maskedOutput = maskedOutput
        self.returnSequences = returnSequences
    }

    /// Size of one direction's output and hidden state `h` (`P` with projection, else `H`).
    package var outputSize: Int { projectionSize ?? hiddenSize }
    package var isBidirectional: Bool { directions.count == 2 }
    /// Features per step after merging directions.
    package var mergedOutputSize: Int { isBidirectional && merge == .concat ? 2 * outputSize : outputSize }

    /// The activations of direction `d`: `cellActivations[d]`, or the layer's own.
    package func activations(ofDirection d: Int) -> CellActivations {
        if let cellActivations, d < cellActivations.count { return cellActivations[d] }
        return CellActivations(gate: .standard(recurrentActivation), candidate: .standard(activation),
                               cellOutput: .standard(activation))
    }

    /// What this layer computes that a Keras or PyTorch layer cannot express, one phrase per
    /// feature (empty for a layer they can): ONNX's peepholes, `clip`, `input_forget`, a lone
    /// reverse direction and activations beyond the layer-wide pair. Converters to those
    /// frameworks refuse a layer that has any.
    package var featuresBeyondKerasAndPyTorch: [String] {
        var features: [String] = []
        if directions.contains(where: { $0.peepholes != nil }) { features.append("peepholes") }
        if let clip { features.append("clip (±\(clip))") }
        if inputForget { features.append("input_forget (f = 1 − i)") }
        if reversed { features.append("a lone reverse direction with outputs at their own steps") }
        if cellActivations != nil { features.append("activations per gate role or direction, or with parameters") }
        return features
    }
}

/// A token embedding: ids `[batch, time]` → `[batch, time, dim]`.
package struct Embedding: Sendable, Equatable {
    /// `[vocabulary, dim]`.
    package var table: Tensor
    /// Keras `mask_zero`: id 0 marks a masked step.
    package var maskZero: Bool
    /// PyTorch `padding_idx`: the id sequences are padded with. It changes no output (the
    /// mask comes from lengths); a converter may use it to give Keras a mask.
    package var paddingIndex: Int?

    package init(table: Tensor, maskZero: Bool = false, paddingIndex: Int? = nil) {
        self.table = table
        self.maskZero = maskZero
        self.paddingIndex = paddingIndex
    }

    package var vocabularySize: Int { table.shape[0] }
    package var dimension: Int { table.shape[1] }
}

/// A fully connected layer on the last axis: `y = activation(W x + b)`.
package struct Dense: Sendable, Equatable {
    /// `[out, in]`.
    package var weight: Tensor
    /// `[out]` or absent.
    package var bias: Tensor?
    package var activation: Activation

    package init(weight: Tensor, bias: Tensor? = nil, activation: Activation = .linear) {
        self.weight = weight
        self.bias = bias
        self.activation = activation
    }

    package var inputSize: Int { weight.shape[1] }
    package var outputSize: Int { weight.shape[0] }
}

/// How a sequence `[batch, time, features]` becomes a vector `[batch, features]`.
package enum Readout: String, Sendable, Hashable, Codable {
    /// The last recurrent layer's final hidden state of its last direction (PyTorch `h_n[-1]`).
    case lastHidden
    /// The last recurrent layer's final hidden states, all directions concatenated
    /// (`torch.cat([h_n[-2], h_n[-1]], 1)` for a bidirectional layer).
    case lastHiddenAllDirections
    /// Mean over each sequence's valid (unmasked) steps.
    case meanOverValidSteps
    /// Maximum over valid steps.
    case maxOverValidSteps
    /// Maximum over every step, masked or not (Keras `GlobalMaxPooling1D`, which ignores the
    /// mask, so at masked steps it sees whatever the previous layer emitted there).
    case maxOverAllSteps
    /// Each sequence's output at its own last valid step.
    case lastValidStep
}

/// One step of a model. Layers apply in order; a mask (from lengths, `Masking` or an
/// embedding with `maskZero`) travels with the data between them.
package enum Layer: Sendable, Equatable {
    case embedding(Embedding)
    /// Keras `Masking`: a step is masked when every feature equals `maskValue`, and its
    /// features become 0 (`x · mask`).
    case masking(maskValue: Float)
    case recurrent(RecurrentLayer)
    /// Applies to the last axis of 2-D or 3-D data.
    case dense(Dense)
    case activation(Activation)
    case readout(Readout)
    /// `[batch, time, features]` → `[batch, time·features]` (static shapes only).
    case flatten
}

/// Where the lengths a caller gives a run (`Engine.run(_:lengths:)`) take effect: the
/// meaning of the fixture's `/lengths` for the framework the model comes from
/// (spec/fixture-format.md, "What /lengths means").
package enum LengthsRule: Sendable, Hashable {
    /// PyTorch (`pack_padded_sequence`): step `t` of sequence `b` is excluded whenever
    /// `t ≥ lengths[b]`, whatever the layers' own masks (`maskZero`, `Masking`), which combine
    /// with it by logical and.
    case packed
    /// Keras (`model(x, mask=mask)`): the mask reaches the first layer and then travels as a
    /// Keras mask. A layer that computes its own mask replaces it: an embedding (`mask_zero`:
    /// `ids ≠ 0`; without `mask_zero`: no mask, so the caller's is dropped) and `Masking`.
    case kerasCallMask
}

/// A whole model: an ordered chain of layers.
package struct Model: Sendable, Equatable {
    package var layers: [Layer]
    /// Informational name (a module or layer name from the file).
    package var name: String
    /// The source's name for each layer (a Keras layer name, a PyTorch module name), or
    /// empty: what a converter names the layer in the target.
    package var layerNames: [String]
    /// The number of time steps when the source fixes it (a Keras input shape), else nil.
    package var sequenceLength: Int?
    /// The text front (Keras's `TextVectorization`), or nil: with one, the model takes texts
    /// and its first layer, an embedding, gets the ids the vectorizer makes of them.
    package var textVectorizer: TextVectorizer?
    /// What a caller's lengths mean for this model: the source framework's rule.
    package var lengthsRule: LengthsRule

    package init(layers: [Layer], name: String = "model", layerNames: [String] = [], sequenceLength: Int? = nil,
                 textVectorizer: TextVectorizer? = nil, lengthsRule: LengthsRule = .packed) {
        self.layers = layers
        self.lengthsRule = lengthsRule
        self.name = name
        self.layerNames = layerNames
        self.sequenceLength = sequenceLength
        self.textVectorizer = textVectorizer
    }

    /// The source's name of layer `index`, or nil when it has none.
    package func layerName(_ index: Int) -> String? {
        index < layerNames.count && !layerNames[index].isEmpty ? layerNames[index] : nil
    }

    /// True when the model starts with an embedding, so it takes token ids (or, with a
    /// text vectorizer, texts that become token ids).
    package var takesTokenIDs: Bool {
        if case .embedding = layers.first { return true }
        return false
    }

    /// True when the model takes texts: it has a text vectorizer in front of its embedding.
    package var takesTexts: Bool { textVectorizer != nil }

    /// The index of the layer that drops a caller's lengths before any layer uses them, or
    /// nil when they take effect. Only a Keras model drops them: at a first embedding without
    /// `maskZero` (Keras computes the mask from nothing), or at a `Masking` layer or a
    /// `maskZero` embedding (each replaces the caller's mask with its own), before any
    /// recurrent layer or readout has seen the mask.
    package var layerDroppingLengths: Int? {
        guard lengthsRule == .kerasCallMask else { return nil }
        return LengthsRule.firstMaskMaker(layers.map { layer in
            switch layer {
            case .embedding, .masking: return .makesMask
            case .recurrent, .readout, .flatten: return .consumesMask
            case .dense, .activation: return .passesMask
            }
        })
    }
}

extension LengthsRule {
    /// What a layer does with the mask it is given, for ``firstMaskMaker(_:)``.
    package enum MaskRole: Sendable {
        /// Computes a mask of its own, whatever it is given (an embedding, `Masking`).
        case makesMask
        /// Uses the mask, or ends the time axis (a recurrent layer, a readout, a flatten).
        case consumesMask
        /// Hands the mask on unchanged (dense layers, activations).
        case passesMask
    }

    /// Under `.kerasCallMask`, the position of the layer that replaces a caller's mask before
    /// any layer uses it — the caller's lengths then change nothing —, or nil. The one rule
    /// for the engine (``Model/layerDroppingLengths``) and the emitted PyTorch module.
    package static func firstMaskMaker(_ roles: [MaskRole]) -> Int? {
        for (index, role) in roles.enumerated() {
            switch role {
            case .makesMask: return index
            case .consumesMask: return nil
            case .passesMask: continue
            }
        }
        return nil
    }
}

extension Model {
    /// The floating-point operations of one forward pass over `batch` sequences of `time`
    /// steps, counting matrix products only.
    ///
    /// A product of a `[rows, in]` input by an `[in, out]` weight counts `2·rows·in·out`
    /// (one multiply and one add per weight and row). With `G` gates, hidden size `H`, input
    /// size `I`, recurrent size `R` and projection size `P`, each direction of a recurrent
    /// layer counts, per step and batch row,
    ///
    ///     2·I·G·H  (input projection) + 2·R·G·H  (recurrent product) [+ 2·H·P  (projection)]
    ///
    /// every step counted as valid (masks and lengths are ignored). A dense layer counts
    /// `2·in·out` per row (`batch·time` rows on a sequence, `batch` after a readout or
    /// flatten). Activations, gate arithmetic, embeddings, merges and readouts are not
    /// counted: they are linear in the data and small beside the products.
    ///
    /// The reference workload, a 2-layer bidirectional LSTM with input 128 and hidden 256
    /// over 256 steps, counts 1.208 GFLOP per sequence (77.3 GFLOP at batch 64).
    package func forwardFLOPs(batch: Int, time: Int) -> Double {
        var total = 0.0
        var hasTime = true
        for layer in layers {
            switch layer {
            case .embedding, .masking, .activation:
                break
            case .recurrent(let recurrent):
                let gates = Double(recurrent.kind.gateCount * recurrent.hiddenSize)
                var perStep = 2 * Double(recurrent.inputSize) * gates + 2 * Double(recurrent.outputSize) * gates
                if let projection = recurrent.projectionSize {
                    perStep += 2 * Double(recurrent.hiddenSize * projection)
                }
                total += perStep * Double(recurrent.directions.count) * Double(batch * time)
                hasTime = recurrent.returnSequences
            case .dense(let dense):
                let rows = hasTime ? batch * time : batch
                total += 2 * Double(dense.inputSize * dense.outputSize) * Double(rows)
            case .readout, .flatten:
                hasTime = false
            }
        }
        return total
    }
}
