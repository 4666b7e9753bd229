import TextSafety

/// Where a Keras layer's weights are in a container, in the order `layer.get_weights()`
/// returns them (for Bidirectional: the forward layer's, then the backward layer's): the
/// Keras 2 and Keras 3 ways of naming a layer's tensors.
protocol KerasWeightSource {
    func weights(of node: KerasConfig.Node) throws -> [KerasWeight]
    /// The file's own name for the layer whose weights `node` takes, when the file names it
    /// and the name differs from the node's (weights paired in order); nil otherwise.
    func fileLayerName(of node: KerasConfig.Node) -> String?
}

extension KerasWeightSource {
    func fileLayerName(of node: KerasConfig.Node) -> String? { nil }
}

/// Legacy HDF5 (Keras 2 / tf-keras, and Keras 3's `.h5`): a group per layer named in
/// `layer_names`, whose `weight_names` list the datasets in order. Paths are never
/// guessed; the lists are followed as Keras's own loader follows them.
///
/// A weights-only file is paired with its architecture as `model.load_weights` pairs them
/// (`load_weights_from_hdf5_group`): in order, the k-th layer of the file that has weights
/// giving the k-th layer of the model that has weights, names aside; or by name when asked
/// (`load_weights_from_hdf5_group_by_name`, `by_name=True`). A full model's `model_weights`
/// and its own config always carry the same names, and are paired by name.
struct LegacyH5Weights: KerasWeightSource {
    /// The group holding `layer_names` (the file, or its `model_weights`).
    let container: TensorContainer
    var file: String { container.file }
    let layerNames: [String]
    /// `layerNames` as a set: one lookup per layer, not a scan of the list.
    private let layerNameSet: Set<String>
    /// Paired in order: each architecture layer with weights → the file's layer at the same
    /// position among the file's layers with weights. Nil when paired by name.
    private var ordered: [String: String]?
    /// In order: the first architecture layer of a class the reader does not know, past
    /// which the pairing cannot be made (the reader refuses that layer itself).
    private var unknownClass: KerasConfig.Node?
    /// True for a weights-only file read by name (its refusals then say what Keras would do).
    private var byNameWeightsOnly = false
    /// What the user should know about the pairing (file layers that no layer took).
    private(set) var notes: [String] = []

    /// A full model's `model_weights`: paired with its own config by name.
    init(container: TensorContainer) throws {
        self.container = container
        guard let names = try container.stringListAttribute("layer_names", at: "") else {
            throw ModelError(file: container.file, path: container.location, message: "has no layer_names attribute")
        }
        layerNames = names
        layerNameSet = Set(names)
    }

    /// A weights-only file paired with an architecture's layers (`KerasConfig.allLayers`,
    /// model order) as `matching` says.
    init(container: TensorContainer, architecture layers: [KerasConfig.Node], matching: KerasWeightsMatching) throws {
        try self.init(container: container)
        try checkTopLevelWeights()
        let fileLayers = try layerNames.compactMap { name -> (name: String, weights: [String])? in
            let weights = try weightNames(of: name)
            return weights.isEmpty ? nil : (name, weights)
        }
        switch matching {
        case .name:
            byNameWeightsOnly = true
            let architectureNames = Set(layers.map(\.name))
            let unused = fileLayers.map(\.name).filter { !architectureNames.contains($0) }
            if !unused.isEmpty {
                notes.append("\(unused.count) of the file's layers with weights (\(shownList(unused))) match no layer of the architecture by name and are not used, as Keras's load_weights(by_name=True) leaves them")
            }
        case .order:
            var modelLayers: [KerasConfig.Node] = []
            for node in layers {
                guard let hasWeights = KerasLayout.hasWeights(className: node.className) else {
                    unknownClass = node
                    break
                }
                if hasWeights { modelLayers.append(node) }
            }
            if unknownClass == nil, modelLayers.count != fileLayers.count {
                throw ModelError(file: file, path: container.location,
                                 message: "holds weights for \(fileLayers.count) layers (\(shownList(fileLayers.map(\.name)))) and the architecture has \(modelLayers.count) layers with weights (\(shownList(modelLayers.map(\.name)))); Keras's load_weights pairs them in order and refuses a different count (pairing by name, as load_weights(by_name=True), is the other way)")
            }
            var pairs: [String: String] = [:]
            for (node, fileLayer) in zip(modelLayers, fileLayers) {
                pairs[node.name] = fileLayer.name
                // Where the weight names tell what wrote them, it must be what takes them.
                if let written = KerasLayout.WrittenBy(weightNames: fileLayer.weights),
                   let taking = KerasLayout.WrittenBy(node: node), !written.fits(taking) {
                    throw ModelError(file: file, path: "/" + fileLayer.name,
                                     layer: "\(escapedForDisplay(node.name)) (\(escapedForDisplay(node.className))), paired in order with the file's layer \(escapedForDisplay(fileLayer.name))",
                                     message: "the file's layer holds \(written.title) weights (\(shownList(fileLayer.weights, limit: 3))), which a \(escapedForDisplay(node.className)) layer does not take")
                }
            }
            ordered = pairs
        }
    }

