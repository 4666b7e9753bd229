import ArgumentParser

// Options that several commands share, declared once.

/// `--architecture`: what a Keras weights-only file needs to be a model.
struct ArchitectureOption: ParsableArguments {
    @Option(help: "For a Keras weights-only file: the model file (or config JSON) with its architecture.")
    var architecture: String?
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
