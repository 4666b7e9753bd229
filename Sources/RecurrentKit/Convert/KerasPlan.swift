import Foundation

/// The Keras layers that compute a neutral model, independent of the file form: what the
/// Keras 2 HDF5 writer and the Keras 3 archive writer both serialize.
///
/// Everything Keras cannot express exactly is refused here, naming the layer and the reason.
struct KerasPlan {
    /// One weight to write, made when the writer asks for it.
    struct PlannedWeight {
        enum Values {
            /// The whole tensor.
            case whole(() -> Tensor)
            /// `tensor`'s gate blocks (of rows) brought from `blocks` to `order`, transposed:
            /// a Keras kernel from a `[G·H, in]` weight, made a block of rows at a time.
            case transposed(Tensor, blocks: [Gate], order: [Gate])
        }
        var name: String
        var values: Values

        static func whole(_ name: String, _ make: @escaping () -> Tensor) -> PlannedWeight {
            PlannedWeight(name: name, values: .whole(make))
        }

        static func kernel(_ name: String, _ tensor: Tensor, blocks: [Gate] = [.cell], order: [Gate] = [.cell]) -> PlannedWeight {
            PlannedWeight(name: name, values: .transposed(tensor, blocks: blocks, order: order))
        }
    }

    /// One Keras layer.
    struct LayerPlan {
        var className: String
        var name: String
        /// The layer's own config fields (for a Bidirectional: the wrapped layer's).
        var options: [(String, Any)]
        /// For a Bidirectional: the wrapped class and the merge mode.
        var wrappedClass: String?
        var mergeMode: String?
        /// Weights in `get_weights()` order, each with Keras's variable name
        /// (`kernel`, `recurrent_kernel`, `bias`, `embeddings`); a Bidirectional's forward
        /// weights come first, then the backward ones. Each is made when the writer asks
        /// for it (kernels a block of rows at a time), so a conversion holds one translated
        /// bias or block at a time.
        var weights: [PlannedWeight]
        /// Shape of the layer's input, `nil` for unknown sizes (`[None, None, 8]`).
        var inputShape: [Int?]
    }

    var layers: [LayerPlan]
    /// `[None, steps, features]` or `[None, steps]` for token ids.
    var inputShape: [Int?]
    var inputDType: String
    var version: KerasLayout.Version

    /// Plans the Keras layers for `model`, or refuses.
    init(model: Model, version: KerasLayout.Version, file: String) throws {
        self.version = version
        func refuse(_ layer: String?, _ message: String) -> ModelError {
            ModelError(file: file, layer: layer, message: "cannot be converted to \(version == .keras2 ? "Keras 2" : "Keras 3"): \(message)")
        }
        var names = LayerNames()
        func uniqueName(_ preferred: String?, className: String) -> String {
            names.unique(preferred ?? KerasLayout.snakeCase(className))
        }
        func activationName(_ activation: Activation, layer: String) throws -> String {
            guard let name = Self.activationName(activation, version: version) else {
                throw refuse(layer, "activation \(activation.displayName) has no Keras \(version.rawValue) equivalent")
            }
            return name
        }

        inputDType = model.takesTokenIDs ? "int32" : "float32"
        let steps = model.sequenceLength
        var plans: [LayerPlan] = []
        if let vectorizer = model.textVectorizer {
            // Texts [batch, 1] (the shape split=None needs too), the vocabulary in the config.
            inputDType = "string"
            inputShape = [nil, 1]
            plans.append(Self.textVectorization(vectorizer, name: uniqueName(vectorizer.name.isEmpty ? nil : vectorizer.name,
                                                                              className: "TextVectorization"),
                                                version: version))
        } else if model.takesTokenIDs {
            inputShape = [nil, steps]
        } else {
            guard let features = model.inputFeatures else {
                throw refuse(nil, "the model's input size cannot be determined")
            }
            inputShape = [nil, steps, features]
        }
        var shape = model.textVectorizer == nil ? inputShape : [nil, steps]
        for (index, layer) in model.layers.enumerated() {
            let label = model.layerName(index) ?? "#\(index)"
            switch layer {
            case let .embedding(embedding):
                // Whether it masks was decided before planning (`KerasPadding`): PyTorch's
                // padding_idx has no Keras counterpart.
                plans.append(LayerPlan(className: "Embedding", name: uniqueName(model.layerName(index), className: "Embedding"),
                                       options: [("input_dim", embedding.vocabularySize), ("output_dim", embedding.dimension),
                                                 ("mask_zero", embedding.maskZero)],
                                       weights: [.whole("embeddings", { embedding.table })], inputShape: shape))
                shape = [nil, steps, embedding.dimension]
            case let .masking(value):
                plans.append(LayerPlan(className: "Masking", name: uniqueName(model.layerName(index), className: "Masking"),
                                       options: [("mask_value", Double(value))], weights: [], inputShape: shape))
            case let .recurrent(recurrent):
                let plan = try Self.recurrent(recurrent, name: uniqueName(model.layerName(index), className: KerasLayout.className(of: recurrent.kind)),
                                              label: label, inputShape: shape, version: version, refuse: refuse,
                                              activationName: activationName)
                plans.append(plan)
                shape = recurrent.returnSequences ? [nil, steps, recurrent.mergedOutputSize] : [nil, recurrent.mergedOutputSize]
            case let .dense(dense):
                var weights: [PlannedWeight] = [.kernel("kernel", dense.weight)]
                if let bias = dense.bias { weights.append(.whole("bias", { bias })) }
                plans.append(LayerPlan(className: "Dense", name: uniqueName(model.layerName(index), className: "Dense"),
                                       options: [("units", dense.outputSize), ("activation", try activationName(dense.activation, layer: label)),
                                                 ("use_bias", dense.bias != nil)],
                                       weights: weights, inputShape: shape))
                shape[shape.count - 1] = dense.outputSize
            case let .activation(activation):
                plans.append(LayerPlan(className: "Activation", name: uniqueName(model.layerName(index), className: "Activation"),
                                       options: [("activation", try activationName(activation, layer: label))], weights: [], inputShape: shape))
            case let .readout(readout):
                try Self.fold(readout, into: &plans, label: label, refuse: refuse, uniqueName: uniqueName, shape: &shape)
            case .flatten:
                guard let steps, let width = shape.last ?? nil else {
                    throw refuse(label, "Flatten needs a fixed number of steps, and the model does not declare one")
                }
                plans.append(LayerPlan(className: "Flatten", name: uniqueName(model.layerName(index), className: "Flatten"),
                                       options: [("data_format", "channels_last")], weights: [], inputShape: shape))
                shape = [nil, steps * width]
            }
        }
        layers = plans
    }

