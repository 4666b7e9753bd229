import Foundation
import TextSafety
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One model–fixture pair to verify (`rnnkit verify` over folders, fixtures and manifests).
///
/// Only names: nothing here has been opened. The fixture's own attributes (`model`,
/// `architecture`, `key`, `atol`, `rtol`) are read when the case runs, so that a damaged
/// fixture fails its own case and not the discovery of all of them.
public struct VerificationCase: Sendable, Equatable {
    /// What reports call the case: the manifest's `name`, else the fixture's file name
    /// without `.fixture.h5`.
    public var name: String
    /// The folder the fixture is in, as given (JUnit's `classname` and `testsuite`).
    public var group: String
    public var fixture: String
    /// The model file named by a manifest entry or the command line; it wins over the
    /// fixture's `model` attribute.
    public var model: String?
    /// The model found beside the fixture by name (`NAME.fixture.h5` → `NAME.<ext>`), used
    /// when neither `model` nor the fixture's `model` attribute names one.
    public var modelByName: String?
    /// Why no model could be found by name (none, or several candidates, named); an error
    /// only when neither `model` nor the fixture's attribute names one.
    public var modelByNameProblem: String?
    /// Why the case must not run at all, found before anything was opened: a fixture listed
    /// in a folder that is a symbolic link leading out of that folder.
    public var refusal: String?
    /// `--architecture` / the manifest's `architecture`; else the fixture's attribute, where
    /// it applies to the model (`Fixture.architectureApplies(to:key:)`).
    public var architecture: String?
    /// The manifest's `architecture: null`: no architecture at all, not even the fixture's.
    public var withoutArchitecture = false
    /// `--key` / the manifest's `key`; else the fixture's attribute.
    public var key: String?
    /// `--modules` / the manifest's `modules`: the modules of a PyTorch state_dict to read,
    /// by key prefix (`LoadedModel.init(contentsOf:architecture:key:modules:)`); the
    /// fixture's `architecture` is then not used.
    public var modules: [String]?
    /// The manifest's tolerances, else the command line's; else the fixture's, else the
    /// defaults (`Verification`).
    public var atol: Double?
    public var rtol: Double?

    public init(name: String, group: String, fixture: String, model: String? = nil, modelByName: String? = nil,
                modelByNameProblem: String? = nil, architecture: String? = nil, key: String? = nil,
                modules: [String]? = nil, atol: Double? = nil, rtol: Double? = nil) {
        self.modules = modules
        self.name = name
        self.group = group
        self.fixture = fixture
        self.model = model
        self.modelByName = modelByName
        self.modelByNameProblem = modelByNameProblem
        self.architecture = architecture
        self.key = key
        self.atol = atol
        self.rtol = rtol
    }

    /// A case named after its fixture: `name` the file's name without `.fixture.h5`,
    /// `group` its folder as given (`.` for a bare file name).
    public init(fixture: String, model: String? = nil, architecture: String? = nil, key: String? = nil,
                modules: [String]? = nil, atol: Double? = nil, rtol: Double? = nil) {
        let (folder, file) = OutputFiles.split(fixture)
        self.init(name: VerificationSuite.stem(of: file), group: folder, fixture: fixture, model: model,
                  architecture: architecture, key: key, modules: modules, atol: atol, rtol: rtol)
    }
}

