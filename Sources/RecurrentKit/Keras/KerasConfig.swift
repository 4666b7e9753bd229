import Foundation
import TextSafety

/// A Keras model config (`model_config` in HDF5, `config.json` in an archive), reduced to
/// the chain of layers it computes. Sequential and Functional, Keras 2 and Keras 3 forms.
struct KerasConfig {
    /// One layer: its class, its name and its own config object.
    struct Node {
        var className: String
        var name: String
        var config: [String: Any]
        /// The layers feeding it (Functional only): name and which of its outputs.
        var inbound: [(name: String, tensor: Int)]
        /// Which of this layer's outputs the next layer (or the model) takes: 0 but for a
        /// layer with several outputs, such as an RNN with `return_state=True`.
        var consumedOutput = 0
        /// Where `config` sits in the model config, for messages that name a field
        /// (`layers[2].config`, `layers[3].config.layer.config` for a wrapped layer).
        var configPath = "config"
    }

    /// Layers in the order they compute, InputLayers included.
    var layers: [Node]
    /// Every layer in the config's order (what Keras counts to name weight groups).
    var allLayers: [Node]
    var className: String
    var name: String
    /// The document's own top-level version field (`model.to_json()` writes one), for
    /// `KerasVersionResolver`, which reads it (`KerasVersionResolver.version(in:)`).
    var kerasVersion: String?

    init(json: String, file: String, path: String) throws {
        func fail(_ message: String) -> ModelError { ModelError(file: file, path: path, message: message) }
        // Bounded before parsing (parsing is the costly part of a hostile config), then read
        // strictly: a key given twice is refused with its path.
        try self.init(root: try StrictJSON.object(json, fail: fail), fail: fail)
    }

    init(root: [String: Any], fail: (String) -> ModelError) throws {
        guard let className = root["class_name"] as? String,
              let config = root["config"] as? [String: Any] else {
            throw fail("has no class_name and config")
        }
        self.className = className
        self.name = config["name"] as? String ?? "model"
        self.kerasVersion = KerasVersionResolver.version(in: root)
        guard let list = config["layers"] as? [Any] else {
            throw fail("\(escapedForDisplay(className)) config has no layers list")
        }
        // Counted before any per-layer work (inbound references, weight lookups, summaries).
        guard list.count <= Limits.layers else {
            throw fail("lists \(list.count) layers, \(Limits.excess(list.count, over: Limits.layers)) (Limits.layers)")
        }
        let nodes = try list.enumerated().map { index, item -> Node in
            guard let entry = item as? [String: Any], let layerClass = entry["class_name"] as? String,
                  let layerConfig = entry["config"] as? [String: Any] else {
                throw fail("layers[\(index)] has no class_name and config")
            }
            let name = layerConfig["name"] as? String ?? entry["name"] as? String ?? "layer_\(index)"
            guard name.unicodeScalars.count <= Limits.nameCharacters else {
                throw fail("layers[\(index)].config.name has \(name.unicodeScalars.count) characters, \(Limits.excess(name.unicodeScalars.count, over: Limits.nameCharacters)) (Limits.nameCharacters)")
            }
            return Node(className: layerClass, name: name, config: layerConfig,
                        inbound: Self.inboundReferences(entry["inbound_nodes"]), configPath: "layers[\(index)].config")
        }
        allLayers = nodes
        switch className {
        case "Sequential":
            layers = nodes
        case "Functional", "Model":
            layers = try Self.chain(nodes, config: config, fail: fail)
        default:
            throw fail("model class '\(escapedForDisplay(className))' is not supported (Sequential and Functional are)")
        }
    }

