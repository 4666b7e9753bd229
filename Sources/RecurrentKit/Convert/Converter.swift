import Foundation
import TextSafety

/// The framework a conversion writes for: `pytorch`, `keras`,
/// `keras3`. Each is written by the formats of the registry that name it
/// (`FormatWriting.target`), chosen by the output's extension.
public struct ConversionTarget: RawRepresentable, Hashable, Sendable, CaseIterable {
    public let rawValue: String
    /// The refusal of an output whose extension none of the target's formats takes.
    let extensionRefusal: @Sendable (_ target: ConversionTarget) -> ModelError.Message

    init(known rawValue: String, extensionRefusal: @escaping @Sendable (_ target: ConversionTarget) -> ModelError.Message) {
        self.rawValue = rawValue
        self.extensionRefusal = extensionRefusal
    }

    /// One of ``allCases``, by name.
    public init?(rawValue: String) {
        guard let target = Self.allCases.first(where: { $0.rawValue == rawValue }) else { return nil }
        self = target
    }

    /// The targets of the registry's formats, in its order.
    public static var allCases: [ConversionTarget] {
        var targets: [ConversionTarget] = []
        for case let target? in Formats.all.map({ $0.writing?.target }) where !targets.contains(target) {
            targets.append(target)
        }
        return targets
    }

    public static func == (a: Self, b: Self) -> Bool { a.rawValue == b.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }

    /// A PyTorch `state_dict` in the container the output's extension names (`.pt`/`.pth`
    /// as `torch.save` writes it, `.safetensors`, `.h5`/`.hdf5`), with a version-2
    /// `model_config` for a whole model.
    public static let pytorch = ConversionTarget(known: "pytorch") { target in
        "\(option: .target, "pytorch") writes the container the name's extension gives: \(Formats.extensions(of: target)); nothing was written"
    }
}

/// What a conversion wrote. Its existence means the written file, read back by the
/// target's reader, is the same model as the source under the layout rules.
public struct ConversionReport: Sendable {
    public var input: String
    public var output: String
    public var target: ConversionTarget
    /// The `model_config` written (PyTorch target), as the emitted Python module
    /// (`pythonModule`) reads it.
    public var modelConfig: String?
    /// What a user of the written model should know (how masks reach it), each option named
    /// as the API names it.
    public var notes: [String] { noteMessages.map(\.description) }
    /// ``notes`` with the options they name as typed pieces (`ModelError.Message`), for a
    /// tool that names options in its own words.
    public var noteMessages: [ModelError.Message]
    /// What reading the input noted (`LoadedModel.notes`: the keys of a state_dict left
    /// unread, a wrapper's prefix looked under, a Keras release's older defaults, weights-file
    /// layers not used).
    public var readingNotes: [String] = []
}

/// Converts between layouts through the neutral model: read with the source's reader,
/// write with the target's writer one tensor at a time, then read the written file back
/// with the target's reader and check that it is the same model, weight for weight, under
/// the layout rules (`ModelFingerprint`) — exactly, or nothing is written.
public enum Converter {
    /// Converts `input` to `target`, writing `output` and, when `pythonModule` is given
    /// (PyTorch target), a Python module defining the model and a loader for `output`.
    /// `paddingID` (Keras targets, PyTorch sources) says how padded batches are marked
    /// (`KerasPadding`): a PyTorch model that starts with an Embedding without `padding_idx`
    /// 0 is refused without it. `weightsMatching` pairs a legacy Keras weights-only source
    /// with its architecture (``KerasWeightsMatching``). `opset` is the ONNX opset an ONNX
    /// target is written at (nil: the writer's default, 17); other targets do not use it.
    ///
    /// Outputs are checked as files before anything is read: never an input (or the
    /// architecture, or each other) by any name, never a device, FIFO, folder or symbolic
    /// link, and an existing file only with `force`. Both are written to temporaries beside
    /// them and put in place together once the conversion is checked and the module
    /// emitted: on any failure neither is touched and no temporary remains.
    ///
    /// Throws `ModelError`: a conversion that cannot be exact names the layer and the reason.
    public static func convert(_ input: String, to target: ConversionTarget, output: String, force: Bool = false,
                               architecture: String? = nil, key: String? = nil, modules: [String]? = nil,
                               pythonModule: String? = nil, paddingID: PaddingID? = nil,
                               weightsMatching: KerasWeightsMatching = .order, opset: Int? = nil) throws -> ConversionReport {
        try ModelError.boundary(file: input, kind: .unsupported) {
            try convertChecked(input, to: target, output: output, force: force,
                               source: SourceOptions(architecture: architecture, key: key, modules: modules,
                                                     paddingID: paddingID, weightsMatching: weightsMatching, opset: opset),
                               pythonModule: pythonModule)
        }
    }