/// How one computed tensor compared with the fixture's (a `Comparison`, as reports give it).
public struct TensorResult: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var expectedShape: [Int]
    /// NaN when an element's difference is NaN (a report writes `null`).
    public var maxAbsoluteError: Double
    public var maxRelativeError: Double
    /// Elements outside the tolerance (all of them when the shapes differ).
    public var mismatches: Int
    public var firstMismatch: [Int]?

    public var passed: Bool { shape == expectedShape && mismatches == 0 }

    public init(_ comparison: Comparison) {
        name = comparison.name
        shape = comparison.actualShape
        expectedShape = comparison.expectedShape
        maxAbsoluteError = comparison.maxAbsoluteError
        maxRelativeError = comparison.maxRelativeError
        mismatches = comparison.shapesMatch ? comparison.mismatchCount : comparison.expectedShape.reduce(1, *)
        firstMismatch = comparison.firstMismatch
    }

    /// One line: `output [2, 5]: max abs error 0.3, max rel error 1.2, 4 outside tolerance,
    /// first at [0, 1]`, or `output: shape [2, 4], expected [2, 5]`.
    public var summary: String {
        let name = escapedForDisplay(self.name)
        guard shape == expectedShape else { return "\(name): shape \(shapeText(shape)), expected \(shapeText(expectedShape))" }
        var line = "\(name) \(shapeText(expectedShape)): max abs error \(formatError(maxAbsoluteError)), max rel error \(formatError(maxRelativeError))"
        if let firstMismatch {
            line += ", \(mismatches) outside tolerance, first at \(shapeText(firstMismatch))"
        }
        return line
    }
}

/// A number as verify prints it (`%.3g`: `3.1e-07`, `0.3`).
func formatError(_ value: Double) -> String {
    String(format: "%.3g", value)
}

/// The outcome of one case.
public struct CaseResult: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// Every tensor within the tolerance.
        case passed
        /// The case ran and a tensor is outside the tolerance or of another shape.
        case failed
        /// The case could not run: a file missing or refused, a model that does not fit,
        /// its child process crashed or did not finish.
        case error
    }

    /// The case as given (its name, group and fixture); `model`, `architecture` and `key`
    /// are the ones used when it ran (the fixture's attributes resolved), `atol` and `rtol`
    /// the tolerances applied.
    public var verificationCase: VerificationCase
    public var status: Status
    /// For `.error`: one line, escaped for display.
    public var error: String?
    public var seconds: Double
    public var tensors: [TensorResult]
    /// What reading and running the model noted (`LoadedModel.notes`, `Verification.notes`).
    public var notes: [String] = []
    /// The files the case's fixture names (its `model` and `architecture` attributes, used
    /// or not), as the check read them; nil when the check did not say (its process crashed,
    /// was stopped or printed no result), so that the fixture may name any file in its folder.
    public var namedFiles: [String]?

    public init(verificationCase: VerificationCase, status: Status, error: String? = nil, seconds: Double = 0,
                tensors: [TensorResult] = []) {
        self.verificationCase = verificationCase
        self.status = status
        self.error = error
        self.seconds = seconds
        self.tensors = tensors
    }

    /// A case that could not run, with `error` made one safe line.
    public static func failure(_ verificationCase: VerificationCase, _ error: String, seconds: Double = 0) -> CaseResult {
        CaseResult(verificationCase: verificationCase, status: .error, error: escapedForDisplay(error, limit: 4000), seconds: seconds)
    }

    /// The line `rnnkit verify` prints for the case:
    ///
    ///     ok       fixtures/keras/tfk_x.fixture.h5 (tfk_x.h5): max abs error 3.1e-07
    ///     MISMATCH fixtures/keras/tfk_x.fixture.h5 (tfk_x.h5): output [2, 5]: max abs error 0.3, …
    ///     ERROR    fixtures/keras/tfk_x.fixture.h5: <one-line error>
    ///
    /// Every file-derived name is escaped for display.
    public var line: String {
        let fixture = escapedForDisplay(verificationCase.fixture)
        let model = verificationCase.model.map { " (\(escapedForDisplay(URL(fileURLWithPath: $0).lastPathComponent)))" } ?? ""
        switch status {
        case .passed:
            let largest = tensors.map(\.maxAbsoluteError).max() ?? 0
            return "ok       \(fixture)\(model): max abs error \(formatError(largest))"
        case .failed:
            return "MISMATCH \(fixture)\(model): " + tensors.filter { !$0.passed }.map(\.summary).joined(separator: "; ")
        case .error:
            // Most errors name the fixture first; the line does already.
            var message = error ?? "failed"
            if message.hasPrefix(fixture + ": ") { message.removeFirst(fixture.count + 2) }
            return "ERROR    \(fixture): \(message)"
        }
    }
}