    /// A layer group's `weight_names`; refused when `layer_names` lists a group the file lacks.
    private func weightNames(of name: String) throws -> [String] {
        guard try container.kind(of: name) == .group else {
            throw ModelError(file: file, path: container.location, message: "layer_names lists \(escapedForDisplay(name)), but the file has no group of that name")
        }
        return try container.scoped(to: name).stringListAttribute("weight_names", at: "") ?? []
    }

    /// `top_level_model_weights` (tf-keras 2.13+, Keras 3): weights on the model object
    /// itself. The models here have none; Keras refuses a file that holds some.
    private func checkTopLevelWeights() throws {
        guard try container.kind(of: "top_level_model_weights") == .group else { return }
        let names = try container.scoped(to: "top_level_model_weights").stringListAttribute("weight_names", at: "") ?? []
        guard names.isEmpty else {
            throw ModelError(file: file, path: "/top_level_model_weights",
                             message: "holds \(names.count) weights of the model object itself (\(shownList(names))), which no model read here has; Keras refuses the count")
        }
    }

    func fileLayerName(of node: KerasConfig.Node) -> String? {
        guard let name = ordered?[node.name], name != node.name else { return nil }
        return name
    }

    func weights(of node: KerasConfig.Node) throws -> [KerasWeight] {
        let fileName: String
        if let ordered {
            guard let paired = ordered[node.name] else {
                let reason = unknownClass.map { "the layer class '\(escapedForDisplay($0.className))' of \(escapedForDisplay($0.name)) comes before it, and whether it holds weights is not known here" }
                    ?? "it is not among the layers with weights"
                throw ModelError(file: file, path: container.location, layer: "\(escapedForDisplay(node.name)) (\(escapedForDisplay(node.className)))",
                                 message: "cannot be paired in order with the file's layers: \(reason)")
            }
            fileName = paired
        } else {
            guard layerNameSet.contains(node.name) else {
                throw ModelError(file: file, path: container.location, layer: "\(escapedForDisplay(node.name)) (\(escapedForDisplay(node.className)))",
                                 message: "the file's layer_names (\(shownList(layerNames))) lack this layer" + (byNameWeightsOnly
                                    ? "; paired by name, Keras's load_weights(by_name=True) would leave its weights as initialised (random), so it is refused"
                                    : ""))
            }
            fileName = node.name
        }
        let layer = try container.scoped(to: fileName)
        let weightNames = try layer.stringListAttribute("weight_names", at: "") ?? []
        let label = "\(escapedForDisplay(node.name)) (\(escapedForDisplay(node.className)))" + (fileName == node.name ? "" : ", paired in order with the file's layer \(escapedForDisplay(fileName))")
        return try weightNames.map { weightName in
            guard try layer.kind(of: weightName) == .tensor, let tensor = try layer.tensor(weightName) else {
                throw ModelError(file: file, path: "\(layer.location)/\(weightName)", layer: label,
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
                    throw ModelError(file: file, path: "/" + full, layer: "\(escapedForDisplay(node.name)) (\(escapedForDisplay(node.className)))", message: "missing group")
                }
                continue
            }
            let vars = try container.scoped(to: full)
            let names = try vars.memberNames(of: "").sorted { (Int($0) ?? .max, $0) < (Int($1) ?? .max, $1) }
            tensors += try names.map { name in
                guard let tensor = try vars.tensor(name) else {
                    throw ModelError(file: file, path: "\(vars.location)/\(name)", layer: "\(escapedForDisplay(node.name)) (\(escapedForDisplay(node.className)))",
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
