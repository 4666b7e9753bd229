import Foundation

/// Reads the PyTorch layout (a state_dict, optionally with `model_config`) from any
/// container into the neutral model. Translate first, then load strictly: every key must be used, every shape
/// must match.
enum PyTorchReader {
    /// A state_dict: dotted key → tensor. A container's nested groups read as dots
    /// (`lstm/weight_ih_l0` is the key `lstm.weight_ih_l0`); a flat container's names are the keys.
    struct StateDict {
        let file: String
        var entries: [String: StoredTensor]
        var unused: Set<String>

        init(store: WeightStore, file: String) throws {
            self.file = file
            var entries: [String: StoredTensor] = [:]
            for (path, stored) in store.tensors {
                let key = path.replacingOccurrences(of: "/", with: ".")
                if let other = entries[key] {
                    throw ModelError(file: file, path: stored.path,
                                     message: "key '\(shown(key))' is stored twice (also at \(shown(other.path)))")
                }
                entries[key] = stored
            }
            self.entries = entries
            self.unused = Set(entries.keys)
        }

        func has(_ key: String) -> Bool { entries[key] != nil }

        /// Takes a tensor, checking its shape.
        mutating func take(_ key: String, shape: [Int], layer: String) throws -> Tensor {
            guard let stored = entries[key] else {
                throw ModelError(file: file, path: key, layer: layer,
                                 message: "missing key (expected shape \(shapeText(shape)))")
            }
            guard stored.tensor.shape == shape else {
                throw ModelError(file: file, path: key, layer: layer,
                                 message: "has shape \(shapeText(stored.tensor.shape)), expected \(shapeText(shape))")
            }
            unused.remove(key)
            return stored.tensor
        }

        func shape(_ key: String) -> [Int]? { entries[key]?.tensor.shape }

        /// Fails on keys nothing used, naming them.
        func checkAllUsed() throws {
            guard let first = unused.sorted().first else { return }
            let shape = entries[first].map { shapeText($0.tensor.shape) } ?? "?"
            let more = unused.count > 1 ? " (and \(unused.count - 1) more)" : ""
            throw ModelError(file: file, path: first,
                             message: "unexpected key with shape \(shape)\(more): it belongs to no module of the model")
        }
    }

    /// Reads a state_dict from `container`: a whole model described by `architecture` (a
    /// `model_config` document given beside the file) or by the container's own
    /// `model_config` (an HDF5 root attribute, safetensors `__metadata__`, a `.pt` file's
    /// `_metadata`), else one bare recurrent module.
    ///
    /// A file that holds several modules and no `model_config` is refused with the modules
    /// found and a skeleton to edit (`ModelConfigSkeleton`).
    static func read(_ container: TensorContainer, layout: Layout = .pytorch,
                     architecture: ModelConfigDocument? = nil) throws -> LoadedModel {
        let file = container.file
        let store = try WeightStore(container: container)
        var dict = try StateDict(store: store, file: file)
        var summaries: [LayerSummary] = []
        let model: Model
        let source: PyTorchSource
        var document = architecture
        if let configText = try container.stringAttribute("model_config", at: "") {
            let own = try PyTorchModelConfig.decode(configText, file: file)
            if let architecture, architecture != own {
                throw ModelError(file: file, path: "model_config",
                                 message: "the file has its own model_config, which differs from --architecture; pass neither or make them agree")
            }
            document = own
        }
        if let document {
            model = try build(PyTorchModelConfig(document: document), dict: &dict, summaries: &summaries)
            source = PyTorchSource(document: document, barePrefix: "")
        } else {
            let prefix: String
            do {
                prefix = try bareModulePrefix(dict, file: file)
            } catch let error as ModelError {
                // Several modules, or other modules: what the file holds and a config to start from.
                let names = try container.tensorNames(below: "").map { $0.replacingOccurrences(of: "/", with: ".") }
                throw ModelConfigSkeleton(keys: names, dict: dict).refusal(file: file, reading: error)
            }
            let options = RecurrentOptions(name: prefix.isEmpty ? "(root)" : String(prefix.dropLast()))
            let layers = try readRecurrent(prefix: prefix, options: options, dict: &dict, summaries: &summaries)
            let base = prefix.isEmpty ? layers[0].kind.rawValue : String(prefix.dropLast()).replacingOccurrences(of: ".", with: "_")
            model = Model(layers: layers.map { .recurrent($0) }, name: options.name,
                          layerNames: layerNames(base, count: layers.count))
            source = PyTorchSource(document: nil, barePrefix: prefix)
        }
        try dict.checkAllUsed()
        return try LoadedModel(file: file, layout: layout, model: model, isBareRecurrentModule: document == nil,
                               summaries: summaries, storedTypes: store.storedTypes,
                               compressed: store.tensors.values.contains { $0.compressed }, pytorchSource: source)
    }

