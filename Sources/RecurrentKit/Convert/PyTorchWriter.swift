import Foundation
import HDF5

/// Writes a neutral model in the PyTorch layout: a `state_dict` with flat dotted keys and a
/// version-2 `model_config` (spec/pytorch-layout.md); the format the output's extension chooses
/// stores it (`Formats/TorchSave`, `Formats/Safetensors`, `Formats/PyTorchHDF5`).
///
/// A PyTorch source keeps its own module structure and keys, so the file loads into the
/// user's original module: a bare module's keys as they were (`weight_ih_l1` of one
/// 2-layer `nn.LSTM`, no `model_config`), a whole model's `model_config` modules and names.
/// Any other source gets one module per layer, named by the source's layer names. Keras →
/// PyTorch rules (spec/conversion.md): LSTM `bias_ih = bias`, `bias_hh = 0`; GRU blocks
/// z, r, h → r, z, n with bias rows → `bias_ih` / `bias_hh`.
enum PyTorchWriter {
    struct Plan {
        /// The `model_config` modules (activations after a Dense as their own module); empty
        /// for a bare module, which is written without a `model_config`.
        var modules: [ModelConfigDocument.Module] = []
        /// The `model_config`'s key prefix and version (a PyTorch source's own).
        var prefix: String?
        var version = ModelConfigDocument.currentVersion
        /// The document's `lengths`: `"keras_mask"` for a model that takes lengths as Keras does.
        var lengths: String?
        /// Each tensor is made when written, so a conversion to HDF5 holds one at a time.
        var tensors: [(key: String, make: () -> Tensor)] = []

        /// The `model_config` document written into the file; nil for a bare module.
        var document: ModelConfigDocument? {
            modules.isEmpty ? nil : ModelConfigDocument(version: version, prefix: prefix, lengths: lengths, modules: modules)
        }
    }

    /// The plan for `model`; `source`, for a model read from a PyTorch file, keeps that
    /// file's structure and keys.
    static func plan(_ model: Model, file: String, source: PyTorchReader.PyTorchSource? = nil) throws -> Plan {
        if let source { return try plan(model, file: file, keeping: source) }
        func refuse(_ layer: String?, _ message: String) -> ModelError {
            ModelError(file: file, layer: layer, message: "cannot be converted to PyTorch: \(message)")
        }
        var plan = Plan()
        // A Keras model takes lengths as Keras takes a caller's mask; the PyTorch model must too.
        if model.lengthsRule == .kerasCallMask { plan.lengths = "keras_mask" }
        var names = LayerNames()
        func uniqueName(_ preferred: String?, fallback: String) -> String {
            names.unique(preferred ?? fallback)
        }
        if let vectorizer = model.textVectorizer {
            plan.modules.append(.textVectorization(textVectorization(vectorizer)))
            plan.version = ModelConfigDocument.textVersion
        }
        /// An activation's torch module (`ActivationNames.pytorchModules`); none for linear.
        func activationModule(_ activation: Activation, layer: String) throws -> ModelConfigDocument.Module? {
            if activation == .linear { return nil }
            guard ModelConfigDocument.ActivationModule.type(of: activation) != nil else {
                throw refuse(layer, "\(activation.displayName) has no PyTorch module"
                             + (activation == .hardSigmoidKeras2 ? " (nn.Hardsigmoid is clip(x/6 + 0.5, 0, 1))" : ""))
            }
            return .activation(ModelConfigDocument.ActivationModule(activation, dim: activation == .softmax ? -1 : nil))
        }

        for (index, layer) in model.layers.enumerated() {
            let label = model.layerName(index) ?? "#\(index)"
            switch layer {
            case let .embedding(embedding):
                let name = uniqueName(model.layerName(index), fallback: "embedding")
                plan.modules.append(.embedding(.init(name: name, numEmbeddings: embedding.vocabularySize,
                                                     embeddingDim: embedding.dimension, paddingIdx: embedding.paddingIndex,
                                                     maskZero: embedding.maskZero ? true : nil)))
                plan.tensors.append(("\(name).weight", { embedding.table }))
            case let .masking(value):
                plan.modules.append(.masking(.init(maskValue: Double(value))))
            case let .recurrent(recurrent):
                let name = uniqueName(model.layerName(index), fallback: recurrent.kind.rawValue)
                let (module, tensors) = try recurrentModule(recurrent, name: name, label: label, refuse: refuse)
                plan.modules.append(module)
                plan.tensors += tensors
            case let .dense(dense):
                let name = uniqueName(model.layerName(index), fallback: "linear")
                plan.modules.append(.linear(.init(name: name, inFeatures: dense.inputSize, outFeatures: dense.outputSize,
                                                  bias: dense.bias != nil)))
                plan.tensors.append(("\(name).weight", { dense.weight }))
                if let bias = dense.bias { plan.tensors.append(("\(name).bias", { bias })) }
                if let module = try activationModule(dense.activation, layer: label) { plan.modules.append(module) }
            case let .activation(activation):
                if let module = try activationModule(activation, layer: label) { plan.modules.append(module) }
            case let .readout(readout):
                plan.modules.append(.readout(.init(readout)))
            case .flatten:
                plan.modules.append(.flatten(.init(steps: model.sequenceLength)))
            }
        }
        return plan
    }