    /// The layers (and which of their outputs) a Functional node takes its inputs from.
    ///
    /// Keras 2: `[[["embedding", 0, 0, {}]]]`; Keras 3: `[{"args": [{"class_name":
    /// "__keras_tensor__", "config": {"keras_history": ["embedding", 0, 0]}}], "kwargs": {}}]`
    /// — `[layer name, node index, tensor index]`.
    static func inboundReferences(_ value: Any?) -> [(name: String, tensor: Int)] {
        var names: [(name: String, tensor: Int)] = []
        func visit(_ item: Any) {
            if let object = item as? [String: Any], let args = object["args"] {
                // Keras 3 node: data comes through `args`; `kwargs` carries the mask, which
                // the layers here recompute themselves.
                visit(args)
            } else if let object = item as? [String: Any] {
                if let history = (object["config"] as? [String: Any])?["keras_history"] as? [Any],
                   let name = history.first as? String {
                    names.append((name, history.count >= 3 ? tensorIndex(history[2]) : 0))
                    return
                }
                for value in object.values { visit(value) }
            } else if let list = item as? [Any] {
                // Keras 2's innermost list: [name, node index, tensor index, kwargs].
                if list.count >= 3, let name = list[0] as? String, list[1] is NSNumber, let tensor = list[2] as? NSNumber {
                    names.append((name, tensorIndex(tensor)))
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
        let inputs = endpoints(config["input_layers"])
        let outputs = endpoints(config["output_layers"])
        guard inputs.count == 1 else {
            throw fail("Functional model has \(inputs.count) inputs (\(shownList(inputs.map(\.name)))); only single-input chains are supported")
        }
        guard outputs.count == 1 else {
            throw fail("Functional model has \(outputs.count) outputs (\(shownList(outputs.map(\.name)))); only single-output chains are supported")
        }
        let byName = Dictionary(nodes.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var chain: [Node] = []
        var current = outputs[0]
        var seen = Set<String>()
        while true {
            guard var node = byName[current.name], seen.insert(current.name).inserted else {
                throw fail("Functional model refers to layer '\(escapedForDisplay(current.name))', which its layer list lacks (or a cycle)")
            }
            node.consumedOutput = current.tensor
            chain.append(node)
            if current.name == inputs[0].name { break }
            let sources = Set(node.inbound.map(\.name))
            guard sources.count == 1, node.inbound.allSatisfy({ $0.tensor == node.inbound[0].tensor }) else {
                throw fail("layer '\(escapedForDisplay(node.name))' (\(escapedForDisplay(node.className))) takes \(node.inbound.count) inputs (\(shownList(sources.sorted()))); graphs that are not a chain are not supported")
            }
            current = node.inbound[0]
        }
        let used = Set(chain.map(\.name))
        // Keras 3.15 records a Masking layer's mask as op layers (NotEqual, Any) feeding the
        // next layer's `mask` keyword; the engine derives the same mask from Masking.
        let maskBookkeeping: Set<String> = ["NotEqual", "Any"]
        if let unused = nodes.first(where: { !used.contains($0.name) && !maskBookkeeping.contains($0.className) }) {
            throw fail("layer '\(escapedForDisplay(unused.name))' (\(escapedForDisplay(unused.className))) is not on the chain from input to output; graphs that are not a chain are not supported")
        }
        return chain.reversed()
    }

    /// `[["input_1", 0, 0]]` (Keras 2), `["input_layer", 0, 0]` or `[["input_layer", 0, 0]]` (Keras 3).
    static func endpoints(_ value: Any?) -> [(name: String, tensor: Int)] {
        guard let list = value as? [Any] else { return [] }
        func reference(_ item: [Any]) -> (name: String, tensor: Int)? {
            guard let name = item.first as? String else { return nil }
            return (name, item.count >= 3 ? tensorIndex(item[2]) : 0)
        }
        if list.first is String { return reference(list).map { [$0] } ?? [] }
        return list.compactMap { ($0 as? [Any]).flatMap(reference) }
    }

    /// A tensor index in a node reference, exactly; -1 (an output no layer has, refused by
    /// the reader) for anything but a small whole number.
    static func tensorIndex(_ value: Any) -> Int {
        (try? integer(value, in: 0...Limits.dimension).get()) ?? -1
    }

    /// A whole number from a config, exactly: a JSON number written as an integer (not a
    /// boolean, not `4.0`), within `range`. `4.7`, `1e308` and `18446744073709551620` are
    /// refused, never rounded, truncated or wrapped; the failure is a message saying what the
    /// value is and why.
    static func integer(_ value: Any, in range: ClosedRange<Int>) -> Result<Int, FieldError> {
        guard let number = value as? NSNumber, !JSONValue.isBoolean(number) else {
            let text = (value as? NSNumber).map { $0.boolValue ? "true" : "false" } ?? escapedForDisplay("\(value)")
            return .failure(FieldError(message: "is \(text), expected an integer in \(range.lowerBound)...\(range.upperBound)"))
        }
        let text = escapedForDisplay(number.stringValue)
        // Digits beyond 64 bits (an NSDecimalNumber) are a whole number past every bound.
        let beyond64Bits = number is NSDecimalNumber
        guard beyond64Bits || JSONValue.isWrittenAsInteger(number) else {
            return .failure(FieldError(message: "is \(text), not an integer"))
        }
        let exact = String(cString: number.objCType) == "Q" ? Int(exactly: number.uint64Value) : Int(exactly: number.int64Value)
        guard !beyond64Bits, let int = exact, range.contains(int) else {
            let bound: String
            if !beyond64Bits, let int = exact {
                bound = int > range.upperBound ? Limits.excess(int, over: range.upperBound)
                    : "below the least allowed value \(range.lowerBound)"
            } else {
                bound = text.hasPrefix("-") ? "below the least allowed value \(range.lowerBound)"
                    : "over the limit of \(range.upperBound)"
            }
            return .failure(FieldError(message: "is \(text), \(bound)"))
        }
        return .success(int)
    }

    /// A boolean setting from a config, strictly: `true` or `false`; absent (nil) is
    /// `fallback`; anything else — a string `"yes"`, a number, null — is refused, the failure
    /// saying what the value is (`is a string, expected true or false`).
    static func flag(_ value: Any?, default fallback: Bool) -> Result<Bool, FieldError> {
        guard let value else { return .success(fallback) }
        guard let number = value as? NSNumber, JSONValue.isBoolean(number) else {
            return .failure(FieldError(message: "is \(describeJSON(value)), expected true or false"))
        }
        return .success(number.boolValue)
    }

    /// Why a config value is not acceptable (an integer, a boolean).
    struct FieldError: Error {
        var message: String
    }
}
