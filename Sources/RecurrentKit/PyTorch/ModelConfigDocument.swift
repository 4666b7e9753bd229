import Foundation
import TextSafety

/// RecurrentKit's own `model_config`: the JSON document stored as an attribute beside a
/// PyTorch `state_dict` that describes the whole model, module by module.
///
/// This type is the schema (spec/pytorch-layout.md, "Schema", checked against it by
/// `ModelConfigSchemaTests`). The reader decodes it (`PyTorchModelConfig`, with
/// `StrictJSONDecoder`), the writer builds and encodes it (`PyTorchWriter`, `json()`), the
/// Python emitter takes it (`PythonEmitter`). A decoded value is valid: every field has its
/// JSON type, sizes are exact integers within `Limits.dimension`, names and choices are
/// ones the tables know; unknown fields and module types are refused with their path.
struct ModelConfigDocument: Codable, Equatable, Sendable {
    /// The `format` every document has (or may leave out).
    static let format = "recurrentkit.pytorch"
    /// Versions this build reads: 1 (PyTorch's own modules), 2 (adds Keras's options), 3
    /// (adds `TextVectorization`).
    static let versions = 1...3
    /// The version the writer writes, unless the document needs a later one
    /// (`TextVectorization` needs ``textVersion``).
    static let currentVersion = 2
    /// The first version with a `TextVectorization` module; a document holding one says at least this.
    static let textVersion = 3

    /// `"recurrentkit.pytorch"`; optional on read, always written.
    var format: String?
    /// 1, 2 or 3; optional on read, always written.
    var version: Int?
    /// A key prefix before every module's parameter keys (`"model."`).
    var prefix: String?
    /// The modules, applied in order to batch-first data.
    var modules: [Module]
    /// Version 2: how the model takes a caller's lengths (``lengthsRules``): `"packed"`
    /// (absent: PyTorch's packed sequences, every layer) or `"keras_mask"` (a model converted
    /// from Keras: the lengths are the mask of `model(x, mask=...)`, which an Embedding or a
    /// Masking layer replaces with its own, as in Keras).
    var lengths: String?

    init(format: String? = Self.format, version: Int? = Self.currentVersion, prefix: String? = nil,
         lengths: String? = nil, modules: [Module]) {
        self.format = format
        self.version = version
        self.prefix = prefix
        self.lengths = lengths
        self.modules = modules
    }

    /// The document's own fields.
    static let fields = ["format", "version", "prefix", "lengths", "modules"]
    /// The values of `lengths`.
    static let lengthsRules = ["packed", "keras_mask"]
    /// The engine's rule for the document's `lengths`.
    var lengthsRule: LengthsRule { lengths == "keras_mask" ? .kerasCallMask : .packed }

    init(from decoder: Decoder) throws {
        try decoder.refuseUnknownFields(Self.fields)
        let fields = try FieldSet(decoder)
        format = try fields.string("format")
        if let format, format != Self.format {
            throw fields.refusal(at: nil, "format is '\(escapedForDisplay(format))', expected '\(Self.format)'")
        }
        version = try fields.size("version")
        if let version, !Self.versions.contains(version) {
            throw fields.refusal(at: nil, "version \(version) is not supported (this build reads versions 1 to 3)")
        }
        prefix = try fields.string("prefix")
        lengths = try fields.string("lengths")
        if let lengths, !Self.lengthsRules.contains(lengths) {
            throw fields.refusal(at: "lengths", "'\(escapedForDisplay(lengths))' is not one of \(Self.lengthsRules.joined(separator: ", "))")
        }
        if let version, version < 2, lengths != nil {
            throw fields.refusal(at: "lengths", "needs version 2, but the document says version \(version)")
        }
        // Counted before any per-module work.
        let list = try fields.container.nestedUnkeyedContainer(forKey: "modules")
        let count = list.count ?? 0
        guard count <= Limits.layers else {
            throw fields.refusal(at: "modules", "lists \(count) modules, \(Limits.excess(count, over: Limits.layers)) (Limits.layers)")
        }
        modules = try fields.container.decode([Module].self, forKey: "modules")
        if let version, version < Self.textVersion,
           let index = modules.firstIndex(where: { if case .textVectorization = $0 { return true } else { return false } }) {
            throw DecodingError.dataCorrupted(.init(codingPath: [AnyCodingKey("modules"), AnyCodingKey(intValue: index)!],
                                                    debugDescription: "a TextVectorization module needs version \(Self.textVersion), but the document says version \(version)"))
        }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: AnyCodingKey.self)
        try container.encodeIfPresent(format, forKey: "format")
        try container.encodeIfPresent(version, forKey: "version")
        try container.encodeIfPresent(prefix, forKey: "prefix")
        try container.encodeIfPresent(lengths, forKey: "lengths")
        try container.encode(modules, forKey: "modules")
    }

    /// Compact, key-sorted JSON: the same bytes for the same document, as written into a file.
    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