    /// Names for the layers of one module: the module's name, or `name_l0`, `name_l1`, ...
    static func layerNames(_ name: String, count: Int) -> [String] {
        count == 1 ? [name] : (0..<count).map { "\(name)_l\($0)" }
    }

    /// The common prefix of a file that holds exactly one recurrent module (`""`, `rnn.`,
    /// `encoder.rnn.`).
    static func bareModulePrefix(_ dict: StateDict, file: String) throws -> String {
        guard !dict.entries.isEmpty else {
            throw ModelError(file: file, message: "holds no float datasets: not a PyTorch state_dict")
        }
        var prefixes: [String: [String]] = [:]
        for key in dict.entries.keys.sorted() {
            let parts = key.split(separator: ".", omittingEmptySubsequences: false)
            guard let last = parts.last, ParameterName(last) != nil else {
                throw ModelError(file: file, path: key,
                                 message: "is not a parameter of nn.RNN/nn.LSTM/nn.GRU")
            }
            let prefix = parts.dropLast().map { $0 + "." }.joined()
            prefixes[prefix, default: []].append(key)
        }
        guard prefixes.count == 1, let prefix = prefixes.keys.first else {
            let names = prefixes.keys.sorted().map { $0.isEmpty ? "(root)" : String($0.dropLast()) }
            throw ModelError(file: file,
                             message: "holds several recurrent modules (\(shownList(names)))")
        }
        return prefix
    }

    typealias ParameterName = PyTorchLayout.ParameterName

    /// How a PyTorch source names its weights, kept so that a PyTorch target writes the
    /// user's own module structure and keys (spec/conversion.md).
    struct PyTorchSource: Sendable, Equatable {
        /// The whole model's `model_config`; nil for one bare module.
        var document: ModelConfigDocument?
        /// A bare module's key prefix (`""`, `rnn.`, `encoder.rnn.`).
        var barePrefix: String
    }

    /// Options of one nn.RNN / nn.LSTM / nn.GRU; nil fields are detected from the shapes.
    struct RecurrentOptions {
        var name: String
        var kind: CellKind?
        var inputSize: Int?
        var hiddenSize: Int?
        var numLayers: Int?
        var bidirectional: Bool?
        var bias: Bool?
        var projectionSize: Int?
        /// The candidate activation: RNN nonlinearity, or a Keras-converted LSTM/GRU's `activation`.
        var nonlinearity: Activation = .tanh
        var recurrentActivation: Activation = .sigmoid
        var merge: MergeMode = .concat
        var returnSequences = true
        var goBackwards = false
        var maskedOutput: MaskedOutput = .zero
    }

