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

    @OptionGroup var architecture: ArchitectureOption
    @OptionGroup var threads: ThreadsOption

    func run() throws {
        // Checked before the work, and again as the file is written.
        try OutputFiles.check(output, against: protectedInputs, overwrite: true)
        let loaded = try LoadedModel(contentsOf: model, architecture: architecture.architecture, key: architecture.key)
        let inputs = try InputFile(contentsOf: input)
        let initial = try loaded.initialStates(h0: inputs.h0, c0: inputs.c0, batch: inputs.input.batch)
        let result = try loaded.run(inputs.input, lengths: inputs.lengths, initialStates: initial,
                                    threads: threads.threads)
        // h_n and c_n are a bare module's outputs, as PyTorch's nn.LSTM returns them.
        let states = loaded.isBareRecurrentModule
        try result.write(to: output, states: states, protecting: protectedInputs)
        var shapes = "output \(result.output.shape)"
        if states, let hN = result.hN { shapes += ", h_n \(hN.shape)" }
        if states, let cN = result.cN { shapes += ", c_n \(cN.shape)" }
        print("wrote \(oneLine(output)): \(shapes)")
    }

    /// The files OUT must never be.
    private var protectedInputs: KeyValuePairs<String, String?> {
        ["the model": model, "the input file": input, "the architecture file": architecture.architecture]
    }
}
