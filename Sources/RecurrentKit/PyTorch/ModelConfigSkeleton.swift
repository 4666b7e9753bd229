import HDF5
import Foundation

/// What a state_dict holds, module by module, when it is not one bare recurrent module and
/// carries no `model_config`, and a `model_config` to start from.
///
/// A state_dict keeps weights, not the forward pass: the modules are guessed from key
/// prefixes and shapes (recurrent parameter names; `weight` alone with an `emb` name is an
/// Embedding; `weight` with or without `bias` a Linear), in the file's key order, which is
/// the order the modules were registered. The readout between the last recurrent module and
/// what follows cannot be guessed at all: the skeleton leaves it to choose, listing the
/// choices, so it is not a valid config until a person has edited it.
struct ModelConfigSkeleton {
    /// One module found: its key prefix (without the dot), what it looks like, and its
    /// skeleton entry (nil when rnnkit has no module for its keys).
    struct Found {
        var name: String
        var summary: String
        var entry: [(String, Any)]?
        var isRecurrent = false
        /// Features in and out (a Linear's; an Embedding's output; a recurrent module's
        /// output, directions concatenated), for ordering.
        var inputWidth: Int?
        var outputWidth: Int?
    }

    var modules: [Found] = []

    /// Groups `keys` (in the file's order) by module prefix; `dict` gives the shapes.
    init(keys: [String], dict: PyTorchReader.StateDict) {
        var order: [String] = []
        var groups: [String: [String]] = [:]
        for key in keys {
            let parts = key.split(separator: ".", omittingEmptySubsequences: false)
            let prefix = parts.dropLast().joined(separator: ".")
            if groups[prefix] == nil { order.append(prefix) }
            groups[prefix, default: []].append(String(parts.last ?? ""))
        }
        let found = order.map { Self.module($0, leaves: groups[$0] ?? [], dict: dict) }
        modules = Self.forwardOrder(found)
    }

    /// The modules in the order a forward pass most likely takes them: embeddings, then
    /// recurrent modules (in the file's order), then each Linear whose input is the width
    /// the previous module gives; what does not chain stays in the file's order at the end.
    /// HDF5 lists keys alphabetically, so the file's order alone says little there.
    private static func forwardOrder(_ found: [Found]) -> [Found] {
        var ordered = found.filter { $0.entry?.first?.1 as? String == "Embedding" } + found.filter(\.isRecurrent)
        var rest = found.filter { !ordered.map(\.name).contains($0.name) }
        var width = ordered.last?.outputWidth
        while let next = rest.firstIndex(where: { $0.inputWidth != nil && $0.inputWidth == width }) {
            width = rest[next].outputWidth
            ordered.append(rest.remove(at: next))
        }
        return ordered + rest
    }

    private static func module(_ prefix: String, leaves: [String], dict: PyTorchReader.StateDict) -> Found {
        let name = prefix.isEmpty ? "(root)" : prefix
        let key = { (leaf: String) in prefix.isEmpty ? leaf : prefix + "." + leaf }
        let shape = { (leaf: String) in dict.shape(key(leaf)) }
        let parameters = leaves.compactMap { PyTorchLayout.ParameterName(Substring($0)) }
        if parameters.count == leaves.count, let hh = shape("weight_hh_l0"), hh.count == 2,
           let ih = shape("weight_ih_l0"), ih.count == 2 {
            let projection = shape("weight_hr_l0").flatMap { $0.count == 2 ? $0 : nil }
            let hidden = projection?[1] ?? hh[1]
            if hidden > 0, hh[0] % hidden == 0, let kind = PyTorchLayout.cellKind(gateCount: hh[0] / hidden) {
                let type = PyTorchLayout.moduleType(kind)
                let layers = (parameters.map(\.layer).max() ?? 0) + 1
                let bidirectional = parameters.contains { $0.reverse }
                var entry: [(String, Any)] = [("type", type), ("name", name), ("input_size", ih[1]), ("hidden_size", hidden),
                                              ("num_layers", layers), ("bidirectional", bidirectional),
                                              ("bias", leaves.contains("bias_ih_l0"))]
                if let projection { entry.append(("proj_size", projection[0])) }
                return Found(name: name, summary: "\(type) \(ih[1]) → \(hidden)" + (bidirectional ? " bidirectional" : "")
                                 + (layers > 1 ? ", \(layers) layers" : ""),
                             entry: entry, isRecurrent: true, inputWidth: ih[1],
                             outputWidth: (projection?[0] ?? hidden) * (bidirectional ? 2 : 1))
            }
        }
        if let weight = shape("weight"), weight.count == 2, Set(leaves).isSubset(of: ["weight", "bias"]) {
            let hasBias = leaves.contains("bias")
            if !hasBias && name.lowercased().contains("emb") {
                return Found(name: name, summary: "Embedding \(shapeText(weight))",
                             entry: [("type", "Embedding"), ("name", name), ("num_embeddings", weight[0]),
                                     ("embedding_dim", weight[1])], outputWidth: weight[1])
            }
            return Found(name: name, summary: "Linear \(weight[1]) → \(weight[0])",
                         entry: [("type", "Linear"), ("name", name), ("in_features", weight[1]),
                                 ("out_features", weight[0]), ("bias", hasBias)],
                         inputWidth: weight[1], outputWidth: weight[0])
        }
        let listed = leaves.prefix(4).map { "\($0) \(shape($0).map(shapeText) ?? "")" }.joined(separator: ", ")
        return Found(name: name, summary: "keys \(listed)\(leaves.count > 4 ? ", …" : ""), not a module rnnkit runs")
    }

