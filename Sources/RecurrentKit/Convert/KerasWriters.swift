import Foundation
import HDF5
import ZIPFoundation

/// Writes a `KerasPlan` as a tf-keras (Keras 2) legacy HDF5 full model, the form
/// `tf_keras.models.load_model(path, compile=False)` reads. Layout: spec/keras-layout.md §1.
enum KerasH5Writer {
    /// The tf-keras version whose file format this writes.
    static let kerasVersion = "2.21.0"

    static func write(_ plan: KerasPlan, to path: String) throws {
        let root = try HDF5File.create(path).root
        try root.setAttribute(KerasVersionResolver.field, .string(kerasVersion))
        try root.setAttribute("backend", .string("tensorflow"))
        try root.setAttribute("model_config", .string(try json(modelConfig(plan))))
        let weights = try root.createGroup("model_weights")
        try weights.setAttribute("backend", .string("tensorflow"))
        try weights.setAttribute(KerasVersionResolver.field, .string(kerasVersion))
        // Sequential's model.layers has no InputLayer; every other layer is listed, in order.
        try weights.setAttribute("layer_names", .strings(plan.layers.map(\.name)), stringForm: .fixedASCII)
        for layer in plan.layers {
            let group = try weights.createGroup(layer.name)
            let names = weightNames(layer)
            try group.setAttribute("weight_names", .strings(names), stringForm: .fixedASCII)
            for (name, weight) in zip(names, layer.weights) {
                try weight.write(to: group, at: name)
            }
        }
    }

    /// tf-keras's variable names: `lstm/lstm_cell/kernel:0`,
    /// `bidirectional/forward_lstm/lstm_cell/kernel:0`, `dense/bias:0`.
    static func weightNames(_ layer: KerasPlan.LayerPlan) -> [String] {
        let cell = KerasLayout.cellKind(ofClass: layer.wrappedClass ?? layer.className).map(KerasLayout.cellName(of:))
        if layer.className == "Bidirectional", let cell, let wrapped = layer.wrappedClass {
            let inner = KerasLayout.snakeCase(wrapped)
            let half = layer.weights.count / 2
            return layer.weights.enumerated().map { index, weight in
                "\(layer.name)/\(index < half ? "forward" : "backward")_\(inner)/\(cell)/\(weight.name):0"
            }
        }
        if let cell {
            return layer.weights.map { "\(layer.name)/\(cell)/\($0.name):0" }
        }
        return layer.weights.map { "\(layer.name)/\($0.name):0" }
    }

    static func modelConfig(_ plan: KerasPlan) -> [String: Any] {
        let input: [String: Any] = [
            "class_name": "InputLayer",
            "config": ["batch_input_shape": plan.inputShape.map(jsonValue), "dtype": plan.inputDType,
                       "sparse": false, "ragged": false, "name": "input_1"] as [String: Any],
        ]
        let layers = plan.layers.map { layer -> [String: Any] in
            ["class_name": layer.className, "config": layerConfig(layer)]
        }
        return ["class_name": "Sequential", "config": ["name": "sequential", "layers": [input] + layers] as [String: Any]]
    }

    static func layerConfig(_ layer: KerasPlan.LayerPlan) -> [String: Any] {
        var config: [String: Any] = ["name": layer.name, "trainable": true, "dtype": "float32"]
        if let wrapped = layer.wrappedClass {
            var inner: [String: Any] = ["name": KerasLayout.snakeCase(wrapped), "trainable": true, "dtype": "float32"]
            inner.merge(recurrentDefaults) { current, _ in current }
            for (key, value) in layer.options { inner[key] = value }
            config["layer"] = ["class_name": wrapped, "config": inner] as [String: Any]
            config["merge_mode"] = layer.mergeMode ?? "concat"
            return config
        }
        if KerasLayout.isRecurrentClass(layer.className) {
            config.merge(recurrentDefaults) { current, _ in current }
        }
        for (key, value) in layer.options { config[key] = value }
        return config
    }

