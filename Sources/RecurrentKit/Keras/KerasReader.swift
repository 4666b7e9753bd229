import Foundation
import TextSafety
import HDF5

/// Maps a Keras model (config + weights) onto the neutral model, layer by layer. Anything
/// it cannot express exactly is refused with the layer's name, class and the option.
package struct KerasReader {
    let file: String
    /// The Keras version the model is for, nil when no file says or they disagree
    /// (`KerasVersionResolver`).
    let version: KerasVersion?
    /// When the files disagree on the version: the two findings, for a refusal that needs it.
    var versionConflict: String?
    let source: KerasWeightSource
    /// `Sequential` or `Functional`.
    var modelClass = "Sequential"
    /// A `.keras` archive's assets (where an adapted TextVectorization keeps its vocabulary);
    /// nil for HDF5 files, which have none.
    var assets: KerasAssets?

    private var layers: [Layer] = []
    private var names: [String] = []
    private var summaries: [LayerSummary] = []
    private var storedTypes = Set<String>()
    private var compressed = false
    /// Features per step (or per sample once 2-D) flowing out of the last layer.
    private var width: Int?
    /// Steps per sample when the input declares them (for Flatten).
    private var steps: Int?
    private var isSequence = true
    private var takesTokens = false
    /// Dimensions of the declared input, batch included (`[None, 1]` is 2), when an
    /// InputLayer declares them.
    private var inputRank: Int?
    /// The model's text front, once a TextVectorization has been read.
    private var vectorizer: TextVectorizer?
    /// Weights taken so far, counted from declared shapes before any is read.
    private var parameterTotal = 0

    init(file: String, version: KerasVersion?, source: KerasWeightSource) {
        self.file = file
        self.version = version
        self.source = source
    }

    static func read(config: KerasConfig, file: String, layout: Layout, version: KerasVersionResolver.Resolution,
                     source: KerasWeightSource, assets: KerasAssets? = nil) throws -> ModelReading {
        var reader = KerasReader(file: file, version: version.version, source: source)
        reader.versionConflict = version.conflict
        reader.modelClass = config.className
        reader.assets = assets
        for node in config.layers { try reader.add(node) }
        guard !reader.layers.isEmpty else {
            throw ModelError(file: file, message: "the model has no layers that compute anything")
        }
        if reader.vectorizer != nil, let node = config.layers.first(where: { $0.className == "TextVectorization" }) {
            guard case .embedding = reader.layers[0] else {
                throw reader.fail(node, "feeds '\(escapedForDisplay(reader.names[0]))', not an Embedding; its token ids are supported only as an Embedding's input")
            }
        }
        // A Keras model takes lengths as Keras takes a caller's mask (spec/fixture-format.md).
        let model = Model(layers: reader.layers, name: config.name, layerNames: reader.names, sequenceLength: reader.steps,
                          textVectorizer: reader.vectorizer, lengthsRule: .kerasCallMask)
        // Weights paired in order from a layer the file names otherwise: inspect shows whose.
        for index in reader.summaries.indices {
            let summary = reader.summaries[index]
            if let node = config.layers.first(where: { $0.name == summary.name }), let fileName = source.fileLayerName(of: node) {
                reader.summaries[index].details.append(("weights_from", .text(fileName)))
            }
        }
        return ModelReading(file: file, layout: layout, model: model,
                               isBareRecurrentModule: false, summaries: reader.summaries,
                               storedTypes: reader.storedTypes.sorted(), compressed: reader.compressed,
                               modelClass: config.className, kerasVersion: version.version?.rawValue)
    }

    /// A Keras config JSON read against weights in Keras 3's `layers/…/vars` layout
    /// (`weights`, a weights file's root), or against none (the read stops at the first
    /// layer that has weights): the config reader and planner on their own, for the fuzz
    /// target `FuzzKerasConfig`.
    package static func read(configJSON: String, file: String, keras3Weights weights: HDF5Group?) throws -> ModelReading {
        let config = try KerasConfig(json: configJSON, file: file, path: "config.json")
        let source: KerasWeightSource
        if let weights {
            source = Keras3Weights(container: HDF5Container(root: weights, file: file), layers: config.allLayers)
        } else {
            source = NoWeights()
        }
        return try read(config: config, file: file, layout: .kerasWeights, version: .init(version: .keras3), source: source)
    }

    /// A source with no weights at all.
    private struct NoWeights: KerasWeightSource {
        func weights(of node: KerasConfig.Node) throws -> [KerasWeight] { [] }
    }

    private mutating func append(_ layer: Layer, name: String) {
        layers.append(layer)
        names.append(name)
    }

    /// The layer as errors name it; with weights paired in order from a layer the file
    /// names otherwise, both names (`lstm (LSTM), paired in order with the file's layer lstm_1`).
    private func fail(_ node: KerasConfig.Node, _ message: String, path: String? = nil) -> ModelError {
        var layer = "\(escapedForDisplay(node.name)) (\(escapedForDisplay(node.className)))"
        if let fileName = source.fileLayerName(of: node) { layer += ", paired in order with the file's layer \(escapedForDisplay(fileName))" }
        return ModelError(file: file, path: path, layer: layer, message: message)
    }

    private mutating func take(_ node: KerasConfig.Node, count: Int) throws -> [KerasWeight] {
        let stored = try source.weights(of: node)
        guard stored.count == count else {
            // Keras 1 kept each gate apart (LSTM 4 × 3 arrays, GRU 3 × 3); tf-keras's
            // load_weights joins them (preprocess_weights_for_loading), rnnkit does not.
            let inner = node.className == "Bidirectional" ? (node.config["layer"] as? [String: Any])?["class_name"] as? String : node.className
            let perGate = inner.flatMap(KerasLayout.cellKind(ofClass:)).map { $0.gateCount * count }
            let hint = perGate == stored.count && stored.count != count
                ? "; \(stored.count) arrays are Keras 1's per-gate layout, which tf-keras's load_weights joins and rnnkit does not read" : ""
            throw fail(node, "has \(stored.count) weight tensors in the file, expected \(count)" + hint)
        }
        // Declared sizes only: nothing is read before the whole model is within budget.
        for item in stored {
            let (total, overflow) = parameterTotal.addingReportingOverflow(item.count)
            guard !overflow, total <= Limits.parameters else {
                throw fail(node, "the model's weights reach \(overflow ? "more than \(Int.max)" : "\(total)") elements at \(escapedForDisplay(item.path)), \(overflow ? "over the limit of \(Limits.parameters)" : Limits.excess(total, over: Limits.parameters)) (Limits.parameters)")
            }
            parameterTotal = total
        }
        for item in stored {
            storedTypes.insert(item.storedType)
            compressed = compressed || item.compressed
        }
        return stored
    }

    private func check(_ node: KerasConfig.Node, _ weight: KerasWeight, _ name: String, _ shape: [Int]) throws {
        guard weight.shape == shape else {
            throw fail(node, "\(name) has shape \(shapeText(weight.shape)), expected \(shapeText(shape))")
        }
    }

    private func activation(_ node: KerasConfig.Node, _ key: String, default fallback: String) throws -> Activation {
        let value = node.config[key]
        let name: String
        if value == nil || value is NSNull {
            name = fallback
        } else if let text = value as? String {
            name = text
        } else if let object = value as? [String: Any], let className = object["class_name"] as? String,
                  (object["config"] as? [String: Any])?.isEmpty ?? true {
            // A serialized function object with no options: `{"class_name": "relu", ...}`.
            name = className
        } else {
            throw fail(node, "\(key) \(escapedForDisplay("\(value!)")) is not a plain activation name")
        }
        switch ActivationNames.keras(name, version: version) {
        case .activation(let activation):
            return activation
        case .unknownName:
            throw fail(node, "\(key) '\(escapedForDisplay(name))' is not supported")
        case .needsVersion:
            let doubt = versionConflict.map { "the files disagree on which Keras the model is for: \($0)" }
                ?? "nothing says which Keras the model is for (looked in \(KerasVersionResolver.placesSearched)); add \"\(KerasVersionResolver.field)\" to the architecture"
            throw fail(node, "\(key) '\(escapedForDisplay(name))' is a different function in Keras 2 (clip(0.2x + 0.5, 0, 1)) and Keras 3 (relu6(x + 3)/6), and \(doubt)")
        }
    }

    /// A boolean setting from the layer's config (or `config`, at `path`), strictly: `true`
    /// or `false`, absent is `fallback`, anything else refused naming the field
    /// (`layers[1].config.return_sequences is a string, expected true or false`).
    private func bool(_ node: KerasConfig.Node, _ key: String, config: [String: Any]? = nil, path: String? = nil,
                      default fallback: Bool = false) throws -> Bool {
        switch KerasConfig.flag((config ?? node.config)[key], default: fallback) {
        case .success(let flag): return flag
        case .failure(let error): throw fail(node, "\(path ?? node.configPath).\(key) \(error.message)")
        }
    }

    /// A size from the layer's config, exactly: a whole number in `range` (by default
    /// `1...Limits.dimension`), refused naming the field (`layers[2].config.units`).
    private func int(_ node: KerasConfig.Node, _ key: String, config: [String: Any]? = nil, path: String? = nil,
                     in range: ClosedRange<Int> = 1...Limits.dimension) throws -> Int {
        guard let value = (config ?? node.config)[key], !(value is NSNull) else {
            throw fail(node, "config lacks '\(key)'")
        }
        switch KerasConfig.integer(value, in: range) {
        case .success(let int): return int
        case .failure(let error): throw fail(node, "\(path ?? node.configPath).\(key) \(error.message)")
        }
    }

    mutating func add(_ node: KerasConfig.Node) throws {
        switch node.className {
        case "InputLayer":
            try addInput(node)
        case "TextVectorization":
            try addTextVectorization(node)
        case "Embedding":
            try addEmbedding(node)
        case "Masking":
            guard isSequence else { throw fail(node, "Masking needs [batch, time, features] data") }
            let value: Float
            switch node.config["mask_value"] {
            case nil: value = 0
            case let number as NSNumber where !JSONValue.isBoolean(number): value = number.floatValue
            case let other?: throw fail(node, "\(node.configPath).mask_value is \(describeJSON(other)), expected a number")
            }
            append(.masking(maskValue: value), name: node.name)
            summaries.append(LayerSummary(name: node.name, type: node.className, details: [("mask_value", .number(Double(value)))],
                                          gateOrder: nil, parameterCount: 0))
        case let className where KerasLayout.isRecurrentClass(className):
            var sets: [[KerasWeight]] = []
            let layer = try recurrent(node, config: node.config, className: node.className, weights: &sets,
                                      insideBidirectional: false)
            append(.recurrent(layer), name: node.name)
        case "Bidirectional":
            try addBidirectional(node)
        case "Dense":
            try addDense(node, config: node.config)
        case "TimeDistributed":
            guard let inner = node.config["layer"] as? [String: Any], let innerClass = inner["class_name"] as? String,
                  let innerConfig = inner["config"] as? [String: Any] else {
                throw fail(node, "config lacks the wrapped layer")
            }
            guard innerClass == "Dense" else {
                throw fail(node, "TimeDistributed(\(escapedForDisplay(innerClass))) is not supported (TimeDistributed(Dense) is)")
            }
            guard isSequence else { throw fail(node, "TimeDistributed needs [batch, time, features] data") }
            try addDense(node, config: innerConfig, path: node.configPath + ".layer.config")
        case "Activation":
            append(.activation(try activation(node, "activation", default: "linear")), name: node.name)
            summaries.append(LayerSummary(name: node.name, type: node.className,
                                          details: [("activation", .text("\(node.config["activation"] ?? "linear")"))],
                                          gateOrder: nil, parameterCount: 0))
        case "GlobalAveragePooling1D", "GlobalMaxPooling1D":
            try addPooling(node)
        case "Flatten":
            try addFlatten(node)
        case let name where KerasLayout.identityClasses.contains(name):
            summaries.append(LayerSummary(name: node.name, type: node.className, details: [("effect", .text("none at inference"))],
                                          gateOrder: nil, parameterCount: 0))
        case "Lambda":
            throw fail(node, "Lambda layers hold Python code, which RecurrentKit never runs; rebuild the model without them")
        default:
            throw fail(node, "layer class '\(escapedForDisplay(node.className))' is not supported")
        }
    }

    private mutating func addInput(_ node: KerasConfig.Node) throws {
        let key = node.config["batch_shape"] != nil ? "batch_shape" : "batch_input_shape"
        let shape = node.config[key] as? [Any]
        inputRank = shape?.count
        if let shape, shape.count >= 2 {
            // Each declared size exactly, within Limits.dimension; None leaves it open.
            func size(_ index: Int) throws -> Int? {
                guard !(shape[index] is NSNull) else { return nil }
                switch KerasConfig.integer(shape[index], in: 1...Limits.dimension) {
                case .success(let int): return int
                case .failure(let error): throw fail(node, "\(node.configPath).\(key)[\(index)] \(error.message)")
                }
            }
            steps = try size(1)
            if shape.count == 3 { width = try size(2) }
            if shape.count == 2 { isSequence = true }
        }
        let dtype = (node.config["dtype"] as? String) ?? ((node.config["dtype"] as? [String: Any]).flatMap {
            ($0["config"] as? [String: Any])?["name"] as? String
        }) ?? "float32"
        takesTokens = dtype.contains("int")
        summaries.append(LayerSummary(name: node.name, type: node.className,
                                      details: [("shape", .text(shape.map { "[" + $0.map { ($0 as? NSNumber).map { "\($0)" } ?? "None" }.joined(separator: ", ") + "]" } ?? "?")),
                                                ("dtype", .text(dtype))],
                                      gateOrder: nil, parameterCount: 0))
    }

    /// A TextVectorization in front of the first Embedding: the model then takes texts.
    private mutating func addTextVectorization(_ node: KerasConfig.Node) throws {
        guard layers.isEmpty, vectorizer == nil else {
            throw fail(node, "a TextVectorization must come first, before every layer that computes")
        }
        let settings: KerasTextVectorization.Settings
        switch KerasTextVectorization.settings(node.config, path: node.configPath) {
        case .success(let read): settings = read
        case .failure(let refusal): throw fail(node, refusal.message)
        }
        if let inputRank, inputRank != 1 && inputRank != 2 {
            throw fail(node, "takes [batch] or [batch, 1] strings, but the InputLayer declares \(inputRank) dimensions")
        }
        if settings.split == .none && inputRank == 1 {
            throw fail(node, "split=None on input shape () gives one id per text and no time axis; a recurrent model needs input shape (1,)")
        }
        let entries: TokenList
        let source: String
        switch node.config["vocabulary"] {
        case nil, is NSNull:
            guard let assets, let vocabularyFile = try assets.vocabularyFile(of: node) else {
                throw fail(node, "holds no vocabulary: \(node.configPath).vocabulary is None and " + (assets == nil
                    ? "this file keeps no assets (an adapted TextVectorization's vocabulary is saved only in a .keras archive; tf-keras cannot save one to HDF5)"
                    : "the archive has no vocabulary file for the layer"))
            }
            guard let lines = KerasTextVectorization.vocabularyLines(vocabularyFile.bytes) else {
                throw fail(node, "is not valid UTF-8", path: vocabularyFile.member)
            }
            (entries, source) = (lines, vocabularyFile.member)
        case let list as [Any]:
            entries = TokenList(try list.enumerated().map { index, item in
                guard let token = item as? String else {
                    throw fail(node, "\(node.configPath).vocabulary[\(index)] is \(escapedForDisplay("\(item)")), not a string")
                }
                return token
            })
            source = "config"
        case let path as String:
            throw fail(node, "\(node.configPath).vocabulary names a file ('\(escapedForDisplay(path))') outside the model file; rnnkit reads nothing outside its input (Keras itself loads it only with safe_mode off)")
        case let other?:
            throw fail(node, "\(node.configPath).vocabulary is \(escapedForDisplay("\(other)")), neither a list of strings nor None")
        }
        let place = source == "config" ? "\(node.configPath).vocabulary" : escapedForDisplay(source)
        guard !entries.isEmpty else {
            throw fail(node, "\(place) is empty (Keras refuses an empty vocabulary)")
        }
        guard entries.count <= Limits.dimension else {
            throw fail(node, "\(place) has \(entries.count) entries, \(Limits.excess(entries.count, over: Limits.dimension)) (Limits.dimension)")
        }
        let tokens = KerasTextVectorization.tokens(fromVocabulary: entries)
        let size = TextVectorizer.firstTokenIndex + tokens.count
        if let maxTokens = settings.maxTokens, size > maxTokens {
            throw fail(node, "\(place) makes \(size) ids with the mask and out-of-vocabulary tokens, more than max_tokens=\(maxTokens) (Keras refuses it)")
        }
        do {
            vectorizer = try TextVectorizer(name: node.name, lowercase: settings.standardization.lowercase,
                                            stripPunctuation: settings.standardization.stripPunctuation, split: settings.split,
                                            tokens: tokens, outputSequenceLength: settings.outputSequenceLength,
                                            maxTokens: settings.maxTokens)
        } catch let error as EngineError {
            throw fail(node, "\(place): \(error.message)")
        }
        steps = settings.outputSequenceLength
        var details: [(String, DetailValue)] = [
            ("standardize", .text(settings.standardize ?? "None")),
            ("split", .text(settings.split == .whitespace ? TextVectorizer.Split.whitespace.rawValue : "None")),
            ("output_mode", .text("int")),
            ("max_tokens", settings.maxTokens.map(DetailValue.integer) ?? .text("None")),
            ("output_sequence_length", settings.outputSequenceLength.map(DetailValue.integer) ?? .text("None (the longest text)")),
            ("vocabulary_size", .integer(size)),
            ("vocabulary", .text(source)),
            ("oov_token", .text("[UNK]")),
        ]
        if settings.padToMaxTokens {
            details += [("pad_to_max_tokens", .flag(true)), ("pad_to_max_tokens_effect", .text("none in int mode"))]
        }
        summaries.append(LayerSummary(name: node.name, type: node.className, details: details, gateOrder: nil, parameterCount: 0))
    }

    private mutating func addEmbedding(_ node: KerasConfig.Node) throws {
        guard layers.isEmpty else { throw fail(node, "an Embedding must be the first layer") }
        let count = try int(node, "input_dim"), dimension = try int(node, "output_dim")
        guard Limits.product([count, dimension], within: Limits.parameters) != nil else {
            throw fail(node, "embeddings [input_dim, output_dim]: \(Limits.productExcess([count, dimension], over: Limits.parameters)) (Limits.parameters)")
        }
        let weights = try take(node, count: 1)
        try check(node, weights[0], "embeddings", [count, dimension])
        let maskZero = try bool(node, "mask_zero")
        append(.embedding(Embedding(table: try weights[0].tensor(), maskZero: maskZero)), name: node.name)
        width = dimension
        isSequence = true
        summaries.append(LayerSummary(name: node.name, type: node.className,
                                      details: [("input_dim", .integer(count)), ("output_dim", .integer(dimension)), ("mask_zero", .flag(maskZero))],
                                      gateOrder: nil, parameterCount: weights[0].count))
    }

    private mutating func addDense(_ node: KerasConfig.Node, config: [String: Any], path: String? = nil) throws {
        let inner = KerasConfig.Node(className: "Dense", name: node.name, config: config, inbound: [])
        let units = try int(node, "units", config: config, path: path)
        let useBias = try bool(node, "use_bias", config: config, path: path, default: true)
        let weights = try take(node, count: useBias ? 2 : 1)
        guard weights[0].shape.count == 2, weights[0].shape[1] == units else {
            throw fail(node, "kernel has shape \(shapeText(weights[0].shape)), expected [in, \(units)]")
        }
        let inputs = weights[0].shape[0]
        if let width, width != inputs {
            throw fail(node, "kernel has shape \(shapeText(weights[0].shape)), expected \(shapeText([width, units])) for \(width) input features")
        }
        if useBias { try check(node, weights[1], "bias", [units]) }
        let activation = try self.activation(inner, "activation", default: "linear")
        append(.dense(Dense(weight: try weights[0].transposed(), bias: useBias ? try weights[1].tensor() : nil,
                            activation: activation)), name: node.name)
        width = units
        summaries.append(LayerSummary(name: node.name, type: node.className,
                                      details: [("units", .integer(units)), ("activation", .text("\(config["activation"] ?? "linear")")), ("use_bias", .flag(useBias))],
                                      gateOrder: nil, parameterCount: weights.reduce(0) { $0 + $1.count }))
    }

    private mutating func addPooling(_ node: KerasConfig.Node) throws {
        guard isSequence else { throw fail(node, "needs [batch, time, features] data") }
        if let format = node.config["data_format"] as? String, format != "channels_last" {
            throw fail(node, "data_format '\(format)' is not supported (channels_last is)")
        }
        if try bool(node, "keepdims") { throw fail(node, "keepdims=True is not supported") }
        // Average pooling honours the mask; max pooling ignores it (both versions) and sees
        // whatever the previous layer emitted at masked steps.
        let readout: Readout = node.className == "GlobalAveragePooling1D" ? .meanOverValidSteps : .maxOverAllSteps
        append(.readout(readout), name: node.name)
        isSequence = false
        summaries.append(LayerSummary(name: node.name, type: node.className,
                                      details: [("mask", .text(readout == .maxOverAllSteps ? "ignored" : "honoured"))],
                                      gateOrder: nil, parameterCount: 0))
    }

    private mutating func addFlatten(_ node: KerasConfig.Node) throws {
        if isSequence {
            guard let steps, let width else {
                throw fail(node, "Flatten needs a fixed number of steps; the input shape leaves it open")
            }
            guard let flattened = Limits.product([steps, width], within: Limits.dimension) else {
                throw fail(node, "Flatten of \(steps) steps × \(width) features: \(Limits.productExcess([steps, width], over: Limits.dimension)) (Limits.dimension)")
            }
            append(.flatten, name: node.name)
            self.width = flattened
            isSequence = false
        }
        summaries.append(LayerSummary(name: node.name, type: node.className, details: [], gateOrder: nil, parameterCount: 0))
    }

    private mutating func addBidirectional(_ node: KerasConfig.Node) throws {
        guard let inner = node.config["layer"] as? [String: Any], let innerClass = inner["class_name"] as? String,
              let innerConfig = inner["config"] as? [String: Any] else {
            throw fail(node, "config lacks the wrapped layer")
        }
        guard KerasLayout.isRecurrentClass(innerClass) else {
            throw fail(node, "Bidirectional(\(escapedForDisplay(innerClass))) is not supported")
        }
        if let backward = node.config["backward_layer"] as? [String: Any] {
            let backwardConfig = backward["config"] as? [String: Any] ?? [:]
            for key in ["units", "activation", "recurrent_activation", "use_bias", "reset_after", "return_sequences"]
            where "\(backwardConfig[key] ?? "")" != "\(innerConfig[key] ?? "")" {
                throw fail(node, "a backward_layer that differs from the forward one in '\(key)' is not supported")
            }
        }
        let mergeText = node.config["merge_mode"] as? String
        let merge: MergeMode
        switch mergeText {
        case "concat"?: merge = .concat
        case "sum"?: merge = .sum
        case "mul"?: merge = .mul
        case "ave"?: merge = .ave
        default:
            throw fail(node, "merge_mode \(escapedForDisplay(mergeText ?? "None")) is not supported (it returns two outputs); use concat, sum, mul or ave")
        }
        let innerPath = node.configPath + ".layer.config"
        let weightCount = try bool(node, "use_bias", config: innerConfig, path: innerPath, default: true) ? 3 : 2
        var all = try take(node, count: 2 * weightCount)
        let half = all.count / 2
        var sets = [Array(all[..<half]), Array(all[half...])]
        all = []
        var layer = try recurrent(node, config: innerConfig, className: innerClass, configPath: innerPath,
                                  weights: &sets, insideBidirectional: true)
        layer.merge = merge
        width = layer.mergedOutputSize
        append(.recurrent(layer), name: node.name)
        summaries[summaries.count - 1].type = "Bidirectional(\(innerClass))"
        summaries[summaries.count - 1].details.append(("merge_mode", .text(mergeText ?? "None")))
    }

    /// One Keras recurrent layer (or both directions of a Bidirectional) as a neutral layer.
    private mutating func recurrent(_ node: KerasConfig.Node, config: [String: Any], className: String,
                                    configPath: String? = nil,
                                    weights sets: inout [[KerasWeight]], insideBidirectional: Bool) throws -> RecurrentLayer {
        let kind = KerasLayout.cellKind(ofClass: className)!
        let inner = KerasConfig.Node(className: className, name: node.name, config: config, inbound: [])
        guard isSequence, let inputSize = width else {
            throw fail(node, "needs [batch, time, features] input with a known feature count")
        }
        let units = try int(node, "units", config: config, path: configPath)
        func flag(_ key: String, default fallback: Bool = false) throws -> Bool {
            try bool(node, key, config: config, path: configPath, default: fallback)
        }
        let returnSequences = try flag("return_sequences")
        let returnState = try flag("return_state")
        if returnState && modelClass == "Sequential" {
            throw fail(node, "return_state=True gives several outputs, which a Sequential model cannot pass on")
        }
        if returnState {
            // Outputs: [output, h] (RNN, GRU) or [output, h, c] (LSTM); a Bidirectional adds
            // each direction's states. The output, and h when it is the output (no sequences,
            // one direction), are what the chain can take.
            let usable = node.consumedOutput == 0 || (node.consumedOutput == 1 && !returnSequences && !insideBidirectional)
            guard usable else {
                throw fail(node, "return_state=True: the model uses output \(node.consumedOutput) (a state other than the layer's output), which is not supported")
            }
        }
        if try flag("time_major") {
            throw fail(node, "time_major=True is not supported: inputs are batch-first")
        }
        let useBias = try flag("use_bias", default: true)
        let goBackwards = try flag("go_backwards")
        if insideBidirectional && goBackwards {
            throw fail(node, "go_backwards inside Bidirectional is not supported")
        }
        let resetAfter = kind == .gru ? try flag("reset_after", default: true) : true
        let activation = try self.activation(inner, "activation", default: "tanh")
        let recurrentActivation = kind == .rnn ? Activation.sigmoid : try self.activation(inner, "recurrent_activation", default: "sigmoid")
        if sets.isEmpty { sets = [try take(node, count: useBias ? 3 : 2)] }
        // Each direction's weights are read as they are translated (kernels a block of
        // columns at a time), so reading holds one copy of the weights plus one block.
        var directions: [DirectionWeights] = []
        for index in sets.indices {
            let tensors = sets[index]
            sets[index] = []
            directions.append(try direction(node, tensors, kind: kind, units: units, inputSize: inputSize,
                                            useBias: useBias, resetAfter: resetAfter))
        }
        // Keras emits the previous output at a masked step unless zero_output_for_mask is
        // set; Bidirectional sets it on both directions when they return sequences.
        let zeroForMask = insideBidirectional ? returnSequences : try flag("zero_output_for_mask")
        let layer = RecurrentLayer(kind: kind, inputSize: inputSize, hiddenSize: units, directions: directions,
                                   activation: activation, recurrentActivation: recurrentActivation,
                                   gruResetRule: resetAfter ? .afterMatmul : .beforeMatmul, merge: .concat,
                                   goBackwards: goBackwards, maskedOutput: zeroForMask ? .zero : .carry,
                                   returnSequences: returnSequences)
        width = layer.mergedOutputSize
        isSequence = returnSequences
        var details: [(String, DetailValue)] = [("units", .integer(units)), ("activation", .text("\(config["activation"] ?? "tanh")"))]
        if kind != .rnn { details.append(("recurrent_activation", .text("\(config["recurrent_activation"] ?? "sigmoid")"))) }
        details += [("use_bias", .flag(useBias)), ("return_sequences", .flag(returnSequences))]
        if goBackwards { details.append(("go_backwards", .flag(true))) }
        if returnState {
            details.append(("return_state", .flag(true)))
            details.append(("output_used", .integer(node.consumedOutput)))
        }
        for name in ["stateful", "unroll"] where try flag(name) {
            details.append((name, .flag(true)))
            details.append(("\(name)_effect", .text("none on one call")))
        }
        if kind == .gru { details.append(("reset_after", .flag(resetAfter))) }
        summaries.append(LayerSummary(name: node.name, type: className, details: details,
                                      gateOrder: KerasLayout.gateOrder(kind),
                                      parameterCount: directions.reduce(0) { $0 + $1.parameterCount }))
        return layer
    }

    /// One direction's weights from Keras's layout (`kernel`, `recurrent_kernel`, `bias`).
    private func direction(_ node: KerasConfig.Node, _ tensors: [KerasWeight], kind: CellKind, units: Int, inputSize: Int,
                           useBias: Bool, resetAfter: Bool) throws -> DirectionWeights {
        let gates = kind.gateCount
        guard tensors.count == (useBias ? 3 : 2) else {
            throw fail(node, "has \(tensors.count) weight tensors per direction, expected \(useBias ? 3 : 2)")
        }
        try check(node, tensors[0], "kernel", [inputSize, gates * units])
        try check(node, tensors[1], "recurrent_kernel", [units, gates * units])
        var inputBias: Tensor?
        var recurrentBias: Tensor?
        if useBias {
            if kind == .gru, tensors[2].shape != (resetAfter ? [2, gates * units] : [gates * units]),
               tensors[2].shape == (resetAfter ? [gates * units] : [2, gates * units]) {
                // The shape of the other reset rule: Keras 2 and TensorFlow 1 defaulted to
                // reset_after=False, TensorFlow 2's tf.keras and Keras 3 to True.
                throw fail(node, "bias has shape \(shapeText(tensors[2].shape)), expected \(shapeText(resetAfter ? [2, gates * units] : [gates * units])): the file's is a GRU with reset_after=\(resetAfter ? "False (the default of Keras 2 and of tf.keras under TensorFlow 1)" : "True (the default since TensorFlow 2)"), the architecture's reset_after=\(resetAfter ? "True" : "False"); rebuild the architecture with reset_after=\(resetAfter ? "False" : "True")")
            }
            if BiasRule(kind: kind, resetRule: resetAfter ? .afterMatmul : .beforeMatmul).keepsBothBiases {
                try check(node, tensors[2], "bias", [2, gates * units])
                (inputBias, recurrentBias) = KerasLayout.splitGRUBiasRows(try tensors[2].tensor())
            } else {
                if kind == .lstm, tensors[2].shape == [2 * gates * units] {
                    // CuDNNLSTM keeps input and recurrent biases apart and its kernels per
                    // gate in another order; tf-keras converts them on loading into an LSTM.
                    throw fail(node, "bias has shape \(shapeText(tensors[2].shape)), expected \(shapeText([gates * units])): [8·units] is a CuDNNLSTM layer's weights, which tf-keras's load_weights converts and rnnkit does not read")
                }
                try check(node, tensors[2], "bias", [gates * units])
                inputBias = try tensors[2].tensor()
            }
        }
        return DirectionWeights(gateOrder: KerasLayout.gateOrder(kind), inputWeight: try tensors[0].transposed(),
                                recurrentWeight: try tensors[1].transposed(), inputBias: inputBias, recurrentBias: recurrentBias)
    }
}