// MARK: - Modules

extension ModelConfigDocument {
    /// One module, told apart by its `type` field.
    enum Module: Codable, Equatable, Sendable {
        /// `TextVectorization` (version 3): texts → token ids `[batch, time]` for the Embedding after it.
        case textVectorization(TextVectorization)
        /// `Embedding`: token ids `[batch, time]` → `[batch, time, embedding_dim]`.
        case embedding(Embedding)
        /// `Masking` (version 2): Keras's masking by value.
        case masking(Masking)
        /// `Flatten` (version 2): `[batch, time, features]` → `[batch, time·features]`.
        case flatten(Flatten)
        /// `RNN`, `LSTM`, `GRU`.
        case recurrent(Recurrent)
        /// `Linear`.
        case linear(Linear)
        /// An activation module: `ReLU`, `Tanh`, ..., `GELU`, `Softmax` (`ActivationNames.pytorchModules`).
        case activation(ActivationModule)
        /// `Readout`: `[batch, time, features]` → `[batch, features]`.
        case readout(ReadoutModule)
        /// `Identity`, `Dropout`: no effect at inference.
        case identity(Identity)

        /// Every `type` a module may have, in the spec's order.
        static var types: [String] {
            ["TextVectorization", "Embedding", "Masking", "Flatten"] + CellKind.pytorchOrder.map(PyTorchLayout.moduleType) + ["Linear"]
                + ActivationNames.pytorchModules.entries.map(\.name).uniqued() + ["Readout"] + Identity.Kind.allCases.map(\.rawValue)
        }

        /// The fields a module of `type` takes besides `type`, or nil for a type that is not one.
        /// The decoder refuses any other field; `ModelConfigSchemaTests` checks these against the spec.
        static func fields(ofType type: String) -> [String]? {
            switch type {
            case "TextVectorization": return TextVectorization.fields
            case "Embedding": return Embedding.fields
            case "Masking": return Masking.fields
            case "Flatten": return Flatten.fields
            case "Linear": return Linear.fields
            case "Readout": return ReadoutModule.fields
            default:
                if let kind = CellKind(pytorchModuleType: type) { return Recurrent.fields(kind) }
                if Identity.Kind(rawValue: type) != nil { return Identity.fields }
                if ActivationNames.pytorchModules.activation(type) != nil { return ActivationModule.fields(ofType: type) }
                return nil
            }
        }

        /// The module's `type`.
        var type: String {
            switch self {
            case .textVectorization: return "TextVectorization"
            case .embedding: return "Embedding"
            case .masking: return "Masking"
            case .flatten: return "Flatten"
            case .recurrent(let module): return PyTorchLayout.moduleType(module.kind)
            case .linear: return "Linear"
            case .activation(let module): return module.type
            case .readout: return "Readout"
            case .identity(let module): return module.kind.rawValue
            }
        }