/// Counts over a run's results.
public struct SuiteSummary: Sendable, Equatable {
    public var passed = 0
    public var failed = 0
    public var errors = 0
    public var seconds = 0.0
    public var cases: Int { passed + failed + errors }

    public init(_ results: [CaseResult]) {
        for result in results {
            switch result.status {
            case .passed: passed += 1
            case .failed: failed += 1
            case .error: errors += 1
            }
            seconds += result.seconds
        }
    }

    /// `12 passed, 1 failed, 0 errors`.
    public var line: String { "\(passed) passed, \(failed) failed, \(errors) error\(errors == 1 ? "" : "s")" }

    /// `rnnkit verify`'s exit status: 0 every case passed, 1 a mismatch and no error, 2 a
    /// case that could not run (or none at all).
    public var exitStatus: Int32 {
        if errors > 0 || cases == 0 { return 2 }
        return failed > 0 ? 1 : 0
    }
}

/// Finding cases (folders, fixtures, manifests) and running them, in this process or each
/// in a child process.
public enum VerificationSuite {
    /// The model file extensions a fixture is paired with by name, in the order tried.
    public static let modelExtensions = [".keras", ".h5", ".pt", ".pth", ".safetensors"]

    static let fixtureSuffix = ".fixture.h5"

    /// The cases for `paths`: a folder gives its `*.fixture.h5` files (not recursive, sorted
    /// by name), any other path is one fixture. Each fixture's model is found by name
    /// beside it (`modelByName`), used when the fixture names none.
    ///
    /// - Throws: `ModelError` for a folder that cannot be listed, or more than
    ///   `Limits.verifyCases` cases.
    public static func cases(in paths: [String]) throws -> [VerificationCase] {
        var cases: [VerificationCase] = []
        for path in paths {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
                let names: [String]
                do {
                    names = try FileManager.default.contentsOfDirectory(atPath: path)
                } catch {
                    throw ModelError(file: path, message: "cannot be listed (\(error.localizedDescription))")
                }
                let fixtures = names.filter { $0.hasSuffix(fixtureSuffix) && $0 != fixtureSuffix }
                    .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
                guard cases.count + fixtures.count <= Limits.verifyCases else {
                    throw ModelError(file: path, message: "holds \(fixtures.count) fixtures; with the others, \(Limits.excess(cases.count + fixtures.count, over: Limits.verifyCases)) cases (Limits.verifyCases)")
                }
                let folder = path.hasSuffix("/") ? String(path.dropLast()) : path
                for name in fixtures {
                    cases.append(fixtureCase(folder.isEmpty ? "/" + name : folder + "/" + name, names: names, listed: true))
                }
            } else {
                guard cases.count < Limits.verifyCases else {
                    throw ModelError(file: path, message: "is one case too many: \(Limits.excess(cases.count + 1, over: Limits.verifyCases)) (Limits.verifyCases)")
                }
                let folder = OutputFiles.split(path).folder
                let siblings = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
                cases.append(fixtureCase(path, names: siblings))
            }
        }
        return cases
    }

    /// The case for one fixture: its name, its folder, and its model by name among `names`
    /// (the folder's entries).
    static func fixtureCase(_ path: String, names: [String], listed: Bool = false) -> VerificationCase {
        let (folder, file) = OutputFiles.split(path)
        let stem = Self.stem(of: file)
        var result = VerificationCase(name: stem, group: folder, fixture: path)
        // A folder of fixtures may come from anywhere (an archive, a download): its entries are
        // read only when they stay inside it, as a fixture's own `model` attribute must.
        let listedFolder = folder.isEmpty ? "." : folder
        guard !listed || InputFiles.resolves(path, inside: listedFolder) else {
            result.refusal = "does not resolve to a file inside its folder (a symbolic link leading out of it, or a dangling one); refused (name the file itself to verify it)"
            return result
        }
        // Names as bytes: `String` equality would take `café` in NFD for `café` in NFC.
        let present = Set(names.map { Array($0.utf8) })
        func inside(_ name: String) -> Bool { InputFiles.resolves((folder == "/" ? "/" : listedFolder + "/") + name, inside: listedFolder) }
        // `A.B.fixture.h5` is tried as `A.B` first, then `A`.
        var candidates: [String] = []
        var tried: [String] = []
        var base = Substring(stem)
        while true {
            tried.append(String(base))
            candidates = modelExtensions.map { base + $0 }
                .filter { present.contains(Array($0.utf8)) && !$0.utf8.elementsEqual(file.utf8) && inside($0) }
            if !candidates.isEmpty { break }
            guard let dot = base.lastIndex(of: "."), dot != base.startIndex else { break }
            base = base[..<dot]
        }
        let prefix = !path.contains("/") ? "" : (folder == "/" ? "/" : folder + "/")
        switch candidates.count {
        case 1:
            result.modelByName = prefix + candidates[0]
        case 0:
            result.modelByNameProblem = "names no model, and no model file is beside it by name (tried \(tried.map { "\($0).{\(modelExtensions.map { $0.dropFirst() }.joined(separator: ","))}" }.joined(separator: ", ")))"
        default:
            result.modelByNameProblem = "names no model, and several model files are beside it by name: \(candidates.joined(separator: ", ")); give one in a manifest"
        }
        return result
    }

    /// A fixture's name without `.fixture.h5` (or its last extension).
    static func stem(of file: String) -> String {
        if file.hasSuffix(fixtureSuffix), file.count > fixtureSuffix.count { return String(file.dropLast(fixtureSuffix.count)) }
        if let dot = file.lastIndex(of: "."), dot != file.startIndex { return String(file[..<dot]) }
        return file
    }

    // MARK: Running

    /// Runs one case in this process: reads the fixture, loads the model (the case's, else
    /// the fixture's `model` attribute, else the one found by name), runs it on the
    /// fixture's inputs and compares. Never throws: a failure is an `.error` result.
    ///
    /// - Parameters:
    ///   - verificationCase: the fixture, and the model and options to read it with.
    ///   - threads: threads the run may use (the outputs do not depend on it).
    public static func run(_ verificationCase: VerificationCase, threads: Int = 1) -> CaseResult {
        let start = DispatchTime.now()
        var used = verificationCase
        func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9 }
        // What the fixture names, read first so that even a fixture refused later says it.
        var named: [String] = []
        do {
            if let refusal = verificationCase.refusal {
                throw ModelError(.invalidInput, file: verificationCase.fixture, message: refusal)
            }
            named = Fixture.namedFiles(of: verificationCase.fixture)
            let fixture = try Fixture(contentsOf: verificationCase.fixture)
            // The fixture's references, beside it as the case names it (not made absolute).
            let folder = OutputFiles.split(verificationCase.fixture).folder
            func beside(_ name: String) -> String {
                verificationCase.fixture.contains("/") ? (folder == "/" ? "/" : folder + "/") + name : name
            }
            guard let model = verificationCase.model ?? fixture.model.map(beside) ?? verificationCase.modelByName else {
                throw ModelError(file: verificationCase.fixture, message: verificationCase.modelByNameProblem ?? "names no model")
            }
            used.model = model
            used.key = verificationCase.key ?? fixture.key
            // Modules picked by key prefix replace a model_config, the fixture's included.
            if verificationCase.withoutArchitecture || verificationCase.modules != nil {
                used.architecture = verificationCase.architecture
            } else if verificationCase.architecture == nil, fixture.architectureApplies(to: model, key: used.key) {
                used.architecture = fixture.architecture.map(beside)
            }
            let loaded = try LoadedModel(contentsOf: model, architecture: used.architecture, key: used.key,
                                         modules: used.modules, weightsMatching: fixture.weightsMatching ?? .order)
            let verification = try Verification(model: loaded, fixture: fixture, atol: verificationCase.atol,
                                                rtol: verificationCase.rtol, threads: threads)
            used.atol = verification.atol
            used.rtol = verification.rtol
            var result = CaseResult(verificationCase: used, status: verification.passed ? .passed : .failed,
                                    seconds: seconds(), tensors: verification.comparisons.map(TensorResult.init))
            result.notes = loaded.notes + verification.notes
            result.namedFiles = named
            return result
        } catch {
            var result = CaseResult.failure(used, "\(error)", seconds: seconds())
            result.namedFiles = named
            return result
        }
    }

    /// Runs every case in a child process of `executable` — at most `jobs` at once — so that
    /// a case whose file makes libhdf5 fault, loop or exhaust memory ends its own process
    /// (an `.error` result with the child's last stderr line) and the others still run.
    ///
    /// Each child is started as `executable arguments… --case-fixture F …` (the
    /// options `childArguments(for:threads:)` gives) and must print one result on stdout as
    /// `CaseResult.childJSON` does; it is stopped after `caseSeconds` (default `Limits.verifyCaseSeconds`), and at most
    /// `Limits.verifyCaseOutputBytes` of its stdout are kept.
    ///
    /// With `totalSeconds`, the whole run is bounded too: a child still running when that
    /// time has passed is stopped, and a case not started by then is an `.error` saying so.
    ///
    /// `report` is called once per case, in input order, as soon as the case and all before
    /// it have finished (never concurrently). The results are returned in input order.
    public static func runIsolated(_ cases: [VerificationCase], jobs: Int, threads: Int = 1, executable: String,
                                   arguments: [String], caseSeconds: Double? = nil, totalSeconds: Double? = nil,
                                   report: @escaping @Sendable (Int, CaseResult) -> Void = { _, _ in }) -> [CaseResult] {
        let state = RunState(count: cases.count, report: report)
        let workers = max(1, min(jobs, Limits.verifyJobs, cases.count))
        var threadsStarted: [Thread] = []
        let done = DispatchSemaphore(value: 0)
        let caseLimit = caseSeconds ?? Limits.verifyCaseSeconds
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<workers {
            let thread = Thread {
                while let index = state.next() {
                    var seconds = caseLimit
                    var limit: String?
                    if let totalSeconds {
                        let left = totalSeconds - Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                        let total = "the run's time limit of \(String(format: "%g", totalSeconds)) s"
                        guard left > 0 else {
                            state.finish(index, .failure(cases[index], "not run: \(total) had passed"))
                            continue
                        }
                        if left < seconds { (seconds, limit) = (left, total) }
                    }
                    var result = runChild(cases[index], threads: threads, executable: executable,
                                          arguments: arguments, seconds: seconds, limit: limit)
                    if result.namedFiles == nil {
                        // The check did not say what its fixture names: a child that reads only that.
                        let left = totalSeconds.map { $0 - Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 } ?? seconds
                        result.namedFiles = namedFiles(cases[index], executable: executable, arguments: arguments,
                                                       seconds: min(seconds, left, Limits.hdf5CallSeconds + 2))
                    }
                    state.finish(index, result)
                }
                done.signal()
            }
            thread.stackSize = 1 << 20
            threadsStarted.append(thread)
            thread.start()
        }
        for _ in 0..<workers { done.wait() }
        return state.results()
    }

    /// What `verificationCase`'s fixture names, from a child that reads only its `model` and
    /// `architecture` attributes (`executable arguments… --case-names F`, printing a JSON list
    /// of paths: `Fixture.namedFiles(of:)`), for a case whose own check did not say; nil when
    /// that child does not say either (it crashes or runs out of `seconds`).
    static func namedFiles(_ verificationCase: VerificationCase, executable: String, arguments: [String],
                           seconds: Double) -> [String]? {
        guard seconds > 0, verificationCase.refusal == nil,
              let outcome = try? ChildProcess.run(executable, arguments + ["--case-names", childPath(verificationCase.fixture)],
                                                  seconds: seconds, outputLimit: Limits.verifyCaseOutputBytes,
                                                  errorLimit: Limits.verifyCaseErrorBytes),
              !outcome.timedOut, outcome.signal == nil, outcome.status == 0 else { return nil }
        return (try? StrictJSONDecoder.parse(outcome.output)) as? [String]
    }

    /// A relative name that starts with '-', as a child's argument, so it is not taken for an option.
    static func childPath(_ text: String) -> String { text.hasPrefix("-") ? "./" + text : text }

    /// The options a child process gets for `verificationCase` (after the caller's
    /// `arguments`, `verify` for rnnkit): `--case-fixture F`, and as present `--case-model`,
    /// `--case-model-by-name`, `--case-model-by-name-problem`, `--architecture`,
    /// `--case-no-architecture`, `--key`,
    /// `--atol`, `--rtol`; then `--threads`.
    public static func childArguments(for verificationCase: VerificationCase, threads: Int) -> [String] {
        let path = childPath
        var result = ["--case-fixture", path(verificationCase.fixture)]
        if let model = verificationCase.model { result += ["--case-model", path(model)] }
        if let model = verificationCase.modelByName { result += ["--case-model-by-name", path(model)] }
        if let problem = verificationCase.modelByNameProblem { result += ["--case-model-by-name-problem", problem] }
        if let architecture = verificationCase.architecture { result += ["--architecture", path(architecture)] }
        if verificationCase.withoutArchitecture { result += ["--case-no-architecture"] }
        if let key = verificationCase.key { result += ["--key=" + key] }
        if let modules = verificationCase.modules { result += ["--modules=" + modules.joined(separator: ",")] }
        if let atol = verificationCase.atol { result += ["--atol", "\(atol)"] }
        if let rtol = verificationCase.rtol { result += ["--rtol", "\(rtol)"] }
        result += ["--threads", "\(threads)"]
        return result
    }

    /// Runs one case's child and turns whatever happens into a result; `limit` names the
    /// bound that `seconds` comes from when it is not the case's own.
    static func runChild(_ verificationCase: VerificationCase, threads: Int, executable: String, arguments: [String],
                         seconds: Double, limit: String? = nil) -> CaseResult {
        if verificationCase.refusal != nil { return run(verificationCase, threads: threads) }
        let start = DispatchTime.now()
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9 }
        let outcome: ChildOutcome
        do {
            outcome = try ChildProcess.run(executable, arguments + childArguments(for: verificationCase, threads: threads),
                                           seconds: seconds, outputLimit: Limits.verifyCaseOutputBytes,
                                           errorLimit: Limits.verifyCaseErrorBytes)
        } catch {
            return .failure(verificationCase, "cannot start the check: \(error)", seconds: elapsed())
        }
        let errorLine = outcome.lastErrorLine.map { line -> String in
            line.hasPrefix("rnnkit: error: ") ? String(line.dropFirst("rnnkit: error: ".count)) : line
        }
        if outcome.timedOut {
            return .failure(verificationCase, "did not finish within \(limit ?? "\(Int(seconds)) s"); stopped" + (errorLine.map { " (\($0))" } ?? ""),
                            seconds: elapsed())
        }
        if let signal = outcome.signal {
            return .failure(verificationCase, "the check crashed (signal \(signal))" + (errorLine.map { ": \($0)" } ?? ""),
                            seconds: elapsed())
        }
        if outcome.status == 0, var result = CaseResult(childJSON: outcome.output, for: verificationCase) {
            result.seconds = elapsed()
            return result
        }
        if let errorLine { return .failure(verificationCase, errorLine, seconds: elapsed()) }
        return .failure(verificationCase, outcome.status == 0 ? "the check printed no result" : "the check exited with status \(outcome.status)",
                        seconds: elapsed())
    }
}

