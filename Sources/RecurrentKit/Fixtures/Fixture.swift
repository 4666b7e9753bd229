import Foundation
import TextSafety
import HDF5

/// A fixture: inputs and the outputs a real framework computed for them.
/// Format in spec/fixture-format.md.
public struct Fixture: Sendable {
    public var file: String
    public var input: ModelInput
    public var lengths: [Int]?
    public var h0: Tensor?
    public var c0: Tensor?
    /// `/expected/*` by name (`output`, `h_n`, `c_n`), in name order.
    public var expected: [(name: String, tensor: Tensor)]
    public var generator: String?
    /// The model file's name, relative to the fixture's folder.
    public var model: String?
    /// For a weights-only model file: the model file holding its architecture. It applies
    /// only to the model the fixture was written for (`architectureApplies(to:key:)`).
    public var architecture: String?
    /// For a `torch.save` checkpoint holding several state_dicts: the entry the model's
    /// weights are in (`model_state_dict`; nested as `outer/inner`), as the `key` of
    /// ``LoadedModel/init(contentsOf:architecture:key:modules:weightsMatching:)`` takes it.
    public var key: String?
    /// For a legacy Keras weights-only model file: how its layers were paired with the
    /// architecture's when the expected outputs were computed (`weights_matching`: `order`,
    /// `load_weights()`'s default, or `name`, `by_name=True`); nil when the fixture says none.
    public var weightsMatching: KerasWeightsMatching?
    public var exercises: [String]
    public var atol: Double?
    public var rtol: Double?

    /// The model (and architecture) paths, resolved against the fixture's folder (checked
    /// when the fixture was read to stay inside it).
    public var modelPath: String? { model.map(resolve) }
    public var architecturePath: String? { architecture.map(resolve) }

    /// Whether the `architecture` attribute applies to `model` (a path as the caller names
    /// it): it describes the model the fixture was written for, so it applies to the file
    /// the `model` attribute names (the same file by any name) and, when the fixture names
    /// no model, to a model that needs an architecture and carries none
    /// (`LoadedModel.needsArchitecture`); never to another model, such as a file converted
    /// from the original (spec/fixture-format.md, "Which architecture").
    ///
    /// - Parameter model: the model file to verify, as the caller names it.
    /// - Parameter key: the checkpoint entry the model is read from, for a `torch.save` file.
    public func architectureApplies(to model: String, key: String?) -> Bool {
        guard architecture != nil else { return false }
        guard let modelPath else { return LoadedModel.needsArchitecture(model, key: key) }
        guard let named = OutputFiles.fileStatus(modelPath), let given = OutputFiles.fileStatus(model) else { return false }
        return FileIdentity(named) == FileIdentity(given)
    }

