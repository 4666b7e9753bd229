import Foundation

/// A Keras model config (`model_config` in HDF5, `config.json` in an archive), reduced to
/// the chain of layers it computes. Sequential and Functional, Keras 2 and Keras 3 forms.
struct KerasConfig {
    /// One layer: its class, its name and its own config object.
    struct Node {
        var className: String
        var name: String
        var config: [String: Any]
        /// Names of the layers feeding it (Functional only).
        var inbound: [String]
    }

    /// Layers in the order they compute, InputLayers included.
    var layers: [Node]
    /// Every layer in the config's order (what Keras counts to name weight groups).
    var allLayers: [Node]
    var className: String
    var name: String

    init(json: String, file: String, path: String) throws {
        func fail(_ message: String) -> ModelError { ModelError(file: file, path: path, message: message) }
        guard let data = json.data(using: .utf8),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw fail("is not a JSON object")
        }
        try self.init(root: root, fail: fail)
    }

    init(root: [String: Any], fail: (String) -> ModelError) throws {
        guard let className = root["class_name"] as? String,
              let config = root["config"] as? [String: Any] else {
            throw fail("has no class_name and config")
        }
        self.className = className
        self.name = config["name"] as? String ?? "model"
        guard let list = config["layers"] as? [[String: Any]] else {
            throw fail("\(className) config has no layers list")
        }
        let nodes = try list.enumerated().map { index, entry -> Node in
            guard let layerClass = entry["class_name"] as? String, let layerConfig = entry["config"] as? [String: Any] else {
                throw fail("layers[\(index)] has no class_name and config")
            }
            let name = layerConfig["name"] as? String ?? entry["name"] as? String ?? "layer_\(index)"
            return Node(className: layerClass, name: name, config: layerConfig,
                        inbound: Self.inboundNames(entry["inbound_nodes"]))
        }
        allLayers = nodes
        switch className {
        case "Sequential":
            layers = nodes
        case "Functional", "Model":
            layers = try Self.chain(nodes, config: config, fail: fail)
        default:
            throw fail("model class '\(className)' is not supported (Sequential and Functional are)")
        }
    }

    /// Names of the layers a Functional node takes its inputs from.
    ///
    /// Keras 2: `[[["embedding", 0, 0, {}]]]`; Keras 3: `[{"args": [{"class_name":
    /// "__keras_tensor__", "config": {"keras_history": ["embedding", 0, 0]}}], "kwargs": {}}]`.
    static func inboundNames(_ value: Any?) -> [String] {
        var names: [String] = []
        func visit(_ item: Any) {
            if let object = item as? [String: Any], let args = object["args"] {
                // Keras 3 node: data comes through `args`; `kwargs` carries the mask, which
                // the layers here recompute themselves.
                visit(args)
            } else if let object = item as? [String: Any] {
                if let history = (object["config"] as? [String: Any])?["keras_history"] as? [Any],
                   let name = history.first as? String {
                    names.append(name)
                    return
                }
                for value in object.values { visit(value) }
            } else if let list = item as? [Any] {
                // Keras 2's innermost list: [name, node index, tensor index, kwargs].
                if list.count >= 3, let name = list[0] as? String, list[1] is NSNumber, list[2] is NSNumber {
                    names.append(name)
                    return
                }
                for value in list { visit(value) }
            }
        }
        if let value { visit(value) }
        return names
    }

    /// Orders a Functional graph as a chain from its one input to its one output, refusing
    /// anything else by name.
    static func chain(_ nodes: [Node], config: [String: Any], fail: (String) -> ModelError) throws -> [Node] {
        let inputs = endpointNames(config["input_layers"])
        let outputs = endpointNames(config["output_layers"])
        guard inputs.count == 1 else {
            throw fail("Functional model has \(inputs.count) inputs (\(inputs.joined(separator: ", "))); only single-input chains are supported")
        }
        guard outputs.count == 1 else {
            throw fail("Functional model has \(outputs.count) outputs (\(outputs.joined(separator: ", "))); only single-output chains are supported")
        }
        let byName = Dictionary(nodes.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var chain: [Node] = []
        var current = outputs[0]
        var seen = Set<String>()
        while true {
            guard let node = byName[current], seen.insert(current).inserted else {
                throw fail("Functional model refers to layer '\(current)', which its layer list lacks (or a cycle)")
            }
            chain.append(node)
            if current == inputs[0] { break }
            let sources = Set(node.inbound)
            guard sources.count == 1, let source = sources.first else {
                throw fail("layer '\(node.name)' (\(node.className)) takes \(sources.count) inputs (\(sources.sorted().joined(separator: ", "))); graphs that are not a chain are not supported")
            }
            current = source
        }
        let used = Set(chain.map(\.name))
        // Keras 3.15 records a Masking layer's mask as op layers (NotEqual, Any) feeding the
        // next layer's `mask` keyword; the engine derives the same mask from Masking.
        let maskBookkeeping: Set<String> = ["NotEqual", "Any"]
        if let unused = nodes.first(where: { !used.contains($0.name) && !maskBookkeeping.contains($0.className) }) {
            throw fail("layer '\(unused.name)' (\(unused.className)) is not on the chain from input to output; graphs that are not a chain are not supported")
        }
        return chain.reversed()
    }

    /// `[["input_1", 0, 0]]` (Keras 2), `["input_layer", 0, 0]` or `[["input_layer", 0, 0]]` (Keras 3).
    static func endpointNames(_ value: Any?) -> [String] {
        guard let list = value as? [Any] else { return [] }
        if let name = list.first as? String { return [name] }
        return list.compactMap { ($0 as? [Any])?.first as? String }
    }
}