/// The shared progress of `runIsolated`: the next case to start, the results so far, and
/// the next one to report in input order.
private final class RunState: @unchecked Sendable {
    private let lock = NSLock()
    private var started = 0
    private var reported = 0
    private var slots: [CaseResult?]
    private let report: @Sendable (Int, CaseResult) -> Void

    init(count: Int, report: @escaping @Sendable (Int, CaseResult) -> Void) {
        slots = Array(repeating: nil, count: count)
        self.report = report
    }

    func next() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard started < slots.count else { return nil }
        started += 1
        return started - 1
    }

    /// Stores a result and reports every finished one not yet reported, in order; the lock
    /// is held while reporting so that lines never interleave or go out of order.
    func finish(_ index: Int, _ result: CaseResult) {
        lock.lock()
        defer { lock.unlock() }
        slots[index] = result
        while reported < slots.count, let next = slots[reported] {
            report(reported, next)
            reported += 1
        }
    }

    func results() -> [CaseResult] {
        lock.lock()
        defer { lock.unlock() }
        return slots.compactMap { $0 }
    }
}

/// What a child process did.
struct ChildOutcome {
    var status: Int32
    var signal: Int32?
    var timedOut: Bool
    var output: Data
    var lastErrorLine: String?
}

/// One child process with bounded output and a time limit.
enum ChildProcess {
    /// Starts `executable arguments`, reads its stdout and stderr together (`poll`), keeping
    /// at most `outputLimit` and `errorLimit` bytes (the rest is read and dropped so the
    /// child never blocks on a full pipe), and kills it (`SIGKILL`) past `seconds`, whether
    /// or not it has closed its output.
    static func run(_ executable: String, _ arguments: [String], seconds: Double, outputLimit: Int,
                    errorLimit: Int) throws -> ChildOutcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // The parent's copies of the write ends must close, or the reads never see the end.
        try? out.fileHandleForWriting.close()
        try? err.fileHandleForWriting.close()
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, seconds) * 1e9)
        var streams: [(descriptor: Int32, limit: Int, data: Data, open: Bool)] = [
            (out.fileHandleForReading.fileDescriptor, outputLimit, Data(), true),
            (err.fileHandleForReading.fileDescriptor, errorLimit, Data(), true),
        ]
        var timedOut = false
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while streams.contains(where: \.open) {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                break
            }
            var descriptors = streams.filter(\.open).map { pollfd(fd: $0.descriptor, events: Int16(POLLIN), revents: 0) }
            let wait = Int32(min(1000, (deadline - now) / 1_000_000 + 1))
            let ready = poll(&descriptors, nfds_t(descriptors.count), wait)
            if ready < 0 && errno != EINTR { break }
            guard ready > 0 else { continue }
            for polled in descriptors where polled.revents != 0 {
                guard let index = streams.firstIndex(where: { $0.descriptor == polled.fd }) else { continue }
                let count = buffer.withUnsafeMutableBytes { read(polled.fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 {
                    streams[index].open = false
                    continue
                }
                let room = max(0, streams[index].limit - streams[index].data.count)
                streams[index].data.append(contentsOf: buffer[..<min(count, room)])
            }
        }
        // A child may close its output and go on running: the deadline holds until it exits.
        while !timedOut, process.isRunning {
            guard DispatchTime.now().uptimeNanoseconds < deadline else {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                break
            }
            usleep(5_000)
        }
        process.waitUntilExit()
        let errorText = String(decoding: streams[1].data, as: UTF8.self)
        let lastLine = errorText.split(whereSeparator: \.isNewline).last.map(String.init)
        let signal: Int32? = process.terminationReason == .uncaughtSignal && !timedOut ? process.terminationStatus : nil
        return ChildOutcome(status: process.terminationStatus, signal: signal, timedOut: timedOut,
                            output: streams[0].data, lastErrorLine: lastLine)
    }
}
