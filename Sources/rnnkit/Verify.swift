import ArgumentParser
import Foundation
import RecurrentKit
import TextSafety

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check models against fixtures' expected outputs.",
        usage: """
        rnnkit verify MODEL FIXTURE [--architecture FILE | --modules PREFIX,…] [--key KEY] [--by-name] [--atol X] [--rtol X] [--threads N] [--junit FILE] [--json FILE]
        rnnkit verify PATH... [--manifest FILE] [--jobs N] [--timeout SECONDS] [--junit FILE] [--json FILE] [--atol X] [--rtol X] [--threads N]
        """,
        discussion: """
        Compares every /expected/* dataset with numpy's allclose rule \
        |actual - expected| <= atol + rtol * |expected|.

        With a model and a fixture, checks that pair. Otherwise each PATH is a folder (its \
        *.fixture.h5 files) or a fixture, paired with the model its 'model' attribute names, \
        else with NAME.<ext> beside NAME[.SUFFIX].fixture.h5; --manifest adds a JSON or YAML \
        list of {model, fixture, architecture?, key?, modules?, atol?, rtol?, name?}. Each case runs in \
        its own process (--jobs at once) and prints one line; then a summary.

        Exit status: 0 all match, 1 a mismatch, 2 an error (a case that could not run, or none found).
        """)

    @Argument(help: ArgumentHelp("A model and its fixture; or folders and fixtures.", valueName: "path"))
    var paths: [String] = []

    @Option(help: ArgumentHelp("A JSON or YAML list of cases (spec/fixture-format.md).", valueName: "file"))
    var manifest: String?

    @Option(parsing: .unconditional, help: "Cases checked at once, each in its own process (at most 64).")
    var jobs: Int = 1

    @Option(help: ArgumentHelp("Write a JUnit XML report here.", valueName: "file"))
    var junit: String?

    @Option(help: ArgumentHelp("Write a JSON report here.", valueName: "file"))
    var json: String?

    /// Default: the fixture's `key` attribute, and its `architecture` where it applies to the
    /// model (the fixture's own model, or weights that need one). Only with a model and a fixture.
    @OptionGroup var architecture: ArchitectureOption

    @Option(parsing: .unconditional, help: "Absolute tolerance where a manifest entry gives none (default: the fixture's, else 1e-5).")
    var atol: Double?

    @Option(parsing: .unconditional, help: "Relative tolerance where a manifest entry gives none (default: the fixture's, else 1e-4).")
    var rtol: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp("Bound the whole run over folders, fixtures or a manifest: a case still running then is stopped, one not started is an error (default: no bound; each case has 600 s).", valueName: "seconds"))
    var timeout: Double?

    @OptionGroup var threads: ThreadsOption

    // One case of a run over many fixtures, in its own process so that a file that makes
    // libhdf5 fault or hang ends only this process: `VerifyChild.runIsolated` passes these, and the
    // case's result is printed as one JSON object. Internal; not in the help.
    @Option(name: .customLong("case-fixture"), parsing: .unconditional, help: .hidden) var caseFixture: String?
    @Option(name: .customLong("case-model"), parsing: .unconditional, help: .hidden) var caseModel: String?
    @Option(name: .customLong("case-model-by-name"), parsing: .unconditional, help: .hidden) var caseModelByName: String?
    @Option(name: .customLong("case-model-by-name-problem"), parsing: .unconditional, help: .hidden)
    var caseModelByNameProblem: String?
    @Flag(name: .customLong("case-no-architecture"), help: .hidden) var caseNoArchitecture = false
    // What a fixture names (its `model` and `architecture` attributes), as a JSON list: asked
    // of a child when a case's own child did not say, before the reports are written.
    @Option(name: .customLong("case-names"), parsing: .unconditional, help: .hidden) var caseNames: String?

    func validate() throws {
        if let atol, !(atol >= 0 && atol.isFinite) { throw ValidationError("--atol must be a non-negative number") }
        if let rtol, !(rtol >= 0 && rtol.isFinite) { throw ValidationError("--rtol must be a non-negative number") }
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
        guard jobs <= Limits.verifyJobs else { throw ValidationError("--jobs must be at most \(Limits.verifyJobs)") }
        if let junit, junit == json { throw ValidationError("--junit and --json name the same file") }
        if let timeout, !(timeout > 0 && timeout.isFinite) { throw ValidationError("--timeout must be a positive number of seconds") }
        if timeout != nil, caseFixture == nil, caseNames == nil, isPair {
            throw ValidationError("--timeout bounds a run over folders, fixtures or a manifest (each case in its own process)")
        }
        if caseFixture == nil, !isPair, architecture.architecture != nil || architecture.key != nil || architecture.modules != nil || architecture.byName {
            throw ValidationError("--architecture, --key, --modules and --by-name apply to one model and fixture; for several, use each fixture's attributes or a manifest's fields")
        }
    }

    /// A model and its fixture: two paths, no manifest, the first neither a
    /// folder nor named `*.fixture.h5`.
    private var isPair: Bool {
        guard paths.count == 2, manifest == nil else { return false }
        var isFolder: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: paths[0], isDirectory: &isFolder)
        return !paths[0].hasSuffix(".fixture.h5") && !(exists && isFolder.boolValue)
    }

    func run() throws {
        if let caseNames {
            FileHandle.standardOutput.write(try JSONSerialization.data(withJSONObject: Fixture.namedFiles(of: caseNames)))
        } else if let caseFixture {
            try verifyOneCase(caseFixture)
        } else if isPair {
            try verifyPair()
        } else {
            try verifyMany()
        }
    }

    private func verifyOneCase(_ fixture: String) throws {
        var verificationCase = VerificationCase(name: "", group: "", fixture: fixture, model: caseModel,
                                                modelByName: caseModelByName, modelByNameProblem: caseModelByNameProblem,
                                                architecture: architecture.architecture, key: architecture.key,
                                                modules: architecture.moduleList, atol: atol, rtol: rtol)
        verificationCase.withoutArchitecture = caseNoArchitecture
        FileHandle.standardOutput.write(VerifyChild.childJSON(VerificationSuite.run(verificationCase, threads: threads.threads)))
    }

    private func verifyPair() throws {
        let (model, fixture) = (paths[0], paths[1])
        // The files the fixture names are protected too, used or not (read before any write).
        let inputs = [model, fixture] + [architecture.architecture].compactMap { $0 } + Fixture.namedFiles(of: fixture)
        for report in [junit, json].compactMap({ $0 }) {
            try VerificationReports.checkOutput(report, protecting: inputs)
        }
        let start = DispatchTime.now()
        var verificationCase = VerificationCase(fixture: fixture, model: model, architecture: architecture.architecture,
                                                key: architecture.key, modules: architecture.moduleList, atol: atol, rtol: rtol)
        let verification: Verification
        do {
            let loadedFixture = try Fixture(contentsOf: fixture)
            // The fixture's architecture only for the model it was written for (or, naming
            // none, one that needs it): never for another file, a converted one say. Modules
            // picked by key prefix replace a model_config, the fixture's included.
            if architecture.architecture == nil, architecture.modules == nil,
               loadedFixture.architectureApplies(to: model, key: architecture.key ?? loadedFixture.key) {
                verificationCase.architecture = loadedFixture.architecturePath
            }
            let loaded = try LoadedModel(contentsOf: model, architecture: verificationCase.architecture,
                                         key: architecture.key, modules: architecture.moduleList,
                                         weightsMatching: architecture.byName ? .name : loadedFixture.weightsMatching ?? .order)
            printNotes(loaded.notes)
            verification = try Verification(model: loaded, fixture: loadedFixture, atol: atol, rtol: rtol,
                                            threads: threads.threads)
        } catch {
            try writeReports([.failure(verificationCase, commandLineText(error), seconds: seconds(since: start))], inputs: inputs)
            throw error
        }
        printNotes(verification.notes)
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
        verificationCase.atol = verification.atol
        verificationCase.rtol = verification.rtol
        try writeReports([CaseResult(verificationCase: verificationCase, status: verification.passed ? .passed : .failed,
                                     seconds: seconds(since: start),
                                     tensors: verification.comparisons.map(TensorResult.init))], inputs: inputs)
        if !verification.passed { throw ExitCode(1) }
    }

    private func verifyMany() throws {
        for path in paths {
            var isFolder: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isFolder)
            guard (exists && isFolder.boolValue) || path.hasSuffix(".fixture.h5") else {
                throw ValidationError("\(escapedForDisplay(path)) is neither a folder nor a fixture (*.fixture.h5); give a model and its fixture, or folders and fixtures")
            }
        }
        var cases = try manifest.map { try VerificationSuite.cases(manifest: $0) } ?? []
        cases += try VerificationSuite.cases(in: paths)
        guard !cases.isEmpty else {
            throw ValidationError("no fixtures found (no *.fixture.h5 in the folders given, and no manifest cases)")
        }
        guard cases.count <= Limits.verifyCases else {
            throw ValidationError("\(cases.count) cases, \(Limits.excess(cases.count, over: Limits.verifyCases)) (Limits.verifyCases)")
        }
        // The command line's tolerances apply where a manifest entry gives none.
        for index in cases.indices {
            cases[index].atol = cases[index].atol ?? atol
            cases[index].rtol = cases[index].rtol ?? rtol
        }
        let inputs = [manifest].compactMap { $0 } + cases.flatMap {
            [$0.fixture, $0.model, $0.modelByName, $0.architecture].compactMap { $0 }
        }
        for report in [junit, json].compactMap({ $0 }) {
            try VerificationReports.checkOutput(report, protecting: inputs)
        }
        let results = VerifyChild.runIsolated(cases, jobs: jobs, threads: threads.threads,
                                                    executable: Self.executable, arguments: ["verify"],
                                                    totalSeconds: timeout) { _, result in
            // Unbuffered: each line shows as its case (and those before it) finish.
            FileHandle.standardOutput.write(Data((result.line + "\n").utf8))
            printNotes(result.notes.map { "\(result.verificationCase.name): \($0)" })
        }
        let summary = SuiteSummary(results)
        FileHandle.standardOutput.write(Data((summary.line + "\n").utf8))
        // Also what each fixture names, and the folders of fixtures whose check did not say.
        let named = VerificationReports.protected(by: results)
        try writeReports(results, inputs: inputs + named.files + results.flatMap {
            [$0.verificationCase.model, $0.verificationCase.architecture].compactMap { $0 }
        }, folders: named.folders)
        if summary.exitStatus != 0 { throw ExitCode(summary.exitStatus) }
    }

    private func writeReports(_ results: [CaseResult], inputs: [String], folders: [String] = []) throws {
        if let junit {
            try VerificationReports.write(VerificationReports.junit(results), to: junit, protecting: inputs, folders: folders)
        }
        if let json {
            try VerificationReports.write(VerificationReports.json(results), to: json, protecting: inputs, folders: folders)
        }
    }

    /// This executable, for the child processes: Linux names it `/proc/self/exe`.
    static var executable: String {
        if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return resolved }
        let first = CommandLine.arguments[0]
        if first.contains("/") { return URL(fileURLWithPath: first).standardizedFileURL.path }
        return Bundle.main.executablePath ?? first
    }

    private func seconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }

    private func format(_ value: Double) -> String {
        String(format: "%.3g", value)
    }
}
