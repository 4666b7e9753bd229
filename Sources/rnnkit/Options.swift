import ArgumentParser

// Options that several commands share, declared once.

/// `--architecture` and `--key`: what the weights file alone does not say.
struct ArchitectureOption: ParsableArguments {
    @Option(help: "What the weights alone do not say: for Keras weights, the model file (or config JSON) with their architecture; for a PyTorch state_dict holding a whole model, its model_config JSON (spec/pytorch-layout.md).")
    var architecture: String?

    @Option(help: "For a torch.save checkpoint holding several state_dicts: the entry to read (model_state_dict; nested as outer/inner).")
    var key: String?
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