    /// Options tf-keras writes for every recurrent layer; none changes one call's outputs.
    static var recurrentDefaults: [String: Any] {
        ["return_state": false, "stateful": false, "unroll": false, "time_major": false]
    }
}

/// Writes a `KerasPlan` as a Keras 3 `.keras` archive (config.json, metadata.json,
/// model.weights.h5), the form `keras.models.load_model(path)` reads.
enum Keras3ArchiveWriter {
    /// The Keras version whose file format this writes.
    static let kerasVersion = "3.15.1"

    /// Writes the archive to `path`, a new file (created exclusively). The weights are
    /// written first to `weightsScratch`, a new file beside it that is removed afterwards,
    /// and streamed into the archive from there.
    static func write(_ plan: KerasPlan, to path: String, weightsScratch: String) throws {
        defer { unlink(weightsScratch) }
        try writeWeights(plan, to: weightsScratch)
        let metadata: [String: Any] = [KerasVersionResolver.field: kerasVersion, "date_saved": "2000-01-01@00:00:00"]
        let members: [(String, Data)] = [
            ("metadata.json", Data(try json(metadata).utf8)),
            ("config.json", Data(try json(modelConfig(plan)).utf8)),
        ]
        do {
            // `.create` makes the file without overwriting (`O_EXCL`).
            let archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .create)
            for (name, data) in members {
                try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(data.count),
                                     compressionMethod: .deflate) { position, size in
                    data.subdata(in: Int(position) ..< Int(position) + size)
                }
            }
            try addWeights(from: weightsScratch, to: archive)
        } catch {
            throw ModelError(file: path, message: "cannot write the archive (\(error))")
        }
    }

    /// Streams the weights file into the archive as `model.weights.h5`, stored uncompressed
    /// as Keras stores it, a megabyte at a time.
    private static func addWeights(from path: String, to archive: Archive) throws {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        try archive.addEntry(with: "model.weights.h5", type: .file, uncompressedSize: Int64(size),
                             compressionMethod: .none, bufferSize: 1 << 20) { position, count in
            try handle.seek(toOffset: UInt64(position))
            return try handle.read(upToCount: count) ?? Data()
        }
    }

    /// `model.weights.h5`: `layers/<snake_case class>[_N]/vars/<i>`, RNN weights under
    /// `cell/vars`, a Bidirectional's under `forward_layer/cell/vars` and
    /// `backward_layer/cell/vars` (spec/keras-layout.md).
    static func writeWeights(_ plan: KerasPlan, to path: String) throws {
        let root = try HDF5File.create(path).root
        try root.createGroup("vars")
        let keys = Keras3Weights.groupPaths([("InputLayer", "input_layer")] + plan.layers.map { ($0.className, $0.name) })
        for (layer, key) in zip(plan.layers, keys.dropFirst()) {
            guard let key else { continue }
            try root.createGroup("\(key)/vars")
            func put(_ weights: ArraySlice<KerasPlan.PlannedWeight>, under folder: String) throws {
                try root.createGroup(folder)
                for (index, weight) in weights.enumerated() {
                    try weight.write(to: root, at: "\(folder)/\(index)")
                }
            }
            if layer.className == "Bidirectional" {
                let half = layer.weights.count / 2
                try root.createGroup("\(key)/forward_layer/vars")
                try root.createGroup("\(key)/backward_layer/vars")
                try put(layer.weights[..<half], under: "\(key)/forward_layer/cell/vars")
                try put(layer.weights[half...], under: "\(key)/backward_layer/cell/vars")
            } else if KerasLayout.isRecurrentClass(layer.className) {
                try put(layer.weights[...], under: "\(key)/cell/vars")
            } else if layer.className == "TextVectorization" {
                // No variables; Keras 3 saves an empty group for its lookup sublayer too.
                try root.createGroup("\(key)/_lookup_layer/vars")
            } else {
                for (index, weight) in layer.weights.enumerated() {
                    try weight.write(to: root, at: "\(key)/vars/\(index)")
                }
            }
        }
    }

    static var policy: [String: Any] {
        ["module": "keras", "class_name": "DTypePolicy", "config": ["name": "float32"], "registered_name": NSNull()]
    }

    static func modelConfig(_ plan: KerasPlan) -> [String: Any] {
        let shape = plan.inputShape.map(jsonValue)
        let input: [String: Any] = [
            "module": "keras.layers", "class_name": "InputLayer", "registered_name": NSNull(),
            "config": ["batch_shape": shape, "dtype": plan.inputDType, "sparse": false, "ragged": false,
                       "name": "input_layer", "optional": false] as [String: Any],
        ]
        let layers = plan.layers.map { layer -> [String: Any] in
            [
                "module": "keras.layers", "class_name": layer.className, "registered_name": NSNull(),
                "config": layerConfig(layer),
                "build_config": ["input_shape": layer.inputShape.map(jsonValue)],
            ]
        }
        return [
            "module": "keras", "class_name": "Sequential", "registered_name": NSNull(),
            "config": ["name": "sequential", "trainable": true, "dtype": policy, "layers": [input] + layers] as [String: Any],
            "build_config": ["input_shape": shape],
        ]
    }

    static func layerConfig(_ layer: KerasPlan.LayerPlan) -> [String: Any] {
        var config: [String: Any] = ["name": layer.name, "trainable": true, "dtype": policy]
        if let wrapped = layer.wrappedClass {
            var inner: [String: Any] = ["name": "forward_" + KerasLayout.snakeCase(wrapped), "trainable": true, "dtype": policy,
                                        "return_state": false, "stateful": false, "unroll": false]
            for (key, value) in layer.options { inner[key] = value }
            config["layer"] = ["module": "keras.layers", "class_name": wrapped, "config": inner,
                               "registered_name": NSNull()] as [String: Any]
            // Written out as Keras 3 writes it: without it, Keras rebuilds the backward layer
            // from the forward one's config, a path that sometimes fails to load.
            var backward = inner
            backward["name"] = "backward_" + KerasLayout.snakeCase(wrapped)
            backward["go_backwards"] = !((inner["go_backwards"] as? Bool) ?? false)
            config["backward_layer"] = ["module": "keras.layers", "class_name": wrapped, "config": backward,
                                        "registered_name": NSNull()] as [String: Any]
            config["merge_mode"] = layer.mergeMode ?? "concat"
            return config
        }
        if KerasLayout.isRecurrentClass(layer.className) {
            config["return_state"] = false
            config["stateful"] = false
            config["unroll"] = false
        }
        for (key, value) in layer.options { config[key] = value }
        return config
    }
}

