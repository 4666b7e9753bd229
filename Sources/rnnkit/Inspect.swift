import ArgumentParser
import Foundation
import RecurrentKit
import TextSafety

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model file's layout, layers, sizes, gate orders and parameter counts.")

    @Argument(help: "The model file: a PyTorch state_dict (.pt/.pth from torch.save, .safetensors, or HDF5), a Keras .h5 (full model or weights only) or a .keras archive.")
    var model: String

    @OptionGroup var output: JSONOption
    @OptionGroup var architecture: ArchitectureOption

    private var json: Bool { output.json }

    func run() throws {
        if architecture.architecture == nil, architecture.modules == nil, !architecture.byName, let listing = try KerasWeightsListing.read(model) {
            return try printListing(listing)
        }
        let loaded: LoadedModel
        do {
            loaded = try LoadedModel(contentsOf: model, architecture: architecture.architecture, key: architecture.key,
                                     modules: architecture.moduleList, weightsMatching: architecture.weightsMatching)
        } catch {
            // A state_dict of several modules without model_config: list them and the skeleton
            // (read again only on this path; a model that reads is read once).
            if architecture.architecture == nil, architecture.modules == nil,
               let listing = try? StateDictListing.read(model, key: architecture.key) {
                return try printListing(listing)
            }
            throw error
        }
        printNotes(loaded.notes)
        if json {
            try printJSON(InspectReport(loaded))
            return
        }
        print("file:       \(escapedForDisplay(loaded.file))")
        print("layout:     \(loaded.layout.title)" + (loaded.modelClass.map { ", \(escapedForDisplay($0))" } ?? ""))
        print("dtype:      \(loaded.storedTypes.joined(separator: ", "))\(loaded.compressed ? " (compressed)" : "")")
        print("input:      \(InspectReport.inputText(loaded))")
        print("parameters: \(loaded.parameterCount)")
        print("layers:")
        for summary in loaded.summaries {
            let type = escapedForDisplay(summary.type)
            var line = "  " + (summary.name.isEmpty ? type : "\(escapedForDisplay(summary.name)) (\(type))")
            if !summary.details.isEmpty {
                line += ": " + summary.details.map { "\($0.0)=\(escapedForDisplay($0.1.description))" }.joined(separator: " ")
            }
            if let order = summary.gateOrder { line += " gates=[" + order.map(\.rawValue).joined(separator: ",") + "]" }
            if summary.parameterCount > 0 { line += " params=\(summary.parameterCount)" }
            print(line)
        }
    }

    /// A weights-only file without an architecture: layers and weight shapes.
    private func printListing(_ listing: KerasWeightsListing) throws {
        if json {
            try printJSON(ListingReport(listing))
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

    /// A PyTorch state_dict with several modules and no model_config: the modules found
    /// and a model_config skeleton to edit and pass as `--architecture`.
    private func printListing(_ listing: StateDictListing) throws {
        if json {
            try printJSON(StateDictListingReport(listing))
            return
        }
        print("file:       \(escapedForDisplay(listing.file))")
        print("layout:     \(listing.layout); several modules and no model_config: pass --architecture CONFIG.json to run it, or --modules PREFIX[,PREFIX…] to read some of them as a chain")
        print("modules:")
        for module in listing.modules {
            print("  \(escapedForDisplay(module.name)): \(escapedForDisplay(module.summary))")
        }
        if !listing.leftOut.isEmpty {
            print("left out of the skeleton:")
            for entry in listing.leftOut { print("  \(escapedForDisplay(entry))") }
        }
        print("model_config skeleton (choose the Readout mode or delete it, check the order, save it as CONFIG.json):")
        print(terminalSafeJSON(listing.skeleton))
    }

    /// Prints `object` as JSON in which every string still decodes to the file's own text,
    /// but no character that could act on a terminal appears raw: JSONSerialization escapes
    /// C0 controls itself, and `terminalSafeJSON(_:)` the rest.
    private func printJSON(_ report: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(terminalSafeJSON(String(decoding: try encoder.encode(report), as: UTF8.self)))
    }
}

/// What `inspect --json` prints for a model: typed values, encoded (absent values as null).
struct InspectReport: Encodable {
    let loaded: LoadedModel

    init(_ loaded: LoadedModel) { self.loaded = loaded }

    private enum Key: String, CodingKey {
        case file, layout, container, framework, content, dtypes, compressed, parameters, input, layers, notes
        case modelClass = "model_class", kerasVersion = "keras_version", bareRecurrentModule = "bare_recurrent_module"
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(loaded.file, forKey: .file)
        try container.encode(loaded.layout.rawValue, forKey: .layout)
        try encodeIdentity(loaded.layout, into: &container, container: .container, framework: .framework, content: .content)
        try container.encode(loaded.modelClass, forKey: .modelClass)
        try container.encode(loaded.kerasVersion, forKey: .kerasVersion)
        try container.encode(loaded.storedTypes, forKey: .dtypes)
        try container.encode(loaded.compressed, forKey: .compressed)
        try container.encode(loaded.parameterCount, forKey: .parameters)
        try container.encode(loaded.isBareRecurrentModule, forKey: .bareRecurrentModule)
        try container.encode(Self.inputText(loaded), forKey: .input)
        try container.encode(loaded.summaries.map(LayerEntry.init), forKey: .layers)
        try container.encode(loaded.notes, forKey: .notes)
    }

    /// What the model takes: texts (through its TextVectorization), token ids or features.
    static func inputText(_ loaded: LoadedModel) -> String {
        loaded.takesTexts ? "texts [batch]" : loaded.takesTokenIDs ? "token ids [batch, time]" : "features [batch, time, features]"
    }

    /// One layer: name, type, parameters, gate order, and each detail under its own key.
    struct LayerEntry: Encodable {
        let summary: LayerSummary

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: AnyKey.self)
            try container.encode(summary.name, forKey: AnyKey("name"))
            try container.encode(summary.type, forKey: AnyKey("type"))
            try container.encode(summary.parameterCount, forKey: AnyKey("parameters"))
            if let order = summary.gateOrder { try container.encode(order.map(\.rawValue), forKey: AnyKey("gate_order")) }
            for (key, value) in summary.details { try container.encode(value, forKey: AnyKey(key)) }
        }
    }
}

