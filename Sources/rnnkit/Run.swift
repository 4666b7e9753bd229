import ArgumentParser
import RecurrentKit

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model on inputs from an HDF5 file and write its outputs.",
        discussion: """
        IN holds /inputs ([batch, time, features] floats, or [batch, time] token ids) and \
        optionally /lengths ([batch]), /h0 and /c0. OUT gets /output, plus /h_n (and /c_n) \
        for a bare recurrent module. OUT is written to a temporary file beside it and renamed \
        into place; it is never the model, IN or ARCH (by any name), and an existing OUT is \
        replaced only if it is a regular file.
        """)

    @Argument(help: "The model file.")
    var model: String

    @Option(name: .long, help: "HDF5 file with /inputs (and /lengths, /h0, /c0).")
    var input: String

    @Option(name: .long, help: "HDF5 file to write.")
    var output: String

    @Option(help: "For a Keras weights-only file: the model file (or config JSON) with its architecture.")
    var architecture: String?

    // `.unconditional`: `--threads -2` reaches `validate()` instead of reading as an option.
    @Option(parsing: .unconditional, help: "Threads the run uses (default 1); the outputs do not depend on it.")
    var threads: Int = 1

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        try failingWithStatus2 {
            // Checked before the work, and again as the file is written.
            try OutputFiles.check(output, against: protectedInputs, overwrite: true)
            let loaded = try LoadedModel(contentsOf: model, architecture: architecture)
            let inputs = try InputFile(contentsOf: input)
            let outputs = try loaded.run(inputs.input, lengths: inputs.lengths, h0: inputs.h0, c0: inputs.c0,
                                         threads: threads)
            try outputs.write(to: output, protecting: protectedInputs)
            var shapes = "output \(outputs.output.shape)"
            if let hN = outputs.hN { shapes += ", h_n \(hN.shape)" }
            if let cN = outputs.cN { shapes += ", c_n \(cN.shape)" }
            print("wrote \(oneLine(output)): \(shapes)")
        }
    }

    /// The files OUT must never be.
    private var protectedInputs: KeyValuePairs<String, String?> {
        ["the model": model, "the input file": input, "the architecture file": architecture]
    }
}