    /// The vectorizer's settings and vocabulary as a `TextVectorization` module; every
    /// setting is written, defaults included.
    static func textVectorization(_ vectorizer: TextVectorizer) -> ModelConfigDocument.TextVectorization {
        ModelConfigDocument.TextVectorization(vectorizer)
    }

    /// One recurrent layer as a single-layer nn.RNN / nn.LSTM / nn.GRU.
    private static func recurrentModule(_ layer: RecurrentLayer, name: String, label: String,
                                        refuse: (String?, String) -> ModelError) throws -> (ModelConfigDocument.Module, [(key: String, make: () -> Tensor)]) {
        let type = PyTorchLayout.moduleType(layer.kind)
        if let feature = layer.featuresBeyondKerasAndPyTorch.first {
            throw refuse(label, "the layer has \(feature), which nn.\(type) cannot express")
        }
        if layer.kind == .gru && layer.gruResetRule == .beforeMatmul {
            throw refuse(label, "a GRU with reset_after=False applies the reset gate before the recurrent product, which nn.GRU cannot express")
        }
        switch layer.kind {
        case .rnn:
            guard layer.activation == .tanh || layer.activation == .relu else {
                throw refuse(label, "nn.RNN's nonlinearity is tanh or relu, not \(layer.activation.displayName)")
            }
        case .lstm, .gru:
            guard layer.activation == .tanh, layer.recurrentActivation == .sigmoid else {
                throw refuse(label, "nn.\(type) computes tanh and sigmoid; this layer uses activation \(layer.activation.displayName) and recurrent activation \(layer.recurrentActivation.displayName)")
            }
        }
        var module = ModelConfigDocument.Recurrent(kind: layer.kind, name: name, inputSize: layer.inputSize,
                                                   hiddenSize: layer.hiddenSize)
        module.numLayers = 1
        module.bidirectional = layer.isBidirectional
        module.bias = layer.hasBias
        if layer.kind == .rnn { module.nonlinearity = layer.activation }
        module.projSize = layer.projectionSize
        if layer.merge != .concat { module.mergeMode = layer.merge }
        if !layer.returnSequences { module.returnSequences = false }
        if layer.goBackwards { module.goBackwards = true }
        if layer.maskedOutput == .carry && layer.returnSequences { module.maskedOutput = .carry }
        return (.recurrent(module), recurrentTensors([layer], keyPrefix: name + "."))
    }

    /// The parameters of one nn.RNN / nn.LSTM / nn.GRU whose layers are `layers`, keyed
    /// `<keyPrefix>weight_ih_l<k>[_reverse]`, in PyTorch's gate order.
    private static func recurrentTensors(_ layers: [RecurrentLayer], keyPrefix: String) -> [(key: String, make: () -> Tensor)] {
        var tensors: [(key: String, make: () -> Tensor)] = []
        for (k, layer) in layers.enumerated() {
            let order = PyTorchLayout.gateOrder(layer.kind)
            for (d, direction) in layer.directions.enumerated() {
                func pytorch(_ tensor: Tensor) -> Tensor { tensor.reorderingRowBlocks(from: direction.gateOrder, to: order) }
                func key(_ role: PyTorchLayout.ParameterName.Role) -> String {
                    keyPrefix + PyTorchLayout.ParameterName(role: role, layer: k, reverse: d == 1).text
                }
                tensors.append((key(.weightIH), { pytorch(direction.inputWeight) }))
                tensors.append((key(.weightHH), { pytorch(direction.recurrentWeight) }))
                if layer.hasBias {
                    let zeros = Tensor(uncheckedZeros: [order.count * layer.hiddenSize])
                    tensors.append((key(.biasIH), { pytorch(direction.inputBias ?? zeros) }))
                    tensors.append((key(.biasHH), { pytorch(direction.recurrentBias ?? zeros) }))
                }
                if let projection = direction.projection { tensors.append((key(.weightHR), { projection })) }
            }
        }
        return tensors
    }