    /// The readout a person has to choose: every mode, as the placeholder says.
    static var readoutChoice: String {
        "CHOOSE ONE: " + ModelConfigDocument.ReadoutModule.modes.map(\.name).joined(separator: " | ")
    }

    /// The skeleton's modules: each found module rnnkit runs, and after the last recurrent
    /// module, when anything follows it, a Readout to choose.
    private var entries: [[(String, Any)]] {
        var entries: [[(String, Any)]] = []
        let lastRecurrent = modules.lastIndex { $0.isRecurrent }
        for (index, module) in modules.enumerated() {
            guard let entry = module.entry else { continue }
            entries.append(entry)
            if index == lastRecurrent, index < modules.count - 1 {
                entries.append([("type", "Readout"), ("mode", Self.readoutChoice)])
            }
        }
        return entries
    }

    /// The skeleton as JSON: one line (`pretty == false`) or one module per line.
    func json(pretty: Bool) -> String {
        let modules = entries.map { entry in
            "{" + entry.map { "\(Self.literal($0.0)): \(Self.literal($0.1))" }.joined(separator: ", ") + "}"
        }
        let head = "\"format\": \"\(ModelConfigDocument.format)\", \"version\": \(ModelConfigDocument.currentVersion), \"modules\": ["
        return pretty ? "{\n  \(head)\n    " + modules.joined(separator: ",\n    ") + "\n  ]\n}"
            : "{" + head + modules.joined(separator: ", ") + "]}"
    }

    /// A JSON literal: strings escaped as JSON escapes them (so a key holding a control
    /// character prints as `\u001b`, never as the character), numbers and booleans as they are.
    private static func literal(_ value: Any) -> String {
        switch value {
        case let flag as Bool: return flag ? "true" : "false"
        case let number as Int: return String(number)
        default:
            let encoder = JSONEncoder()
            encoder.outputFormatting = .withoutEscapingSlashes
            let data = (try? encoder.encode(["\(value)"])) ?? Data("[\"\"]".utf8)
            return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
    }

    /// The refusal of a file that is not one bare module, listing what it holds and the
    /// skeleton; `error` is the bare-module reader's own reason, kept for a file with no
    /// module at all.
    func refusal(file: String, reading error: ModelError) -> ModelError {
        // One group of keys is one module gone wrong: the bare reader's reason says what.
        guard modules.count >= 2, modules.contains(where: { $0.entry != nil }) else { return error }
        let listed = modules.prefix(12).map { "\(shown($0.name)) (\($0.summary))" }.joined(separator: ", ")
            + (modules.count > 12 ? " (and \(modules.count - 12) more)" : "")
        return ModelError(.invalidModel, file: file,
                          message: "holds \(modules.count) modules and no model_config (a state_dict keeps weights, not the forward pass): \(listed); describe the model in a model_config (spec/pytorch-layout.md) and pass it as --architecture CONFIG.json. A skeleton to edit, the readout left to choose (`rnnkit inspect` prints it formatted): \(json(pretty: false))")
    }
}

/// A PyTorch state_dict that needs a `model_config` to run, as `inspect` lists it: the
/// modules found and the skeleton, formatted.
package struct StateDictListing {
    package var file: String
    package var layout: String
    /// `(key prefix, what it looks like)` per module, in the file's order.
    package var modules: [(name: String, summary: String)]
    /// The skeleton `model_config`, one module per line.
    package var skeleton: String

    /// The listing of `path` when it is a PyTorch state_dict holding several modules and no
    /// `model_config`; nil for any other file (which `LoadedModel` reads or refuses itself).
    package static func read(_ path: String, key: String?) throws -> StateDictListing? {
        let form = try ModelFileForm(sniffing: path)
        let container: TensorContainer
        let layout: Layout
        switch form {
        case .torchSave: (container, layout) = (try TorchSaveFile.read(path, key: key), .pytorchSave)
        case .safetensors: (container, layout) = (try SafetensorsFile.read(path), .pytorchSafetensors)
        case .hdf5:
            let hdf5 = HDF5Container(try HDF5File.open(path))
            guard try !KerasFile.isKeras(hdf5) else { return nil }
            (container, layout) = (hdf5, .pytorch)
        case .kerasArchive, .otherZip, .onnx, .unrecognized: return nil
        }
        guard try container.stringAttribute("model_config", at: "") == nil else { return nil }
        let dict = try PyTorchReader.StateDict(store: try WeightStore(container: container), file: path)
        guard (try? PyTorchReader.bareModulePrefix(dict, file: path)) == nil else { return nil }
        let names = try container.tensorNames(below: "").map { $0.replacingOccurrences(of: "/", with: ".") }
        let skeleton = ModelConfigSkeleton(keys: names, dict: dict)
        guard skeleton.modules.count >= 2, skeleton.modules.contains(where: { $0.entry != nil }) else { return nil }
        return StateDictListing(file: path, layout: layout.title, modules: skeleton.modules.map { ($0.name, $0.summary) },
                                skeleton: skeleton.json(pretty: true))
    }
}
