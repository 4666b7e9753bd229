import ArgumentParser
import Foundation
import RecurrentKit
import TextSafety

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a model against a fixture's expected outputs.",
        discussion: """
        Compares every /expected/* dataset with numpy's allclose rule \
        |actual - expected| <= atol + rtol * |expected|. Exit status: 0 all match, \
        1 a mismatch, 2 an error.
        """)

    @Argument(help: "The model file.")
    var model: String

    @Argument(help: "The fixture file (spec/fixture-format.md).")
    var fixture: String

    /// Default: the fixture's `architecture` attribute.
    @OptionGroup var architecture: ArchitectureOption

    @Option(parsing: .unconditional, help: "Absolute tolerance (default: the fixture's, else 1e-5).")
    var atol: Double?

    @Option(parsing: .unconditional, help: "Relative tolerance (default: the fixture's, else 1e-4).")
    var rtol: Double?

    @OptionGroup var threads: ThreadsOption

    func validate() throws {
        if let atol, !(atol >= 0) { throw ValidationError("--atol must be a non-negative number") }
        if let rtol, !(rtol >= 0) { throw ValidationError("--rtol must be a non-negative number") }
    }

    func run() throws {
        let loadedFixture = try Fixture(contentsOf: fixture)
        let loaded = try LoadedModel(contentsOf: model,
                                     architecture: architecture.architecture ?? loadedFixture.architecturePath,
                                     key: architecture.key)
        let verification = try Verification(model: loaded, fixture: loadedFixture, atol: atol, rtol: rtol,
                                            threads: threads.threads)
        print("tolerance: atol \(verification.atol), rtol \(verification.rtol)")
        for comparison in verification.comparisons {
            var line = "\(comparison.passed ? "ok      " : "MISMATCH") \(escapedForDisplay(comparison.name))"
            if !comparison.shapesMatch {
                line += ": shape \(comparison.actualShape), expected \(comparison.expectedShape)"
            } else {
                line += " \(comparison.expectedShape): max abs error \(format(comparison.maxAbsoluteError)), max rel error \(format(comparison.maxRelativeError))"
                if let index = comparison.firstMismatch {
                    line += ", \(comparison.mismatchCount) outside tolerance, first at \(index)"
                }
            }
            print(line)
        }
        if !verification.passed { throw ExitCode(1) }
    }

    private func format(_ value: Double) -> String {
        String(format: "%.3g", value)
    }
}