    /// A `TextVectorization` with its vocabulary given in the config (`vocabulary=`, as
    /// `get_vocabulary()` returns it: `""`, `[UNK]`, then the tokens), which both versions
    /// reload exactly; an adapted layer's assets would be Keras 3 only.
    private static func textVectorization(_ vectorizer: TextVectorizer, name: String,
                                          version: KerasLayout.Version) -> LayerPlan {
        func orNull(_ value: Any?) -> Any { value ?? NSNull() }
        var options: [(String, Any)] = [
            ("max_tokens", orNull(vectorizer.maxTokens)), ("standardize", orNull(vectorizer.standardizeName)),
            ("split", orNull(vectorizer.splitName)), ("ngrams", NSNull()), ("output_mode", "int"),
            ("output_sequence_length", orNull(vectorizer.outputSequenceLength)), ("pad_to_max_tokens", false),
            ("sparse", false), ("ragged", false), ("vocabulary", Array(vectorizer.vocabulary)), ("idf_weights", NSNull()),
            ("encoding", "utf-8"), ("vocabulary_size", vectorizer.vocabularySize),
        ]
        // tf-keras's layer computes on strings; Keras 3 writes its default policy.
        if version == .keras2 { options.append(("dtype", "string")) }
        return LayerPlan(className: "TextVectorization", name: name, options: options, weights: [], inputShape: [nil, 1])
    }

    /// A recurrent layer (both directions, for a Bidirectional) in Keras's layout: gate
    /// blocks in Keras order, kernels transposed, biases merged as Keras keeps them.
    private static func recurrent(_ layer: RecurrentLayer, name: String, label: String, inputShape: [Int?],
                                  version: KerasLayout.Version, refuse: (String?, String) -> ModelError,
                                  activationName: (Activation, String) throws -> String) throws -> LayerPlan {
        if layer.projectionSize != nil {
            throw refuse(label, "an LSTM with a projection (proj_size) has no Keras equivalent")
        }
        if let feature = layer.featuresBeyondKerasAndPyTorch.first {
            throw refuse(label, "the layer has \(feature), which Keras cannot express")
        }
        var options: [(String, Any)] = [("units", layer.hiddenSize), ("activation", try activationName(layer.activation, label))]
        if layer.kind != .rnn {
            options.append(("recurrent_activation", try activationName(layer.recurrentActivation, label)))
        }
        let hasBias = layer.hasBias
        options.append(("use_bias", hasBias))
        options.append(("return_sequences", layer.returnSequences))
        options.append(("go_backwards", layer.goBackwards))
        if layer.kind == .gru { options.append(("reset_after", layer.gruResetRule == .afterMatmul)) }
        if layer.isBidirectional {
            // Keras's Bidirectional zeroes masked outputs exactly when it returns sequences.
            if layer.returnSequences && layer.maskedOutput == .carry {
                throw refuse(label, "a bidirectional layer that carries outputs over masked steps has no Keras equivalent (Bidirectional zeroes them)")
            }
        } else if layer.returnSequences && layer.maskedOutput == .zero {
            options.append(("zero_output_for_mask", true))
        }
        let order = KerasLayout.gateOrder(layer.kind)
        let units = layer.hiddenSize
        var weights: [PlannedWeight] = []
        for d in layer.directions {
            func keras(_ tensor: Tensor) -> Tensor { tensor.reorderingRowBlocks(from: d.gateOrder, to: order) }
            weights.append(.kernel("kernel", d.inputWeight, blocks: d.gateOrder, order: order))
            weights.append(.kernel("recurrent_kernel", d.recurrentWeight, blocks: d.gateOrder, order: order))
            guard hasBias else { continue }
            weights.append(.whole("bias", {
                let zeros = Tensor(uncheckedZeros: [order.count * units])
                return KerasLayout.storedBias(input: keras(d.inputBias ?? zeros), recurrent: keras(d.recurrentBias ?? zeros),
                                              rule: layer.biasRule)
            }))
        }
        let cellClass = KerasLayout.className(of: layer.kind)
        if layer.isBidirectional {
            if layer.goBackwards { throw refuse(label, "go_backwards on a bidirectional layer has no Keras equivalent") }
            return LayerPlan(className: "Bidirectional", name: name, options: options, wrappedClass: cellClass,
                             mergeMode: layer.merge.rawValue, weights: weights, inputShape: inputShape)
        }
        return LayerPlan(className: cellClass, name: name, options: options, weights: weights, inputShape: inputShape)
    }