    /// Refuses options that no input can make right, before anything is read or written:
    /// a `paddingID` with a PyTorch `target` (a PyTorch model takes its lengths as they
    /// are). ``convert(_:to:output:force:architecture:key:modules:pythonModule:paddingID:weightsMatching:opset:)``
    /// checks this first; a caller may check its options early with it.
    ///
    /// - Throws: `ModelError` (`.invalidInput`, no file) naming the options (`ModelError.options`).
    public static func checkOptions(to target: ConversionTarget, paddingID: PaddingID?) throws {
        if paddingID != nil, target == .pytorch {
            throw ModelError(.invalidInput, file: nil, message: "\(option: .paddingID) goes with \(option: .target, "keras") or \(option: .target, "keras3")")
        }
    }

    /// What reading the input takes besides its path, and how a PyTorch source's padding
    /// is marked for a Keras target.
    private struct SourceOptions {
        var architecture: String?
        var key: String?
        /// The modules to read by key prefix (`LoadedModel.init(contentsOf:architecture:key:modules:)`).
        var modules: [String]?
        var paddingID: PaddingID?
        /// How a legacy Keras weights-only source pairs with its architecture.
        var weightsMatching: KerasWeightsMatching = .order
        /// The ONNX opset of an ONNX target (nil: the writer's default).
        var opset: Int?
    }

    private static func convertChecked(_ input: String, to target: ConversionTarget, output: String, force: Bool,
                                       source: SourceOptions, pythonModule: String?) throws -> ConversionReport {
        let architecture = source.architecture
        // Names no file: `convert`'s boundary gives it the input's.
        try checkOptions(to: target, paddingID: source.paddingID)
        try checkOutputs(input: input, target: target, output: output, force: force, architecture: architecture,
                         pythonModule: pythonModule)
        var modelConfig: ModelConfigDocument?
        var notes: [ModelError.Message] = []
        var readingNotes: [String] = []
        // A bare module's emitted Python, made while its layers are in memory (nil otherwise).
        var barePython: String?
        try OutputBatch.writing { batch in
            try batch.write(output, overwrite: force) { temporary in
                try writeChecked(input, source: source, target: target, to: temporary, batch: batch,
                                 output: output, emitting: pythonModule != nil, modelConfig: &modelConfig,
                                 barePython: &barePython, notes: &notes, readingNotes: &readingNotes)
            }
            if let pythonModule {
                let python: String
                if let modelConfig {
                    python = try PythonEmitter.source(modelConfig: modelConfig, weightsFile: OutputFiles.split(output).name)
                } else if let barePython {
                    python = barePython
                } else {
                    throw ModelError(.unsupported, file: input, message: "has no model_config and is not one bare module: no Python module to emit")
                }
                try batch.write(pythonModule, overwrite: force) { temporary in
                    try writeNewFile(temporary, contents: Data(python.utf8))
                }
            }
        }
        return ConversionReport(input: input, output: output, target: target, modelConfig: try modelConfig?.json(),
                                noteMessages: notes, readingNotes: readingNotes)
    }

    /// Writes the conversion to `path` and reads it back: it must be the same model, weight
    /// for weight. The source's weights are released before the written file is read back:
    /// only the digests of what it computes are kept.
    private static func writeChecked(_ input: String, source: SourceOptions, target: ConversionTarget, to path: String,
                                     batch: OutputBatch, output: String, emitting: Bool,
                                     modelConfig: inout ModelConfigDocument?, barePython: inout String?,
                                     notes: inout [ModelError.Message], readingNotes: inout [String]) throws {
        let expected = try write(input, source: source, target: target, to: path, batch: batch, output: output,
                                 emitting: emitting, modelConfig: &modelConfig, barePython: &barePython, notes: &notes,
                                 readingNotes: &readingNotes)
        let actual = ModelFingerprint(try LoadedModel(contentsOf: path).model)
        guard actual == expected else {
            throw ModelError(file: output, message: "the written file reads back as a different model (\(expected.firstDifference(from: actual))); nothing was written")
        }
    }