/// What `inspect --json` prints for a weights-only file without an architecture.
struct ListingReport: Encodable {
    let listing: KerasWeightsListing

    init(_ listing: KerasWeightsListing) { self.listing = listing }

    private struct Layer: Encodable { let name: String; let weights: [Weight] }
    private struct Weight: Encodable { let name: String; let shape: [Int]; let dtype: String }
    private enum Key: String, CodingKey { case file, layout, container, framework, content, form, parameters, layers }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(listing.file, forKey: .file)
        try container.encode(Layout.kerasWeights.rawValue, forKey: .layout)
        try encodeIdentity(.kerasWeights, into: &container, container: .container, framework: .framework, content: .content)
        try container.encode(listing.form, forKey: .form)
        try container.encode(listing.parameterCount, forKey: .parameters)
        try container.encode(listing.layers.map { layer in
            Layer(name: layer.name, weights: layer.weights.map { Weight(name: $0.name, shape: $0.shape, dtype: $0.storedType) })
        }, forKey: .layers)
    }
}

/// What `inspect --json` prints for a PyTorch state_dict that needs a model_config.
struct StateDictListingReport: Encodable {
    let listing: StateDictListing

    init(_ listing: StateDictListing) { self.listing = listing }

    private struct Module: Encodable { let name: String; let summary: String }
    private enum Key: String, CodingKey {
        case file, layout, container, framework, content, modules, skeleton = "model_config_skeleton", leftOut = "left_out"
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(listing.file, forKey: .file)
        try container.encode(listing.layout, forKey: .layout)
        try encodeIdentity(listing.identity, into: &container, container: .container, framework: .framework, content: .content)
        try container.encode(listing.modules.map { Module(name: $0.name, summary: $0.summary) }, forKey: .modules)
        try container.encode(listing.skeleton, forKey: .skeleton)
        try container.encode(listing.leftOut, forKey: .leftOut)
    }
}

/// A file's container, framework and content under their keys (`hdf5`, `pytorch`,
/// `state_dict`): the identity `layout` names as one.
func encodeIdentity<Key: CodingKey>(_ layout: Layout, into container: inout KeyedEncodingContainer<Key>,
                                    container containerKey: Key, framework: Key, content: Key) throws {
    try container.encode(layout.container.rawValue, forKey: containerKey)
    try container.encode(layout.framework.rawValue, forKey: framework)
    try container.encode(layout.content.rawValue, forKey: content)
}

/// A coding key made from any string (a detail's option name).
struct AnyKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
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