        init(from decoder: Decoder) throws {
            let fields = try FieldSet(decoder)
            let type = try fields.require(fields.string("type"), "type")
            guard let allowed = Self.fields(ofType: type) else {
                throw fields.refusal(at: "type", "module type '\(escapedForDisplay(type))' is not supported")
            }
            try decoder.refuseUnknownFields(["type"] + allowed)
            switch type {
            case "TextVectorization": self = .textVectorization(try TextVectorization(fields))
            case "Embedding": self = .embedding(try Embedding(fields))
            case "Masking": self = .masking(try Masking(fields))
            case "Flatten": self = .flatten(try Flatten(fields))
            case "Linear": self = .linear(try Linear(fields))
            case "Readout": self = .readout(try ReadoutModule(fields))
            default:
                if let kind = CellKind(pytorchModuleType: type) {
                    self = .recurrent(try Recurrent(kind: kind, fields))
                } else if let kind = Identity.Kind(rawValue: type) {
                    self = .identity(try Identity(kind: kind, fields))
                } else {
                    self = .activation(try ActivationModule(type: type, fields))
                }
            }
        }

        func encode(to encoder: Encoder) throws {
            var out = Output(encoder.container(keyedBy: AnyCodingKey.self))
            try out.set("type", type)
            switch self {
            case .textVectorization(let module): try module.encode(&out)
            case .embedding(let module): try module.encode(&out)
            case .masking(let module): try module.encode(&out)
            case .flatten(let module): try module.encode(&out)
            case .recurrent(let module): try module.encode(&out)
            case .linear(let module): try module.encode(&out)
            case .activation(let module): try module.encode(&out)
            case .readout(let module): try module.encode(&out)
            case .identity(let module): try module.encode(&out)
            }
        }
    }

    /// Version 3, Keras's `TextVectorization(output_mode="int")` as rnnkit computes it
    /// (`TextVectorizer`): texts `[batch]` → token ids `[batch, time]`. No parameters.
    struct TextVectorization: Equatable, Sendable {
        /// Informative: the source's layer name.
        var name: String?
        /// `lower_and_strip_punctuation` (absent), `lower`, `strip_punctuation` or `none`.
        var standardize: String?
        /// `whitespace` (absent) or `none` (the whole text is one token).
        var split: String?
        /// Steps per row (cut or padded with 0); absent pads to the batch's longest text.
        var outputSequenceLength: Int?
        /// Informative bound: the vocabulary's ids, the two reserved ones included, are at most this many.
        var maxTokens: Int?
        /// The tokens of ids 2, 3, …: id 0 is padding (and an empty text with split `none`),
        /// id 1 every token not listed.
        var vocabulary: [String]

        static let fields = ["name", "standardize", "split", "output_sequence_length", "max_tokens", "vocabulary"]
        /// How the document spells Keras's None for `standardize` and `split`.
        static let noneName = "none"
        /// Keras's `standardize` names (`TextVectorizer.standardizations`) and `none`.
        static let standardizeModes = TextVectorizer.standardizations.map(\.name) + [noneName]
        /// `whitespace` and `none`, `TextVectorizer.Split`'s raw values.
        static let splitModes = [TextVectorizer.Split.whitespace, .none].map(\.rawValue)

        /// `standardize` with its default applied (Keras's, `TextVectorizer.defaultStandardizeName`).
        var standardizeName: String { standardize ?? TextVectorizer.defaultStandardizeName }
        /// `split` with its default (`whitespace`) applied.
        var splitName: String { split ?? TextVectorizer.Split.whitespace.rawValue }
        /// The rules `standardize` names: none for `none`.
        var standardization: (lowercase: Bool, stripPunctuation: Bool) {
            TextVectorizer.standardization(named: standardizeName) ?? (false, false)
        }
        /// The split `split` names.
        var splitRule: TextVectorizer.Split { TextVectorizer.Split(rawValue: splitName) ?? .whitespace }

