import ArgumentParser
import RecurrentKit

@main
struct RNNKit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rnnkit",
        abstract: "Read, run, verify and convert recurrent-network weight files (PyTorch, Keras).",
        version: RecurrentKit.version,
        subcommands: []
    )
}
