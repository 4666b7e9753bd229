/// Where a Keras layer's weights are in a container, in the order `layer.get_weights()`
/// returns them (for Bidirectional: the forward layer's, then the backward layer's): the
/// Keras 2 and Keras 3 ways of naming a layer's tensors.
protocol KerasWeightSource {
    func weights(of node: KerasConfig.Node) throws -> [KerasWeight]
}

/// Legacy HDF5 (Keras 2 / tf-keras, and Keras 3's `.h5`): a group per layer named in
/// `layer_names`, whose `weight_names` list the datasets in order. Paths are never
/// guessed; the lists are followed as Keras's own loader follows them.
struct LegacyH5Weights: KerasWeightSource {
    /// The group holding `layer_names` (the file, or its `model_weights`).
    let container: TensorContainer
    var file: String { container.file }
    let layerNames: [String]
    /// `layerNames` as a set: one lookup per layer, not a scan of the list.
    private let layerNameSet: Set<String>

    init(container: TensorContainer) throws {
        self.container = container
        guard let names = try container.stringListAttribute("layer_names", at: "") else {
            throw ModelError(file: container.file, path: container.location, message: "has no layer_names attribute")
        }
        layerNames = names
        layerNameSet = Set(names)
    }

    func weights(of node: KerasConfig.Node) throws -> [KerasWeight] {
        guard layerNameSet.contains(node.name) else {
            throw ModelError(file: file, path: container.location, layer: "\(shown(node.name)) (\(shown(node.className)))",
                             message: "the file's layer_names (\(shownList(layerNames))) lack this layer")
        }
        let layer = try container.scoped(to: node.name)
        let weightNames = try layer.stringListAttribute("weight_names", at: "") ?? []
        return try weightNames.map { weightName in
            guard try layer.kind(of: weightName) == .tensor, let tensor = try layer.tensor(weightName) else {
                throw ModelError(file: file, path: "\(layer.location)/\(weightName)", layer: "\(shown(node.name)) (\(shown(node.className)))",
                                 message: "named in weight_names but missing")
            }
            return try KerasWeight(tensor, file: file)
        }
    }
}

/// Keras 3's `model.weights.h5` (inside a `.keras` archive, or saved with
/// `save_weights('x.weights.h5')`): `layers/<snake_case class name>[_N]/.../vars/<i>`.
/// Names come from class names counted in layer order, not from layer names.
struct Keras3Weights: KerasWeightSource {
    let container: TensorContainer
    var file: String { container.file }
    /// Layer name → its group path under `layers/`.
    let paths: [String: String]

    /// - Parameter layers: every layer of the model in config order (InputLayers included).
    init(container: TensorContainer, layers: [KerasConfig.Node]) {
        self.container = container
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
        case let className where KerasLayout.isRecurrentClass(className): subgroups = ["cell/vars"]
        case "TimeDistributed": subgroups = ["layer/vars"]
        default: subgroups = ["vars"]
        }
        var tensors: [KerasWeight] = []
        for subgroup in subgroups {
            let full = "\(path)/\(subgroup)"
            guard try container.kind(of: full) == .group else {
                if node.className == "Bidirectional" || KerasLayout.isRecurrentClass(node.className) {
                    throw ModelError(file: file, path: "/" + full, layer: "\(shown(node.name)) (\(shown(node.className)))", message: "missing group")
                }
                continue
            }
            let vars = try container.scoped(to: full)
            let names = try vars.memberNames(of: "").sorted { (Int($0) ?? .max, $0) < (Int($1) ?? .max, $1) }
            tensors += try names.map { name in
                guard let tensor = try vars.tensor(name) else {
                    throw ModelError(file: file, path: "\(vars.location)/\(name)", layer: "\(shown(node.name)) (\(shown(node.className)))",
                                     message: "is missing")
                }
                return try KerasWeight(tensor, file: file)
            }
        }
        return tensors
    }
}

/// One Keras weight in a container; its values are read when asked for, so that a reader
/// holds the file-layout form of at most one block of a tensor besides the model it builds.
struct KerasWeight {
    let stored: NamedTensor
    var compressed: Bool { stored.compressed }
    var path: String { stored.location }
    var shape: [Int] { stored.shape }
    var storedType: String { stored.dtype.description }
    var count: Int { stored.count }

    /// Floats read at a time by `transposed()` (1 MB).
    static let blockFloats = 1 << 18

    init(_ stored: NamedTensor, file: String) throws {
        guard stored.dtype.isFloat else {
            throw ModelError(file: file, path: stored.location, message: "holds \(stored.dtype), expected floating-point weights")
        }
        self.stored = stored
    }

    /// The values as stored.
    func tensor() throws -> Tensor {
        try Tensor(shape: shape, values: try stored.readFloats())
    }

    /// A 2-D `[rows, columns]` weight (a Keras kernel) as `[columns, rows]`, read in blocks of
    /// columns (`NamedTensor.readColumns`), each transposed into place, so that no
    /// second full copy exists. A compressed dataset is read whole (each block would
    /// decompress its chunks again).
    func transposed(blockFloats: Int = Self.blockFloats) throws -> Tensor {
        let (rows, columns) = (shape[0], shape[1])
        guard !compressed, rows * columns > blockFloats else { return KerasLayout.transpose(try tensor()) }
        let width = Swift.max(1, blockFloats / rows)
        var values = [Float](repeating: 0, count: rows * columns)
        try values.withUnsafeMutableBufferPointer { target in
            var first = 0
            while first < columns {
                let end = Swift.min(columns, first + width)
                let block = try stored.readColumns(first..<end)
                let blockWidth = end - first
                for c in 0..<blockWidth {
                    for r in 0..<rows { target[(first + c) * rows + r] = block[r * blockWidth + c] }
                }
                first = end
            }
        }
        return try Tensor(shape: [columns, rows], values: values)
    }
}