        /// The document's module for `vectorizer`: every setting written, defaults included.
        init(_ vectorizer: TextVectorizer) {
            self.init(name: vectorizer.name.isEmpty ? nil : vectorizer.name, standardize: vectorizer.standardizeName ?? Self.noneName,
                      split: vectorizer.split.rawValue, outputSequenceLength: vectorizer.outputSequenceLength,
                      maxTokens: vectorizer.maxTokens, vocabulary: Array(vectorizer.tokens))
        }

        init(name: String?, standardize: String?, split: String?, outputSequenceLength: Int?, maxTokens: Int?,
             vocabulary: [String]) {
            (self.name, self.standardize, self.split) = (name, standardize, split)
            (self.outputSequenceLength, self.maxTokens, self.vocabulary) = (outputSequenceLength, maxTokens, vocabulary)
        }

        fileprivate init(_ fields: FieldSet) throws {
            name = try fields.optionalName()
            standardize = try fields.string("standardize")
            if let standardize, !Self.standardizeModes.contains(standardize) {
                throw fields.refusal(at: "standardize", "'\(escapedForDisplay(standardize))' is not one of \(Self.standardizeModes.joined(separator: ", "))")
            }
            split = try fields.string("split")
            if let split, !Self.splitModes.contains(split) {
                throw fields.refusal(at: "split", "'\(escapedForDisplay(split))' is not one of \(Self.splitModes.joined(separator: ", "))")
            }
            outputSequenceLength = try fields.size("output_sequence_length")
            if outputSequenceLength == 0 {
                throw fields.refusal(at: "output_sequence_length", "0 steps: at least 1, or absent for the longest text")
            }
            maxTokens = try fields.size("max_tokens")
            // Counted before the strings are decoded.
            let list = try fields.container.nestedUnkeyedContainer(forKey: AnyCodingKey("vocabulary"))
            let count = list.count ?? 0
            guard count <= Limits.dimension - TextVectorizer.firstTokenIndex else {
                throw fields.refusal(at: "vocabulary", "lists \(count) tokens, \(Limits.excess(count + TextVectorizer.firstTokenIndex, over: Limits.dimension)) ids (Limits.dimension)")
            }
            vocabulary = try fields.container.decode([String].self, forKey: AnyCodingKey("vocabulary"))
            if let maxTokens, TextVectorizer.firstTokenIndex + count > maxTokens {
                throw fields.refusal(at: "max_tokens", "\(maxTokens) is fewer than the vocabulary's \(TextVectorizer.firstTokenIndex + count) ids (2 reserved + \(count) tokens)")
            }
        }

        fileprivate func encode(_ out: inout Output) throws {
            try out.set("name", name)
            try out.set("standardize", standardize)
            try out.set("split", split)
            try out.set("output_sequence_length", outputSequenceLength)
            try out.set("max_tokens", maxTokens)
            try out.set("vocabulary", vocabulary)
        }
    }

    /// `nn.Embedding`; parameter `weight` `[num_embeddings, embedding_dim]`.
    struct Embedding: Equatable, Sendable {
        var name: String
        var numEmbeddings: Int
        var embeddingDim: Int
        /// Changes no output here; a conversion to Keras uses it (spec/conversion.md).
        var paddingIdx: Int?
        /// Version 2: id 0 marks a masked step (Keras `mask_zero`); absent is false.
        var maskZero: Bool?

        static let fields = ["name", "num_embeddings", "embedding_dim", "padding_idx", "mask_zero"]

        fileprivate init(_ fields: FieldSet) throws {
            name = try fields.name()
            numEmbeddings = try fields.require(fields.size("num_embeddings"), "num_embeddings")
            embeddingDim = try fields.require(fields.size("embedding_dim"), "embedding_dim")
            paddingIdx = try fields.size("padding_idx", signed: true)
            maskZero = try fields.bool("mask_zero")
        }

        init(name: String, numEmbeddings: Int, embeddingDim: Int, paddingIdx: Int? = nil, maskZero: Bool? = nil) {
            (self.name, self.numEmbeddings, self.embeddingDim) = (name, numEmbeddings, embeddingDim)
            (self.paddingIdx, self.maskZero) = (paddingIdx, maskZero)
        }