    private func resolve(_ name: String) -> String {
        URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// Reads a fixture file.
    ///
    /// Refused, naming the attribute: a `model` or `architecture` that is not a file inside
    /// the fixture's folder (`reference(_:attribute:fixture:)`), and an `atol` or `rtol` that
    /// is not a finite non-negative number.
    ///
    /// Throws `ModelError` for a file that cannot be read or is not a fixture.
    public init(contentsOf path: String) throws {
        self = try ModelError.boundary(file: path, kind: .unreadableFile) { try Fixture(reading: path) }
    }

    private init(reading path: String) throws {
        // `HDF5File.open` refuses anything but a regular file, by name and by descriptor.
        let hdf5 = try HDF5File.open(path)
        let root = hdf5.root
        file = path
        (input, lengths) = try Self.readInputs(root, file: path)
        // Per-layer states (`/h0/<k>`) are `rnnkit run`'s; a fixture holds a bare module's
        // stacked ones, and a group must not be read as no states at all.
        for name in ["h0", "c0"] where try root.kind(of: name) == .group {
            throw ModelError(.invalidInput, file: path, path: "/\(name)",
                             message: "is a group; a fixture's states are a bare module's, one dataset [layers × directions, batch, hidden] (spec/fixture-format.md)")
        }
        h0 = try Self.optionalFloats(root, "h0")
        c0 = try Self.optionalFloats(root, "c0")
        guard try root.kind(of: "expected") == .group else {
            throw ModelError(file: path, path: "/expected", message: "missing: a fixture needs /expected/output")
        }
        let group = try root.group("expected")
        expected = try group.memberNames().map { name in
            let dataset = try group.dataset(name)
            guard dataset.elementType.isFloat else {
                throw ModelError(file: path, path: dataset.path, message: "holds \(dataset.elementType), expected floats")
            }
            return (name, try Tensor(shape: dataset.shape, values: try dataset.readFloats()))
        }
        guard expected.contains(where: { $0.name == "output" }) else {
            throw ModelError(file: path, path: "/expected/output", message: "missing")
        }
        generator = try root.attribute("generator")?.stringValue
        model = try Self.reference(root.attribute("model"), attribute: "model", fixture: path)
        architecture = try Self.reference(root.attribute("architecture"), attribute: "architecture", fixture: path)
        if let value = try root.attribute("key") {
            guard let text = value.stringValue, !text.isEmpty, text.count <= Limits.nameCharacters else {
                throw ModelError(file: path, path: "key", message: "is not a checkpoint entry name (a non-empty string of at most \(Limits.nameCharacters) characters)")
            }
            key = text
        } else {
            key = nil
        }
        if let value = try root.attribute("weights_matching") {
            guard let text = value.stringValue, let matching = KerasWeightsMatching(rawValue: text) else {
                throw ModelError(file: path, path: "weights_matching", message: "is \(escapedForDisplay(String(describing: value))); it is \"order\" or \"name\"")
            }
            weightsMatching = matching
        } else {
            weightsMatching = nil
        }
        if let text = try root.attribute("exercises")?.stringValue {
            guard let list = try? StrictJSONDecoder.parse(Data(text.utf8)) as? [String] else {
                throw ModelError(file: path, path: "exercises", message: "is not a JSON array of strings")
            }
            exercises = list
        } else {
            exercises = []
        }
        atol = try Self.tolerance(root.attribute("atol"), attribute: "atol", fixture: path)
        rtol = try Self.tolerance(root.attribute("rtol"), attribute: "rtol", fixture: path)
    }

    /// A tolerance attribute: absent, or a finite non-negative number. A negative, NaN or
    /// infinite tolerance, or one that is not a number (a string), refuses the fixture: it
    /// would turn every comparison into a mismatch, or be silently ignored.
    static func tolerance(_ value: AttributeValue?, attribute: String, fixture: String) throws -> Double? {
        guard let value else { return nil }
        guard let number = value.doubleValue else {
            throw ModelError(file: fixture, path: attribute, message: "is not a number (\(escapedForDisplay(String(describing: value)))); a tolerance is a non-negative number")
        }
        guard number.isFinite, number >= 0 else {
            throw ModelError(file: fixture, path: attribute, message: "is \(number); a tolerance is a finite non-negative number")
        }
        return number
    }

    /// A file named by a fixture attribute (`model`, `architecture`): a relative path inside
    /// the fixture's folder. Refused: an absolute path, a `..` component, a name whose real
    /// path (symbolic links resolved) leaves the folder, and anything but a regular file. A
    /// name that does not exist is kept (using it fails later, naming it).
    static func reference(_ value: AttributeValue?, attribute: String, fixture: String) throws -> String? {
        guard let value else { return nil }
        guard let name = value.stringValue, !name.isEmpty else {
            throw ModelError(file: fixture, path: attribute, message: "is not a file name")
        }
        func refuse(_ reason: String) -> ModelError {
            ModelError(file: fixture, path: attribute, message: "names '\(escapedForDisplay(name))', \(reason); refused")
        }
        guard !name.hasPrefix("/") else { throw refuse("an absolute path (it must name a file in the fixture's folder)") }
        guard !name.utf8.split(separator: UInt8(ascii: "/")).contains(where: { $0.elementsEqual("..".utf8) }) else {
            throw refuse("which leaves the fixture's folder")
        }
        let folder = URL(fileURLWithPath: fixture).deletingLastPathComponent().path
        let target = URL(fileURLWithPath: folder).appendingPathComponent(name).path
        var info = stat()
        guard lstat(target, &info) == 0 else { return name }
        guard InputFiles.resolves(target, inside: folder) else {
            throw refuse("which resolves (through a symbolic link) outside the fixture's folder")
        }
        do {
            try InputFiles.requireRegularByName(target)
        } catch let error as ModelError {
            throw refuse(error.message)
        }
        return name
    }

    /// The files `path`'s `model` and `architecture` attributes name, beside it as `path`
    /// spells its folder, whether or not they would be accepted or used: what a report must
    /// never be written onto. Empty when the fixture or its attributes cannot be read (then
    /// nothing can read them either).
    public static func namedFiles(of path: String) -> [String] {
        guard let root = try? HDF5File.open(path).root else { return [] }
        let folder = OutputFiles.split(path).folder
        return ["model", "architecture"].compactMap { name -> String? in
            guard let value = try? root.attribute(name)?.stringValue, !value.isEmpty else { return nil }
            if value.hasPrefix("/") { return value }
            return path.contains("/") ? (folder == "/" ? "/" : folder + "/") + value : value
        }
    }

    /// Reads `/inputs` (float features or token ids) and `/lengths` from an input or
    /// fixture file, checking that they agree; or `/texts` for a text model.
    static func readInputs(_ root: HDF5Group, file: String) throws -> (ModelInput, [Int]?) {
        if try root.kind(of: "texts") != nil {
            return (try readTexts(root, file: file), nil)
        }
        guard try root.kind(of: "inputs") == .dataset else {
            throw ModelError(file: file, path: "/inputs", message: "missing: expected [batch, time, features] floats or [batch, time] token ids")
        }
        let dataset = try root.dataset("inputs")
        let input: ModelInput
        let batch: Int
        let time: Int
        if dataset.elementType.isInteger {
            guard dataset.shape.count == 2 else {
                throw ModelError(file: file, path: "/inputs", message: "token ids have shape \(shapeText(dataset.shape)), expected [batch, time]")
            }
            (batch, time) = (dataset.shape[0], dataset.shape[1])
            let ids = try dataset.readIntegers().map { Int(clamping: $0) }
            input = .tokens(ids: ids, batch: batch, time: time)
        } else if dataset.elementType.isFloat {
            guard dataset.shape.count == 3 || dataset.shape.count == 2 else {
                throw ModelError(file: file, path: "/inputs", message: "has shape \(shapeText(dataset.shape)), expected [batch, time, features]")
            }
            // Rank 2 (`[batch, time]`) is token ids stored as floats: the model's own check says
            // it takes token ids; /lengths is checked against that time axis, not blamed.
            (batch, time) = (dataset.shape[0], dataset.shape[1])
            input = .features(try Tensor(shape: dataset.shape, values: try dataset.readFloats()))
        } else {
            throw ModelError(file: file, path: "/inputs", message: "holds \(dataset.elementType), expected floats or integers")
        }
        guard try root.kind(of: "lengths") == .dataset else { return (input, nil) }
        let lengthsSet = try root.dataset("lengths")
        guard lengthsSet.elementType.isInteger, lengthsSet.shape == [batch] else {
            throw ModelError(file: file, path: "/lengths",
                             message: "has shape \(shapeText(lengthsSet.shape)) of \(lengthsSet.elementType), expected [\(batch)] integers")
        }
        let lengths = try lengthsSet.readIntegers()
        if let bad = lengths.firstIndex(where: { $0 < 0 || $0 > Int64(time) }) {
            throw ModelError(file: file, path: "/lengths",
                             message: "lengths[\(bad)] = \(lengths[bad]) is outside 0...\(time) (the time axis of /inputs)")
        }
        return (input, lengths.map { Int($0) })
    }

    /// `/texts`: `[batch]` UTF-8 strings for a model with a text vectorizer, alone (the
    /// vectorizer makes the steps and the mask, so `/inputs` and `/lengths` have no place
    /// beside it), within `Limits.texts`, `Limits.textBytes` and `Limits.textsBytes`.
    static func readTexts(_ root: HDF5Group, file: String) throws -> ModelInput {
        for other in ["inputs", "lengths"] where try root.kind(of: other) != nil {
            throw ModelError(file: file, path: "/\(other)", message: "beside /texts: a text model's steps and mask come from its texts alone; give one or the other")
        }
        guard try root.kind(of: "texts") == .dataset else {
            throw ModelError(file: file, path: "/texts", message: "is not a dataset; expected [batch] strings")
        }
        let dataset = try root.dataset("texts")
        guard case .string = dataset.elementType, dataset.shape.count == 1 else {
            throw ModelError(file: file, path: "/texts", message: "has shape \(shapeText(dataset.shape)) of \(dataset.elementType), expected [batch] strings")
        }
        guard dataset.count <= Limits.texts else {
            throw ModelError(file: file, path: "/texts", message: "holds \(dataset.count) texts, \(Limits.excess(dataset.count, over: Limits.texts)) (Limits.texts)")
        }
        return .texts(try dataset.readUTF8Strings(maxStringBytes: Limits.textBytes, maxTotalBytes: Limits.textsBytes))
    }

    static func optionalFloats(_ root: HDF5Group, _ name: String) throws -> Tensor? {
        guard try root.kind(of: name) == .dataset else { return nil }
        let dataset = try root.dataset(name)
        guard dataset.elementType.isFloat else {
            throw ModelError(file: root.file.path, path: dataset.path, message: "holds \(dataset.elementType), expected floats")
        }
        return try Tensor(shape: dataset.shape, values: try dataset.readFloats())
    }
}

/// Inputs for `run`: `/inputs`, and optionally `/lengths`, `/h0`, `/c0`.
package struct InputFile: Sendable {
    package var input: ModelInput
    package var lengths: [Int]?
    /// A bare module's stacked `/h0` and `/c0` datasets.
    package var h0: Tensor?
    package var c0: Tensor?
    /// Any other model's `/h0` and `/c0` groups: one dataset per recurrent layer, by name
    /// (spec/fixture-format.md).
    package var h0Layers: [String: Tensor]?
    package var c0Layers: [String: Tensor]?

    /// Reads the file; with `model`, `/inputs` is first checked to be the kind of input the
    /// model takes, so that this, not a `/lengths` that does not fit it, is the error.
    package init(contentsOf path: String, for model: LoadedModel? = nil) throws {
        let root = try HDF5File.open(path).root
        try model?.checkInputKind(root, file: path)
        (input, lengths) = try Fixture.readInputs(root, file: path)
        (h0, h0Layers) = try StateDatasets.read(root, "h0", file: path)
        (c0, c0Layers) = try StateDatasets.read(root, "c0", file: path)
    }
}

extension RunResult {
    /// Writes `/output`, and with `states` `/h_n` and `/c_n` when present, to a new HDF5
    /// file — through a temporary file renamed on success, so a failure leaves no partial file.
    ///
    /// `path` is never one of `inputs` (the same file by any name: pairs of what it is and
    /// its path, `["the model": model]`), never a device, FIFO, folder or symbolic link, and
    /// an existing regular file is replaced only when `overwrite`.
    package func write(to path: String, states: Bool, overwrite: Bool = true,
                       protecting inputs: KeyValuePairs<String, String?> = [:]) throws {
        try OutputFiles.check(path, against: inputs, overwrite: overwrite)
        try AtomicFile.write(to: path, overwrite: overwrite) { temporary in
            let root = try HDF5File.create(temporary).root
            try root.write("output", floats: output.values, shape: output.shape)
            if states, let hN { try root.write("h_n", floats: hN.values, shape: hN.shape) }
            if states, let cN { try root.write("c_n", floats: cN.values, shape: cN.shape) }
        }
    }
}
