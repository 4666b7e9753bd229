import Foundation
import HDF5

/// The file layouts RecurrentKit reads.
public enum Layout: String, Sendable, Codable {
    case pytorch = "pytorch"
    case keras2H5 = "keras2-h5"
    case keras3H5 = "keras3-h5"
    case kerasWeights = "keras-weights-h5"
    case kerasArchive = "keras3-archive"

    public var title: String {
        switch self {
        case .pytorch: return "PyTorch state_dict (HDF5)"
        case .keras2H5: return "Keras 2 / tf-keras full model (HDF5)"
        case .keras3H5: return "Keras 3 full model (legacy HDF5)"
        case .kerasWeights: return "Keras weights only (HDF5)"
        case .kerasArchive: return "Keras 3 archive (.keras)"
        }
    }
}

/// One layer or module as the file describes it, for `inspect`.
public struct LayerSummary: Sendable {
    public var name: String
    public var type: String
    /// Ordered `(option, value)` pairs: sizes and flags as the framework names them.
    public var details: [(String, String)]
    /// The gate order of the file's layout, for recurrent layers.
    public var gateOrder: [Gate]?
    public var parameterCount: Int
}

/// What a run of a loaded model produced.
public struct ModelOutputs: Sendable {
    /// `[batch, time, features]` or `[batch, features]`.
    public var output: Tensor
    /// Final hidden states `[layers × directions, batch, hidden_out]`, for bare recurrent
    /// modules (PyTorch's `h_n`).
    public var hN: Tensor?
    /// Final cell states `[layers × directions, batch, hidden]`, for bare LSTMs (`c_n`).
    public var cN: Tensor?
}

/// A model read from a file, ready to run.
///
/// ```swift
/// let model = try LoadedModel(contentsOf: "lstm.h5")
/// let result = try model.run(.features(x), lengths: [5, 3])
/// ```
public struct LoadedModel: Sendable {
    public let file: String
    public let layout: Layout
    /// The framework-neutral model.
    public let model: Model
    /// True for a file that is one nn.RNN / nn.LSTM / nn.GRU: its runs also yield `h_n`
    /// (and `c_n`), and initial states may be given.
    public let isBareRecurrentModule: Bool
    public let summaries: [LayerSummary]
    /// On-disk element types of the weights.
    public let storedTypes: [String]
    public let compressed: Bool
    /// The model class a Keras config names (`Sequential`, `Functional`); nil for PyTorch.
    public let modelClass: String?
    /// The Keras major version whose semantics the model carries (2 or 3); nil for PyTorch.
    public let kerasVersion: Int?
    private var engineCache = EngineCache()

    init(file: String, layout: Layout, model: Model, isBareRecurrentModule: Bool, summaries: [LayerSummary],
         storedTypes: [String], compressed: Bool, modelClass: String? = nil, kerasVersion: Int? = nil) throws {
        self.modelClass = modelClass
        self.kerasVersion = kerasVersion
        self.file = file
        self.layout = layout
        self.model = model
        self.isBareRecurrentModule = isBareRecurrentModule
        self.summaries = summaries
        self.storedTypes = storedTypes
        self.compressed = compressed
    }

    /// The engine that runs the model, prepared on first use (reading a model for
    /// `inspect` or `convert` never pays for it) and then kept.
    public var engine: Engine {
        get throws {
            try engineCache.engine {
                do {
                    return try Engine(model: model)
                } catch let error as EngineError {
                    throw ModelError(file: file, message: error.description)
                }
            }
        }
    }

    /// Reads a model file, choosing the reader from the file's content, never its name.
    ///
    /// - Parameter architecture: for a Keras weights-only file, the model it belongs to: a
    ///   Keras full model (`.h5`, `.keras`) or a config JSON (`model.to_json()`).
    public init(contentsOf path: String, architecture: String? = nil) throws {
        try InputFiles.requireRegularFile(path)
        if KerasFile.isZip(path) {
            self = try KerasFile.readArchive(path)
            return
        }
        // The container (HDF5), then the layout its content names.
        let container = HDF5Container(try HDF5File.open(path))
        if try KerasFile.isKeras(container) {
            self = try KerasFile.read(container, architecture: architecture.map(KerasFile.Architecture.init(contentsOf:)))
        } else {
            self = try PyTorchReader.read(container)
        }
    }

    /// Total number of weights.
    public var parameterCount: Int { summaries.reduce(0) { $0 + $1.parameterCount } }

    /// The recurrent layers in model order.
    public var recurrentLayers: [RecurrentLayer] {
        model.layers.compactMap { if case let .recurrent(layer) = $0 { return layer } else { return nil } }
    }