        fileprivate func encode(_ out: inout Output) throws {
            try out.set("name", name)
            try out.set("num_embeddings", numEmbeddings)
            try out.set("embedding_dim", embeddingDim)
            try out.set("padding_idx", paddingIdx)
            try out.set("mask_zero", maskZero)
        }
    }

    /// Version 2, Keras `Masking`: a step whose features all equal `mask_value` is masked and
    /// its features become 0.
    struct Masking: Equatable, Sendable {
        var name: String?
        /// Absent is 0.
        var maskValue: Double?

        static let fields = ["name", "mask_value"]

        fileprivate init(_ fields: FieldSet) throws {
            name = try fields.optionalName()
            maskValue = try fields.number("mask_value")
        }

        init(maskValue: Double?) {
            self.maskValue = maskValue
        }

        fileprivate func encode(_ out: inout Output) throws {
            try out.set("name", name)
            try out.set("mask_value", maskValue)
        }
    }

    /// Version 2: `[batch, time, features]` → `[batch, time·features]`.
    struct Flatten: Equatable, Sendable {
        var name: String?
        /// The fixed number of time steps, when the source declared it.
        var steps: Int?

        static let fields = ["name", "steps"]

        fileprivate init(_ fields: FieldSet) throws {
            name = try fields.optionalName()
            steps = try fields.size("steps")
        }

        init(steps: Int?) {
            self.steps = steps
        }

        fileprivate func encode(_ out: inout Output) throws {
            try out.set("name", name)
            try out.set("steps", steps)
        }
    }

    /// `nn.RNN`, `nn.LSTM`, `nn.GRU` (batch-first), with version 2's Keras options. Absent
    /// options have PyTorch's own behaviour.
    struct Recurrent: Equatable, Sendable {
        /// The `type`: `RNN`, `LSTM` or `GRU`.
        var kind: CellKind
        var name: String
        var inputSize: Int
        var hiddenSize: Int
        /// Absent is 1.
        var numLayers: Int?
        /// Absent is false.
        var bidirectional: Bool?
        /// Absent is true.
        var bias: Bool?
        /// Only true (absent is true): inputs are batch-first.
        var batchFirst: Bool?
        /// Training only; no effect here.
        var dropout: Double?
        /// LSTM only; absent or 0 is no projection.
        var projSize: Int?
        /// RNN only: tanh (absent) or relu (`ActivationNames.pytorchRNNNonlinearity`).
        var nonlinearity: Activation?
        /// Version 2, LSTM and GRU: the candidate activation; absent is tanh.
        var activation: Activation?
        /// Version 2: the gates' activation; absent is sigmoid.
        var recurrentActivation: Activation?
        /// Version 2: how a bidirectional module merges its directions; absent is concat.
        var mergeMode: MergeMode?
        /// Version 2: absent is true.
        var returnSequences: Bool?
        /// Version 2: absent is false.
        var goBackwards: Bool?
        /// Version 2: the output at a masked step; absent is zero.
        var maskedOutput: MaskedOutput?

        /// The fields of every recurrent module, then those of one kind only.
        static let commonFields = ["name", "input_size", "hidden_size", "num_layers", "bidirectional", "bias",
                                   "batch_first", "dropout", "recurrent_activation", "merge_mode", "return_sequences",
                                   "go_backwards", "masked_output"]

        static func fields(_ kind: CellKind) -> [String] {
            switch kind {
            case .rnn: return commonFields + ["nonlinearity"]
            case .lstm: return commonFields + ["activation", "proj_size"]
            case .gru: return commonFields + ["activation"]
            }
        }

        /// Merge modes by name (`MergeMode`'s raw values are the names).
        static let mergeModes: [MergeMode] = [.concat, .sum, .mul, .ave]
        /// Masked outputs by name (`MaskedOutput`'s raw values are the names).
        static let maskedOutputs: [MaskedOutput] = [.zero, .carry]