    /// Readouts become Keras layers: pooling, or `return_sequences=False` on the recurrent
    /// layer just before (its output after the last step is the last valid output).
    private static func fold(_ readout: Readout, into plans: inout [LayerPlan], label: String,
                             refuse: (String?, String) -> ModelError, uniqueName: (String?, String) -> String,
                             shape: inout [Int?]) throws {
        switch readout {
        case .meanOverValidSteps:
            plans.append(LayerPlan(className: "GlobalAveragePooling1D", name: uniqueName(nil, "GlobalAveragePooling1D"),
                                   options: [("data_format", "channels_last"), ("keepdims", false)], weights: [], inputShape: shape))
            shape = [nil, shape.last ?? nil]
            return
        case .maxOverAllSteps:
            plans.append(LayerPlan(className: "GlobalMaxPooling1D", name: uniqueName(nil, "GlobalMaxPooling1D"),
                                   options: [("data_format", "channels_last"), ("keepdims", false)], weights: [], inputShape: shape))
            shape = [nil, shape.last ?? nil]
            return
        case .maxOverValidSteps:
            throw refuse(label, "the maximum over valid steps has no Keras layer (GlobalMaxPooling1D ignores the mask)")
        case .lastHidden, .lastHiddenAllDirections, .lastValidStep:
            break
        }
        guard var last = plans.last, last.className == "Bidirectional" || KerasLayout.isRecurrentClass(last.className),
              last.options.first(where: { $0.0 == "return_sequences" })?.1 as? Bool == true else {
            throw refuse(label, "readout \(readout.rawValue) must follow a recurrent layer that returns sequences")
        }
        if last.className == "Bidirectional" {
            guard readout == .lastHiddenAllDirections, last.mergeMode == "concat" else {
                throw refuse(label, "readout \(readout.rawValue) of a bidirectional layer has no Keras equivalent (Keras gives both directions' final states, concatenated)")
            }
        } else if readout == .lastValidStep, last.options.first(where: { $0.0 == "go_backwards" })?.1 as? Bool == true {
            throw refuse(label, "the output at the last valid step of a go_backwards layer has no Keras equivalent")
        }
        last.options = last.options.filter { $0.0 != "return_sequences" && $0.0 != "zero_output_for_mask" } + [("return_sequences", false)]
        plans[plans.count - 1] = last
        shape = [nil, shape.last ?? nil]
    }

    /// Keras's name for an activation in `version`, or nil when it has none.
    static func activationName(_ activation: Activation, version: KerasLayout.Version) -> String? {
        ActivationNames.keras(version).name(activation)
    }

}

/// Hands out layer and module names that are unique and valid identifiers in both
/// frameworks (letters, digits, underscores; `name_1`, `name_2` for repeats).
struct LayerNames {
    private var used = Set<String>()

    mutating func unique(_ preferred: String) -> String {
        // No leading '_': nn.Module takes such names for private attributes and Keras refuses them
        // as scope names (an ONNX node's "/rnn/LSTM" would become "_rnn_LSTM").
        let cleaned = String(preferred.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" }.drop { $0 == "_" })
        let base = cleaned.first?.isNumber ?? true ? "layer_" + cleaned : cleaned
        var name = base
        var counter = 0
        while used.contains(name) {
            counter += 1
            name = "\(base)_\(counter)"
        }
        used.insert(name)
        return name
    }
}
