import HDF5
import Foundation
import TextSafety

/// What a state_dict holds, module by module, when it is not one bare recurrent module and
/// carries no `model_config`, and a `model_config` to start from.
///
/// A state_dict keeps weights, not the forward pass: the modules are guessed from key
/// prefixes and shapes (recurrent parameter names; `weight` alone with an `emb` name is an
/// Embedding; `weight` with or without `bias` a Linear). A `torch.save` file keeps the keys
/// in the order the modules were registered, which the skeleton follows; HDF5 and
/// safetensors list them alphabetically, so there the modules are ordered by how their
/// widths chain. Modules rnnkit does not run (convolutions, BatchNorm, attention, …) are
/// left out and named, and so is a module with parameters of its own beside its children
/// (a custom module whose forward rnnkit cannot know) with all its children. The readout
/// between the last recurrent module and what follows cannot be guessed at all: the
/// skeleton leaves it to choose, so it is not a valid config until a person has edited it.
struct ModelConfigSkeleton {
    /// One module found: its key prefix, what it looks like, and its skeleton entry (nil
    /// when rnnkit has no module for its keys).
    struct Found {
        /// The key prefix without the dot, or `(root)` for keys without one.
        var name: String
        /// The key prefix without the dot (`""` for the root).
        var keyPrefix: String
        var summary: String
        var entry: [(String, Any)]?
        var isRecurrent = false
        /// Features in and out (a Linear's; an Embedding's output; a recurrent module's
        /// output, directions concatenated), for ordering.
        var inputWidth: Int?
        var outputWidth: Int?
        /// A recurrent module's output per direction (what `last_hidden` gives).
        var directionWidth: Int?
        /// The tensors under the prefix.
        var tensorCount = 0

        var type: String? { entry?.first?.1 as? String }
    }

    /// A module or group of modules the skeleton leaves out, and why.
    struct LeftOut {
        var name: String
        var reason: String

        var described: String { "\(escapedForDisplay(name)) (\(reason))" }
    }

    /// Every module found, in the file's order.
    var modules: [Found] = []
    /// The modules the skeleton chains, in forward order.
    var chain: [Found] = []
    var leftOut: [LeftOut] = []
    /// The wrapper prefix every key starts with (`module.`), the skeleton's `prefix`.
    var wrapper = ""

    /// Groups `keys` (in the file's order) by module prefix; `dict` gives the shapes.
    /// `keysInRegistrationOrder`: the file keeps the order the modules were registered in.
    init(keys: [String], dict: PyTorchReader.StateDict, keysInRegistrationOrder: Bool) {
        modules = Self.modules(keys: keys, dict: dict)
        wrapper = ModuleSelection.wrapper(of: keys).joined()
        let ordered = Self.forwardOrder(modules.filter { $0.entry != nil }, keysInRegistrationOrder: keysInRegistrationOrder)
        var width: Int?
        var directionWidth: Int?
        var widthLeftOut: [Found] = []
        for module in ordered {
            if module.type == "Embedding", !chain.isEmpty {
                leftOut.append(LeftOut(name: module.name, reason: "\(module.summary): an Embedding starts a chain, it takes token ids"))
                widthLeftOut.append(module)
            } else if let width, let input = module.inputWidth, input != width,
                      module.isRecurrent || input != directionWidth {
                leftOut.append(LeftOut(name: module.name, reason: "\(module.summary): takes \(input) features where the chain before it gives \(width)"))
                widthLeftOut.append(module)
            } else {
                chain.append(module)
                width = module.outputWidth
                directionWidth = module.directionWidth
            }
        }
        // What rnnkit does not run, by the largest prefix holding nothing the skeleton keeps.
        let kept = (chain + widthLeftOut).map(\.keyPrefix)
        var groups: [(name: String, tensors: Int)] = []
        for module in modules where module.entry == nil {
            let parts = module.keyPrefix.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            let skip = wrapper.split(separator: ".").count
            var top = module.name
            for length in min(skip + 1, parts.count)...max(1, parts.count) where length <= parts.count {
                let candidate = parts[..<length].joined(separator: ".")
                if !kept.contains(where: { $0 == candidate || $0.hasPrefix(candidate + ".") }) {
                    top = candidate
                    break
                }
            }
            if let index = groups.firstIndex(where: { $0.name == top }) {
                groups[index].tensors += module.tensorCount
            } else {
                groups.append((top, module.tensorCount))
            }
        }
        leftOut = groups.map { LeftOut(name: $0.name.isEmpty ? "(root)" : $0.name, reason: "\($0.tensors) tensor\($0.tensors == 1 ? "" : "s"), not a module rnnkit runs") } + leftOut
    }

