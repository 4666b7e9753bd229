import Foundation
import HDF5

/// Writes a neutral model in the PyTorch layout: a `state_dict` with flat dotted keys and a
/// version-2 `model_config` (spec/pytorch-layout.md), one module per layer, named by the
/// source's layer names. Keras → PyTorch rules (spec/conversion.md): LSTM `bias_ih = bias`,
/// `bias_hh = 0`; GRU blocks z, r, h → r, z, n with bias rows → `bias_ih` / `bias_hh`.
enum PyTorchWriter {
    struct Plan {
        var modules: [[String: Any]] = []
        /// Each tensor is made when written, so a conversion holds one at a time.
        var tensors: [(key: String, make: () -> Tensor)] = []
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
        func activationModule(_ activation: Activation, layer: String) throws -> [String: Any]? {
            switch activation {
            case .linear: return nil
            case .relu: return ["type": "ReLU"]
            case .tanh: return ["type": "Tanh"]
            case .sigmoid: return ["type": "Sigmoid"]
            case .softmax: return ["type": "Softmax", "dim": -1]
            case .elu: return ["type": "ELU"]
            case .selu: return ["type": "SELU"]
            case .softplus: return ["type": "Softplus"]
            case .softsign: return ["type": "Softsign"]
            case .swish: return ["type": "SiLU"]
            case .gelu: return ["type": "GELU", "approximate": "none"]
            case .geluTanh: return ["type": "GELU", "approximate": "tanh"]
            case .hardSigmoid: return ["type": "Hardsigmoid"]
            case .hardSigmoidKeras2:
                throw refuse(layer, "\(activation.displayName) has no PyTorch module (nn.Hardsigmoid is clip(x/6 + 0.5, 0, 1))")
            }
        }

        for (index, layer) in model.layers.enumerated() {
            let label = model.layerName(index) ?? "#\(index)"
            switch layer {
            case let .embedding(embedding):
                let name = uniqueName(model.layerName(index), fallback: "embedding")
                var module: [String: Any] = ["type": "Embedding", "name": name, "num_embeddings": embedding.vocabularySize,
                                             "embedding_dim": embedding.dimension]
                if embedding.maskZero { module["mask_zero"] = true }
                if let padding = embedding.paddingIndex { module["padding_idx"] = padding }
                plan.modules.append(module)
                plan.tensors.append(("\(name).weight", { embedding.table }))
            case let .masking(value):
                plan.modules.append(["type": "Masking", "mask_value": Double(value)])
            case let .recurrent(recurrent):
                let name = uniqueName(model.layerName(index), fallback: recurrent.kind.rawValue)
                let (module, tensors) = try recurrentModule(recurrent, name: name, label: label, refuse: refuse)
                plan.modules.append(module)
                plan.tensors += tensors
            case let .dense(dense):
                let name = uniqueName(model.layerName(index), fallback: "linear")
                plan.modules.append(["type": "Linear", "name": name, "in_features": dense.inputSize,
                                     "out_features": dense.outputSize, "bias": dense.bias != nil])
                plan.tensors.append(("\(name).weight", { dense.weight }))
                if let bias = dense.bias { plan.tensors.append(("\(name).bias", { bias })) }
                if let module = try activationModule(dense.activation, layer: label) { plan.modules.append(module) }
            case let .activation(activation):
                if let module = try activationModule(activation, layer: label) { plan.modules.append(module) }
            case let .readout(readout):
                plan.modules.append(["type": "Readout", "mode": readoutMode(readout)])
            case .flatten:
                var module: [String: Any] = ["type": "Flatten"]
                if let steps = model.sequenceLength { module["steps"] = steps }
                plan.modules.append(module)
            }
        }
        return plan
    }

    /// The `model_config` mode name of a readout.
    static func readoutMode(_ readout: Readout) -> String {
        PyTorchModelConfig.readouts.first { $0.value == readout }!.key
    }

    /// One recurrent layer as a single-layer nn.RNN / nn.LSTM / nn.GRU.
    private static func recurrentModule(_ layer: RecurrentLayer, name: String, label: String,
                                        refuse: (String?, String) -> ModelError) throws -> ([String: Any], [(key: String, make: () -> Tensor)]) {
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
        var module: [String: Any] = [
            "type": type, "name": name, "input_size": layer.inputSize, "hidden_size": layer.hiddenSize,
            "num_layers": 1, "bidirectional": layer.isBidirectional, "bias": hasBias,
        ]
        if layer.kind == .rnn { module["nonlinearity"] = layer.activation == .relu ? "relu" : "tanh" }
        if let projection = layer.projectionSize { module["proj_size"] = projection }
        if layer.merge != .concat { module["merge_mode"] = layer.merge.rawValue }
        if !layer.returnSequences { module["return_sequences"] = false }
        if layer.goBackwards { module["go_backwards"] = true }
        if layer.maskedOutput == .carry && layer.returnSequences { module["masked_output"] = "carry" }
        let order = PyTorchLayout.gateOrder(layer.kind)
        var tensors: [(key: String, make: () -> Tensor)] = []
        for (d, direction) in layer.directions.enumerated() {
            func pytorch(_ tensor: Tensor) -> Tensor { tensor.reorderingRowBlocks(from: direction.gateOrder, to: order) }
            let suffix = "_l0" + (d == 1 ? "_reverse" : "")
            tensors.append(("\(name).weight_ih\(suffix)", { pytorch(direction.inputWeight) }))
            tensors.append(("\(name).weight_hh\(suffix)", { pytorch(direction.recurrentWeight) }))
            if hasBias {
                let zeros = Tensor(zeros: [order.count * layer.hiddenSize])
                tensors.append(("\(name).bias_ih\(suffix)", { pytorch(direction.inputBias ?? zeros) }))
                tensors.append(("\(name).bias_hh\(suffix)", { pytorch(direction.recurrentBias ?? zeros) }))
            }
            if let projection = direction.projection { tensors.append(("\(name).weight_hr\(suffix)", { projection })) }
        }
        return (module, tensors)
    }

    static func write(_ plan: Plan, to path: String) throws {
        let root = try HDF5File.create(path).root
        for (key, make) in plan.tensors {
            let tensor = make()
            try root.write(key, floats: tensor.values, shape: tensor.shape)
        }
        try root.setAttribute("model_config", .string(try configJSON(plan)))
    }

    /// The plan's `model_config` JSON, as written into the file.
    static func configJSON(_ plan: Plan) throws -> String {
        try json(["format": PyTorchModelConfig.format, "version": 2, "modules": plan.modules])
    }
}
