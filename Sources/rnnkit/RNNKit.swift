import ArgumentParser
import Foundation
import RecurrentKit

@main
struct RNNKit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rnnkit",
        abstract: "Read, run, verify and convert recurrent-network weight files (PyTorch, Keras).",
        version: RecurrentKit.version,
        subcommands: [Inspect.self, Run.self, Verify.self, Convert.self, Bench.self]
    )

    /// Every failure is one line on stderr and exit status 2 (usage errors included);
    /// `verify` exits 1 on a mismatch. Help and version exit 0.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            let status = exitCode(for: error)
            if status == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            // ArgumentParser's message may span lines (usage after it); one line is kept.
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            let text = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
            FileHandle.standardError.write(Data("rnnkit: error: \(text) (see 'rnnkit --help')\n".utf8))
            Foundation.exit(2)
        }
    }
}

/// Runs `body`, turning any library error into one line on stderr and exit status 2.
func failingWithStatus2<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let code as ExitCode {
        throw code
    } catch {
        FileHandle.standardError.write(Data("rnnkit: error: \(error)\n".utf8))
        throw ExitCode(2)
    }
}
