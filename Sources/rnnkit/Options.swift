import ArgumentParser
import Foundation
import RecurrentKit

// Options that several commands share, declared once.

/// `--architecture` and `--key`: what the weights file alone does not say.
struct ArchitectureOption: ParsableArguments {
    @Option(help: "What the weights alone do not say: for Keras weights, the model file (or config JSON) with their architecture; for a PyTorch state_dict holding a whole model, its model_config JSON (spec/pytorch-layout.md).")
    var architecture: String?

    @Option(help: "For a torch.save checkpoint holding several state_dicts: the entry to read (model_state_dict; nested as outer/inner).")
    var key: String?

    @Option(help: ArgumentHelp(
        "For a PyTorch state_dict without a model_config: the modules to read, by key prefix (SequenceModeling,Prediction); the other keys are left unread, and a note on stderr counts them.",
        discussion: "One recurrent module reads as a bare module; several are a chain applied at every step, in the order given. Keys under module. or _orig_mod. are found whether or not the prefixes state it.",
        valueName: "prefix[,prefix…]"))
    var modules: String?

    @Flag(name: .customLong("by-name"), help: ArgumentHelp(
        "For a legacy .h5 Keras weights-only file (layer_names): pair its layers with the architecture's by name, as Keras's load_weights(by_name=True).",
        discussion: "By default they are paired in order of the layers that have weights, as load_weights() does, whatever their names."))
    var byName = false

    /// `--modules` as a list; nil when not given.
    var moduleList: [String]? {
        modules.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    }

    /// How a legacy weights-only file's layers are paired with the architecture's.
    var weightsMatching: KerasWeightsMatching { byName ? .name : .order }

    func validate() throws {
        if modules != nil && architecture != nil {
            throw ValidationError("--modules picks modules of a state_dict without a model_config; --architecture gives one: pass one or the other")
        }
        if modules != nil && byName {
            throw ValidationError("--by-name pairs a Keras weights file with its architecture; --modules picks modules of a PyTorch state_dict: pass one or the other")
        }
    }
}

/// Prints what reading a model noted (`LoadedModel.notes`), one line each, on stderr.
func printNotes(_ notes: [String]) {
    for note in notes {
        FileHandle.standardError.write(Data("note: \(oneLine(note))\n".utf8))
    }
}

/// `--threads`: how many threads a run may use.
struct ThreadsOption: ParsableArguments {
    // `.unconditional`: `--threads -2` reaches `validate()` instead of reading as an option.
    @Option(parsing: .unconditional, help: "Threads a run uses (default 1): a layer's directions, rows or units are split over them, and at small batches one-direction layers run at once; the outputs do not depend on it.")
    var threads: Int = 1

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }
}

/// `--json`: one JSON object on stdout instead of text.
struct JSONOption: ParsableArguments {
    @Flag(help: "Print one JSON object instead of text.")
    var json = false
}
