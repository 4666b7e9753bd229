import Foundation

/// A `model_config` as the reader and the Python emitter use it: the modules of a decoded
/// `ModelConfigDocument` (the schema, spec/pytorch-layout.md) with defaults applied and
/// names resolved to the neutral model's values.
struct PyTorchModelConfig {
    enum Module {
        /// Texts → token ids by the document's rules (version 3), `standardize` and `split`
        /// resolved (never nil); `index` is the module's place.
        case textVectorization(ModelConfigDocument.TextVectorization, index: Int)
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

    var document: ModelConfigDocument
    /// Before every parameter key: the document's `prefix`, and when the reader finds the
    /// keys under a wrapper's prefix the document does not state, that too (`ModuleSelection`).
    var prefix: String
    var modules: [Module]

    /// The key prefix of every module with parameters (`<prefix><name>.`), in order: the
    /// keys the model reads are the ones directly under these.
    var moduleKeyPrefixes: [String] {
        modules.compactMap { $0.parameterName.map { prefix + $0 + "." } }
    }

    /// How errors name module `index` (and layer `layer` of a stacked recurrent module): its
    /// name and type, `rnn (LSTM, layer 1)`, or for a module without a name its place,
    /// `modules[2] (Readout)`.
    func label(_ index: Int, layer: Int? = nil) -> String {
        let module = document.modules[index]
        let place = layer.map { ", layer \($0)" } ?? ""
        if let name = modules[index].parameterName { return "\(name) (\(module.type)\(place))" }
        return "modules[\(index)] (\(module.type)\(place))"
    }

    /// Decodes the `model_config` attribute `json` of `file`, refusing it with the field's
    /// path (`modules[2].hidden_size: expected an integer, found a string`).
    init(json: String, file: String) throws {
        self.init(document: try Self.decode(json, file: file))
    }

    /// The document `json`, checked against `Limits` before it is parsed and decoded strictly.
    static func decode(_ json: String, file: String) throws -> ModelConfigDocument {
        func fail(_ message: String) -> ModelError {
            ModelError(file: file, path: "model_config", message: message)
        }
        // Bounded before parsing (parsing is the costly part of a hostile config), then read
        // strictly: a key given twice is refused with its path.
        let root = try StrictJSON.object(json, fail: fail)
        do {
            return try StrictJSONDecoder.decode(ModelConfigDocument.self, from: root)
        } catch let failure as StrictJSONDecoder.Failure {
            throw fail(failure.description)
        }
    }

    init(document: ModelConfigDocument) {
        self.document = document
        prefix = document.prefix ?? ""
        modules = document.modules.enumerated().map { Self.resolve($0.element, index: $0.offset) }
    }

    /// One module with the schema's defaults applied.
    private static func resolve(_ module: ModelConfigDocument.Module, index: Int) -> Module {
        switch module {
        case .textVectorization(var vectorization):
            vectorization.standardize = vectorization.standardizeName
            vectorization.split = vectorization.splitName
            return .textVectorization(vectorization, index: index)
        case .embedding(let embedding):
            return .embedding(name: embedding.name, count: embedding.numEmbeddings, dimension: embedding.embeddingDim,
                              maskZero: embedding.maskZero ?? false, paddingIndex: embedding.paddingIdx)
        case .masking(let masking):
            return .masking(value: Float(masking.maskValue ?? 0))
        case .flatten(let flatten):
            return .flatten(steps: flatten.steps)
        case .recurrent(let recurrent):
            var options = PyTorchReader.RecurrentOptions(name: recurrent.name)
            options.kind = recurrent.kind
            options.inputSize = recurrent.inputSize
            options.hiddenSize = recurrent.hiddenSize
            options.numLayers = recurrent.numLayers ?? 1
            options.bidirectional = recurrent.bidirectional ?? false
            options.bias = recurrent.bias ?? true
            options.projectionSize = recurrent.projSize ?? 0
            options.nonlinearity = recurrent.nonlinearity ?? recurrent.activation ?? .tanh
            options.recurrentActivation = recurrent.recurrentActivation ?? .sigmoid
            options.merge = recurrent.mergeMode ?? .concat
            options.returnSequences = recurrent.returnSequences ?? true
            options.goBackwards = recurrent.goBackwards ?? false
            options.maskedOutput = recurrent.maskedOutput ?? .zero
            return .recurrent(options)
        case .linear(let linear):
            return .linear(name: linear.name, inFeatures: linear.inFeatures, outFeatures: linear.outFeatures,
                           bias: linear.bias ?? true)
        case .activation(let activation):
            return .activation(type: activation.type, activation.activation)
        case .readout(let readout):
            return .readout(readout.mode, text: readout.name)
        case .identity(let identity):
            return .identity(type: identity.kind.rawValue)
        }
    }
}

extension PyTorchModelConfig.Module {
    /// The name a module's parameter keys start with; nil for a module without parameters.
    var parameterName: String? {
        switch self {
        case let .embedding(name, _, _, _, _): return name
        case let .recurrent(options): return options.name
        case let .linear(name, _, _, _): return name
        case .textVectorization, .masking, .flatten, .activation, .readout, .identity: return nil
        }
    }
}
