import Foundation
import HDF5
import RecurrentEngine
import RecurrentKit

/// Entry points for the fuzz targets (Tests/Fuzz) and the regression replay
/// (FuzzRegressionTests): bytes in, the reader's work done, every refusal returned as text.
///
/// Each function does what a command does with a file of these bytes and returns normally
/// whether the reader accepted or refused them (the refusal, rendered as the command line
/// would print it, or nil); a trap, a fault, a leak, an HDF5 handle left open or an
/// allocation over the fuzzer's limit is the finding. A target of its own, outside the
/// library (built for the fuzz targets and the tests, never for a client of RecurrentKit):
/// it reads through the format registry (`Formats`) and the package-access seams of the
/// layouts.
public enum FuzzEntry {
    /// The name errors give the fuzzed file.
    static let name = "fuzz-input"

    /// An HDF5 model file as `inspect` reads it, through the registry (`Formats.read`): the
    /// form, the format that claims it (Keras or PyTorch), the reader, the summaries it
    /// prints and the engine `run` would prepare.
    @discardableResult
    public static func hdf5Model(_ bytes: [UInt8]) -> String? {
        return checked {
            try touch(LoadedModel(try Formats.read(FormatSource(bytes: bytes, name: name), options: ReadOptions())))
        }
    }

    /// A Keras config JSON (`model_config`, `config.json`, `--architecture config.json`),
    /// planned against Keras 3 weights.
    ///
    /// The first byte picks the weights: `weights[byte % (weights.count + 1)]`, the last
    /// choice being none (the reader stops at the first layer that has weights). The rest
    /// is the JSON text.
    @discardableResult
    public static func kerasConfig(_ bytes: [UInt8], weights: [HDF5File]) -> String? {
        guard let selector = bytes.first else { return "empty" }
        let text = String(decoding: bytes.dropFirst(), as: UTF8.self)
        return checked {
            let choice = Int(selector) % (weights.count + 1)
            try touch(LoadedModel(try KerasReader.read(configJSON: text, file: name,
                                                       keras3Weights: choice < weights.count ? weights[choice].root : nil)))
        }
    }

    /// A `.keras` archive as `inspect` reads one (and as `--architecture` reads one), from a
    /// file at `path` that holds the bytes.
    @discardableResult
    public static func kerasArchive(_ bytes: [UInt8], path: String) -> String? {
        return checked {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let architecture = checked { _ = try KerasFile.Architecture(contentsOf: path) }
            try touch(LoadedModel(contentsOf: path))
            if let architecture { throw Refusal(text: architecture) }
        }
    }

    /// A PyTorch-side `model_config` JSON, built against a state_dict.
    ///
    /// The first byte picks the state_dict: `stateDicts[byte % stateDicts.count]` (with
    /// none given, the config is only parsed). The rest is the JSON text.
    @discardableResult
    public static func pytorchModelConfig(_ bytes: [UInt8], stateDicts: [HDF5File]) -> String? {
        guard let selector = bytes.first else { return "empty" }
        let text = String(decoding: bytes.dropFirst(), as: UTF8.self)
        return checked {
            let stateDict = stateDicts.isEmpty ? nil : stateDicts[Int(selector) % stateDicts.count].root
            if let model = try PyTorchReader.build(configJSON: text, file: name, stateDict: stateDict) {
                _ = try Engine(model: model)
            }
        }
    }

    /// A fixture (and an input file, which is its `/inputs` and `/lengths`) as `verify` and
    /// `run` read them, from a file at `path` that holds the bytes.
    @discardableResult
    public static func fixture(_ bytes: [UInt8], path: String) -> String? {
        return checked {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let inputs = checked { _ = try InputFile(contentsOf: path) }
            let fixture = try Fixture(contentsOf: path)
            _ = (fixture.modelPath, fixture.architecturePath, fixture.expected.count, fixture.exercises)
            if let inputs { throw Refusal(text: inputs) }
        }
    }

    /// A `torch.save` file (`.pt`, `.pth`) as `inspect` reads it: the restricted pickle
    /// reader, the state_dict chosen (a checkpoint's too), the PyTorch layout and the engine.
    @discardableResult
    public static func torchFile(_ bytes: [UInt8]) -> String? {
        // The form decision runs on every input too; it must return, whatever the bytes.
        _ = try? Formats.format(of: FormatSource(bytes: bytes, name: name))
        // Every member through the zip reader, those torch never reads included.
        if let archive = try? ZipArchive(bytes: bytes, name: name) {
            for member in archive.names { _ = try? archive.member(member, limit: 1 << 22, bound: "4 MiB") }
        }
        return checked {
            try touch(LoadedModel(try torchSave.read(FormatSource(bytes: bytes, name: name), options: ReadOptions())))
        }
    }

    /// A safetensors file as `inspect` reads it: header, offsets, dtypes, metadata's
    /// `model_config`, the PyTorch layout and the engine.
    @discardableResult
    public static func safetensors(_ bytes: [UInt8]) -> String? {
        checked {
            let source = FormatSource(bytes: bytes, name: name)
            try Formats.readContainer(safetensors, source)
            // Bytes the safetensors reader accepts are a safetensors file to the form decision
            // too (spec/architecture.md, "Which container"); anything else is a finding.
            let container = try? Formats.container(of: source)
            if container != .safetensors {
                fatalError("a safetensors file the reader accepts is sniffed as \(container?.rawValue ?? "no container")")
            }
            try touch(LoadedModel(try safetensors.read(source, options: ReadOptions())))
        }
    }

