import Foundation
import HDF5

/// A model read from a file, ready to run.
///
/// ```swift
/// let model = try LoadedModel(contentsOf: "lstm.h5")
/// let result = try model.run(.features(x), lengths: [5, 3])
/// ```
///
/// Every error it throws is a `ModelError` naming this file.
public struct LoadedModel: Sendable {
    /// What the format's read gave (`ModelFormat.read`).
    let reading: ModelReading
    /// The file as the caller named it.
    public var file: String { reading.file }
    public var layout: Layout { reading.layout }
    /// The framework-neutral model.
    package var model: Model { reading.model }
    /// True for a file that is one nn.RNN / nn.LSTM / nn.GRU: initial states may be given in
    /// PyTorch's stacked shape (``initialStates(h0:c0:batch:)``) and a run's final states read
    /// as `h_n` and `c_n` (`RunResult.hN`, `RunResult.cN`).
    public var isBareRecurrentModule: Bool { reading.isBareRecurrentModule }
    /// Each layer or module as the file describes it.
    public var summaries: [LayerSummary] { reading.summaries }
    /// On-disk element types of the weights (`float32`, `float16 (big-endian)`).
    public var storedTypes: [String] { reading.storedTypes }
    /// True when any weight is stored compressed.
    public var compressed: Bool { reading.compressed }
    /// The model class a Keras config names (`Sequential`, `Functional`); nil for PyTorch.
    public var modelClass: String? { reading.modelClass }
    /// The Keras major version whose semantics the model carries (2 or 3); nil for PyTorch.
    public var kerasVersion: Int? { reading.kerasVersion }
    /// For a PyTorch file: its module structure and key names, which a PyTorch target keeps.
    var pytorchSource: PyTorchReader.PyTorchSource? { reading.pytorchSource }
    /// What reading the file did that its user should know, one line each: the keys of a
    /// state_dict outside the modules read, counted (`41 keys outside the model_config's
    /// modules were not read (module.FeatureExtraction.* 38, …)`), a wrapper's key prefix
    /// looked under, a weights file's Keras release that defaulted to another recurrent
    /// activation than the architecture states, weights-file layers not used. Empty when
    /// there is nothing to say. The command line prints them as `note:` lines.
    public var notes: [String] { reading.notes }
    /// How errors name each layer of `model.layers`, when the reader knows better than the
    /// layer names (a `model_config`'s module names and places); nil otherwise.
    var moduleLabels: [String?]? { reading.moduleLabels }
    private var engineCache = EngineCache()

    /// The model a format read (`ModelFormat.read`): the one place a `LoadedModel` is made.
    package init(_ reading: ModelReading) {
        self.reading = reading
    }

    /// The file's container (`layout.container`).
    public var container: ModelContainer { layout.container }
    /// The framework whose layout the file holds (`layout.framework`).
    public var framework: ModelFramework { layout.framework }
    /// What the file holds of the model: a full model, weights only, a state_dict.
    public var content: ModelContent { layout.content }

    /// The engine that runs the model, prepared on first use (reading a model for
    /// `inspect` or `convert` never pays for it) and then kept.
    package var engine: Engine {
        get throws {
            try engineCache.engine {
                // A model the engine refuses is named as the file names its layers.
                do {
                    return try engineBoundary { try Engine(model: model) }
                } catch var error as ModelError {
                    error.kind = .invalidModel
                    throw error
                }
            }
        }
    }