        init(kind: CellKind, name: String, inputSize: Int, hiddenSize: Int) {
            (self.kind, self.name, self.inputSize, self.hiddenSize) = (kind, name, inputSize, hiddenSize)
        }

        fileprivate init(kind: CellKind, _ fields: FieldSet) throws {
            self.kind = kind
            name = try fields.name()
            inputSize = try fields.require(fields.size("input_size"), "input_size")
            hiddenSize = try fields.require(fields.size("hidden_size"), "hidden_size")
            numLayers = try fields.size("num_layers")
            bidirectional = try fields.bool("bidirectional")
            bias = try fields.bool("bias")
            batchFirst = try fields.bool("batch_first")
            if batchFirst == false {
                throw fields.refusal(at: "batch_first", "false is not supported; inputs are batch-first")
            }
            dropout = try fields.number("dropout")
            projSize = try fields.size("proj_size")
            nonlinearity = try fields.activation("nonlinearity", ActivationNames.pytorchRNNNonlinearity)
            activation = try fields.activation("activation", ActivationNames.modelConfigRecurrent)
            recurrentActivation = try fields.activation("recurrent_activation", ActivationNames.modelConfigRecurrent)
            mergeMode = try fields.choice("merge_mode", Self.mergeModes)
            returnSequences = try fields.bool("return_sequences")
            goBackwards = try fields.bool("go_backwards")
            maskedOutput = try fields.choice("masked_output", Self.maskedOutputs)
        }

        fileprivate func encode(_ out: inout Output) throws {
            try out.set("name", name)
            try out.set("input_size", inputSize)
            try out.set("hidden_size", hiddenSize)
            try out.set("num_layers", numLayers)
            try out.set("bidirectional", bidirectional)
            try out.set("bias", bias)
            try out.set("batch_first", batchFirst)
            try out.set("dropout", dropout)
            try out.set("proj_size", projSize)
            try out.set("nonlinearity", nonlinearity, ActivationNames.pytorchRNNNonlinearity)
            try out.set("activation", activation, ActivationNames.modelConfigRecurrent)
            try out.set("recurrent_activation", recurrentActivation, ActivationNames.modelConfigRecurrent)
            try out.set("merge_mode", mergeMode?.rawValue)
            try out.set("return_sequences", returnSequences)
            try out.set("go_backwards", goBackwards)
            try out.set("masked_output", maskedOutput?.rawValue)
        }
    }

    /// `nn.Linear`; parameters `weight` `[out_features, in_features]`, `bias` `[out_features]`.
    struct Linear: Equatable, Sendable {
        var name: String
        var inFeatures: Int
        var outFeatures: Int
        /// Absent is true.
        var bias: Bool?

        static let fields = ["name", "in_features", "out_features", "bias"]

        init(name: String, inFeatures: Int, outFeatures: Int, bias: Bool?) {
            (self.name, self.inFeatures, self.outFeatures, self.bias) = (name, inFeatures, outFeatures, bias)
        }

        fileprivate init(_ fields: FieldSet) throws {
            name = try fields.name()
            inFeatures = try fields.require(fields.size("in_features"), "in_features")
            outFeatures = try fields.require(fields.size("out_features"), "out_features")
            bias = try fields.bool("bias")
        }

        fileprivate func encode(_ out: inout Output) throws {
            try out.set("name", name)
            try out.set("in_features", inFeatures)
            try out.set("out_features", outFeatures)
            try out.set("bias", bias)
        }
    }

    /// An activation module, named by its torch class (`ActivationNames.pytorchModules`).
    /// `GELU` takes `approximate` (`"none"`, absent, or `"tanh"`), `Softmax` takes `dim`
    /// (only -1, the last axis), the others an optional `name`.
    struct ActivationModule: Equatable, Sendable {
        var activation: Activation
        var name: String?
        /// Softmax only.
        var dim: Int?

        static func fields(ofType type: String) -> [String] {
            switch type {
            case "GELU": return ["approximate"]
            case "Softmax": return ["dim"]
            default: return ["name"]
            }
        }

