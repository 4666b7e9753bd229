import HDF5

/// Where a Keras layer's weights are in a file, in the order `layer.get_weights()` returns
/// them (for Bidirectional: the forward layer's, then the backward layer's).
protocol KerasWeightSource {
    func weights(of node: KerasConfig.Node) throws -> [KerasWeight]
}

/// Legacy HDF5 (Keras 2 / tf-keras, and Keras 3's `.h5`): a group per layer named in
/// `layer_names`, whose `weight_names` list the datasets in order. Paths are never
/// guessed; the lists are followed as Keras's own loader follows them.
struct LegacyH5Weights: KerasWeightSource {
    let file: String
    let group: HDF5Group
    let layerNames: [String]
    /// `layerNames` as a set: one lookup per layer, not a scan of the list.
    private let layerNameSet: Set<String>

    init(group: HDF5Group, file: String) throws {
        self.file = file
        self.group = group
        guard let names = try Self.nameList(group, "layer_names") else {
            throw ModelError(file: file, path: group.path, message: "has no layer_names attribute")
        }
        layerNames = names
        layerNameSet = Set(names)
    }

    /// Reads a list attribute that may be split into `name0`, `name1`, ... (tf-keras splits
    /// lists over 64 KB so they fit an object header).
    static func nameList(_ object: HDF5Object, _ name: String) throws -> [String]? {
        if let value = try object.attribute(name) { return value.stringList }
        var parts: [String] = []
        var index = 0
        while let part = try object.attribute("\(name)\(index)") {
            parts += part.stringList ?? []
            index += 1
        }
        return index > 0 ? parts : nil
    }

    func weights(of node: KerasConfig.Node) throws -> [KerasWeight] {
        guard layerNameSet.contains(node.name) else {
            throw ModelError(file: file, path: group.path, layer: "\(shown(node.name)) (\(shown(node.className)))",
                             message: "the file's layer_names (\(shownList(layerNames))) lack this layer")
        }
        let layerGroup = try group.group(node.name)
        let weightNames = try Self.nameList(layerGroup, "weight_names") ?? []
        return try weightNames.map { weightName in
            guard try layerGroup.kind(of: weightName) == .dataset else {
                throw ModelError(file: file, path: "\(layerGroup.path)/\(weightName)", layer: "\(shown(node.name)) (\(shown(node.className)))",
                                 message: "named in weight_names but missing")
            }
            return try KerasWeight(layerGroup.dataset(weightName), file: file)
        }
    }
}

/// Keras 3's `model.weights.h5` (inside a `.keras` archive, or saved with
/// `save_weights('x.weights.h5')`): `layers/<snake_case class name>[_N]/.../vars/<i>`.
/// Names come from class names counted in layer order, not from layer names.
struct Keras3Weights: KerasWeightSource {
    let file: String
    let root: HDF5Group
    /// Layer name → its group path under `layers/`.
    let paths: [String: String]

    /// - Parameter layers: every layer of the model in config order (InputLayers included).
    init(root: HDF5Group, file: String, layers: [KerasConfig.Node]) {
        self.file = file
        self.root = root
        let keys = Self.groupPaths(layers.map { ($0.className, $0.name) })
        self.paths = Dictionary(zip(layers.map(\.name), keys).compactMap { name, key in key.map { (name, $0) } },
                                uniquingKeysWith: { first, _ in first })
    }

    /// Each layer's group in `model.weights.h5`: `layers/` + its class name in snake case,
    /// `_1`, `_2`, ... for later layers of the same class, counted in config order
    /// (`keras.src.saving.saving_lib._save_container_state`). InputLayers get none.
    static func groupPaths(_ layers: [(className: String, name: String)]) -> [String?] {
        var counts: [String: Int] = [:]
        return layers.map { className, _ in
            guard className != "InputLayer" else { return nil }
            let base = KerasLayout.snakeCase(className)
            let seen = counts[base, default: 0]
            counts[base] = seen + 1
            return "layers/" + (seen == 0 ? base : "\(base)_\(seen)")
        }
    }

    func weights(of node: KerasConfig.Node) throws -> [KerasWeight] {
        guard let path = paths[node.name] else { return [] }
        let subgroups: [String]
        switch node.className {
        case "Bidirectional": subgroups = ["forward_layer/cell/vars", "backward_layer/cell/vars"]
        case "SimpleRNN", "LSTM", "GRU": subgroups = ["cell/vars"]
        case "TimeDistributed": subgroups = ["layer/vars"]
        default: subgroups = ["vars"]
        }
        var tensors: [KerasWeight] = []
        for subgroup in subgroups {
            let full = "\(path)/\(subgroup)"
            guard try root.kind(of: full) == .group else {
                if node.className == "Bidirectional" || KerasLayout.recurrentClasses[node.className] != nil {
                    throw ModelError(file: file, path: "/" + full, layer: "\(shown(node.name)) (\(shown(node.className)))", message: "missing group")
                }
                continue
            }
            let vars = try root.group(full)
            let names = try vars.memberNames().sorted { (Int($0) ?? .max, $0) < (Int($1) ?? .max, $1) }
            tensors += try names.map { try KerasWeight(vars.dataset($0), file: file) }
        }
        return tensors
    }
}

/// One Keras weight in a file; its values are read when asked for, so that a reader holds
/// the file-layout form of at most one block of a tensor besides the model it builds.
struct KerasWeight {
    let dataset: HDF5Dataset
    let compressed: Bool
    var path: String { dataset.path }
    var shape: [Int] { dataset.shape }
    var storedType: String { dataset.elementType.description }
    var count: Int { dataset.count }

    /// Floats read at a time by `transposed()` (1 MB).
    static let blockFloats = 1 << 18

    init(_ dataset: HDF5Dataset, file: String) throws {
        guard dataset.elementType.isFloat else {
            throw ModelError(file: file, path: dataset.path, message: "holds \(dataset.elementType), expected floating-point weights")
        }
        self.dataset = dataset
        compressed = try !dataset.filters().isEmpty
    }

    /// The values as stored.
    func tensor() throws -> Tensor {
        Tensor(shape: shape, values: try dataset.readFloats())
    }

    /// A 2-D `[rows, columns]` weight (a Keras kernel) as `[columns, rows]`, read in blocks of
    /// columns (`HDF5Dataset.readFloats(columns:)`), each transposed into place, so that no
    /// second full copy exists. A compressed dataset is read whole (each block would
    /// decompress its chunks again).
    func transposed(blockFloats: Int = Self.blockFloats) throws -> Tensor {
        let (rows, columns) = (shape[0], shape[1])
        guard !compressed, rows * columns > blockFloats else { return transpose(try tensor()) }
        let width = Swift.max(1, blockFloats / rows)
        var values = [Float](repeating: 0, count: rows * columns)
        try values.withUnsafeMutableBufferPointer { target in
            var first = 0
            while first < columns {
                let end = Swift.min(columns, first + width)
                let block = try dataset.readFloats(columns: first..<end)
                let blockWidth = end - first
                for c in 0..<blockWidth {
                    for r in 0..<rows { target[(first + c) * rows + r] = block[r * blockWidth + c] }
                }
                first = end
            }
        }
        return Tensor(shape: [columns, rows], values: values)
    }
}