    /// The modules `keys` (in the file's order) hold, grouped by key prefix, in that order.
    /// A module with parameters of its own beside modules under it is a custom module
    /// whose forward rnnkit cannot know: those under it belong to it, and none is run.
    static func modules(keys: [String], dict: PyTorchReader.StateDict) -> [Found] {
        var order: [String] = []
        var groups: [String: [String]] = [:]
        for key in keys {
            let parts = key.split(separator: ".", omittingEmptySubsequences: false)
            let prefix = parts.dropLast().joined(separator: ".")
            if groups[prefix] == nil { order.append(prefix) }
            groups[prefix, default: []].append(String(parts.last ?? ""))
        }
        var found = order.map { module($0, leaves: groups[$0] ?? [], dict: dict) }
        for custom in found where custom.entry == nil && !custom.keyPrefix.isEmpty {
            for index in found.indices where found[index].entry != nil && found[index].keyPrefix.hasPrefix(custom.keyPrefix + ".") {
                found[index].summary += ", part of \(escapedForDisplay(custom.name)), which has parameters of its own"
                found[index].entry = nil
                found[index].isRecurrent = false
            }
        }
        return found
    }

    /// The modules in the order a forward pass most likely takes them. A file that keeps
    /// the registration order (`torch.save`) is taken as it is. Otherwise (HDF5 and
    /// safetensors list keys alphabetically, `SequenceModeling.0.linear` before
    /// `SequenceModeling.0.rnn`) the order follows the widths: an Embedding first (else the
    /// first recurrent module), then each time a module whose input is the width the chain
    /// gives (after a recurrent module, also its width per direction, which `last_hidden`
    /// gives), the one whose key prefix shares the most names with the module before it
    /// (the next part of the same block), else the first in the file's order; what does not
    /// chain stays in the file's order at the end.
    static func forwardOrder(_ found: [Found], keysInRegistrationOrder: Bool) -> [Found] {
        if keysInRegistrationOrder { return found }
        var rest = found
        guard let start = rest.firstIndex(where: { $0.type == "Embedding" }) ?? rest.firstIndex(where: \.isRecurrent) else {
            return found
        }
        var ordered = [rest.remove(at: start)]
        func shared(_ a: String, _ b: String) -> Int {
            zip(a.split(separator: "."), b.split(separator: ".")).prefix { $0 == $1 }.count
        }
        while let last = ordered.last {
            let fits = rest.indices.filter { index in
                let module = rest[index]
                guard let input = module.inputWidth, module.type != "Embedding" else { return false }
                return input == last.outputWidth || (!module.isRecurrent && input == last.directionWidth)
            }
            guard let next = fits.max(by: { shared(rest[$0].keyPrefix, last.keyPrefix) < shared(rest[$1].keyPrefix, last.keyPrefix)
                                              || (shared(rest[$0].keyPrefix, last.keyPrefix) == shared(rest[$1].keyPrefix, last.keyPrefix) && $0 > $1) })
            else { break }
            ordered.append(rest.remove(at: next))
        }
        return ordered + rest
    }