    /// Reads a model file, choosing the reader from the file's content, never its name.
    ///
    /// - Parameter path: the model file: HDF5 (a PyTorch state_dict, a Keras model or
    ///   weights), a `.keras` archive, a `torch.save` file (`.pt`, `.pth`; read without
    ///   running pickle) or a safetensors file.
    /// - Parameter architecture: what the weights alone do not say. For Keras weights, the
    ///   model they belong to: a Keras full model (`.h5`, `.keras`) or a config JSON
    ///   (`model.to_json()`). For a PyTorch state_dict holding a whole model, its
    ///   `model_config` JSON (spec/pytorch-layout.md). A file that carries its own (a
    ///   `.keras` archive, a full-model `.h5`, a PyTorch file with a `model_config`) is read
    ///   by its own, and refused when the one given describes another model (naming the first
    ///   difference); it is never ignored.
    /// - Parameter key: for a `torch.save` checkpoint that holds several state_dicts, the
    ///   entry to read (`model_state_dict`; nested entries as `outer/inner`).
    /// - Parameter modules: for a PyTorch state_dict without a `model_config`, the modules
    ///   to read, by key prefix (`["SequenceModeling", "Prediction"]`): one recurrent module
    ///   reads as a bare module; several are a chain applied at every step, in the order
    ///   given (under one prefix, in the file's order). Every other key is left unread and
    ///   counted in ``notes``. Keys under `module.` or `_orig_mod.` (a training wrapper's
    ///   prefix) are found whether or not the prefixes state it.
    ///
    /// Throws `ModelError` for any file that cannot be read or does not form a model.
    /// - Parameter weightsMatching: for a legacy HDF5 Keras weights-only file
    ///   (`layer_names`), how its layers are paired with the architecture's: in order, as
    ///   Keras's `load_weights` does by default, or by name (`by_name=True`). `.name` is
    ///   refused for every other file.
    public init(contentsOf path: String, architecture: String? = nil, key: String? = nil,
                modules: [String]? = nil, weightsMatching: KerasWeightsMatching = .order) throws {
        self = try ModelError.boundary(file: path, kind: .unreadableFile) {
            try LoadedModel(reading: path, architecture: architecture, key: key, modules: modules,
                            weightsMatching: weightsMatching)
        }
    }

    /// What ``init(contentsOf:architecture:key:modules:weightsMatching:)`` does, with the errors of each layer as they are.
    package init(reading path: String, architecture: String? = nil, key: String? = nil,
                 modules: [String]? = nil, weightsMatching: KerasWeightsMatching = .order) throws {
        try InputFiles.requireRegularFile(path)
        // The registry decides the format from the content, checks the options against what
        // it takes, and reads (Formats.read).
        self.init(try Formats.read(FormatSource(path: path),
                                   options: ReadOptions(architecture: architecture, key: key, modules: modules,
                                                        weightsMatching: weightsMatching)))
    }

    /// True when `path` is weights that need an architecture given beside them and carry
    /// none: Keras weights only (HDF5 without a `model_config`), or a PyTorch state_dict
    /// without a `model_config` that is not one bare recurrent module. False for every other
    /// file — one that carries its own architecture, one bare module, and one that cannot be
    /// read (reading it says why).
    package static func needsArchitecture(_ path: String, key: String? = nil) -> Bool {
        let source = FormatSource(path: path)
        guard let format = try? Formats.format(of: source) else { return false }
        return (try? format.needsArchitecture(source, key: key)) ?? false
    }