    /// Reads the source, writes the target with the format the output's extension chooses,
    /// and returns the source's fingerprint. With `emitting`, a bare module's Python is made
    /// here, from the layers already read.
    private static func write(_ input: String, source options: SourceOptions, target: ConversionTarget, to path: String,
                              batch: OutputBatch, output: String, emitting: Bool,
                              modelConfig: inout ModelConfigDocument?, barePython: inout String?,
                              notes: inout [ModelError.Message], readingNotes: inout [String]) throws -> ModelFingerprint {
        let loaded = try LoadedModel(contentsOf: input, architecture: options.architecture, key: options.key,
                                     modules: options.modules, weightsMatching: options.weightsMatching)
        readingNotes = loaded.notes
        try checkVocabularySize(of: loaded.model, file: input, target: target)
        guard let writing = try writingFormat(output, target: target).writing else {
            throw ModelError(.unsupported, file: output, message: target.extensionRefusal(target))
        }
        let written = try writing.write(WriteRequest(loaded: loaded, input: input, output: output, path: path, batch: batch,
                                                     emitting: emitting, paddingID: options.paddingID, target: target,
                                                     opset: options.opset))
        modelConfig = written.modelConfig
        barePython = written.barePython
        notes = written.notes
        return written.expected
    }

    /// A PyTorch target: the plan (keeping a PyTorch source's structure), its `model_config`
    /// checked, a bare module's Python when emitting, then `store` writes the state_dict in
    /// the format's container.
    static func writePyTorch(_ request: WriteRequest,
                             store: (_ plan: PyTorchWriter.Plan, _ modelConfig: String?, _ path: String) throws -> Void) throws -> WrittenModel {
        let loaded = request.loaded
        var plan = try PyTorchWriter.plan(loaded.model, file: request.input, source: loaded.pytorchSource)
        if loaded.pytorchSource == nil, loaded.isBareRecurrentModule, PyTorchWriter.isBareModule(loaded.model) {
            // A bare recurrent module from another framework (an ONNX graph of recurrent nodes
            // alone) is written as the one torch module it is: its keys load into
            // nn.LSTM(…, num_layers, bidirectional, batch_first=True), and its h_n / c_n stay.
            plan = try PyTorchWriter.plan(loaded.model, file: request.input, source: .init(document: nil, barePrefix: ""))
        }
        try checkConfigSize(try plan.document?.json(), of: loaded.model, file: request.input, target: request.target)
        var written = WrittenModel(expected: ModelFingerprint(loaded.model), modelConfig: plan.document)
        if request.emitting, plan.document == nil {
            // A bare module keeps its keys: the emitted module is that torch module.
            written.barePython = PythonEmitter.source(bareModule: loaded.recurrentLayers, prefix: loaded.pytorchSource?.barePrefix ?? "",
                                                      weightsFile: OutputFiles.split(request.output).name)
        }
        try store(plan, try plan.document?.json(), request.path)
        return written
    }

    /// A Keras target: the model Keras must compute (the source with its padding made a mask
    /// Keras sees, or refused), planned as Keras layers, its config (`config`) checked, then
    /// `store` writes it. The read-back is compared with the padded model.
    static func writeKeras(_ request: WriteRequest, version: KerasLayout.Version, config: (KerasPlan) -> [String: Any],
                           store: (_ plan: KerasPlan, _ path: String) throws -> Void) throws -> WrittenModel {
        let loaded = request.loaded
        let padded = try KerasPadding.apply(to: loaded.model, pytorch: loaded.pytorchSource,
                                            lengthsRefusal: loaded.reading.lengthsRefusal, paddingID: request.paddingID,
                                            file: request.input, version: version)
        let plan = try KerasPlan(model: padded.model, version: version, file: request.input)
        try checkConfigSize(try json(config(plan)), of: loaded.model, file: request.input, target: request.target)
        try store(plan, request.path)
        return WrittenModel(expected: ModelFingerprint(padded.model), notes: padded.notes)
    }

    /// Refuses a conversion whose written config no reader would take (`Limits.checkJSONSize`:
    /// in practice a text vectorizer's vocabulary, which the config holds), before anything
    /// is written, naming the vectorizer when there is one.
    private static func checkConfigSize(_ config: String?, of model: Model, file: String, target: ConversionTarget) throws {
        guard let config, let refusal = Limits.checkJSONSize(config) else { return }
        try refuseConfig(refusal, of: model, file: file, target: target)
    }