    private static func module(_ prefix: String, leaves: [String], dict: PyTorchReader.StateDict) -> Found {
        let name = prefix.isEmpty ? "(root)" : prefix
        let key = { (leaf: String) in prefix.isEmpty ? leaf : prefix + "." + leaf }
        let shape = { (leaf: String) in dict.shape(key(leaf)) }
        let isFloat = { (leaf: String) in dict.entries[key(leaf)] != nil }
        let parameters = leaves.compactMap { PyTorchLayout.ParameterName(Substring($0)) }
        if parameters.count == leaves.count, leaves.allSatisfy(isFloat), let hh = shape("weight_hh_l0"), hh.count == 2,
           let ih = shape("weight_ih_l0"), ih.count == 2 {
            let sizes = PyTorchLayout.recurrentSizes(weightHH: hh, weightHR: shape("weight_hr_l0"))
            let (hidden, projection) = (sizes.hiddenSize, sizes.projectionSize)
            if let kind = sizes.kind {
                let type = PyTorchLayout.moduleType(kind)
                let layers = (parameters.map(\.layer).max() ?? 0) + 1
                let bidirectional = parameters.contains { $0.reverse }
                var entry: [(String, Any)] = [("type", type), ("name", name), ("input_size", ih[1]), ("hidden_size", hidden),
                                              ("num_layers", layers), ("bidirectional", bidirectional),
                                              ("bias", leaves.contains("bias_ih_l0"))]
                if projection > 0 { entry.append(("proj_size", projection)) }
                let output = projection > 0 ? projection : hidden
                return Found(name: name, keyPrefix: prefix,
                             summary: "\(type) \(ih[1]) → \(hidden)" + (bidirectional ? " bidirectional" : "")
                                 + (layers > 1 ? ", \(layers) layers" : ""),
                             entry: entry, isRecurrent: true, inputWidth: ih[1],
                             outputWidth: output * (bidirectional ? 2 : 1), directionWidth: output, tensorCount: leaves.count)
            }
        }
        if let weight = shape("weight"), weight.count == 2, Set(leaves).isSubset(of: ["weight", "bias"]),
           leaves.allSatisfy(isFloat), leaves.contains("bias") ? shape("bias") == [weight[0]] : true {
            let hasBias = leaves.contains("bias")
            if !hasBias && name.lowercased().contains("emb") {
                return Found(name: name, keyPrefix: prefix, summary: "Embedding \(shapeText(weight))",
                             entry: [("type", "Embedding"), ("name", name), ("num_embeddings", weight[0]),
                                     ("embedding_dim", weight[1])], outputWidth: weight[1], tensorCount: leaves.count)
            }
            return Found(name: name, keyPrefix: prefix, summary: "Linear \(weight[1]) → \(weight[0])",
                         entry: [("type", "Linear"), ("name", name), ("in_features", weight[1]),
                                 ("out_features", weight[0]), ("bias", hasBias)],
                         inputWidth: weight[1], outputWidth: weight[0], tensorCount: leaves.count)
        }
        let listed = leaves.prefix(4).map { "\($0) \(shape($0).map(shapeText) ?? "")" }.joined(separator: ", ")
        return Found(name: name, keyPrefix: prefix, summary: "keys \(listed)\(leaves.count > 4 ? ", …" : ""), not a module rnnkit runs",
                     tensorCount: leaves.count)
    }

    /// The version a skeleton (and a chain picked by key prefix) is written in: it describes
    /// PyTorch's own modules run as torch runs them (on packed lengths), which is version 1;
    /// version 2 adds Keras's options, masks included.
    static let version = 1

    /// The readout a person has to choose: every mode version 1 has, as the placeholder says.
    static var readoutChoice: String {
        "CHOOSE ONE: " + ModelConfigDocument.ReadoutModule.modes.map(\.name).filter { $0 != "max_all" }.joined(separator: " | ")
            + " (or delete this Readout when what follows applies at every step)"
    }

    /// The skeleton's modules: the chain, names after the wrapper prefix, and after the
    /// last recurrent module, when anything follows it, a Readout to choose.
    private var entries: [[(String, Any)]] {
        var entries: [[(String, Any)]] = []
        let lastRecurrent = chain.lastIndex { $0.isRecurrent }
        for (index, module) in chain.enumerated() {
            guard let entry = module.entry else { continue }
            entries.append(Self.renamed(entry, droppingPrefix: wrapper))
            if index == lastRecurrent, index < chain.count - 1 {
                entries.append([("type", "Readout"), ("mode", Self.readoutChoice)])
            }
        }
        return entries
    }

    /// An entry whose `name` loses `prefix` (the wrapper the document's `prefix` states).
    private static func renamed(_ entry: [(String, Any)], droppingPrefix prefix: String) -> [(String, Any)] {
        entry.map { field in
            guard field.0 == "name", let name = field.1 as? String, !prefix.isEmpty, name.hasPrefix(prefix) else { return field }
            return (field.0, String(name.dropFirst(prefix.count)))
        }
    }

    /// The skeleton as JSON: one line (`pretty == false`) or one module per line.
    func json(pretty: Bool) -> String {
        Self.json(entries, prefix: wrapper, pretty: pretty)
    }