    /// Runs the model.
    ///
    /// - Parameters:
    ///   - input: float features `[batch, time, features]`, or token ids `[batch, time]`
    ///     for a model that starts with an embedding.
    ///   - lengths: valid steps per sequence (`[batch]`), right padding after them.
    ///   - h0: initial hidden states `[layers × directions, batch, hidden_out]` (bare modules).
    ///   - c0: initial cell states `[layers × directions, batch, hidden]` (bare LSTMs).
    ///   - threads: threads the engine may use (`Engine.run(_:lengths:initialStates:threads:)`);
    ///     the outputs are the same, bit for bit, for every count.
    public func run(_ input: ModelInput, lengths: [Int]? = nil, h0: Tensor? = nil, c0: Tensor? = nil,
                    threads: Int = 1) throws -> ModelOutputs {
        let result: RunResult
        do {
            // Sizes from the input file are checked before any state or output is made.
            try engine.checkRunSize(batch: input.batch, time: input.time)
            let states = try initialStates(h0: h0, c0: c0, batch: input.batch)
            result = try engine.run(input, lengths: lengths, initialStates: states, threads: threads)
        } catch let error as EngineError {
            throw ModelError(file: file, message: error.description)
        }
        guard isBareRecurrentModule else { return ModelOutputs(output: result.output) }
        return ModelOutputs(output: result.output,
                            hN: stack(result.finalStates.map(\.h)),
                            cN: result.finalStates.allSatisfy({ $0.c != nil }) ? stack(result.finalStates.compactMap(\.c)) : nil)
    }

    /// Splits PyTorch-shaped `h0`/`c0` (`[L·D, B, ·]`) into one state per layer.
    func initialStates(h0: Tensor?, c0: Tensor?, batch: Int) throws -> [RecurrentState]? {
        guard h0 != nil || c0 != nil else { return nil }
        guard isBareRecurrentModule else {
            throw ModelError(file: file, message: "initial states can only be given to a bare recurrent module")
        }
        let layers = recurrentLayers
        let directions = layers.first?.directions.count ?? 1
        let isLSTM = layers.first?.kind == .lstm
        if c0 != nil && !isLSTM {
            throw ModelError(file: file, path: "c0", message: "only an LSTM has a cell state")
        }
        func split(_ tensor: Tensor?, name: String, width: Int) throws -> [Tensor?] {
            guard let tensor else { return Array(repeating: nil, count: layers.count) }
            let expected = [layers.count * directions, batch, width]
            guard tensor.shape == expected else {
                throw ModelError(file: file, path: name,
                                 message: "has shape \(shapeText(tensor.shape)), expected \(shapeText(expected))")
            }
            let block = directions * batch * width
            return (0..<layers.count).map { k in
                Tensor(shape: [directions, batch, width], values: Array(tensor.values[k * block ..< (k + 1) * block]))
            }
        }
        let hs = try split(h0, name: "h0", width: layers.first?.outputSize ?? 0)
        let cs = try split(c0, name: "c0", width: layers.first?.hiddenSize ?? 0)
        return zip(layers, zip(hs, cs)).map { layer, pair in
            RecurrentState(h: pair.0 ?? Tensor(zeros: [directions, batch, layer.outputSize]),
                           c: layer.kind == .lstm ? (pair.1 ?? Tensor(zeros: [directions, batch, layer.hiddenSize])) : nil)
        }
    }

    private func stack(_ tensors: [Tensor]) -> Tensor? {
        guard let first = tensors.first else { return nil }
        let rows = tensors.reduce(0) { $0 + $1.shape[0] }
        return Tensor(shape: [rows] + first.shape.dropFirst(), values: tensors.flatMap(\.values))
    }
}

extension ModelInput {
    var batch: Int {
        switch self {
        case let .features(tensor): return tensor.shape.first ?? 0
        case let .tokens(_, batch, _): return batch
        }
    }

    /// Steps per sequence, nil for `[batch, features]` data.
    var time: Int? {
        switch self {
        case let .features(tensor): return tensor.shape.count == 3 ? tensor.shape[1] : nil
        case let .tokens(_, _, time): return time
        }
    }
}

/// Builds an engine once, on first use, from any thread.
private final class EngineCache: @unchecked Sendable {
    private let lock = NSLock()
    private var cached: Engine?

    func engine(_ make: () throws -> Engine) throws -> Engine {
        lock.lock()
        defer { lock.unlock() }
        if let cached { return cached }
        let engine = try make()
        cached = engine
        return engine
    }
}
