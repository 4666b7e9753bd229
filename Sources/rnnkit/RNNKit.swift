import ArgumentParser
import CPUFeatures
import Foundation
import RecurrentKit
import TextSafety
#if canImport(Glibc)
import Glibc
#endif

@main
struct RNNKit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rnnkit",
        abstract: "Read, run, verify and convert recurrent-network weight files (PyTorch, Keras).",
        version: "\(RecurrentKit.version) (built for \(BuildCPU.summary); libhdf5 \(RecurrentKit.hdf5Version))",
        subcommands: [Inspect.self, Run.self, Verify.self, Convert.self, Bench.self]
    )

    /// What starts every error line on stderr (a verify child's too: `VerifyChild` strips it).
    static let errorPrefix = "rnnkit: error: "

    /// Every failure is one line on stderr and exit status 2 (usage errors included);
    /// `verify` exits 1 on a mismatch. Help and version exit 0.
    static func main() {
        // First: a binary built for more than this CPU has exits here, in one line, instead
        // of dying of an illegal instruction later.
        BuildCPU.requireSupport(program: "rnnkit")
        guardAgainstLibraryCrashes(reading: CommandLine.arguments.dropFirst().filter {
            FileManager.default.fileExists(atPath: $0)
        })
        // An interrupted conversion leaves no temporary files behind.
        TemporaryFiles.removeOnInterrupt()
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(for: error, duringParsing: true)
        }
        do {
            try command.run()
        } catch {
            exit(for: error, duringParsing: false)
        }
    }

    /// The one error path. An `ExitCode` is the status it names (`verify`'s 1); help and
    /// version print and exit 0; an error in the arguments (parsing or `validate()`) is
    /// ArgumentParser's message, pointing to `--help`; an error of the work itself (a
    /// `ModelError`, naming the file) is its own line, the options it names as their flags.
    /// Each is one line on stderr, status 2.
    static func exit(for error: Error, duringParsing: Bool) -> Never {
        if let code = error as? ExitCode { Foundation.exit(code.rawValue) }
        // `--help` parses into a command whose run throws the request for help.
        if exitCode(for: error) == .success {
            print(fullMessage(for: error))
            Foundation.exit(0)
        }
        let text: String
        if duringParsing {
            // ArgumentParser's message may span lines (usage after it); one line is kept.
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            text = "\(oneLine(message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message)) (see 'rnnkit --help')"
        } else {
            text = oneLine(commandLineText(error))
        }
        FileHandle.standardError.write(Data("\(errorPrefix)\(text)\n".utf8))
        Foundation.exit(2)
    }
}

/// The message with every unsafe character (controls, C1 controls, bidirectional
/// overrides: a newline or an escape sequence in a damaged file's dataset name, say) shown
/// as an escape, so that an error is always one line that cannot act on the terminal.
/// The library shortens each file-derived name itself; this is the last line of defence.
func oneLine(_ text: String) -> String {
    escapedForDisplay(text, limit: 4000)
}

/// libhdf5 (1.10 in particular) can fault on deliberately damaged files, inside its own
/// code, before any check of ours can run. Turn such a fault — inside HDF5 calls only — into
/// the same one-line error and exit status 2 as every other bad input; a fault anywhere
/// else (the engine, the kernels) stays a crash and is not reported as a damaged file.
func guardAgainstLibraryCrashes(reading files: [String]) {
    installLibraryFaultHandler(reading: files, prefix: RNNKit.errorPrefix)
}