/// `nil` as JSON null.
private func jsonValue(_ value: Int?) -> Any { value.map { $0 as Any } ?? NSNull() }

/// Compact, key-sorted JSON (the same bytes for the same model).
func json(_ object: [String: Any]) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

extension KerasPlan.PlannedWeight {
    /// Writes the weight as a float32 dataset at `path` under `group`: a whole tensor at once,
    /// a kernel a block of rows at a time (`KerasLayout.transposedRows`), so that a conversion holds at
    /// most about 1 MB of it besides the source model.
    func write(to group: HDF5Group, at path: String, blockFloats: Int = KerasWeight.blockFloats) throws {
        switch values {
        case .whole(let make):
            let tensor = make()
            try group.write(path, floats: tensor.values, shape: tensor.shape)
        case let .transposed(tensor, blocks, order):
            let (rows, columns) = (tensor.shape[0], tensor.shape[1])
            let dataset = try group.createFloats(path, shape: [columns, rows])
            let height = Swift.max(1, blockFloats / Swift.max(rows, 1))
            var first = 0
            while first < columns {
                let end = Swift.min(columns, first + height)
                try dataset.write(rows: first..<end, floats: KerasLayout.transposedRows(tensor, blocks: blocks, to: order, rows: first..<end))
                first = end
            }
        }
    }
}