        init(_ activation: Activation, dim: Int? = nil) {
            self.activation = activation
            self.dim = dim
        }

        fileprivate init(type: String, _ fields: FieldSet) throws {
            activation = ActivationNames.pytorchModules.activation(type)!
            if type == "GELU" {
                activation = try fields.activation("approximate", ActivationNames.pytorchGELUApproximation) ?? .gelu
            }
            name = try fields.optionalName()
            dim = try fields.size("dim", signed: true)
            if let dim, dim != -1 {
                throw fields.refusal(at: "dim", "only -1 (the last axis) is supported, got \(dim)")
            }
        }

        /// The module's `type`, or nil for an activation that has no torch module.
        static func type(of activation: Activation) -> String? {
            ActivationNames.pytorchModules.name(activation)
        }

        var type: String { Self.type(of: activation)! }

        fileprivate func encode(_ out: inout Output) throws {
            try out.set("name", name)
            if type == "GELU" { try out.set("approximate", activation, ActivationNames.pytorchGELUApproximation) }
            try out.set("dim", dim)
        }
    }

    /// `Readout`: how `[batch, time, features]` becomes `[batch, features]`.
    struct ReadoutModule: Equatable, Sendable {
        var mode: Readout

        static let fields = ["mode"]

        /// Each mode's name; version 2 adds `max_all`.
        static let modes: [(name: String, readout: Readout)] = [
            ("last_hidden", .lastHidden), ("last_hidden_all_directions", .lastHiddenAllDirections),
            ("mean", .meanOverValidSteps), ("max", .maxOverValidSteps), ("last_step", .lastValidStep),
            ("max_all", .maxOverAllSteps),
        ]

        init(_ mode: Readout) {
            self.mode = mode
        }

        fileprivate init(_ fields: FieldSet) throws {
            let text = try fields.require(fields.string("mode"), "mode")
            guard let mode = Self.modes.first(where: { $0.name == text })?.readout else {
                throw fields.refusal(at: "mode", "mode '\(escapedForDisplay(text))' is not one of \(Self.modes.map(\.name).joined(separator: ", "))")
            }
            self.mode = mode
        }

        /// The mode's name.
        var name: String { Self.modes.first { $0.readout == mode }!.name }

        fileprivate func encode(_ out: inout Output) throws {
            try out.set("mode", name)
        }
    }

    /// `Identity` or `Dropout`: no effect at inference.
    struct Identity: Equatable, Sendable {
        enum Kind: String, CaseIterable, Sendable {
            case identity = "Identity"
            case dropout = "Dropout"
        }

        var kind: Kind
        var name: String?
        /// Dropout's probability (training only).
        var p: Double?

        static let fields = ["name", "p"]

        fileprivate init(kind: Kind, _ fields: FieldSet) throws {
            self.kind = kind
            name = try fields.optionalName()
            p = try fields.number("p")
        }

        fileprivate func encode(_ out: inout Output) throws {
            try out.set("name", name)
            try out.set("p", p)
        }
    }
}

extension CellKind {
    /// The kinds in the order the spec lists their PyTorch modules.
    static let pytorchOrder: [CellKind] = [.rnn, .lstm, .gru]

    /// The kind whose PyTorch module type (`PyTorchLayout.moduleType`) is `type`.
    init?(pytorchModuleType type: String) {
        guard let kind = Self.pytorchOrder.first(where: { PyTorchLayout.moduleType($0) == type }) else { return nil }
        self = kind
    }
}

private extension Array where Element: Hashable {
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}

// MARK: - Field access

/// A module's fields as the document defines them: JSON types from the decoder, then this
/// schema's own rules (sizes within `Limits.dimension`, names within
/// `Limits.nameCharacters`, choices from their tables), each failure at the field's path.
private struct FieldSet {
    let container: KeyedDecodingContainer<AnyCodingKey>