    /// The same refusal from the vocabulary alone, before the config is made: every target's
    /// config holds each token as a JSON string (its bytes, two quotes and a comma at
    /// least), so a vocabulary file of millions of tokens is refused without first becoming
    /// millions of strings and a config of hundreds of megabytes.
    private static func checkVocabularySize(of model: Model, file: String, target: ConversionTarget) throws {
        guard let tokens = model.textVectorizer?.tokens else { return }
        let bytes = tokens.totalBytes + 3 * tokens.count
        if bytes > Limits.configJSONBytes {
            try refuseConfig("is at least \(bytes) bytes of JSON, \(Limits.excess(bytes, over: Limits.configJSONBytes)) (Limits.configJSONBytes)",
                             of: model, file: file, target: target)
        }
        if tokens.count > Limits.configJSONItems {
            try refuseConfig("holds more than \(Limits.configJSONItems) JSON keys and values (Limits.configJSONItems)",
                             of: model, file: file, target: target)
        }
    }

    private static func refuseConfig(_ refusal: String, of model: Model, file: String, target: ConversionTarget) throws {
        let vectorizer = model.textVectorizer
        throw ModelError(.unsupported, file: file,
                         layer: vectorizer.map { "\(escapedForDisplay($0.name)) (TextVectorization)" },
                         message: "cannot be converted to \(target.rawValue): the written config \(refusal)"
                             + (vectorizer.map { ", with the vocabulary's \($0.tokens.count) tokens in it" } ?? "")
                             + "; nothing was written")
    }

    /// Never onto the input or the architecture (by any name), never a module onto the
    /// converted file, never over anything but a regular file, and only with `force`.
    static func checkOutputs(input: String, target: ConversionTarget, output: String, force: Bool,
                             architecture: String?, pythonModule: String?) throws {
        try OutputFiles.check(output, against: ["the input file": input, "the architecture file": architecture],
                              overwrite: force)
        try checkExtension(output, target: target)
        guard let pythonModule else { return }
        guard target == .pytorch else {
            throw ModelError(file: pythonModule, message: "a Python module is emitted only for a PyTorch target")
        }
        try OutputFiles.check(pythonModule, against: ["the input file": input, "the architecture file": architecture,
                                                      "the converted file": output],
                              overwrite: force)
    }

    /// The format of `target` that `output`'s extension chooses: the output's extension
    /// must be one the target's framework loads by (Keras 3 dispatches `load_model` on
    /// `.keras`, tf-keras reads `.h5`/`.hdf5` as HDF5, a PyTorch state_dict is written in the
    /// container its extension names); a file is never renamed behind the user's back.
    static func writingFormat(_ output: String, target: ConversionTarget) throws -> any ModelFormat {
        guard let format = Formats.writing(target, output: output) else {
            throw ModelError(.invalidInput, file: output, message: target.extensionRefusal(target))
        }
        return format
    }

    static func checkExtension(_ output: String, target: ConversionTarget) throws {
        _ = try writingFormat(output, target: target)
    }
}

/// What a format's writer is given (`FormatWriting.write`).
package struct WriteRequest {
    /// The model read from the source.
    let loaded: LoadedModel
    /// The source file, as errors name it.
    let input: String
    /// The output as the caller named it (the emitted Python names it).
    let output: String
    /// Where to write: a temporary beside `output`, put in place once checked.
    let path: String
    let batch: OutputBatch
    /// True when a Python module is emitted beside a PyTorch target.
    let emitting: Bool
    /// How padded batches are marked, for a Keras target (`KerasPadding`).
    let paddingID: PaddingID?
    let target: ConversionTarget
    /// The ONNX opset to write (ONNX target), nil for the default.
    var opset: Int? = nil
}

/// What a format's writer wrote.
package struct WrittenModel {
    /// The fingerprint the written file must read back as.
    var expected: ModelFingerprint
    /// The `model_config` written (PyTorch target), for the emitted Python.
    var modelConfig: ModelConfigDocument?
    /// A bare module's emitted Python, made while its layers are in memory.
    var barePython: String?
    /// What a user of the written model should know (options named as typed pieces).
    var notes: [ModelError.Message] = []
}
