/// The first way two models differ in what they compute, for a person: the layer, the
/// option, and each model's value of it.
///
/// Used where two descriptions of one file must agree: a file that carries its own
/// architecture given another one beside it (spec/fixture-format.md, "Which architecture").
/// Models with equal `ModelFingerprint`s compute the same function and have no difference
/// (a Dense with an activation equals a Dense then that Activation; layer names do not count).
struct ModelDifference: Equatable {
    /// Index of the layer in the first model's `layers`; nil for the model as a whole.
    var layerIndex: Int?
    /// The option, by its Keras name where Keras has one (`recurrent_activation`, `units`).
    var field: String
    /// The first model's value, then the second's.
    var first: String
    var second: String

    /// The first difference between `first` and `second`, or nil when they compute the same.
    init?(_ first: Model, _ second: Model) {
        let (a, b) = (ModelFingerprint(first), ModelFingerprint(second))
        guard a != b else { return nil }
        if first.textVectorizer != second.textVectorizer {
            self.init(layerIndex: nil, field: "text vectorization",
                      first: first.textVectorizer.map { "\($0.split), lowercase \($0.lowercase), \($0.vocabularySize) tokens" } ?? "none",
                      second: second.textVectorizer.map { "\($0.split), lowercase \($0.lowercase), \($0.vocabularySize) tokens" } ?? "none")
            return
        }
        for (index, (x, y)) in zip(first.layers, second.layers).enumerated() where x != y {
            if let difference = Self.layerDifference(x, y) {
                self.init(layerIndex: index, field: difference.field, first: difference.first, second: difference.second)
                return
            }
        }
        if first.layers.count != second.layers.count {
            self.init(layerIndex: nil, field: "layers", first: "\(first.layers.count)", second: "\(second.layers.count)")
            return
        }
        // Equal layer by layer yet computing differently cannot happen; say what the fingerprints say.
        self.init(layerIndex: nil, field: "model", first: a.firstDifference(from: b), second: "")
    }

    private init(layerIndex: Int?, field: String, first: String, second: String) {
        self.layerIndex = layerIndex
        self.field = field
        self.first = first
        self.second = second
    }

    private typealias Pair = (field: String, first: String, second: String)

    private static func layerDifference(_ x: Layer, _ y: Layer) -> Pair? {
        switch (x, y) {
        case let (.recurrent(p), .recurrent(q)):
            return recurrentDifference(p, q)
        case let (.dense(p), .dense(q)):
            return first([
                ("units", "\(p.outputSize)", "\(q.outputSize)"),
                ("input size", "\(p.inputSize)", "\(q.inputSize)"),
                ("activation", p.activation.displayName, q.activation.displayName),
                ("use_bias", "\(p.bias != nil)", "\(q.bias != nil)"),
                ("weights", "the file's kernel", "another pairing of the file's weights"),
            ], equal: [p.outputSize == q.outputSize, p.inputSize == q.inputSize, p.activation == q.activation,
                       (p.bias != nil) == (q.bias != nil), p == q])
        case let (.embedding(p), .embedding(q)):
            return first([
                ("input_dim", "\(p.vocabularySize)", "\(q.vocabularySize)"),
                ("output_dim", "\(p.dimension)", "\(q.dimension)"),
                ("mask_zero", "\(p.maskZero)", "\(q.maskZero)"),
                ("weights", "the file's table", "another pairing of the file's weights"),
            ], equal: [p.vocabularySize == q.vocabularySize, p.dimension == q.dimension, p.maskZero == q.maskZero,
                       p.table == q.table])
        case let (.masking(p), .masking(q)):
            return ("mask_value", "\(p)", "\(q)")
        case let (.activation(p), .activation(q)):
            return ("activation", p.displayName, q.displayName)
        case let (.readout(p), .readout(q)):
            return ("readout", p.rawValue, q.rawValue)
        default:
            return ("layer", describe(x), describe(y))
        }
    }

    private static func recurrentDifference(_ p: RecurrentLayer, _ q: RecurrentLayer) -> Pair? {
        let cell = p.kind == q.kind
        return first([
            ("cell", p.kind.rawValue.uppercased(), q.kind.rawValue.uppercased()),
            ("directions", "\(p.directions.count)", "\(q.directions.count)"),
            ("input size", "\(p.inputSize)", "\(q.inputSize)"),
            ("units", "\(p.hiddenSize)", "\(q.hiddenSize)"),
            ("projection size", p.projectionSize.map(String.init) ?? "none", q.projectionSize.map(String.init) ?? "none"),
            ("activation", p.activation.displayName, q.activation.displayName),
            ("recurrent_activation", p.recurrentActivation.displayName, q.recurrentActivation.displayName),
            ("reset_after", "\(p.gruResetRule == .afterMatmul)", "\(q.gruResetRule == .afterMatmul)"),
            ("use_bias", "\(p.hasBias)", "\(q.hasBias)"),
            ("merge_mode", p.merge.rawValue, q.merge.rawValue),
            ("go_backwards", "\(p.goBackwards)", "\(q.goBackwards)"),
            ("return_sequences", "\(p.returnSequences)", "\(q.returnSequences)"),
            ("masked steps' output", p.maskedOutput.rawValue, q.maskedOutput.rawValue),
            ("reversed", "\(p.reversed)", "\(q.reversed)"),
            ("clip", p.clip.map { "\($0)" } ?? "none", q.clip.map { "\($0)" } ?? "none"),
            ("input_forget", "\(p.inputForget)", "\(q.inputForget)"),
            ("cell activations", p.cellActivations.map { "\($0)" } ?? "the layer's", q.cellActivations.map { "\($0)" } ?? "the layer's"),
            ("weights", "the file's weights", "another pairing of the file's weights"),
        ], equal: [
            cell, p.directions.count == q.directions.count, p.inputSize == q.inputSize, p.hiddenSize == q.hiddenSize,
            p.projectionSize == q.projectionSize, p.activation == q.activation,
            p.kind == .rnn || p.recurrentActivation == q.recurrentActivation,
            p.kind != .gru || p.gruResetRule == q.gruResetRule, p.hasBias == q.hasBias,
            p.directions.count == 1 || p.merge == q.merge, p.goBackwards == q.goBackwards,
            p.returnSequences == q.returnSequences, !p.returnSequences || p.maskedOutput == q.maskedOutput,
            p.reversed == q.reversed, p.clip == q.clip, p.inputForget == q.inputForget,
            p.cellActivations == q.cellActivations, p.directions == q.directions,
        ])
    }

    /// The first of `pairs` whose `equal` entry is false.
    private static func first(_ pairs: [Pair], equal: [Bool]) -> Pair? {
        zip(pairs, equal).first { !$0.1 }?.0
    }

    private static func describe(_ layer: Layer) -> String {
        switch layer {
        case let .recurrent(recurrent): return recurrent.kind.rawValue.uppercased()
        case .dense: return "Dense"
        case .embedding: return "Embedding"
        case .masking: return "Masking"
        case let .activation(activation): return "Activation(\(activation.displayName))"
        case let .readout(readout): return "readout \(readout.rawValue)"
        case .flatten: return "Flatten"
        }
    }
}
