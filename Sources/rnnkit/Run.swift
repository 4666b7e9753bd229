import ArgumentParser
import RecurrentKit

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model on inputs from an HDF5 file and write its outputs.",
        discussion: """
        IN holds /inputs ([batch, time, features] floats, or [batch, time] token ids) and \
        optionally /lengths ([batch]) and initial states; for a model with a Keras \
        TextVectorization, /texts ([batch] UTF-8 strings) instead of /inputs and /lengths. OUT gets /output and the final \
        states, in the layout IN takes them, so OUT's states can start the next run. A bare \
        recurrent module's states are PyTorch's: /h0 and /c0 in, /h_n and /c_n out, each one \
        dataset [layers × directions, batch, hidden]. Any other model's are one dataset per \
        recurrent layer k, in model order: /h0/k and /c0/k in, /h_n/k and /c_n/k out, each \
        [directions, batch, hidden] (c for LSTM layers only); a state not given is zeros. OUT \
        is written to a temporary file beside it and renamed into place; it is never the \
        model, IN or ARCH (by any name), and an existing OUT is replaced only if it is a \
        regular file.
        """)

    @Argument(help: "The model file.")
    var model: String

    @Option(name: .long, help: "HDF5 file with /inputs (and /lengths, /h0, /c0), or /texts for a text model.")
    var input: String

    @Option(name: .long, help: "HDF5 file to write.")
    var output: String

    @OptionGroup var architecture: ArchitectureOption
    @OptionGroup var threads: ThreadsOption

    func run() throws {
        // Checked before the work, and again as the file is written.
        try OutputFiles.check(output, against: protectedInputs, overwrite: true)
        let loaded = try LoadedModel(contentsOf: model, architecture: architecture.architecture, key: architecture.key,
                                     modules: architecture.moduleList, weightsMatching: architecture.weightsMatching)
        printNotes(loaded.notes)
        let inputs = try InputFile(contentsOf: input, for: loaded)
        let initial = try loaded.initialStates(from: inputs, inputPath: input)
        let result = try loaded.run(inputs.input, lengths: inputs.lengths, initialStates: initial,
                                    threads: threads.threads)
        if let note = loaded.lengthsNote(input: inputs.input, lengths: inputs.lengths) { printNotes([note]) }
        try result.write(to: output, model: loaded, protecting: protectedInputs)
        let shapes = [("output", result.output)] + result.stateDatasets(for: loaded).map { ($0.path, $0.tensor) }
        print("wrote \(oneLine(output)): " + shapes.map { "\($0.0) \($0.1.shape)" }.joined(separator: ", "))
    }

    /// The files OUT must never be.
    private var protectedInputs: KeyValuePairs<String, String?> {
        ["the model": model, "the input file": input, "the architecture file": architecture.architecture]
    }
}
