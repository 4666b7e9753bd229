import Foundation

/// The `model_config` attribute of a PyTorch-layout file: an ordered list of modules.
/// Schema in spec/pytorch-layout.md. Unknown types and fields are errors naming them.
struct PyTorchModelConfig {
    enum Module {
        case embedding(name: String, count: Int, dimension: Int, maskZero: Bool, paddingIndex: Int?)
        case masking(value: Float)
        /// `steps`: the fixed number of time steps a Flatten needs, when the source declared it.
        case flatten(steps: Int?)
        case recurrent(PyTorchReader.RecurrentOptions)
        case linear(name: String, inFeatures: Int, outFeatures: Int, bias: Bool)
        case activation(type: String, Activation)
        case readout(Readout, text: String)
        /// Modules with no effect at inference (Identity, Dropout).
        case identity(type: String)
    }

    var prefix: String
    var modules: [Module]

    static let format = "recurrentkit.pytorch"

    /// Activation modules by PyTorch class name.
    static let activations: [String: Activation] = [
        "ReLU": .relu, "Tanh": .tanh, "Sigmoid": .sigmoid, "Softmax": .softmax, "ELU": .elu,
        "SELU": .selu, "Softplus": .softplus, "Softsign": .softsign, "SiLU": .swish,
        "Hardsigmoid": .hardSigmoid,
    ]

    static let readouts: [String: Readout] = [
        "last_hidden": .lastHidden, "last_hidden_all_directions": .lastHiddenAllDirections,
        "mean": .meanOverValidSteps, "max": .maxOverValidSteps, "last_step": .lastValidStep,
        "max_all": .maxOverAllSteps,
    ]

    static let mergeModes: [String: MergeMode] = ["concat": .concat, "sum": .sum, "mul": .mul, "ave": .ave]

    /// Activation names a recurrent module's `activation` / `recurrent_activation` may take.
    static let recurrentActivations: [String: Activation] = [
        "tanh": .tanh, "relu": .relu, "sigmoid": .sigmoid, "linear": .linear,
        "hard_sigmoid": .hardSigmoid, "hard_sigmoid_keras2": .hardSigmoidKeras2, "softsign": .softsign,
        "elu": .elu, "selu": .selu, "softplus": .softplus, "swish": .swish, "gelu": .gelu,
    ]