    private static func json(_ entries: [[(String, Any)]], prefix: String, pretty: Bool) -> String {
        let modules = entries.map { entry in
            "{" + entry.map { "\(Self.literal($0.0)): \(Self.literal($0.1))" }.joined(separator: ", ") + "}"
        }
        let head = "\"format\": \"\(ModelConfigDocument.format)\", \"version\": \(version), "
            + (prefix.isEmpty ? "" : "\"prefix\": \(literal(prefix)), ") + "\"modules\": ["
        return pretty ? "{\n  \(head)\n    " + modules.joined(separator: ",\n    ") + "\n  ]\n}"
            : "{" + head + modules.joined(separator: ", ") + "]}"
    }

    /// The `model_config` of `chain` (modules rnnkit runs, in forward order, no readout),
    /// names without `prefix`.
    static func document(_ chain: [Found], droppingPrefix prefix: String, file: String) throws -> ModelConfigDocument {
        let entries = chain.compactMap(\.entry).map { renamed($0, droppingPrefix: prefix) }
        return try PyTorchModelConfig.decode(json(entries, prefix: "", pretty: false), file: file)
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

    /// What the skeleton leaves out, as one clause (`left out: attention (2 tensors, …)`),
    /// or nil when it keeps everything.
    var leftOutText: String? {
        guard !leftOut.isEmpty else { return nil }
        return "left out: " + leftOut.prefix(12).map(\.described).joined(separator: ", ")
            + (leftOut.count > 12 ? " (and \(leftOut.count - 12) more)" : "")
    }

    /// The refusal of a file that is not one bare module, listing what it holds and the
    /// skeleton; `error` is the bare-module reader's own reason, kept for a file with no
    /// module at all.
    func refusal(file: String, reading error: ModelError) -> ModelError {
        // One group of keys is one module gone wrong: the bare reader's reason says what.
        guard modules.count >= 2, modules.contains(where: { $0.entry != nil }) else { return error }
        let listed = modules.prefix(12).map { "\(escapedForDisplay($0.name)) (\($0.summary))" }.joined(separator: ", ")
            + (modules.count > 12 ? " (and \(modules.count - 12) more)" : "")
        return ModelError(.invalidModel, file: file,
                          message: "holds \(modules.count) modules and no model_config (a state_dict keeps weights, not the forward pass): \(listed); describe the model in a model_config (spec/pytorch-layout.md) and pass it as \(option: .architecture, "CONFIG.json"). A skeleton to edit, the readout left to choose (`rnnkit inspect` prints it formatted)\(leftOutText.map { ", \($0)" } ?? ""): \(json(pretty: false))")
    }
}

/// A PyTorch state_dict that needs a `model_config` to run, as `inspect` lists it: the
/// modules found and the skeleton, formatted.
package struct StateDictListing {
    package var file: String
    package var layout: String
    /// The layout `layout` titles: its container, framework and content.
    package var identity: Layout
    /// `(key prefix, what it looks like)` per module, in the file's order.
    package var modules: [(name: String, summary: String)]
    /// The skeleton `model_config`, one module per line.
    package var skeleton: String
    /// What the skeleton leaves out and why (`attention (2 tensors, not a module rnnkit runs)`).
    package var leftOut: [String]

    /// The listing of `path` when it is a PyTorch state_dict holding several modules and no
    /// `model_config`; nil for any other file (which `LoadedModel` reads or refuses itself).
    package static func read(_ path: String, key: String?) throws -> StateDictListing? {
        // A format whose file is a state_dict (Formats.all), or nothing to list.
        let source = FormatSource(path: path)
        guard let format = try Formats.format(of: source) as? any StateDictFormat else { return nil }
        let container = try format.stateDict(source, key: key)
        let layout = format.layout
        guard try container.stringAttribute("model_config", at: "") == nil else { return nil }
        let dict = try PyTorchReader.StateDict(store: try WeightStore(container: container), file: path)
        guard (try? PyTorchReader.bareModulePrefix(dict, file: path)) == nil else { return nil }
        let names = try container.tensorNames(below: "").map { $0.replacingOccurrences(of: "/", with: ".") }
        let skeleton = ModelConfigSkeleton(keys: names, dict: dict, keysInRegistrationOrder: container.keysInRegistrationOrder)
        guard skeleton.modules.count >= 2, skeleton.modules.contains(where: { $0.entry != nil }) else { return nil }
        return StateDictListing(file: path, layout: layout.title, identity: layout, modules: skeleton.modules.map { ($0.name, $0.summary) },
                                skeleton: skeleton.json(pretty: true), leftOut: skeleton.leftOut.map(\.described))
    }
}
