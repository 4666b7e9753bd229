import Foundation
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
    /// For a weights-only model file: the model file holding its architecture.
    public var architecture: String?
    public var exercises: [String]
    public var atol: Double?
    public var rtol: Double?

    /// The model (and architecture) paths, resolved against the fixture's folder.
    public var modelPath: String? { model.map(resolve) }
    public var architecturePath: String? { architecture.map(resolve) }

    private func resolve(_ name: String) -> String {
        URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// Reads a fixture file.
    public init(contentsOf path: String) throws {
        let hdf5 = try HDF5File.open(path)
        let root = hdf5.root
        file = path
        (input, lengths) = try Self.readInputs(root, file: path)
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
            return (name, Tensor(shape: dataset.shape, values: try dataset.readFloats()))
        }
        guard expected.contains(where: { $0.name == "output" }) else {
            throw ModelError(file: path, path: "/expected/output", message: "missing")
        }
        generator = try root.attribute("generator")?.stringValue
        model = try root.attribute("model")?.stringValue
        architecture = try root.attribute("architecture")?.stringValue
        if let text = try root.attribute("exercises")?.stringValue {
            guard let list = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String] else {
                throw ModelError(file: path, path: "exercises", message: "is not a JSON array of strings")
            }
            exercises = list
        } else {
            exercises = []
        }
        atol = try root.attribute("atol")?.doubleValue
        rtol = try root.attribute("rtol")?.doubleValue
    }

    /// Reads `/inputs` (float features or token ids) and `/lengths` from an input or
    /// fixture file, checking that they agree.
    static func readInputs(_ root: HDF5Group, file: String) throws -> (ModelInput, [Int]?) {
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
            (batch, time) = (dataset.shape[0], dataset.shape.count == 3 ? dataset.shape[1] : 0)
            input = .features(Tensor(shape: dataset.shape, values: try dataset.readFloats()))
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

    static func optionalFloats(_ root: HDF5Group, _ name: String) throws -> Tensor? {
        guard try root.kind(of: name) == .dataset else { return nil }
        let dataset = try root.dataset(name)
        guard dataset.elementType.isFloat else {
            throw ModelError(file: root.file.path, path: dataset.path, message: "holds \(dataset.elementType), expected floats")
        }
        return Tensor(shape: dataset.shape, values: try dataset.readFloats())
    }
}

/// Inputs for `run`: `/inputs`, and optionally `/lengths`, `/h0`, `/c0`.
public struct InputFile: Sendable {
    public var input: ModelInput
    public var lengths: [Int]?
    public var h0: Tensor?
    public var c0: Tensor?

    public init(contentsOf path: String) throws {
        let root = try HDF5File.open(path).root
        (input, lengths) = try Fixture.readInputs(root, file: path)
        h0 = try Fixture.optionalFloats(root, "h0")
        c0 = try Fixture.optionalFloats(root, "c0")
    }
}

extension ModelOutputs {
    /// Writes `/output`, and `/h_n`, `/c_n` when present, to a new HDF5 file — through a
    /// temporary file renamed on success, so a failure leaves no partial file.
    ///
    /// `path` is never one of `inputs` (the same file by any name: pairs of what it is and
    /// its path, `["the model": model]`), never a device, FIFO, folder or symbolic link, and
    /// an existing regular file is replaced only when `overwrite`.
    public func write(to path: String, overwrite: Bool = true,
                      protecting inputs: KeyValuePairs<String, String?> = [:]) throws {
        try OutputFiles.check(path, against: inputs, overwrite: overwrite)
        try AtomicFile.write(to: path, overwrite: overwrite) { temporary in
            let root = try HDF5File.create(temporary).root
            try root.write("output", floats: output.values, shape: output.shape)
            if let hN { try root.write("h_n", floats: hN.values, shape: hN.shape) }
            if let cN { try root.write("c_n", floats: cN.values, shape: cN.shape) }
        }
    }
}
