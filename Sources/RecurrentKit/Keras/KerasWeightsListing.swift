import HDF5

/// What a Keras weights-only file holds, read without an architecture: its layers and their
/// weight tensors, in file order. Enough to inspect it and to check it against a model.
public struct KerasWeightsListing: Sendable {
    public struct Weight: Sendable {
        public var name: String
        public var shape: [Int]
        public var storedType: String
    }

    public struct LayerEntry: Sendable {
        public var name: String
        public var weights: [Weight]
    }

    public var file: String
    /// `legacy` (`layer_names`/`weight_names`) or `keras3` (`layers/<class>/vars/<i>`).
    public var form: String
    public var layers: [LayerEntry]

    public var parameterCount: Int {
        layers.flatMap(\.weights).reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    /// Lists a weights-only file; nil when the file is not one.
    public static func read(_ path: String) throws -> KerasWeightsListing? {
        if KerasFile.isZip(path) { return nil }
        let root = try HDF5File.open(path).root
        if try root.hasAttribute("model_config") { return nil }
        func weight(_ dataset: HDF5Dataset, name: String) -> Weight {
            Weight(name: name, shape: dataset.shape, storedType: dataset.elementType.description)
        }
        if let names = try LegacyH5Weights.nameList(root, "layer_names") {
            let layers = try names.map { name -> LayerEntry in
                let group = try root.group(name)
                let weightNames = try LegacyH5Weights.nameList(group, "weight_names") ?? []
                return LayerEntry(name: name, weights: try weightNames.map { try weight(group.dataset($0), name: $0) })
            }
            return KerasWeightsListing(file: path, form: "legacy", layers: layers)
        }
        if try root.kind(of: "layers") == .group {
            let group = try root.group("layers")
            let layers = try group.memberNames().map { name -> LayerEntry in
                let paths = try group.group(name).datasetPaths()
                return LayerEntry(name: name, weights: try paths.map { try weight(group.group(name).dataset($0), name: $0) })
            }
            return KerasWeightsListing(file: path, form: "keras3", layers: layers)
        }
        return nil
    }
}