    /// A model read from a PyTorch file, written with that file's modules and keys: the
    /// source's `model_config` modules walked beside the neutral layers they produced (a
    /// recurrent module of `num_layers` L is L layers, Identity and Dropout none).
    /// True when `model`'s state_dict alone, with no `model_config`, is the model: recurrent
    /// layers of one kind stacked as one nn.LSTM / nn.GRU / nn.RNN, whose keys say everything
    /// but an nn.RNN's nonlinearity (tanh is what a bare file is read as). Call it on a model
    /// ``plan(_:file:source:)`` accepted (its activations and GRU reset rule checked).
    static func isBareModule(_ model: Model) -> Bool {
        let layers = model.layers.compactMap { if case let .recurrent(r) = $0 { return r } else { return nil } }
        guard let first = layers.first, layers.count == model.layers.count else { return false }
        return layers.allSatisfy { $0.kind == first.kind && $0.hiddenSize == first.hiddenSize && $0.directions.count == first.directions.count
            && $0.projectionSize == nil && $0.merge == .concat && $0.returnSequences && !$0.goBackwards && $0.maskedOutput == .zero
            && ($0.kind != .rnn || $0.activation == .tanh) }
    }

    private static func plan(_ model: Model, file: String, keeping source: PyTorchReader.PyTorchSource) throws -> Plan {
        func mismatch(_ what: String) -> ModelError {
            ModelError(file: file, message: "cannot keep the PyTorch structure: \(what)")
        }
        var plan = Plan()
        guard let document = source.document else {
            let layers = try model.layers.map { layer -> RecurrentLayer in
                guard case let .recurrent(recurrent) = layer else { throw mismatch("a bare module holds a non-recurrent layer") }
                return recurrent
            }
            plan.tensors = recurrentTensors(layers, keyPrefix: source.barePrefix)
            return plan
        }
        let prefix = document.prefix ?? ""
        var index = 0
        func next(_ count: Int = 1) throws -> ArraySlice<Layer> {
            guard index + count <= model.layers.count else { throw mismatch("the model_config lists more layers than the model has") }
            defer { index += count }
            return model.layers[index..<(index + count)]
        }
        for module in document.modules {
            switch module {
            case let .embedding(embedding):
                guard case let .embedding(layer)? = try next().first else { throw mismatch("\(embedding.name) is not an embedding") }
                plan.tensors.append((prefix + embedding.name + ".weight", { layer.table }))
            case let .recurrent(recurrent):
                let layers = try next(recurrent.numLayers ?? 1).map { layer -> RecurrentLayer in
                    guard case let .recurrent(layer) = layer else { throw mismatch("\(recurrent.name) is not recurrent") }
                    return layer
                }
                plan.tensors += recurrentTensors(layers, keyPrefix: prefix + recurrent.name + ".")
            case let .linear(linear):
                guard case let .dense(dense)? = try next().first else { throw mismatch("\(linear.name) is not a linear layer") }
                plan.tensors.append((prefix + linear.name + ".weight", { dense.weight }))
                if let bias = dense.bias { plan.tensors.append((prefix + linear.name + ".bias", { bias })) }
            case .masking, .flatten, .activation, .readout:
                _ = try next()
            case .identity, .textVectorization:
                break
            }
        }
        guard index == model.layers.count else { throw mismatch("the model has layers its model_config does not list") }
        plan.modules = document.modules
        plan.prefix = document.prefix
        plan.version = document.version ?? plan.version
        plan.lengths = document.lengths
        return plan
    }
}