    init(_ decoder: Decoder) throws {
        container = try decoder.container(keyedBy: AnyCodingKey.self)
    }

    /// A refusal at `field` (the object itself when nil).
    func refusal(at field: String?, _ message: String) -> DecodingError {
        .dataCorrupted(.init(codingPath: container.codingPath + (field.map { [AnyCodingKey($0)] } ?? []),
                             debugDescription: message))
    }

    func require<T>(_ value: T?, _ field: String) throws -> T {
        guard let value else {
            throw DecodingError.keyNotFound(AnyCodingKey(field), .init(codingPath: container.codingPath, debugDescription: "missing"))
        }
        return value
    }

    func string(_ field: String) throws -> String? {
        try container.decodeIfPresent(String.self, forKey: AnyCodingKey(field))
    }

    func bool(_ field: String) throws -> Bool? {
        try container.decodeIfPresent(Bool.self, forKey: AnyCodingKey(field))
    }

    func number(_ field: String) throws -> Double? {
        try container.decodeIfPresent(Double.self, forKey: AnyCodingKey(field))
    }

    /// A size or index: an exact integer, non-negative unless `signed` (`dim`,
    /// `padding_idx`), at most `Limits.dimension` in magnitude.
    func size(_ field: String, signed: Bool = false) throws -> Int? {
        guard let value = try container.decodeIfPresent(Int.self, forKey: AnyCodingKey(field)) else { return nil }
        guard value >= 0 || signed else { throw refusal(at: field, "\(value) is negative") }
        guard value.magnitude <= Limits.dimension else {
            throw refusal(at: field, "\(value), \(Limits.excess(Int(value.magnitude), over: Limits.dimension)) (Limits.dimension)")
        }
        return value
    }

    /// The name of a module with parameters: its keys' prefix, so never empty.
    func name() throws -> String {
        let name = try require(optionalName(), "name")
        guard !name.isEmpty else {
            throw refusal(at: "name", "a module with parameters needs a non-empty 'name' (its parameters' key prefix)")
        }
        return name
    }

    func optionalName() throws -> String? {
        guard let name = try string("name") else { return nil }
        let count = name.unicodeScalars.count
        guard count <= Limits.nameCharacters else {
            throw refusal(at: "name", "has \(count) characters, \(Limits.excess(count, over: Limits.nameCharacters)) (Limits.nameCharacters)")
        }
        return name
    }

    /// An activation by its name in `table`.
    func activation(_ field: String, _ table: ActivationNames.Table) throws -> Activation? {
        guard let text = try string(field) else { return nil }
        guard let activation = table.activation(text) else {
            throw refusal(at: field, "'\(escapedForDisplay(text))' is not one of \(table.entries.map(\.name).joined(separator: ", "))")
        }
        return activation
    }

    /// One of `choices`, by its raw value.
    func choice<T: RawRepresentable>(_ field: String, _ choices: [T]) throws -> T? where T.RawValue == String {
        guard let text = try string(field) else { return nil }
        guard let value = choices.first(where: { $0.rawValue == text }) else {
            throw refusal(at: field, "'\(escapedForDisplay(text))' is not one of \(choices.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }
}

/// A module's fields as written: absent values are left out.
private struct Output {
    var container: KeyedEncodingContainer<AnyCodingKey>

    init(_ container: KeyedEncodingContainer<AnyCodingKey>) {
        self.container = container
    }

    mutating func set<T: Encodable>(_ field: String, _ value: T?) throws {
        try container.encodeIfPresent(value, forKey: AnyCodingKey(field))
    }

    /// An activation by its name in `table`.
    mutating func set(_ field: String, _ value: Activation?, _ table: ActivationNames.Table) throws {
        guard let value else { return }
        guard let name = table.name(value) else {
            throw EncodingError.invalidValue(value, .init(codingPath: container.codingPath + [AnyCodingKey(field)],
                                                          debugDescription: "\(value.displayName) has no name in this field"))
        }
        try container.encode(name, forKey: AnyCodingKey(field))
    }
}