    /// A PyTorch state_dict's `architecture`: a `model_config` JSON file, bounded and
    /// decoded strictly; a Keras architecture is refused with what to pass instead.
    static func pytorchArchitecture(_ path: String?) throws -> ModelConfigDocument? {
        guard let path else { return nil }
        try InputFiles.requireRegularFile(path)
        // A JSON document, perhaps after whitespace; anything else (a Keras .h5 or .keras) is
        // refused before more than its first bytes are read.
        let head = try InputFiles.prefix(path, count: 64)
        guard head.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "{") else {
            throw ModelError(.invalidInput, file: path, message: "is not a model_config JSON document; a PyTorch state_dict's \(option: .architecture) is one (spec/pytorch-layout.md)")
        }
        let data = try InputFiles.read(path, limit: Limits.configJSONBytes, what: "Limits.configJSONBytes")
        let text = String(decoding: data, as: UTF8.self)
        // Items counted before anything parses the document (the Keras check below included).
        if let refusal = Limits.checkJSONSize(text) {
            throw ModelError(.invalidInput, file: path, path: "model_config", message: refusal)
        }
        if let object = try? StrictJSONDecoder.parse(data) as? [String: Any], object["modules"] == nil,
           object["class_name"] != nil || object["config"] != nil {
            throw ModelError(.invalidInput, file: path, message: "is a Keras model config; a PyTorch state_dict's \(option: .architecture) is a model_config document (spec/pytorch-layout.md)")
        }
        return try PyTorchModelConfig.decode(text, file: path)
    }

    /// Total number of weights.
    public var parameterCount: Int { summaries.reduce(0) { $0 + $1.parameterCount } }

    /// True for a model that starts with an embedding: it takes token ids `[batch, time]`
    /// (or, when ``takesTexts``, texts that its text vectorizer makes token ids).
    public var takesTokenIDs: Bool { model.takesTokenIDs }

    /// True for a model with a text vectorizer (Keras's `TextVectorization`): it takes
    /// texts, `ModelInput.texts(_:)`, and nothing else.
    public var takesTexts: Bool { model.takesTexts }

    /// The features per step a model that takes float features expects (the last axis of
    /// `[batch, time, features]`); nil for a model that takes token ids.
    public var inputFeatures: Int? { model.takesTokenIDs ? nil : model.inputFeatures }

    /// The recurrent layers in model order.
    package var recurrentLayers: [RecurrentLayer] {
        model.layers.compactMap { if case let .recurrent(layer) = $0 { return layer } else { return nil } }
    }

    /// Runs the model.
    ///
    /// - Parameters:
    ///   - input: float features `[batch, time, features]`, or token ids `[batch, time]`
    ///     for a model that starts with an embedding.
    ///   - lengths: valid steps per sequence (`[batch]`, each in `0...time`); step `t` of
    ///     sequence `b` counts iff `t < lengths[b]`, right padding after them (PyTorch's
    ///     packed sequences).
    ///   - initialStates: one `RecurrentState` per recurrent layer, in model order (`h`
    ///     `[directions, batch, hidden_out]`, `c` `[directions, batch, hidden]` for an LSTM);
    ///     zeros when nil. For a bare module, ``initialStates(h0:c0:batch:)`` makes them from
    ///     PyTorch's stacked `h0` and `c0`.
    ///   - threads: threads the run may use; the outputs are the same, bit for bit, for
    ///     every count.
    /// - Returns: the output and the final state of every recurrent layer, in the same
    ///   shape of type as `initialStates`.
    /// - Throws: `ModelError` (`.invalidInput`) for an input, lengths or
    ///   states that do not fit the model, naming the layer as the file does
    ///   (`bidirectional (Bidirectional(LSTM))`).
    public func run(_ input: ModelInput, lengths: [Int]? = nil, initialStates: [RecurrentState]? = nil,
                    threads: Int = 1) throws -> RunResult {
        try requireTaken(lengths: lengths, initialStates: initialStates)
        try requireFixedSizes(batch: input.batch, time: input.time)
        let engine = try engine
        return try engineBoundary {
            // Sizes from the input file are checked before any state or output is made.
            try engine.checkRunSize(batch: input.batch, time: input.time)
            return try engine.run(input, lengths: lengths, initialStates: initialStates, threads: threads)
        }
    }

    /// Refuses lengths or initial states a model's own framework could not be given (an ONNX
    /// graph without `sequence_lens` runs every step in ONNX Runtime; one without
    /// `initial_h` starts at zero): applied here, they would compute what the model never does.
    private func requireTaken(lengths: [Int]?, initialStates: [RecurrentState]?) throws {
        if lengths != nil, let why = reading.lengthsRefusal {
            throw ModelError(.invalidInput, file: file, path: "lengths", message: "are not taken by this model: \(why); run it without lengths")
        }
        if initialStates != nil, let why = reading.initialStatesRefusal {
            throw ModelError(.invalidInput, file: file, path: "initial states",
                             message: "are not taken by this model: \(why); run it without them")
        }
    }

    /// Refuses an input of another batch or time than the file fixes (an ONNX graph exported
    /// without dynamic axes: ONNX Runtime refuses other sizes, and its graph may hold the
    /// exported sizes in its reshapes and zero states).
    private func requireFixedSizes(batch: Int, time: Int?) throws {
        for (what, fixed, given) in [("batch", reading.fixedBatch, Optional(batch)), ("time", reading.fixedTime, time)] {
            if let fixed, let given, fixed != given {
                throw ModelError(.invalidInput, file: file, path: "input",
                                 message: "has \(what) \(given); this model was exported for \(what) \(fixed) only (its graph input declares it), and its own runtime refuses other sizes")
            }
        }
    }

    /// Why `lengths` given to ``run(_:lengths:initialStates:threads:)`` with `input` are not
    /// applied as given, or nil when they are (or when the model's own mask is the same). A
    /// Keras model takes lengths as `model(x, mask=mask)` takes a mask, and Keras drops that
    /// mask at an `Embedding` (which masks id 0 itself with `mask_zero=True` and masks nothing
    /// without it) and replaces it at a `Masking` layer: the run computes what Keras computes,
    /// over the steps the model's own masks allow (spec/fixture-format.md, "What /lengths
    /// means").
    public func lengthsNote(input: ModelInput, lengths: [Int]?) -> String? {
        // Lengths that do not fit the input are the run's error to report, not a note's.
        guard let lengths, let index = model.layerDroppingLengths, let time = input.time,
              lengths.count == input.batch else { return nil }
        // The mask the layer makes instead, where the input alone tells it.
        var own: ((Int, Int) -> Bool)?
        let rule: String
        switch (model.layers[index], input) {
        case let (.embedding(embedding), .tokens(ids, _, _)) where embedding.maskZero:
            rule = "masks the steps whose id is 0 itself (mask_zero=True) and ignores the mask it is given"
            own = { b, t in ids[b * time + t] != 0 }
        case (.embedding, _):
            rule = "makes no mask (mask_zero=False) and drops the mask it is given, so the model runs over every step"
            own = { _, _ in true }
        case let (.masking(value), .features(tensor)) where index == 0:
            rule = "masks the steps whose features all equal \(value) and ignores the mask it is given"
            let f = tensor.shape[2]
            own = { b, t in (0..<f).contains { tensor.values[(b * time + t) * f + $0] != value } }
        default:
            rule = "masks by its own rule and ignores the mask it is given"
        }
        if let own, lengths.enumerated().allSatisfy({ b, n in (0..<time).allSatisfy { own(b, $0) == ($0 < n) } }) {
            return nil
        }
        let label = layerLabel(index) ?? "layer \(index)"
        return "the lengths are the mask Keras's model(x, mask=...) takes, and \(label) \(rule), as in Keras: they are not applied"
    }

    /// Starts a stream: a causal model fed a long sequence chunk by chunk, carrying its
    /// state between chunks (see ``ModelStream``).
    ///
    /// - Throws: `ModelError` naming the first layer that cannot stream (a bidirectional
    ///   or backwards layer, one that returns only its last step, a readout, a flatten) as
    ///   the file names it (a Keras `Bidirectional` by its own name, not the layer it wraps),
    ///   or for initial states that do not fit.
    public func makeStream(batch: Int, initialStates: [RecurrentState]? = nil, threads: Int = 1) throws -> ModelStream {
        try requireTaken(lengths: nil, initialStates: initialStates)
        try requireFixedSizes(batch: batch, time: nil)
        let engine = try engine
        let labels = layerLabels
        return try Self.engineBoundary(file: file, labels: labels) {
            ModelStream(file: file, labels: labels,
                        session: try engine.makeStreamingSession(batch: batch, initialStates: initialStates,
                                                                 threads: threads))
        }
    }

    /// Splits PyTorch's stacked initial states of a bare recurrent module — `h0`
    /// `[layers × directions, batch, hidden_out]` and, for an LSTM, `c0`
    /// `[layers × directions, batch, hidden]` — into one `RecurrentState` per layer; a state
    /// not given is zeros. Nil when neither is given.
    ///
    /// - Throws: `ModelError` (`.invalidInput`) for a model that is not a
    ///   bare module, a `c0` for a cell without one, or a shape that does not fit.
    public func initialStates(h0: Tensor?, c0: Tensor?, batch: Int) throws -> [RecurrentState]? {
        guard h0 != nil || c0 != nil else { return nil }
        guard isBareRecurrentModule else {
            throw ModelError(.invalidInput, file: file, message: "initial states can only be given to a bare recurrent module")
        }
        let layers = recurrentLayers
        let directions = layers.first?.directions.count ?? 1
        let isLSTM = layers.first?.kind == .lstm
        if c0 != nil && !isLSTM {
            throw ModelError(.invalidInput, file: file, path: "c0", message: "only an LSTM has a cell state")
        }
        func split(_ tensor: Tensor?, name: String, width: Int) throws -> [Tensor?] {
            guard let tensor else { return Array(repeating: nil, count: layers.count) }
            let expected = [layers.count * directions, batch, width]
            guard tensor.shape == expected else {
                throw ModelError(.invalidInput, file: file, path: name,
                                 message: "has shape \(shapeText(tensor.shape)), expected \(shapeText(expected))")
            }
            let block = directions * batch * width
            return (0..<layers.count).map { k in
                Tensor(unchecked: [directions, batch, width], values: Array(tensor.values[k * block ..< (k + 1) * block]))
            }
        }
        let hs = try split(h0, name: "h0", width: layers.first?.outputSize ?? 0)
        let cs = try split(c0, name: "c0", width: layers.first?.hiddenSize ?? 0)
        return zip(layers, zip(hs, cs)).map { layer, pair in
            RecurrentState(h: pair.0 ?? Tensor(uncheckedZeros: [directions, batch, layer.outputSize]),
                           c: layer.kind == .lstm ? (pair.1 ?? Tensor(uncheckedZeros: [directions, batch, layer.hiddenSize])) : nil)
        }
    }
}

