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
    /// The architecture given for the case (a manifest's `architecture`); else the fixture's attribute, where
    /// it applies to the model (`Fixture.architectureApplies(to:key:)`).
    public var architecture: String?
    /// The manifest's `architecture: null`: no architecture at all, not even the fixture's.
    public var withoutArchitecture = false
    /// The state_dict's key given for the case (a manifest's `key`); else the fixture's attribute.
    public var key: String?
    /// The modules given for the case (a manifest's `modules`): the modules of a PyTorch state_dict to read,
    /// by key prefix (`LoadedModel.init(contentsOf:architecture:key:modules:)`); the
    /// fixture's `architecture` is then not used.
    public var modules: [String]?
    /// The manifest's tolerances, else the caller's; else the fixture's, else the
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
    /// For `.error` from a `ModelError` thrown while the case ran in this process: the error
    /// itself, its options typed (`ModelError.options`), for a tool that words them its own
    /// way; nil otherwise (an error given as text, or read back from a report).
    public var modelError: ModelError?
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

    /// The run's status as a process exit status (`rnnkit verify`'s): 0 every case passed,
    /// 1 a mismatch and no error, 2 a case that could not run (or none at all).
    public var exitStatus: Int32 {
        if errors > 0 || cases == 0 { return 2 }
        return failed > 0 ? 1 : 0
    }
}

/// Finding cases (folders, fixtures, manifests) and running them in this process. A tool
/// may run each in a process of its own (`rnnkit verify` does, so that a file that makes
/// libhdf5 fault ends only its case) and give back the results it reads from there.
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
            result.modelError = error as? ModelError
            result.namedFiles = named
            return result
        }
    }
}
