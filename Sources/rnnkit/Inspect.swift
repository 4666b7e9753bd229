import ArgumentParser
import Foundation
import RecurrentKit
import TextSafety

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model file's layout, layers, sizes, gate orders and parameter counts.")

    @Argument(help: "The model file: a PyTorch state_dict in HDF5, a Keras .h5 (full model or weights only) or a .keras archive.")
    var model: String

    @OptionGroup var output: JSONOption
    @OptionGroup var architecture: ArchitectureOption

    private var json: Bool { output.json }

    func run() throws {
        if architecture.architecture == nil, let listing = try KerasWeightsListing.read(model) {
            return try printListing(listing)
        }
        let loaded = try LoadedModel(contentsOf: model, architecture: architecture.architecture)
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
            try printJSON(object)
            return
        }
        print("file:       \(escapedForDisplay(loaded.file))")
        print("layout:     \(loaded.layout.title)" + (loaded.modelClass.map { ", \(escapedForDisplay($0))" } ?? ""))
        print("dtype:      \(loaded.storedTypes.joined(separator: ", "))\(loaded.compressed ? " (compressed)" : "")")
        print("input:      \(loaded.model.takesTokenIDs ? "token ids [batch, time]" : "features [batch, time, features]")")
        print("parameters: \(loaded.parameterCount)")
        print("layers:")
        for summary in loaded.summaries {
            let type = escapedForDisplay(summary.type)
            var line = "  " + (summary.name.isEmpty ? type : "\(escapedForDisplay(summary.name)) (\(type))")
            if !summary.details.isEmpty {
                line += ": " + summary.details.map { "\($0.0)=\(escapedForDisplay($0.1))" }.joined(separator: " ")
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
            try printJSON(object)
            return
        }
        print("file:       \(escapedForDisplay(listing.file))")
        print("layout:     Keras weights only (\(listing.form) form); no architecture: pass --architecture to run it")
        print("parameters: \(listing.parameterCount)")
        print("layers:")
        for layer in listing.layers {
            print("  \(escapedForDisplay(layer.name))" + (layer.weights.isEmpty ? " (no weights)" : ""))
            for weight in layer.weights {
                print("    \(escapedForDisplay(weight.name)) \(weight.shape) \(escapedForDisplay(weight.storedType))")
            }
        }
    }

    /// Prints `object` as JSON in which every string still decodes to the file's own text,
    /// but no character that could act on a terminal appears raw: JSONSerialization escapes
    /// C0 controls itself, and `terminalSafeJSON(_:)` the rest.
    private func printJSON(_ object: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        print(terminalSafeJSON(String(decoding: data, as: UTF8.self)))
    }

    private func jsonValue(_ text: String) -> Any {
        if let int = Int(text) { return int }
        if text == "true" { return true }
        if text == "false" { return false }
        return text
    }
}

/// JSON text with every scalar that `isUnsafeForDisplay` names (DEL, C1 controls,
/// bidirectional overrides, line separators, and any C0 control left raw) written as a
/// `\uXXXX` escape. Outside strings JSON has only ASCII punctuation, digits, letters and
/// whitespace of its own, so such a scalar is always inside a string, where the escape
/// decodes to the same character. The newlines of pretty printing are kept.
func terminalSafeJSON(_ json: String) -> String {
    var out = String.UnicodeScalarView()
    for scalar in json.unicodeScalars {
        if scalar != "\n" && isUnsafeForDisplay(scalar) {
            let digits = String(scalar.value, radix: 16)
            out.append(contentsOf: ("\\u" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits).unicodeScalars)
        } else {
            out.append(scalar)
        }
    }
    return String(out)
}
