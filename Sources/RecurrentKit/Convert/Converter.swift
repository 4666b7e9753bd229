import Foundation

/// The framework a conversion writes for.
public enum ConversionTarget: String, Sendable, CaseIterable {
    /// A PyTorch `state_dict` in the container the output's extension names (`.pt`/`.pth`
    /// as `torch.save` writes it, `.safetensors`, `.h5`/`.hdf5`), with a version-2
    /// `model_config` for a whole model.
    case pytorch
    /// A tf-keras (Keras 2) legacy HDF5 full model.
    case keras
    /// A Keras 3 `.keras` archive.
    case keras3
}

/// What a conversion wrote. Its existence means the written file, read back by the
/// target's reader, is the same model as the source under the layout rules.
public struct ConversionReport: Sendable {
    public var input: String
    public var output: String
    public var target: ConversionTarget
    /// The `model_config` written (PyTorch target), for `--emit-python`.
    public var modelConfig: String?
    /// What a user of the written model should know (how masks reach it).
    public var notes: [String]
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
    /// with its architecture (``KerasWeightsMatching``).
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
                               weightsMatching: KerasWeightsMatching = .order) throws -> ConversionReport {
        try ModelError.boundary(file: input, kind: .unsupported) {
            try convertChecked(input, to: target, output: output, force: force,
                               source: SourceOptions(architecture: architecture, key: key, modules: modules,
                                                     paddingID: paddingID, weightsMatching: weightsMatching),
                               pythonModule: pythonModule)
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
    }

    private static func convertChecked(_ input: String, to target: ConversionTarget, output: String, force: Bool,
                                       source: SourceOptions, pythonModule: String?) throws -> ConversionReport {
        let architecture = source.architecture
        if let paddingID = source.paddingID, target == .pytorch {
            throw ModelError(.invalidInput, file: input, message: "--padding-id \(KerasPadding.argument(paddingID)) goes with --to keras or --to keras3 (a PyTorch model takes its lengths as they are); nothing was written")
        }
        try checkOutputs(input: input, target: target, output: output, force: force, architecture: architecture,
                         pythonModule: pythonModule)
        var modelConfig: ModelConfigDocument?
        var notes: [String] = []
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
                                notes: notes, readingNotes: readingNotes)
    }

    /// Writes the conversion to `path` and reads it back: it must be the same model, weight
    /// for weight. The source's weights are released before the written file is read back:
    /// only the digests of what it computes are kept.
    private static func writeChecked(_ input: String, source: SourceOptions, target: ConversionTarget, to path: String,
                                     batch: OutputBatch, output: String, emitting: Bool,
                                     modelConfig: inout ModelConfigDocument?, barePython: inout String?,
                                     notes: inout [String], readingNotes: inout [String]) throws {
        let expected = try write(input, source: source, target: target, to: path, batch: batch, output: output,
                                 emitting: emitting, modelConfig: &modelConfig, barePython: &barePython, notes: &notes,
                                 readingNotes: &readingNotes)
        let actual = ModelFingerprint(try LoadedModel(contentsOf: path).model)
        guard actual == expected else {
            throw ModelError(file: output, message: "the written file reads back as a different model (\(expected.firstDifference(from: actual))); nothing was written")
        }
    }

    /// Reads the source, writes the target, and returns the source's fingerprint. With
    /// `emitting`, a bare module's Python is made here, from the layers already read.
    private static func write(_ input: String, source options: SourceOptions, target: ConversionTarget, to path: String,
                              batch: OutputBatch, output: String, emitting: Bool,
                              modelConfig: inout ModelConfigDocument?, barePython: inout String?,
                              notes: inout [String], readingNotes: inout [String]) throws -> ModelFingerprint {
        let loaded = try LoadedModel(contentsOf: input, architecture: options.architecture, key: options.key,
                                     modules: options.modules, weightsMatching: options.weightsMatching)
        readingNotes = loaded.notes
        try checkVocabularySize(of: loaded.model, file: input, target: target)
        switch target {
        case .pytorch:
            let plan = try PyTorchWriter.plan(loaded.model, file: input, source: loaded.pytorchSource)
            try checkConfigSize(try plan.document?.json(), of: loaded.model, file: input, target: target)
            modelConfig = plan.document
            if emitting, plan.document == nil {
                // A bare module keeps its keys: the emitted module is that torch module.
                barePython = PythonEmitter.source(bareModule: loaded.recurrentLayers, prefix: loaded.pytorchSource?.barePrefix ?? "",
                                                  weightsFile: OutputFiles.split(output).name)
            }
            try PyTorchWriter.write(plan, to: path, as: try container(of: output))
            return ModelFingerprint(loaded.model)
        case .keras, .keras3:
            let version: KerasLayout.Version = target == .keras ? .keras2 : .keras3
            // The model Keras must compute: the source with its padding made a mask Keras sees
            // (or refused). The read-back is compared with it.
            let padded = try KerasPadding.apply(to: loaded.model, pytorch: loaded.pytorchSource, paddingID: options.paddingID,
                                                file: input, version: version)
            notes = padded.notes
            let plan = try KerasPlan(model: padded.model, version: version, file: input)
            try checkConfigSize(try json(target == .keras ? KerasH5Writer.modelConfig(plan) : Keras3ArchiveWriter.modelConfig(plan)),
                                of: loaded.model, file: input, target: target)
            if target == .keras {
                try KerasH5Writer.write(plan, to: path)
            } else {
                try Keras3ArchiveWriter.write(plan, to: path,
                                              weightsScratch: batch.scratchFile(beside: output, suffix: "weights.partial"))
            }
            return ModelFingerprint(padded.model)
        }
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
                         layer: vectorizer.map { "\(shown($0.name)) (TextVectorization)" },
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

    /// The PyTorch container `output`'s extension names.
    static func container(of output: String) throws -> PyTorchWriter.Container {
        guard let container = PyTorchWriter.Container(path: output) else {
            throw ModelError(.invalidInput, file: output,
                             message: "--to pytorch writes the container the name's extension gives: \(PyTorchWriter.Container.allExtensions); nothing was written")
        }
        return container
    }

    /// The output's extension must be one the target's framework loads by: Keras 3
    /// dispatches `load_model` on `.keras`, tf-keras reads `.h5`/`.hdf5` as HDF5; a file is
    /// never renamed behind the user's back.
    static func checkExtension(_ output: String, target: ConversionTarget) throws {
        let lower = output.lowercased()
        switch target {
        case .pytorch:
            _ = try container(of: output)
        case .keras:
            guard lower.hasSuffix(".h5") || lower.hasSuffix(".hdf5") else {
                throw ModelError(.invalidInput, file: output, message: "--to keras writes a tf-keras HDF5 model: the name must end in .h5 or .hdf5 (tf_keras.models.load_model reads it by that); nothing was written")
            }
        case .keras3:
            guard lower.hasSuffix(".keras") else {
                throw ModelError(.invalidInput, file: output, message: "--to keras3 writes a .keras archive: the name must end in .keras (keras.models.load_model chooses the reader by it); nothing was written")
            }
        }
    }
}
