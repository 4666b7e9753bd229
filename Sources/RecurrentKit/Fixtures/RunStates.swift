import Foundation
import TextSafety
import HDF5

// The states `rnnkit run` reads from IN and writes to OUT (spec/fixture-format.md, "States of
// a whole model"), and how run and stream errors name a model's layers.
//
// A bare recurrent module keeps PyTorch's stacked form: `/h0` `[layers × directions, batch,
// hidden_out]`. Any other model holds one dataset per recurrent layer, in model order:
// `/h0/<k>` `[directions, batch, hidden_out]` and, for an LSTM layer, `/c0/<k>`
// `[directions, batch, hidden]`; final states go to `/h_n/<k>` and `/c_n/<k>` alike. Layers
// may differ in size, direction count and kind, so no single stacked dataset could hold them.

/// `/h0` or `/c0` as an input file holds it: one dataset (a bare module's stacked form), or a
/// group of one dataset per recurrent layer.
package enum StateDatasets {
    /// Reads `name` under `root`: the dataset, or the group's members by name; both nil when
    /// absent. A member that is not a float dataset is refused, naming it.
    static func read(_ root: HDF5Group, _ name: String, file: String) throws -> (Tensor?, [String: Tensor]?) {
        switch try root.kind(of: name) {
        case .dataset?:
            return (try Fixture.optionalFloats(root, name), nil)
        case .group?:
            let group = try root.group(name)
            let members = try group.memberNames()
            guard members.count <= Limits.layers else {
                throw ModelError(.invalidInput, file: file, path: "/\(name)",
                                 message: "holds \(members.count) members, more than \(Limits.layers) (Limits.layers)")
            }
            var tensors: [String: Tensor] = [:]
            for member in members {
                guard try group.kind(of: member) == .dataset else {
                    throw ModelError(.invalidInput, file: file, path: "/\(name)/\(escapedForDisplay(member))",
                                     message: "is not a dataset; /\(name) holds one dataset per recurrent layer")
                }
                tensors[member] = try Fixture.optionalFloats(group, member)
            }
            return (nil, tensors)
        default:
            return (nil, nil)
        }
    }
}

extension LoadedModel {
    /// Indices in `model.layers` of the recurrent layers, in model order: state `k` belongs to
    /// layer `recurrentLayerIndices[k]`.
    package var recurrentLayerIndices: [Int] {
        model.layers.indices.filter { if case .recurrent = model.layers[$0] { return true } else { return false } }
    }

    /// How errors name layer `index` of `model.layers`: the name and class the file gives it
    /// (`bidirectional (Bidirectional(LSTM))`, `rnn (LSTM)`, `rnn (LSTM, layer 1)` for the second
    /// layer of a stacked PyTorch module); nil when the file names none, and the engine's
    /// `index (kind)` is used instead.
    package func layerLabel(_ index: Int) -> String? {
        if let labels = moduleLabels, labels.indices.contains(index), let label = labels[index] { return label }
        guard let name = model.layerName(index) else { return nil }
        if let summary = summaries.first(where: { $0.name == name }) { return "\(name) (\(summary.type))" }
        // PyTorchReader names the layers of a stacked module `<module>_l<k>`.
        if let range = name.range(of: "_l", options: .backwards), let k = Int(name[range.upperBound...]),
           let summary = summaries.first(where: { $0.name == name[..<range.lowerBound] }) {
            return "\(summary.name) (\(summary.type), layer \(k))"
        }
        return nil
    }

    /// The label of every layer of `model.layers` (see ``layerLabel(_:)``).
    var layerLabels: [String?] { model.layers.indices.map(layerLabel) }

