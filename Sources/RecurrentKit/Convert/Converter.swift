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
}

/// Converts between layouts through the neutral model: read with the source's reader,
/// write with the target's writer one tensor at a time, then read the written file back
/// with the target's reader and check that it is the same model, weight for weight, under
/// the layout rules (`ModelFingerprint`) — exactly, or nothing is written.
public enum Converter {
    public static func convert(_ input: String, to target: ConversionTarget, output: String, force: Bool = false,
                               architecture: String? = nil) throws -> ConversionReport {
        try refuseUnsafeOutput(input: input, output: output, force: force, architecture: architecture)
        var modelConfig: String?
        var notes: [String] = []
        try AtomicFile.write(to: output, overwrite: force) { temporary in
            // The source's weights are released before the written file is read back: only
            // the digests of what it computes are kept.
            let expected = try write(input, architecture: architecture, target: target, to: temporary,
                                     modelConfig: &modelConfig, notes: &notes)
            let actual = ModelFingerprint(try LoadedModel(contentsOf: temporary).model)
            guard actual == expected else {
                throw ModelError(file: output, message: "the written file reads back as a different model (\(expected.firstDifference(from: actual))); nothing was written")
            }
        }
        return ConversionReport(input: input, output: output, target: target, modelConfig: modelConfig, notes: notes)
    }

    /// Reads the source, writes the target, and returns the source's fingerprint.
    private static func write(_ input: String, architecture: String?, target: ConversionTarget, to path: String,
                              modelConfig: inout String?, notes: inout [String]) throws -> ModelFingerprint {
        let source = try LoadedModel(contentsOf: input, architecture: architecture).model
        switch target {
        case .pytorch:
            let plan = try PyTorchWriter.plan(source, file: input)
            modelConfig = try PyTorchWriter.configJSON(plan)
            try PyTorchWriter.write(plan, to: path)
        case .keras:
            let plan = try KerasPlan(model: source, version: .keras2, file: input)
            notes = plan.notes
            try KerasH5Writer.write(plan, to: path)
        case .keras3:
            let plan = try KerasPlan(model: source, version: .keras3, file: input)
            notes = plan.notes
            try Keras3ArchiveWriter.write(plan, to: path)
        }
        return ModelFingerprint(source)
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
}