    /// Reads one recurrent module's parameters (keys `<prefix><param>`) as neutral layers,
    /// one per PyTorch layer.
    static func readRecurrent(prefix: String, options: RecurrentOptions, dict: inout StateDict,
                              summaries: inout [LayerSummary]) throws -> [RecurrentLayer] {
        let file = dict.file
        let name = options.name
        var names: [ParameterName] = []
        for key in dict.entries.keys where key.hasPrefix(prefix) {
            let rest = key.dropFirst(prefix.count)
            if let parameter = ParameterName(rest) { names.append(parameter) }
        }
        let hh0 = prefix + "weight_hh_l0"
        guard let hhShape = dict.shape(hh0), hhShape.count == 2 else {
            throw ModelError(file: file, path: hh0, layer: name,
                             message: dict.has(hh0) ? "must be 2-D, has shape \(shapeText(dict.shape(hh0)!))" : "missing key")
        }
        let ih0 = prefix + "weight_ih_l0"
        guard let ihShape = dict.shape(ih0), ihShape.count == 2 else {
            throw ModelError(file: file, path: ih0, layer: name,
                             message: dict.has(ih0) ? "must be 2-D, has shape \(shapeText(dict.shape(ih0)!))" : "missing key")
        }
        let hr0 = prefix + "weight_hr_l0"
        let detectedProjection = dict.shape(hr0).flatMap { $0.count == 2 ? $0[0] : nil } ?? 0
        let projection = options.projectionSize ?? detectedProjection
        let detectedHidden = projection > 0 ? (dict.shape(hr0).flatMap { $0.count == 2 ? $0[1] : nil } ?? 0) : hhShape[1]
        let hidden = options.hiddenSize ?? detectedHidden
        guard hidden > 0, hhShape[0] % hidden == 0 else {
            throw ModelError(file: file, path: hh0, layer: name,
                             message: "shape \(shapeText(hhShape)) is not a whole number of gate blocks of hidden size \(hidden)")
        }
        let detectedKind = PyTorchLayout.cellKind(gateCount: hhShape[0] / hidden)
        guard let kind = options.kind ?? detectedKind else {
            throw ModelError(file: file, path: hh0, layer: name,
                             message: "shape \(shapeText(hhShape)) gives \(hhShape[0] / hidden) gate blocks of \(hidden); expected 1 (RNN), 3 (GRU) or 4 (LSTM)")
        }
        if projection > 0 && kind != .lstm {
            throw ModelError(file: file, path: hr0, layer: name, message: "only an LSTM has a projection (weight_hr)")
        }
        let layerCount = options.numLayers ?? ((names.map(\.layer).max() ?? 0) + 1)
        for parameter in names where parameter.layer >= layerCount {
            throw ModelError(file: file, path: prefix + parameter.text, layer: name,
                             message: "layer \(parameter.layer) is beyond num_layers = \(layerCount)")
        }
        let bidirectional = options.bidirectional ?? names.contains { $0.reverse }
        let bias = options.bias ?? dict.has(prefix + "bias_ih_l0")
        let directions = bidirectional ? 2 : 1
        // How many direction outputs side by side a layer above reads (1 for sum/mul/ave).
        let mergedWidth = options.merge == .concat ? directions : 1
        let inputSize = options.inputSize ?? ihShape[1]
        let activation = options.nonlinearity
        let order = PyTorchLayout.gateOrder(kind)

        var layers: [RecurrentLayer] = []
        var parameterCount = 0
        for k in 0..<layerCount {
            var weights: [DirectionWeights] = []
            for reverse in (bidirectional ? [false, true] : [false]) {
                func take(_ role: ParameterName.Role) throws -> Tensor {
                    let key = prefix + ParameterName(role: role, layer: k, reverse: reverse).text
                    let shape = PyTorchLayout.expectedShape(role, layer: k, kind: kind, inputSize: inputSize,
                                                            hiddenSize: hidden, projectionSize: projection,
                                                            mergedDirections: mergedWidth)
                    let tensor = try dict.take(key, shape: shape, layer: name)
                    parameterCount += tensor.count
                    return tensor
                }
                weights.append(DirectionWeights(
                    gateOrder: order,
                    inputWeight: try take(.weight_ih),
                    recurrentWeight: try take(.weight_hh),
                    inputBias: bias ? try take(.bias_ih) : nil,
                    recurrentBias: bias ? try take(.bias_hh) : nil,
                    projection: projection > 0 ? try take(.weight_hr) : nil))
            }
            // Layers above the first read the merged output of the one below.
            let layerInput = k == 0 ? inputSize : mergedWidth * (projection > 0 ? projection : hidden)
            layers.append(RecurrentLayer(kind: kind, inputSize: layerInput, hiddenSize: hidden,
                                         projectionSize: projection > 0 ? projection : nil, directions: weights,
                                         activation: activation, recurrentActivation: options.recurrentActivation,
                                         merge: options.merge, goBackwards: options.goBackwards,
                                         maskedOutput: options.maskedOutput,
                                         returnSequences: k == layerCount - 1 ? options.returnSequences : true))
        }
        var details: [(String, DetailValue)] = [
            ("input_size", .integer(inputSize)), ("hidden_size", .integer(hidden)), ("num_layers", .integer(layerCount)),
            ("bidirectional", .flag(bidirectional)), ("bias", .flag(bias)),
        ]
        if projection > 0 { details.append(("proj_size", .integer(projection))) }
        if kind == .rnn { details.append(("nonlinearity", .text(activation == .relu ? "relu" : "tanh"))) }
        if options.merge != .concat { details.append(("merge_mode", .text(options.merge.rawValue))) }
        if !options.returnSequences { details.append(("return_sequences", .flag(false))) }
        if options.goBackwards { details.append(("go_backwards", .flag(true))) }
        if options.maskedOutput == .carry { details.append(("masked_output", .text("carry"))) }
        summaries.append(LayerSummary(name: name, type: PyTorchLayout.moduleType(kind), details: details,
                                      gateOrder: order, parameterCount: parameterCount))
        return layers
    }