    /// Initial states from a run input file's `/h0` and `/c0`: PyTorch's stacked datasets for
    /// a bare recurrent module (``initialStates(h0:c0:batch:)``), one dataset per recurrent
    /// layer (`/h0/<k>`, `/c0/<k>`) for any other model; a layer's state not given is zeros.
    /// Nil when the file gives none.
    ///
    /// - Throws: `ModelError` (`.invalidInput`) naming `inputPath`, the dataset and the layer
    ///   with the shape it expects, for the other form, a name that is no recurrent layer, a
    ///   cell state for a layer without one, or a shape that does not fit.
    package func initialStates(from inputs: InputFile, inputPath: String) throws -> [RecurrentState]? {
        let batch = inputs.input.batch
        let layers = recurrentLayers
        let indices = recurrentLayerIndices
        func label(_ k: Int) -> String { layerLabel(indices[k]) ?? "\(indices[k]) (\(layers[k].kind.rawValue))" }
        func expectedShapes(_ name: String) -> String {
            let listed = layers.indices.prefix(4).compactMap { k -> String? in
                let layer = layers[k]
                guard name == "h0" || layer.kind == .lstm else { return nil }
                let width = name == "h0" ? layer.outputSize : layer.hiddenSize
                return "/\(name)/\(k) \(shapeText([layer.directions.count, batch, width]))"
            }
            return listed.joined(separator: ", ") + (layers.count > 4 ? ", …" : "")
        }
        if isBareRecurrentModule {
            for (name, group) in [("h0", inputs.h0Layers), ("c0", inputs.c0Layers)] where group != nil {
                throw ModelError(.invalidInput, file: inputPath, path: "/\(name)",
                                 message: "is a group; a bare recurrent module takes one dataset [layers × directions, batch, \(name == "h0" ? "hidden_out" : "hidden")], PyTorch's \(name)")
            }
            return try initialStates(h0: inputs.h0, c0: inputs.c0, batch: batch)
        }
        for (name, tensor) in [("h0", inputs.h0), ("c0", inputs.c0)] where tensor != nil {
            guard !layers.isEmpty else {
                throw ModelError(.invalidInput, file: inputPath, path: "/\(name)", message: "given, but the model has no recurrent layer")
            }
            throw ModelError(.invalidInput, file: inputPath, path: "/\(name)",
                             message: "is one dataset; this model takes a group with one dataset per recurrent layer in model order: \(expectedShapes(name))")
        }
        guard inputs.h0Layers != nil || inputs.c0Layers != nil else { return nil }
        func take(_ group: [String: Tensor]?, _ name: String) throws -> [Tensor?] {
            var byLayer = [Tensor?](repeating: nil, count: layers.count)
            for (member, tensor) in (group ?? [:]).sorted(by: { $0.key < $1.key }) {
                let path = "/\(name)/\(escapedForDisplay(member))"
                guard let k = Int(member), String(k) == member, layers.indices.contains(k) else {
                    throw ModelError(.invalidInput, file: inputPath, path: path,
                                     message: layers.isEmpty ? "given, but the model has no recurrent layer"
                                        : "names no recurrent layer; /\(name) holds one dataset per recurrent layer, named 0 to \(layers.count - 1) in model order")
                }
                let layer = layers[k]
                if name == "c0" && layer.kind != .lstm {
                    throw ModelError(.invalidInput, file: inputPath, path: path, layer: label(k),
                                     message: "a \(layer.kind.rawValue) layer has no cell state")
                }
                let expected = [layer.directions.count, batch, name == "h0" ? layer.outputSize : layer.hiddenSize]
                guard tensor.shape == expected else {
                    throw ModelError(.invalidInput, file: inputPath, path: path, layer: label(k),
                                     message: "has shape \(shapeText(tensor.shape)), expected \(shapeText(expected)) [directions, batch, \(name == "h0" ? "hidden_out" : "hidden")]")
                }
                byLayer[k] = tensor
            }
            return byLayer
        }
        let hs = try take(inputs.h0Layers, "h0")
        let cs = try take(inputs.c0Layers, "c0")
        return layers.indices.map { k in
            let layer = layers[k]
            let d = layer.directions.count
            return RecurrentState(h: hs[k] ?? Tensor(uncheckedZeros: [d, batch, layer.outputSize]),
                                  c: layer.kind == .lstm ? (cs[k] ?? Tensor(uncheckedZeros: [d, batch, layer.hiddenSize])) : nil)
        }
    }

    /// Checks that `/inputs` is the kind of input the model takes before anything else of the
    /// file is judged, so that float features given to a token model (or token ids to a
    /// feature model) are reported as such, not as a `/lengths` that does not fit them.
    func checkInputKind(_ root: HDF5Group, file: String) throws {
        guard try root.kind(of: "inputs") == .dataset else { return }
        let dataset = try root.dataset("inputs")
        if takesTokenIDs && dataset.elementType.isFloat {
            throw ModelError(.invalidInput, file: file, path: "/inputs",
                             message: "holds floats of shape \(shapeText(dataset.shape)); the model takes token ids [batch, time] (integers)")
        }
        if let features = inputFeatures, !takesTokenIDs, dataset.elementType.isInteger {
            throw ModelError(.invalidInput, file: file, path: "/inputs",
                             message: "holds integers of shape \(shapeText(dataset.shape)); the model takes float features [batch, time, \(features)]")
        }
    }

    /// Runs `body`, reporting an engine error as a `ModelError` for this file that names the
    /// layer as the file does (``layerLabel(_:)``).
    func engineBoundary<T>(_ body: () throws -> T) throws -> T {
        try Self.engineBoundary(file: file, labels: layerLabels, body)
    }

    static func engineBoundary<T>(file: String, labels: [String?], _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as EngineError {
            if let index = error.layerIndex, labels.indices.contains(index), let label = labels[index] {
                throw ModelError(.invalidInput, file: file, layer: label, message: error.message)
            }
            throw ModelError(error, file: file, kind: .invalidInput)
        } catch {
            throw ModelError(error, file: file, kind: .invalidInput)
        }
    }
}

extension RunResult {
    /// The datasets `rnnkit run` writes for `model`'s final states, by path: a bare module's
    /// `h_n` `[layers × directions, batch, hidden_out]` and `c_n`, as PyTorch returns them;
    /// for any other model `h_n/<k>` `[directions, batch, hidden_out]` for every recurrent
    /// layer `k` and `c_n/<k>` `[directions, batch, hidden]` for every LSTM layer.
    package func stateDatasets(for model: LoadedModel) -> [(path: String, tensor: Tensor)] {
        if model.isBareRecurrentModule {
            return [("h_n", hN), ("c_n", cN)].compactMap { path, tensor in tensor.map { (path, $0) } }
        }
        var datasets: [(path: String, tensor: Tensor)] = finalStates.enumerated().map { ("h_n/\($0.offset)", $0.element.h) }
        for (k, state) in finalStates.enumerated() {
            if let c = state.c { datasets.append(("c_n/\(k)", c)) }
        }
        return datasets
    }

    /// Writes `/output` and `model`'s final states (``stateDatasets(for:)``) to a new HDF5 file,
    /// as ``write(to:states:overwrite:protecting:)`` does.
    package func write(to path: String, model: LoadedModel, overwrite: Bool = true,
                       protecting inputs: KeyValuePairs<String, String?> = [:]) throws {
        try OutputFiles.check(path, against: inputs, overwrite: overwrite)
        let states = stateDatasets(for: model)
        try AtomicFile.write(to: path, overwrite: overwrite) { temporary in
            let root = try HDF5File.create(temporary).root
            try root.write("output", floats: output.values, shape: output.shape)
            for (name, tensor) in states { try root.write(name, floats: tensor.values, shape: tensor.shape) }
        }
    }
}
