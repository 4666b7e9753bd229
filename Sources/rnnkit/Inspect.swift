import ArgumentParser
import Foundation
import RecurrentKit

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model file's layout, layers, sizes, gate orders and parameter counts.")

    @Argument(help: "The model file (PyTorch HDF5).")
    var model: String

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Option(help: "For a Keras weights-only file: the model file (or config JSON) with its architecture.")
    var architecture: String?

    func run() throws {
        if architecture == nil, let listing = try failingWithStatus2({ try KerasWeightsListing.read(model) }) {
            return try printListing(listing)
        }
        let loaded = try failingWithStatus2 { try LoadedModel(contentsOf: model, architecture: architecture) }
        if json {
            let object: [String: Any] = [
                "file": loaded.file,
                "layout": loaded.layout.rawValue,
                "model_class": loaded.modelClass ?? NSNull(),
                "keras_version": loaded.kerasVersion ?? NSNull(),
                "dtypes": loaded.storedTypes,
                "compressed": loaded.compressed,
                "parameters": loaded.parameterCount,
                "bare_recurrent_module": loaded.isBareRecurrentModule,
                "input": loaded.model.takesTokenIDs ? "token ids [batch, time]" : "features [batch, time, features]",
                "layers": loaded.summaries.map { summary -> [String: Any] in
                    var entry: [String: Any] = ["name": summary.name, "type": summary.type,
                                                "parameters": summary.parameterCount]
                    for (key, value) in summary.details { entry[key] = jsonValue(value) }
                    if let order = summary.gateOrder { entry["gate_order"] = order.map(\.rawValue) }
                    return entry
                },
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("file:       \(loaded.file)")
        print("layout:     \(loaded.layout.title)" + (loaded.modelClass.map { ", \($0)" } ?? ""))
        print("dtype:      \(loaded.storedTypes.joined(separator: ", "))\(loaded.compressed ? " (compressed)" : "")")
        print("input:      \(loaded.model.takesTokenIDs ? "token ids [batch, time]" : "features [batch, time, features]")")
        print("parameters: \(loaded.parameterCount)")
        print("layers:")
        for summary in loaded.summaries {
            var line = "  " + (summary.name.isEmpty ? summary.type : "\(summary.name) (\(summary.type))")
            if !summary.details.isEmpty {
                line += ": " + summary.details.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
            }
            if let order = summary.gateOrder { line += " gates=[" + order.map(\.rawValue).joined(separator: ",") + "]" }
            if summary.parameterCount > 0 { line += " params=\(summary.parameterCount)" }
            print(line)
        }
    }

    /// A weights-only file without an architecture: layers and weight shapes.
    private func printListing(_ listing: KerasWeightsListing) throws {
        if json {
            let object: [String: Any] = [
                "file": listing.file, "layout": "keras-weights-h5", "form": listing.form,
                "parameters": listing.parameterCount,
                "layers": listing.layers.map { layer -> [String: Any] in
                    ["name": layer.name, "weights": layer.weights.map { ["name": $0.name, "shape": $0.shape, "dtype": $0.storedType] }]
                },
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("file:       \(listing.file)")
        print("layout:     Keras weights only (\(listing.form) form); no architecture: pass --architecture to run it")
        print("parameters: \(listing.parameterCount)")
        print("layers:")
        for layer in listing.layers {
            print("  \(layer.name)" + (layer.weights.isEmpty ? " (no weights)" : ""))
            for weight in layer.weights {
                print("    \(weight.name) \(weight.shape) \(weight.storedType)")
            }
        }
    }

    private func jsonValue(_ text: String) -> Any {
        if let int = Int(text) { return int }
        if text == "true" { return true }
        if text == "false" { return false }
        return text
    }
}
