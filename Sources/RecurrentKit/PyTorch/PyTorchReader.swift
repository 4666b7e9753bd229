import Foundation
import TextSafety
import HDF5

/// Reads the PyTorch layout (a state_dict, optionally with `model_config`) from any
/// container into the neutral model. Translate first, then load strictly: every key must be used, every shape
/// must match.
package enum PyTorchReader {
    /// A state_dict: dotted key → tensor. A container's nested groups read as dots
    /// (`lstm/weight_ih_l0` is the key `lstm.weight_ih_l0`); a flat container's names are the keys.
    /// Only the keys a reading selects are read (`ModuleSelection`); integer and bool tensors
    /// among them are listed (`others`) and refused only when a module takes one.
    struct StateDict {
        let file: String
        var entries: [String: StoredTensor]
        /// Integer and bool tensors: shapes only, never read as weights.
        var others: [String: OtherTensor]
        var unused: Set<String>

        init(store: WeightStore, file: String) throws {
            self.file = file
            var entries: [String: StoredTensor] = [:]
            var others: [String: OtherTensor] = [:]
            var paths: [String: String] = [:]
            func add(_ path: String, location: String) throws -> String {
                let key = path.replacingOccurrences(of: "/", with: ".")
                if let other = paths.updateValue(location, forKey: key) {
                    throw ModelError(file: file, path: location,
                                     message: "key '\(escapedForDisplay(key))' is stored twice (also at \(escapedForDisplay(other)))")
                }
                return key
            }
            for (path, stored) in store.tensors.sorted(by: { $0.key < $1.key }) {
                entries[try add(path, location: stored.path)] = stored
            }
            for (path, other) in store.others.sorted(by: { $0.key < $1.key }) {
                others[try add(path, location: other.path)] = other
            }
            self.entries = entries
            self.others = others
            self.unused = Set(entries.keys).union(others.keys)
        }

        /// Every key, float or not.
        var keys: [String] { Array(entries.keys) + Array(others.keys) }

        func has(_ key: String) -> Bool { entries[key] != nil || others[key] != nil }

        /// Takes a tensor, checking its shape.
        mutating func take(_ key: String, shape: [Int], layer: String) throws -> Tensor {
            if let other = others[key] {
                throw ModelError(file: file, path: key, layer: layer,
                                 message: "holds \(other.storedType) values of shape \(shapeText(other.shape)), expected floating-point weights")
            }
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

        func shape(_ key: String) -> [Int]? { entries[key]?.tensor.shape ?? others[key]?.shape }

        /// Fails on keys nothing used, naming them.
        func checkAllUsed() throws {
            guard let first = unused.sorted().first else { return }
            let shape = self.shape(first).map(shapeText) ?? "?"
            let more = unused.count > 1 ? " (and \(unused.count - 1) more)" : ""
            throw ModelError(file: file, path: first,
                             message: "unexpected key with shape \(shape)\(more): it belongs to no module of the model")
        }
    }

    /// Reads a state_dict from `container`: a whole model described by `architecture` (a
    /// `model_config` document given beside the file) or by the container's own
    /// `model_config` (an HDF5 root attribute, safetensors `__metadata__`, a `.pt` file's
    /// `_metadata`); modules picked by key prefix (`modules`, without a `model_config`);
    /// else one bare recurrent module.
    ///
    /// A `model_config` or `modules` is the selection: the keys outside it are not read, and
    /// one note counts them (`LoadedModel.notes`). A file that holds several modules and
    /// neither is refused with the modules found and a skeleton to edit (`ModelConfigSkeleton`).
    static func read(_ container: TensorContainer, layout: Layout = .pytorch,
                     architecture: ModelConfigDocument? = nil, modules: [String]? = nil) throws -> ModelReading {
        let file = container.file
        var document = architecture
        if let configText = try container.stringAttribute("model_config", at: "") {
            let own = try PyTorchModelConfig.decode(configText, file: file)
            if let architecture, architecture != own {
                throw ModelError(file: file, path: "model_config",
                                 message: "the file has its own model_config, which differs from \(option: .architecture); pass neither or make them agree")
            }
            if modules != nil {
                throw ModelError(.invalidInput, file: file, path: "model_config",
                                 message: "the file has its own model_config, which names the modules it uses; a selection of modules by key prefix is for a state_dict without one")
            }
            document = own
        }
        let keys = try container.tensorNames(below: "").map { $0.replacingOccurrences(of: "/", with: ".") }
        if let modules {
            guard document == nil else {
                throw ModelError(.invalidInput, file: file,
                                 message: "a model_config names the modules it uses; a selection of modules by key prefix goes without one")
            }
            return try readSelected(container, keys: keys, prefixes: modules, layout: layout)
        }
        if let document {
            return try read(container, keys: keys, document: document, origin: .modelConfig, layout: layout)
        }
        let store = try WeightStore(container: container)
        var dict = try StateDict(store: store, file: file)
        var summaries: [LayerSummary] = []
        let prefix: String
        do {
            prefix = try bareModulePrefix(dict, file: file)
        } catch let error as ModelError {
            // Several modules, or other modules: what the file holds and a config to start from.
            throw ModelConfigSkeleton(keys: keys, dict: dict, keysInRegistrationOrder: container.keysInRegistrationOrder)
                .refusal(file: file, reading: error)
        }
        let loaded = try readBare(prefix: prefix, dict: &dict, summaries: &summaries)
        try dict.checkAllUsed()
        return ModelReading(file: file, layout: layout, model: loaded.model, isBareRecurrentModule: true,
                               summaries: summaries, storedTypes: store.storedTypes,
                               compressed: store.tensors.values.contains { $0.compressed },
                               pytorchSource: PyTorchSource(document: nil, barePrefix: prefix), moduleLabels: loaded.labels)
    }

    /// A `model_config` JSON built against the state_dict in `stateDict` (an HDF5 root) with
    /// every key used, or only parsed when nil: the config reader on its own, for the fuzz
    /// target `FuzzPyTorchModelConfig`.
    package static func build(configJSON: String, file: String, stateDict: HDF5Group?) throws -> Model? {
        let config = try PyTorchModelConfig(json: configJSON, file: file)
        guard let stateDict else { return nil }
        let store = try WeightStore(container: HDF5Container(root: stateDict, file: file))
        var dict = try StateDict(store: store, file: file)
        var summaries: [LayerSummary] = []
        let model = try build(config, dict: &dict, summaries: &summaries)
        try dict.checkAllUsed()
        return model
    }

    /// True for a state_dict without a `model_config` that is not one bare recurrent module:
    /// it needs an architecture given beside it (`LoadedModel.needsArchitecture`).
    static func needsArchitecture(_ container: TensorContainer) throws -> Bool {
        guard try container.stringAttribute("model_config", at: "") == nil else { return false }
        let dict = try StateDict(store: try WeightStore(container: container), file: container.file)
        return (try? bareModulePrefix(dict, file: container.file)) == nil
    }

    /// One bare recurrent module under `prefix`, named as its keys name it (or `name`).
    private static func readBare(prefix: String, name: String? = nil, dict: inout StateDict,
                                 summaries: inout [LayerSummary]) throws -> (model: Model, labels: [String?]) {
        let options = RecurrentOptions(name: name ?? (prefix.isEmpty ? "(root)" : String(prefix.dropLast())))
        let layers = try readRecurrent(prefix: prefix, options: options, dict: &dict, summaries: &summaries)
        let base = prefix.isEmpty ? layers[0].kind.rawValue : options.name.replacingOccurrences(of: ".", with: "_")
        let type = PyTorchLayout.moduleType(layers[0].kind)
        let labels = layers.indices.map { k in
            "\(options.name) (\(type)\(layers.count > 1 ? ", layer \(k)" : ""))"
        }
        return (Model(layers: layers.map { .recurrent($0) }, name: options.name,
                      layerNames: layerNames(base, count: layers.count)), labels)
    }

    /// Where a whole model's description came from, for notes and errors.
    enum Origin {
        /// A `model_config` document.
        case modelConfig
        /// Modules picked by key prefix: the prefixes as given.
        case selection([String])

        /// Where an error about module `index` points: the config's entry, or nothing for a
        /// chain the reader made (the module's name says which).
        func path(_ index: Int) -> String? {
            switch self {
            case .modelConfig: return "model_config modules[\(index)]"
            case .selection: return nil
            }
        }
    }

    /// Reads the model `document` describes, reading only the keys of its modules.
    static func read(_ container: TensorContainer, keys: [String], document: ModelConfigDocument, origin: Origin,
                     layout: Layout) throws -> ModelReading {
        let file = container.file
        var config = PyTorchModelConfig(document: document)
        let selection = ModuleSelection(keys: keys, moduleKeyPrefixes: config.moduleKeyPrefixes)
        try checkWidths(config, file: file, origin: origin)
        config.prefix = selection.implied + config.prefix
        let store = try WeightStore(container: container) { !selection.reads($0.replacingOccurrences(of: "/", with: ".")) }
        var dict = try StateDict(store: store, file: file)
        var summaries: [LayerSummary] = []
        var labels: [String?] = []
        var model = try build(config, dict: &dict, summaries: &summaries, labels: &labels)
        // How the model takes lengths: PyTorch's packing, or Keras's for a model converted from Keras.
        model.lengthsRule = document.lengthsRule
        try dict.checkAllUsed()
        return ModelReading(file: file, layout: layout, model: model, isBareRecurrentModule: false,
                               summaries: summaries, storedTypes: store.storedTypes,
                               compressed: store.tensors.values.contains { $0.compressed },
                               pytorchSource: PyTorchSource(document: document, barePrefix: ""),
                               moduleLabels: labels, notes: selection.notes(origin))
    }

    /// Reads the modules under `prefixes` (key prefixes, in the order they are applied): one
    /// recurrent module is read as a bare module; several form a chain applied to every step,
    /// described by a `model_config` made from their keys and shapes.
    static func readSelected(_ container: TensorContainer, keys: [String], prefixes given: [String],
                             layout: Layout) throws -> ModelReading {
        let file = container.file
        let prefixes = try ModuleSelection.checkedPrefixes(given, file: file)
        let wrapper = ModuleSelection.wrapper(of: keys)
        let implied = ModuleSelection.implied(wrapper: wrapper, stated: prefixes.map { $0 + "." })
        let full = prefixes.map { implied + $0 }
        func selecting(_ key: String) -> Int? { full.firstIndex { key == $0 || key.hasPrefix($0 + ".") } }
        for (index, prefix) in full.enumerated() where !keys.contains(where: { selecting($0) == index }) {
            let tops = ModuleSelection.groups(keys, wrapper: wrapper.joined()).map(\.name)
            throw ModelError(.invalidInput, file: file,
                             message: "the module prefix '\(escapedForDisplay(prefixes[index]))' selects no key (looked for '\(escapedForDisplay(prefix)).…'); the state_dict's keys start with \(shownList(tops, limit: 8))")
        }
        let selected = keys.filter { selecting($0) != nil }
        let store = try WeightStore(container: container) { selecting($0.replacingOccurrences(of: "/", with: ".")) == nil }
        var dict = try StateDict(store: store, file: file)
        let found = ModelConfigSkeleton.modules(keys: selected, dict: dict)
        var chain: [ModelConfigSkeleton.Found] = []
        for index in full.indices {
            let under = found.filter { selecting($0.keyPrefix) == index }
            chain += ModelConfigSkeleton.forwardOrder(under, keysInRegistrationOrder: container.keysInRegistrationOrder)
        }
        // A prefix inside a module (a parameter's key, `lstm.weight_ih_l0`) selects part of it.
        if let partial = found.first(where: { selecting($0.keyPrefix) == nil }) {
            throw ModelError(.invalidInput, file: file, path: partial.name,
                             message: "is only partly selected (\(partial.summary)); name a module by the key prefix of all its parameters")
        }
        if let refused = chain.first(where: { $0.entry == nil }) {
            throw ModelError(.unsupported, file: file, path: refused.name,
                             message: "\(refused.summary); select recurrent modules and the Embedding and Linear modules around them")
        }
        var notes = ModuleSelection.wrapperNote(implied, origin: .selection(prefixes))
        let unread = ModuleSelection.unreadNote(keys.filter { selecting($0) == nil }, wrapper: wrapper.joined(),
                                                origin: .selection(prefixes))
        if chain.count == 1, chain[0].isRecurrent {
            var summaries: [LayerSummary] = []
            let prefix = chain[0].keyPrefix + "."
            // Named as the selection names it: without the wrapper's prefix it left implied.
            let loaded = try readBare(prefix: prefix, name: String(chain[0].keyPrefix.dropFirst(implied.count)),
                                      dict: &dict, summaries: &summaries)
            try dict.checkAllUsed()
            notes += unread
            return ModelReading(file: file, layout: layout, model: loaded.model, isBareRecurrentModule: true,
                                   summaries: summaries, storedTypes: store.storedTypes,
                                   compressed: store.tensors.values.contains { $0.compressed },
                                   pytorchSource: PyTorchSource(document: nil, barePrefix: String(prefix.dropFirst(implied.count))),
                                   moduleLabels: loaded.labels, notes: notes)
        }
        // A chain: its model_config, names as the selection states them.
        let document = try ModelConfigSkeleton.document(chain, droppingPrefix: implied, file: file)
        return try read(container, keys: keys, document: document, origin: .selection(prefixes), layout: layout)
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
        for key in dict.keys.sorted() {
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
        for key in dict.keys where key.hasPrefix(prefix) {
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
        let sizes = PyTorchLayout.recurrentSizes(weightHH: hhShape, weightHR: dict.shape(hr0),
                                                 hiddenSize: options.hiddenSize, projectionSize: options.projectionSize)
        let (hidden, projection) = (sizes.hiddenSize, sizes.projectionSize)
        guard sizes.gateBlocks != nil else {
            throw ModelError(file: file, path: hh0, layer: name,
                             message: "shape \(shapeText(hhShape)) is not a whole number of gate blocks of hidden size \(hidden)")
        }
        guard let kind = options.kind ?? sizes.kind else {
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
                    inputWeight: try take(.weightIH),
                    recurrentWeight: try take(.weightHH),
                    inputBias: bias ? try take(.biasIH) : nil,
                    recurrentBias: bias ? try take(.biasHH) : nil,
                    projection: projection > 0 ? try take(.weightHR) : nil))
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

    /// Checks that the widths of `config`'s modules chain, each module taking the features
    /// the one before it gives, and names both by the config's names. The sizes are the
    /// config's own (the keys' shapes are checked against them as they are read): an
    /// Embedding gives `embedding_dim`; a recurrent module takes `input_size` and gives
    /// `R` (`proj_size` when set, else `hidden_size`), `2R` when bidirectional with its
    /// directions concatenated; a Linear takes `in_features` and gives `out_features`; a
    /// Readout keeps the width (`last_hidden` gives `R`, `last_hidden_all_directions` `D·R`);
    /// a Flatten with its `steps` gives `steps · width`; every other module keeps it.
    static func checkWidths(_ config: PyTorchModelConfig, file: String, origin: Origin) throws {
        var width: Int?
        var given = ""
        var lastRecurrent: (output: Int, directions: Int, label: String)?
        for (index, module) in config.modules.enumerated() {
            let label = config.label(index)
            func require(_ field: String, _ expected: Int) throws {
                guard let width, width != expected else { return }
                throw ModelError(file: file, path: origin.path(index), layer: label,
                                 message: "\(field) is \(expected), but the module before it, \(given), gives \(width) features")
            }
            switch module {
            case .textVectorization, .masking, .activation, .identity:
                continue
            case let .embedding(_, _, dimension, _, _):
                if !given.isEmpty {
                    throw ModelError(file: file, path: origin.path(index), layer: label,
                                     message: "comes after \(given); an Embedding takes token ids, so it comes first (after a TextVectorization)")
                }
                (width, given) = (dimension, label)
            case let .flatten(steps):
                (width, given) = (steps.flatMap { steps in width.map { steps * $0 } }, label)
            case let .recurrent(options):
                let hidden = options.hiddenSize ?? 0
                try require("input_size", options.inputSize ?? 0)
                let output = (options.projectionSize ?? 0) > 0 ? options.projectionSize ?? 0 : hidden
                let directions = options.bidirectional == true ? 2 : 1
                width = options.merge == .concat ? directions * output : output
                given = label + (directions == 2 && options.merge == .concat ? " (bidirectional: 2 × \(output))" : "")
                lastRecurrent = (output, directions, label)
            case let .linear(_, inFeatures, outFeatures, _):
                try require("in_features", inFeatures)
                (width, given) = (outFeatures, label)
            case let .readout(readout, text):
                guard let recurrent = lastRecurrent else { continue }
                switch readout {
                case .lastHidden:
                    (width, given) = (recurrent.output, "\(label) \(text) of \(recurrent.label)")
                case .lastHiddenAllDirections:
                    (width, given) = (recurrent.output * recurrent.directions, "\(label) \(text) of \(recurrent.label)")
                case .meanOverValidSteps, .maxOverValidSteps, .lastValidStep, .maxOverAllSteps:
                    continue
                }
            }
        }
    }

    /// Builds a whole model from `model_config`.
    static func build(_ config: PyTorchModelConfig, dict: inout StateDict, summaries: inout [LayerSummary]) throws -> Model {
        var labels: [String?] = []
        return try build(config, dict: &dict, summaries: &summaries, labels: &labels)
    }

    /// Builds a whole model from `model_config`; `labels` gets, for every layer of the model,
    /// how errors name it: the config's module name and type (`rnn (LSTM, layer 1)`), or
    /// its place for a module without a name (`modules[2] (Readout)`).
    static func build(_ config: PyTorchModelConfig, dict: inout StateDict, summaries: inout [LayerSummary],
                      labels: inout [String?]) throws -> Model {
        var layers: [Layer] = []
        var names: [String] = []
        var steps: Int?
        var vectorizer: TextVectorizer?
        let prefix = config.prefix
        let file = dict.file
        for (moduleIndex, module) in config.modules.enumerated() {
            defer {
                // Every layer this module added is named by it.
                let added = layers.count - labels.count
                labels += (0..<max(0, added)).map { config.label(moduleIndex, layer: added > 1 ? $0 : nil) }
            }
            switch module {
            case let .textVectorization(settings, index):
                let label = settings.name.map { "\(escapedForDisplay($0)) (TextVectorization)" } ?? "TextVectorization"
                func fail(_ message: String) -> ModelError {
                    ModelError(file: file, path: "model_config modules[\(index)]", layer: label, message: message)
                }
                guard layers.isEmpty, vectorizer == nil,
                      config.modules.dropFirst(index + 1).first(where: { if case .identity = $0 { false } else { true } })
                          .map({ if case .embedding = $0 { true } else { false } }) ?? false else {
                    throw fail("a TextVectorization must come first and feed an Embedding (its token ids are an Embedding's input)")
                }
                do {
                    vectorizer = try TextVectorizer(
                        name: settings.name ?? "", lowercase: settings.standardization.lowercase,
                        stripPunctuation: settings.standardization.stripPunctuation,
                        split: settings.splitRule, tokens: settings.vocabulary,
                        outputSequenceLength: settings.outputSequenceLength, maxTokens: settings.maxTokens)
                } catch let error as EngineError {
                    throw fail("vocabulary: \(error.message)")
                }
                steps = settings.outputSequenceLength
                summaries.append(LayerSummary(name: settings.name ?? "", type: "TextVectorization", details: [
                    ("standardize", .text(settings.standardizeName)), ("split", .text(settings.splitName)),
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
