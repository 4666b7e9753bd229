import HDF5

/// What a Keras weights-only file holds, read without an architecture: its layers and their
/// weight tensors, in file order. Enough to inspect it and to check it against a model.
package struct KerasWeightsListing: Sendable {
    package struct Weight: Sendable {
        package var name: String
        package var shape: [Int]
        package var storedType: String
    }

    package struct LayerEntry: Sendable {
        package var name: String
        package var weights: [Weight]
    }

    package var file: String
    /// `legacy` (`layer_names`/`weight_names`) or `keras3` (`layers/<class>/vars/<i>`).
    package var form: String
    package var layers: [LayerEntry]

    package var parameterCount: Int {
        layers.flatMap(\.weights).reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    /// Lists a weights-only file; nil when the file is not one.
    package static func read(_ path: String) throws -> KerasWeightsListing? {
        guard try ModelFileForm(sniffing: path) == .hdf5 else { return nil }
        let container = HDF5Container(try HDF5File.open(path))
        if try container.hasAttribute("model_config", at: "") { return nil }
        func weight(_ tensor: NamedTensor, name: String) -> Weight {
            Weight(name: name, shape: tensor.shape, storedType: tensor.dtype.description)
        }
        func weights(_ group: TensorContainer, names: [String]) throws -> [Weight] {
            try names.map { name in
                guard let tensor = try group.tensor(name) else {
                    throw ModelError(file: path, path: "\(group.location)/\(name)", message: "named in weight_names but missing")
                }
                return weight(tensor, name: name)
            }
        }
        if let names = try container.stringListAttribute("layer_names", at: "") {
            let layers = try names.map { name -> LayerEntry in
                let group = try container.scoped(to: name)
                return LayerEntry(name: name, weights: try weights(group, names: group.stringListAttribute("weight_names", at: "") ?? []))
            }
            return KerasWeightsListing(file: path, form: "legacy", layers: layers)
        }
        if try container.kind(of: "layers") == .group {
            let layers = try container.memberNames(of: "layers").map { name -> LayerEntry in
                let group = try container.scoped(to: "layers/\(name)")
                return LayerEntry(name: name, weights: try weights(group, names: group.tensorNames(below: "")))
            }
            return KerasWeightsListing(file: path, form: "keras3", layers: layers)
        }
        return nil
    }
}