    init(json: String, file: String) throws {
        func fail(_ message: String) -> ModelError {
            ModelError(file: file, path: "model_config", message: message)
        }
        // Size and item count before parsing: parsing is the costly part of a hostile config.
        if let refusal = Limits.checkJSONSize(json) { throw fail(refusal) }
        guard let data = json.data(using: .utf8),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw fail("is not a JSON object")
        }
        let rootFields = Fields(root, context: "model_config", fail: fail)
        try rootFields.allow(["format", "version", "modules", "prefix"])
        if let format = try rootFields.string("format"), format != Self.format {
            throw fail("format is '\(shown(format))', expected '\(Self.format)'")
        }
        if let version = try rootFields.int("version"), !(1...2).contains(version) {
            throw fail("version \(version) is not supported (this build reads versions 1 and 2)")
        }
        prefix = try rootFields.string("prefix") ?? ""
        guard let list = root["modules"] as? [Any] else { throw fail("needs a 'modules' array") }
        // Counted before any per-module work.
        guard list.count <= Limits.layers else {
            throw fail("lists \(list.count) modules, \(Limits.excess(list.count, over: Limits.layers)) (Limits.layers)")
        }
        modules = try list.enumerated().map { index, item in
            guard let object = item as? [String: Any] else { throw fail("modules[\(index)] is not an object") }
            return try Self.module(object, index: index, fail: fail)
        }
    }

    private static func module(_ object: [String: Any], index: Int, fail: @escaping (String) -> ModelError) throws -> Module {
        guard let type = object["type"] as? String else { throw fail("modules[\(index)] has no 'type'") }
        let fields = Fields(object, context: "modules[\(index)] (\(shown(type)))", fail: fail)
        func name() throws -> String {
            guard let name = try fields.string("name"), !name.isEmpty else {
                throw fail("modules[\(index)] (\(shown(type))) needs a 'name' (its parameters' key prefix)")
            }
            guard name.unicodeScalars.count <= Limits.nameCharacters else {
                throw fail("modules[\(index)].name has \(name.unicodeScalars.count) characters, \(Limits.excess(name.unicodeScalars.count, over: Limits.nameCharacters)) (Limits.nameCharacters)")
            }
            return name
        }
        switch type {
        case "Embedding":
            try fields.allow(["type", "name", "num_embeddings", "embedding_dim", "padding_idx", "mask_zero"])
            return .embedding(name: try name(), count: try fields.require(fields.int("num_embeddings"), "num_embeddings"),
                              dimension: try fields.require(fields.int("embedding_dim"), "embedding_dim"),
                              maskZero: try fields.bool("mask_zero") ?? false,
                              paddingIndex: try fields.int("padding_idx"))
        case "Masking":
            try fields.allow(["type", "name", "mask_value"])
            return .masking(value: Float(try fields.number("mask_value") ?? 0))
        case "Flatten":
            try fields.allow(["type", "name", "steps"])
            return .flatten(steps: try fields.int("steps"))
        case "RNN", "LSTM", "GRU":
            var allowed = ["type", "name", "input_size", "hidden_size", "num_layers", "bidirectional", "bias",
                           "batch_first", "dropout", "merge_mode", "return_sequences", "go_backwards", "masked_output",
                           "recurrent_activation"]
            if type != "RNN" { allowed.append("activation") }
            if type == "RNN" { allowed.append("nonlinearity") }
            if type == "LSTM" { allowed.append("proj_size") }
            try fields.allow(allowed)
            if let batchFirst = try fields.bool("batch_first"), !batchFirst {
                throw fail("modules[\(index)] (\(type)): batch_first false is not supported; inputs are batch-first")
            }
            var options = PyTorchReader.RecurrentOptions(name: try name())
            options.kind = type == "RNN" ? .rnn : type == "LSTM" ? .lstm : .gru
            options.inputSize = try fields.require(fields.int("input_size"), "input_size")
            options.hiddenSize = try fields.require(fields.int("hidden_size"), "hidden_size")
            options.numLayers = try fields.int("num_layers") ?? 1
            options.bidirectional = try fields.bool("bidirectional") ?? false
            options.bias = try fields.bool("bias") ?? true
            options.projectionSize = try fields.int("proj_size") ?? 0
            switch try fields.string("nonlinearity") ?? "tanh" {
            case "tanh": options.nonlinearity = .tanh
            case "relu": options.nonlinearity = .relu
            case let other: throw fail("modules[\(index)] (RNN): nonlinearity '\(shown(other))' is not tanh or relu")
            }
            func activation(_ key: String) throws -> Activation? {
                guard let text = try fields.string(key) else { return nil }
                guard let value = recurrentActivations[text] else {
                    throw fail("modules[\(index)] (\(type)): \(key) '\(shown(text))' is not one of \(recurrentActivations.keys.sorted().joined(separator: ", "))")
                }
                return value
            }
            if let value = try activation("activation") { options.nonlinearity = value }
            options.recurrentActivation = try activation("recurrent_activation") ?? .sigmoid
            if let text = try fields.string("merge_mode") {
                guard let merge = mergeModes[text] else {
                    throw fail("modules[\(index)] (\(type)): merge_mode '\(shown(text))' is not concat, sum, mul or ave")
                }
                options.merge = merge
            }
            options.returnSequences = try fields.bool("return_sequences") ?? true
            options.goBackwards = try fields.bool("go_backwards") ?? false
            switch try fields.string("masked_output") ?? "zero" {
            case "zero": options.maskedOutput = .zero
            case "carry": options.maskedOutput = .carry
            case let other: throw fail("modules[\(index)] (\(type)): masked_output '\(shown(other))' is not zero or carry")
            }
            return .recurrent(options)
        case "Linear":
            try fields.allow(["type", "name", "in_features", "out_features", "bias"])
            return .linear(name: try name(), inFeatures: try fields.require(fields.int("in_features"), "in_features"),
                           outFeatures: try fields.require(fields.int("out_features"), "out_features"),
                           bias: try fields.bool("bias") ?? true)
        case "Readout":
            try fields.allow(["type", "mode"])
            let mode = try fields.require(fields.string("mode"), "mode")
            guard let readout = readouts[mode] else {
                throw fail("modules[\(index)] (Readout): mode '\(shown(mode))' is not one of \(readouts.keys.sorted().joined(separator: ", "))")
            }
            return .readout(readout, text: mode)
        case "GELU":
            try fields.allow(["type", "approximate"])
            switch try fields.string("approximate") ?? "none" {
            case "none": return .activation(type: type, .gelu)
            case "tanh": return .activation(type: type, .geluTanh)
            case let other: throw fail("modules[\(index)] (GELU): approximate '\(shown(other))' is not none or tanh")
            }
        case "Softmax":
            try fields.allow(["type", "dim"])
            if let dim = try fields.int("dim"), dim != -1 {
                throw fail("modules[\(index)] (Softmax): only dim -1 (the last axis) is supported, got \(dim)")
            }
            return .activation(type: type, .softmax)
        case "Identity", "Dropout":
            try fields.allow(["type", "p", "name"])
            return .identity(type: type)
        default:
            if let activation = activations[type] {
                try fields.allow(["type", "name"])
                return .activation(type: type, activation)
            }
            throw fail("modules[\(index)]: module type '\(shown(type))' is not supported")
        }
    }

    /// Typed access to a JSON object's fields, with errors that name the field.
    private struct Fields {
        let object: [String: Any]
        let context: String
        let fail: (String) -> ModelError

        init(_ object: [String: Any], context: String, fail: @escaping (String) -> ModelError) {
            self.object = object
            self.context = context
            self.fail = fail
        }

        func allow(_ names: [String]) throws {
            if let unknown = object.keys.sorted().first(where: { !names.contains($0) }) {
                throw fail("\(context): unknown field '\(shown(unknown))'")
            }
        }

        func string(_ key: String) throws -> String? {
            guard let value = object[key], !(value is NSNull) else { return nil }
            guard let text = value as? String else { throw fail("\(context): '\(key)' must be a string") }
            return text
        }

        /// An integer field, exactly (`4.7`, `1e308` and `2^64+4` are refused, never rounded
        /// or wrapped), at most `Limits.dimension` in size; only `dim` and `padding_idx` may be
        /// negative.
        func int(_ key: String) throws -> Int? {
            guard let value = object[key], !(value is NSNull) else { return nil }
            let signed = key == "dim" || key == "padding_idx"
            guard let number = value as? NSNumber, !isBool(number),
                  let int = Int(exactly: number.doubleValue), int >= 0 || signed else {
                throw fail("\(context): '\(key)' must be a non-negative integer")
            }
            guard int.magnitude <= Limits.dimension else {
                throw fail("\(context): '\(key)' is \(int), \(Limits.excess(Int(int.magnitude), over: Limits.dimension)) (Limits.dimension)")
            }
            return int
        }

        func number(_ key: String) throws -> Double? {
            guard let value = object[key], !(value is NSNull) else { return nil }
            guard let number = value as? NSNumber, !isBool(number) else {
                throw fail("\(context): '\(key)' must be a number")
            }
            return number.doubleValue
        }

        func bool(_ key: String) throws -> Bool? {
            guard let value = object[key], !(value is NSNull) else { return nil }
            guard let number = value as? NSNumber, isBool(number) else {
                throw fail("\(context): '\(key)' must be true or false")
            }
            return number.boolValue
        }

        func require<T>(_ value: T?, _ key: String) throws -> T {
            guard let value else { throw fail("\(context): missing '\(key)'") }
            return value
        }

        private func isBool(_ number: NSNumber) -> Bool {
            // JSONSerialization gives NSNumber for both (and `is Bool` holds for 0 and 1);
            // only true and false report the Objective-C type "c".
            String(cString: number.objCType) == "c"
        }
    }
}