extension RunResult {
    /// PyTorch's `h_n`: every recurrent layer's final `h` stacked,
    /// `[layers × directions, batch, hidden_out]`. Nil when the model has no recurrent layer
    /// or its layers' states differ in shape (only a bare module's always stack).
    public var hN: Tensor? { Self.stacked(finalStates.map(\.h)) }

    /// PyTorch's `c_n` for an LSTM: every layer's final cell state stacked,
    /// `[layers × directions, batch, hidden]`; nil as for ``hN`` or when a layer has no cell state.
    public var cN: Tensor? {
        let cells = finalStates.compactMap(\.c)
        return cells.count == finalStates.count ? Self.stacked(cells) : nil
    }

    private static func stacked(_ tensors: [Tensor]) -> Tensor? {
        guard let first = tensors.first,
              tensors.allSatisfy({ $0.shape.count == first.shape.count && $0.shape.dropFirst() == first.shape.dropFirst() })
        else { return nil }
        let rows = tensors.reduce(0) { $0 + $1.shape[0] }
        return Tensor(unchecked: [rows] + first.shape.dropFirst(), values: tensors.flatMap(\.values))
    }
}

extension Model {
    /// Features per step of a model that takes float features: the first weighted layer's
    /// input size. The one count of input features (`bench`, the Keras writer's input shape).
    package var inputFeatures: Int? {
        for layer in layers {
            switch layer {
            case let .recurrent(recurrent): return recurrent.inputSize
            case let .dense(dense): return dense.inputSize
            default: continue
            }
        }
        return nil
    }
}

extension ModelInput {
    /// Sequences in the input: the first axis.
    package var batch: Int {
        switch self {
        case let .features(tensor): return tensor.shape.first ?? 0
        case let .tokens(_, batch, _): return batch
        case let .texts(texts): return texts.count
        }
    }

    /// Steps per sequence, nil for `[batch, features]` data and for texts (their steps are
    /// known once the model's text vectorizer has split them).
    var time: Int? {
        switch self {
        case let .features(tensor): return tensor.shape.count == 3 ? tensor.shape[1] : nil
        case let .tokens(_, _, time): return time
        case .texts: return nil
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