    /// An ONNX model as `inspect` reads it and `run` prepares it: the bounded protobuf decode,
    /// the tensors, the graph interpretation (spec/onnx-layout.md) and the engine. Bytes the
    /// ONNX reader accepts must be an ONNX model to the form decision too.
    @discardableResult
    public static func onnx(_ bytes: [UInt8]) -> String? {
        checked {
            let source = FormatSource(bytes: bytes, name: name)
            let loaded = LoadedModel(try onnxFormat.read(source, options: ReadOptions()))
            let container = try? Formats.container(of: source)
            if container != .onnx {
                fatalError("an ONNX model the reader accepts is sniffed as \(container?.rawValue ?? "no container")")
            }
            try touch(loaded)
        }
    }

    /// A `verify --manifest` file (JSON or YAML), parsed and turned into cases as `verify`
    /// does before running any: the size, node and case bounds, the refusal of YAML anchors and aliases,
    /// libyaml through Yams, the fields of each entry. Nothing is read from the paths named.
    ///
    /// The first byte picks the name the text is read under (even: `fuzz-input.yml`, odd:
    /// `fuzz-input.json`, which forces JSON); the rest is the text.
    @discardableResult
    public static func manifest(_ bytes: [UInt8]) -> String? {
        guard let selector = bytes.first else { return "empty" }
        let file = selector % 2 == 0 ? name + ".yml" : name + ".json"
        return checked {
            let data = Array(bytes.dropFirst())
            guard data.count <= Limits.manifestBytes else { throw Refusal(text: "over Limits.manifestBytes") }
            guard let text = String(bytes: data, encoding: .utf8) else { throw Refusal(text: "not UTF-8") }
            let cases = try VerificationSuite.manifestCases(try VerificationSuite.parseManifest(text, file: file), file: file)
            for entry in cases { _ = (entry.name.count, entry.model?.count, entry.fixture.count, entry.atol, entry.rtol) }
        }
    }

    /// The `model.weights.h5` members of the `.keras` archives in `folder`, in name order,
    /// opened in memory: the weights `kerasConfig` plans against.
    public static func archiveWeights(folder: String) -> [HDF5File] {
        files(in: folder, suffix: ".keras").compactMap { path in
            member("model.weights.h5", of: path).flatMap { try? HDF5File.open(image: $0, name: path + "!model.weights.h5") }
        }
    }

    /// The `config.json` members of the same archives, in the same order.
    public static func archiveConfigs(folder: String) -> [[UInt8]] {
        files(in: folder, suffix: ".keras").compactMap { member("config.json", of: $0) }
    }

    private static func member(_ name: String, of path: String) -> [UInt8]? {
        try? ZipArchive(path: path).member(name, limit: Limits.archiveMemberBytes, bound: "Limits.archiveMemberBytes")
    }

    /// The PyTorch files in `folder` that carry a `model_config`, in name order: the
    /// state_dicts `pytorchModelConfig` builds against.
    public static func configuredStateDicts(folder: String) -> [HDF5File] {
        files(in: folder, suffix: ".h5").filter { !$0.hasSuffix(".fixture.h5") }.compactMap { path in
            guard let file = try? HDF5File.open(path), (try? file.root.hasAttribute("model_config")) == true else { return nil }
            return file
        }
    }

    private static func files(in folder: String, suffix: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { $0.hasSuffix(suffix) }.sorted().map { folder + "/" + $0 }
    }

    /// What `inspect` prints and `run` prepares, so that every lazily computed part is
    /// computed once.
    private static func touch(_ loaded: LoadedModel) throws {
        _ = (loaded.parameterCount, loaded.storedTypes, loaded.recurrentLayers.count, loaded.model.takesTokenIDs)
        for summary in loaded.summaries {
            _ = (summary.name.count, summary.type.count, summary.details.count, summary.gateOrder)
        }
        _ = try loaded.engine
    }

    /// Runs `body` and returns its error rendered the way the command line prints it, or nil.
    /// Traps when `body` leaves HDF5 objects open: every handle a reader opens must be closed
    /// by the time its result is gone, whether it succeeded or not.
    private static func checked(_ body: () throws -> Void) -> String? {
        let open = HDF5File.openObjectCount()
        let refusal: String?
        do {
            try body()
            refusal = nil
        } catch {
            refusal = String(describing: error)
        }
        let left = HDF5File.openObjectCount() - open
        if left > 0 { fatalError("\(left) HDF5 objects left open after reading (\(refusal ?? "accepted"))") }
        return refusal
    }

    private struct Refusal: Error, CustomStringConvertible {
        var text: String
        var description: String { text }
    }

    /// The formats the torch and safetensors targets read with, whatever the form decides.
    private static let torchSave = Formats.named("torch-save")!
    private static let safetensors = Formats.named("safetensors")!
    private static let onnxFormat = Formats.named("onnx")!
}
