import Foundation

/// The framework a conversion writes for.
public enum ConversionTarget: String, Sendable, CaseIterable {
    /// A PyTorch `state_dict` in HDF5 with a version-2 `model_config`.
    case pytorch
    /// A tf-keras (Keras 2) legacy HDF5 full model.
    case keras
    /// A Keras 3 `.keras` archive.
    case keras3
}

/// What a conversion wrote, and the check it passed.
public struct ConversionReport: Sendable {
    public var input: String
    public var output: String
    public var target: ConversionTarget
    /// Largest difference between the source's and the written file's outputs on the
    /// check inputs (the engine runs both).
    public var maxDifference: Double
    /// The `model_config` written (PyTorch target), for `--emit-python`.
    public var modelConfig: String?
    /// What a user of the written model should know (how masks reach it).
    public var notes: [String]
}

/// Converts between layouts through the neutral model: read with the source's reader,
/// write with the target's writer, then read the written file back and check that it
/// computes what the source did — exactly, or nothing is written.
public enum Converter {
    /// Tolerance of the read-back check: float32 reassociation of summed biases and
    /// transposed products stays far below it.
    public static let checkTolerance = 1e-5

    public static func convert(_ input: String, to target: ConversionTarget, output: String, force: Bool = false,
                               architecture: String? = nil) throws -> ConversionReport {
        try refuseUnsafeOutput(input: input, output: output, force: force, architecture: architecture)
        let source = try LoadedModel(contentsOf: input, architecture: architecture)
        var modelConfig: String?
        var notes: [String] = []
        try AtomicFile.write(to: output, overwrite: force) { temporary in
            switch target {
            case .pytorch:
                let plan = try PyTorchWriter.plan(source.model, file: input)
                modelConfig = try PyTorchWriter.configJSON(plan)
                try PyTorchWriter.write(plan, to: temporary)
            case .keras:
                let plan = try KerasPlan(model: source.model, version: .keras2, file: input)
                notes = plan.notes
                try KerasH5Writer.write(plan, to: temporary)
            case .keras3:
                let plan = try KerasPlan(model: source.model, version: .keras3, file: input)
                notes = plan.notes
                try Keras3ArchiveWriter.write(plan, to: temporary)
            }
            let written = try LoadedModel(contentsOf: temporary)
            let difference = try compare(source, written, output: output)
            guard difference <= checkTolerance else {
                throw ModelError(file: output, message: "the written model differs from \(input) by \(difference) on the check inputs; nothing was written")
            }
        }
        let written = try LoadedModel(contentsOf: output)
        return ConversionReport(input: input, output: output, target: target,
                                maxDifference: try compare(source, written, output: output), modelConfig: modelConfig,
                                notes: notes)
    }

    /// Never onto the input (or the architecture), never over an existing file without `force`.
    static func refuseUnsafeOutput(input: String, output: String, force: Bool, architecture: String?) throws {
        let manager = FileManager.default
        func identity(_ path: String) -> String {
            URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
        }
        for protected in [input, architecture].compactMap({ $0 }) where identity(protected) == identity(output) {
            throw ModelError(file: output, message: "is the input file; write the conversion somewhere else")
        }
        if let inputAttributes = try? manager.attributesOfItem(atPath: input),
           let outputAttributes = try? manager.attributesOfItem(atPath: output),
           inputAttributes[.systemFileNumber] as? UInt64 == outputAttributes[.systemFileNumber] as? UInt64,
           inputAttributes[.systemNumber] as? Int == outputAttributes[.systemNumber] as? Int {
            throw ModelError(file: output, message: "is the input file (a hard link to it); write the conversion somewhere else")
        }
        if manager.fileExists(atPath: output) && !force {
            throw ModelError(file: output, message: "exists; pass --force to replace it")
        }
    }

    /// Runs both models on the same deterministic inputs (padded, with varied lengths) and
    /// returns the largest difference between their outputs.
    static func compare(_ source: LoadedModel, _ written: LoadedModel, output: String) throws -> Double {
        let batch = 3
        let time = source.model.sequenceLength ?? 7
        let lengths = [time, max(1, time - 2), max(1, time / 2)]
        var generator = SplitMix(seed: 0x5EED)
        let input: ModelInput
        if source.model.takesTokenIDs, case let .embedding(embedding)? = source.model.layers.first {
            // Sequences padded with the padding id, which valid steps never use.
            let vocabulary = embedding.vocabularySize
            let ids = (0..<(batch * time)).map { position -> Int in
                let valid = position % time < lengths[position / time]
                guard let padding = embedding.paddingIndex else { return Int(generator.next() % UInt64(vocabulary)) }
                guard valid, vocabulary > 1 else { return padding }
                let id = Int(generator.next() % UInt64(vocabulary - 1))
                return id >= padding ? id + 1 : id
            }
            input = .tokens(ids: ids, batch: batch, time: time)
        } else {
            guard let features = KerasPlan.inputFeatures(source.model) else { return 0 }
            input = .features(Tensor(shape: [batch, time, features],
                                     values: (0..<(batch * time * features)).map { _ in generator.nextFloat() * 4 - 2 }))
        }
        let expected = try source.run(input, lengths: lengths).output
        let actual = try written.run(input, lengths: lengths).output
        guard expected.shape == actual.shape else {
            throw ModelError(file: output, message: "the written model's output has shape \(shapeText(actual.shape)), the source's \(shapeText(expected.shape))")
        }
        return zip(expected.values, actual.values).reduce(0) { max($0, Double(abs($1.0 - $1.1))) }
    }
}

/// A small deterministic generator for check inputs.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func nextFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }
}