    /// Builds a whole model from `model_config`.
    static func build(_ config: PyTorchModelConfig, dict: inout StateDict, summaries: inout [LayerSummary]) throws -> Model {
        var layers: [Layer] = []
        var names: [String] = []
        var steps: Int?
        var vectorizer: TextVectorizer?
        let prefix = config.prefix
        let file = dict.file
        for module in config.modules {
            switch module {
            case let .textVectorization(settings, index):
                let label = settings.name.map { "\(shown($0)) (TextVectorization)" } ?? "TextVectorization"
                func fail(_ message: String) -> ModelError {
                    ModelError(file: file, path: "model_config modules[\(index)]", layer: label, message: message)
                }
                guard layers.isEmpty, vectorizer == nil,
                      config.modules.dropFirst(index + 1).first(where: { if case .identity = $0 { false } else { true } })
                          .map({ if case .embedding = $0 { true } else { false } }) ?? false else {
                    throw fail("a TextVectorization must come first and feed an Embedding (its token ids are an Embedding's input)")
                }
                let standardize = settings.standardize ?? "lower_and_strip_punctuation"
                do {
                    vectorizer = try TextVectorizer(
                        name: settings.name ?? "", lowercase: standardize.hasPrefix("lower"),
                        stripPunctuation: standardize.hasSuffix("strip_punctuation"),
                        split: settings.split == "none" ? .none : .whitespace, tokens: settings.vocabulary,
                        outputSequenceLength: settings.outputSequenceLength, maxTokens: settings.maxTokens)
                } catch let error as EngineError {
                    throw fail("vocabulary: \(error.message)")
                }
                steps = settings.outputSequenceLength
                summaries.append(LayerSummary(name: settings.name ?? "", type: "TextVectorization", details: [
                    ("standardize", .text(standardize)), ("split", .text(settings.split ?? "whitespace")),
                    ("output_sequence_length", settings.outputSequenceLength.map(DetailValue.integer) ?? .text("None (the longest text)")),
                    ("max_tokens", settings.maxTokens.map(DetailValue.integer) ?? .text("None")),
                    ("vocabulary_size", .integer(TextVectorizer.firstTokenIndex + settings.vocabulary.count)),
                ], gateOrder: nil, parameterCount: 0))
            case let .embedding(name, count, dimension, maskZero, paddingIndex):
                let table = try dict.take(prefix + name + ".weight", shape: [count, dimension], layer: name)
                if let paddingIndex, !(0..<count).contains(paddingIndex) {
                    throw ModelError(file: file, path: "model_config", layer: name,
                                     message: "padding_idx \(paddingIndex) is outside 0..<\(count)")
                }
                layers.append(.embedding(Embedding(table: table, maskZero: maskZero, paddingIndex: paddingIndex)))
                names.append(name)
                summaries.append(LayerSummary(name: name, type: "Embedding",
                                              details: [("num_embeddings", .integer(count)), ("embedding_dim", .integer(dimension))]
                                                  + (maskZero ? [("mask_zero", .flag(true))] : []),
                                              gateOrder: nil, parameterCount: table.count))
            case let .masking(value):
                layers.append(.masking(maskValue: value))
                names.append("")
                summaries.append(LayerSummary(name: "", type: "Masking", details: [("mask_value", .number(Double(value)))], gateOrder: nil, parameterCount: 0))
            case let .flatten(declared):
                layers.append(.flatten)
                names.append("")
                steps = declared ?? steps
                summaries.append(LayerSummary(name: "", type: "Flatten", details: [], gateOrder: nil, parameterCount: 0))
            case let .recurrent(options):
                let recurrent = try readRecurrent(prefix: prefix + options.name + ".", options: options, dict: &dict,
                                                  summaries: &summaries)
                layers += recurrent.map { .recurrent($0) }
                names += layerNames(options.name, count: recurrent.count)
            case let .linear(name, inFeatures, outFeatures, bias):
                let weight = try dict.take(prefix + name + ".weight", shape: [outFeatures, inFeatures], layer: name)
                let b = bias ? try dict.take(prefix + name + ".bias", shape: [outFeatures], layer: name) : nil
                layers.append(.dense(Dense(weight: weight, bias: b)))
                names.append(name)
                summaries.append(LayerSummary(name: name, type: "Linear",
                                              details: [("in_features", .integer(inFeatures)), ("out_features", .integer(outFeatures)), ("bias", .flag(bias))],
                                              gateOrder: nil, parameterCount: weight.count + (b?.count ?? 0)))
            case let .activation(type, activation):
                layers.append(.activation(activation))
                names.append("")
                summaries.append(LayerSummary(name: "", type: type, details: [], gateOrder: nil, parameterCount: 0))
            case let .readout(readout, text):
                layers.append(.readout(readout))
                names.append("")
                summaries.append(LayerSummary(name: "", type: "Readout", details: [("mode", .text(text))], gateOrder: nil, parameterCount: 0))
            case .identity(let type):
                summaries.append(LayerSummary(name: "", type: type, details: [("effect", .text("none at inference"))], gateOrder: nil, parameterCount: 0))
            }
        }
        guard !layers.isEmpty else {
            throw ModelError(file: file, path: "model_config", message: "lists no modules")
        }
        if let vectorizer, case let .embedding(embedding)? = layers.first, embedding.vocabularySize < vectorizer.vocabularySize {
            throw ModelError(file: file, path: "model_config", layer: vectorizer.name.isEmpty ? nil : vectorizer.name,
                             message: "the TextVectorization makes \(vectorizer.vocabularySize) ids, but the Embedding has \(embedding.vocabularySize) rows")
        }
        return Model(layers: layers, name: "model", layerNames: names, sequenceLength: steps, textVectorizer: vectorizer)
    }
}
