import Foundation
import HDF5

/// Writes a neutral model in the PyTorch layout: a `state_dict` with flat dotted keys and a
/// version-2 `model_config` (spec/pytorch-layout.md), one module per layer, named by the
/// source's layer names. Keras → PyTorch rules (spec/conversion.md): LSTM `bias_ih = bias`,
/// `bias_hh = 0`; GRU blocks z, r, h → r, z, n with bias rows → `bias_ih` / `bias_hh`.
enum PyTorchWriter {
    struct Plan {
        /// The `model_config` modules, one per layer (activations after a Dense as their own module).
        var modules: [ModelConfigDocument.Module] = []
        /// Each tensor is made when written, so a conversion holds one at a time.
        var tensors: [(key: String, make: () -> Tensor)] = []

        /// The `model_config` document written into the file.
        var document: ModelConfigDocument { ModelConfigDocument(modules: modules) }
    }

    static func plan(_ model: Model, file: String) throws -> Plan {
        func refuse(_ layer: String?, _ message: String) -> ModelError {
            ModelError(file: file, layer: layer, message: "cannot be converted to PyTorch: \(message)")
        }
        var plan = Plan()
        var names = LayerNames()
        func uniqueName(_ preferred: String?, fallback: String) -> String {
            names.unique(preferred ?? fallback)
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

    /// One recurrent layer as a single-layer nn.RNN / nn.LSTM / nn.GRU.
    private static func recurrentModule(_ layer: RecurrentLayer, name: String, label: String,
                                        refuse: (String?, String) -> ModelError) throws -> (ModelConfigDocument.Module, [(key: String, make: () -> Tensor)]) {
        let type = PyTorchLayout.moduleType(layer.kind)
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
        let hasBias = layer.hasBias
        var module = ModelConfigDocument.Recurrent(kind: layer.kind, name: name, inputSize: layer.inputSize,
                                                   hiddenSize: layer.hiddenSize)
        module.numLayers = 1
        module.bidirectional = layer.isBidirectional
        module.bias = hasBias
        if layer.kind == .rnn { module.nonlinearity = layer.activation }
        module.projSize = layer.projectionSize
        if layer.merge != .concat { module.mergeMode = layer.merge }
        if !layer.returnSequences { module.returnSequences = false }
        if layer.goBackwards { module.goBackwards = true }
        if layer.maskedOutput == .carry && layer.returnSequences { module.maskedOutput = .carry }
        let order = PyTorchLayout.gateOrder(layer.kind)
        var tensors: [(key: String, make: () -> Tensor)] = []
        for (d, direction) in layer.directions.enumerated() {
            func pytorch(_ tensor: Tensor) -> Tensor { tensor.reorderingRowBlocks(from: direction.gateOrder, to: order) }
            let suffix = "_l0" + (d == 1 ? "_reverse" : "")
            tensors.append(("\(name).weight_ih\(suffix)", { pytorch(direction.inputWeight) }))
            tensors.append(("\(name).weight_hh\(suffix)", { pytorch(direction.recurrentWeight) }))
            if hasBias {
                let zeros = Tensor(uncheckedZeros: [order.count * layer.hiddenSize])
                tensors.append(("\(name).bias_ih\(suffix)", { pytorch(direction.inputBias ?? zeros) }))
                tensors.append(("\(name).bias_hh\(suffix)", { pytorch(direction.recurrentBias ?? zeros) }))
            }
            if let projection = direction.projection { tensors.append(("\(name).weight_hr\(suffix)", { projection })) }
        }
        return (.recurrent(module), tensors)
    }

    static func write(_ plan: Plan, to path: String) throws {
        let root = try HDF5File.create(path).root
        for (key, make) in plan.tensors {
            let tensor = make()
            try root.write(key, floats: tensor.values, shape: tensor.shape)
        }
        try root.setAttribute("model_config", .string(try plan.document.json()))
    }
}
