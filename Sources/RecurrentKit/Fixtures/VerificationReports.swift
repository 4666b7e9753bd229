import Foundation
import TextSafety

/// `rnnkit verify`'s reports: JUnit XML (the Jenkins xUnit plugin's `junit-10.xsd`) and
/// JSON (spec/fixture-format.md, "Verifying many fixtures"), written atomically.
public enum VerificationReports {
    // MARK: JSON

    /// The JSON report: `{"summary": {...}, "cases": [...]}`, keys sorted, NaN as `null`.
    ///
    ///     {"summary": {"cases": 3, "passed": 2, "failed": 1, "errors": 0, "seconds": 0.41},
    ///      "cases": [{"name", "group", "model", "fixture", "architecture", "key", "atol",
    ///                 "rtol", "status", "error"?, "seconds",
    ///                 "tensors": [{"name", "shape", "expected_shape", "max_abs_error",
    ///                              "max_rel_error", "mismatches", "first_mismatch"}]}]}
    public static func json(_ results: [CaseResult]) -> Data {
        let summary = SuiteSummary(results)
        let object: [String: Any] = [
            "summary": ["cases": summary.cases, "passed": summary.passed, "failed": summary.failed,
                        "errors": summary.errors, "seconds": summary.seconds],
            "cases": results.map(jsonObject),
        ]
        return serialized(object)
    }

    /// `object` as the reports write JSON: pretty, keys sorted, slashes as they are.
    package static func serialized(_ object: Any) -> Data {
        // Every value is a string, a finite number, a bool, null, an array or a dictionary.
        (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
    }

    static func number(_ value: Double?) -> Any {
        guard let value, value.isFinite else { return NSNull() }
        return value
    }

    /// One case of the JSON report (see ``json(_:)``).
    package static func jsonObject(_ result: CaseResult) -> [String: Any] {
        let item = result.verificationCase
        var object: [String: Any] = [
            "name": item.name, "group": item.group, "fixture": item.fixture,
            "model": item.model ?? NSNull(), "architecture": item.architecture ?? NSNull(), "key": item.key ?? NSNull(),
            "atol": number(item.atol), "rtol": number(item.rtol),
            "status": result.status.rawValue, "seconds": number(result.seconds),
            "tensors": result.tensors.map { tensor -> [String: Any] in
                ["name": tensor.name, "shape": tensor.shape, "expected_shape": tensor.expectedShape,
                 "max_abs_error": number(tensor.maxAbsoluteError), "max_rel_error": number(tensor.maxRelativeError),
                 "mismatches": tensor.mismatches, "first_mismatch": tensor.firstMismatch ?? NSNull()]
            },
        ]
        if let error = result.error { object["error"] = error }
        if !result.notes.isEmpty { object["notes"] = result.notes }
        if let modules = item.modules { object["modules"] = modules }
        return object
    }

    // MARK: JUnit

    /// The JUnit report: `<testsuites>` holding one `<testsuite>` per folder (in the order
    /// the folders first appear), one `<testcase classname="FOLDER" name="STEM" time="…">`
    /// per case, with `<failure type="mismatch" message="…">` for a mismatch (every tensor
    /// outside the tolerance: name, shapes, largest errors, count and first index) and
    /// `<error type="…" message="…">` for a case that could not run; a passing case's
    /// `<system-out>` gives the same lines (fixture, model, tolerance, each tensor's largest
    /// errors), so a report shows how far under the tolerance it is.
    ///
    /// Only elements and attributes `junit-10.xsd` allows; every string from a file is
    /// escaped for display and for XML, so no character XML 1.0 forbids is written.
    public static func junit(_ results: [CaseResult]) -> Data {
        var groups: [String] = []
        var members: [String: [CaseResult]] = [:]
        for result in results {
            let group = result.verificationCase.group
            if members[group] == nil { groups.append(group) }
            members[group, default: []].append(result)
        }
        let total = SuiteSummary(results)
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml += "<testsuites name=\"rnnkit verify\" tests=\"\(total.cases)\" failures=\"\(total.failed)\" errors=\"\(total.errors)\" time=\"\(time(total.seconds))\">\n"
        for group in groups {
            let cases = members[group] ?? []
            let summary = SuiteSummary(cases)
            xml += "  <testsuite name=\"\(attribute(group))\" tests=\"\(summary.cases)\" failures=\"\(summary.failed)\" errors=\"\(summary.errors)\" skipped=\"0\" time=\"\(time(summary.seconds))\">\n"
            for result in cases {
                let item = result.verificationCase
                xml += "    <testcase classname=\"\(attribute(group))\" name=\"\(attribute(item.name))\" time=\"\(time(result.seconds))\""
                // What was compared and how closely: the failure's text, or a passing case's
                // standard output (so a report shows the margin left under the tolerance).
                var body = "fixture: \(escapedForDisplay(item.fixture, limit: 4000))\n"
                body += "model: \(escapedForDisplay(item.model ?? "", limit: 4000))\n"
                body += "tolerance: atol \(item.atol.map { "\($0)" } ?? "?"), rtol \(item.rtol.map { "\($0)" } ?? "?")\n"
                for tensor in result.tensors { body += (tensor.passed ? "ok       " : "MISMATCH ") + tensor.summary + "\n" }
                switch result.status {
                case .passed:
                    xml += ">\n      <system-out>\(text(body))</system-out>\n    </testcase>\n"
                case .failed:
                    let failing = result.tensors.filter { !$0.passed }
                    let message = failing.map(\.summary).joined(separator: "; ")
                    xml += ">\n      <failure type=\"mismatch\" message=\"\(attribute(message))\">\(text(body))</failure>\n    </testcase>\n"
                case .error:
                    let message = result.error ?? "failed"
                    let body = "fixture: \(escapedForDisplay(item.fixture, limit: 4000))\n\(message)\n"
                    xml += ">\n      <error type=\"error\" message=\"\(attribute(message))\">\(text(body))</error>\n    </testcase>\n"
                }
            }
            xml += "  </testsuite>\n"
        }
        xml += "</testsuites>\n"
        return Data(xml.utf8)
    }

    /// Seconds as `junit-10.xsd`'s `SUREFIRE_TIME` allows: digits, a point, digits.
    static func time(_ seconds: Double) -> String {
        String(format: "%.3f", seconds.isFinite && seconds >= 0 ? seconds : 0)
    }

    /// An attribute value: escaped for display (no controls, no bidirectional overrides),
    /// then for XML; a newline or tab would be normalised away, so none is left.
    static func attribute(_ value: String) -> String {
        xmlEscaped(escapedForDisplay(value, limit: 4000))
    }

    /// Element text: each line escaped for display, then for XML; newlines kept.
    static func text(_ value: String) -> String {
        value.split(separator: "\n", omittingEmptySubsequences: false)
            .map { xmlEscaped(escapedForDisplay(String($0), limit: 4000)) }.joined(separator: "\n")
    }

    /// `&`, `<`, `>`, `"` and `'` as entities, and every character XML 1.0 forbids
    /// (controls but tab, newline and return; U+FFFE, U+FFFF) as U+FFFD.
    static func xmlEscaped(_ value: String) -> String {
        var result = ""
        result.reserveCapacity(value.utf8.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&apos;"
            default:
                let v = scalar.value
                let allowed = v == 0x9 || v == 0xA || v == 0xD || (0x20...0xD7FF).contains(v)
                    || (0xE000...0xFFFD).contains(v) || (0x10000...0x10FFFF).contains(v)
                result.unicodeScalars.append(allowed ? scalar : "\u{FFFD}")
            }
        }
        return result
    }

    // MARK: Writing

    /// Writes `data` to `path` through a temporary file renamed into place, never onto one
    /// of `inputs` (the same file by any name: device and inode compared), never onto a
    /// device, FIFO, folder or symbolic link; an existing regular file is replaced.
    ///
    /// - Throws: `ModelError` naming `path` (and the input it would have replaced).
    public static func write(_ data: Data, to path: String, protecting inputs: [String], folders: [String] = []) throws {
        try checkOutput(path, protecting: inputs, folders: folders)
        try ModelError.boundary(file: path, kind: .unwritableOutput) {
            try AtomicFile.write(to: path, overwrite: true) { temporary in
                try writeNewFile(temporary, contents: data)
            }
        }
    }

    /// Refuses `path` as a report when it is one of `inputs`, an existing file inside one of
    /// `folders` (at any depth, real paths compared by `InputFiles.resolves`), or not a place
    /// a regular file can be written; called before any case runs, and again when writing.
    public static func checkOutput(_ path: String, protecting inputs: [String], folders: [String] = []) throws {
        let target = try OutputFiles.location(ofOutput: path)
        for input in inputs where OutputFiles.location(of: input) == target {
            throw ModelError(file: path, message: "is the input \(escapedForDisplay(input)), the same file; write the report somewhere else")
        }
        if OutputFiles.linkStatus(path) != nil {
            for folder in folders where InputFiles.resolves(path, inside: folder) {
                throw ModelError(file: path, message: "is a file in \(escapedForDisplay(folder)), the folder of a fixture whose check did not say which files it names (it crashed, was stopped or printed no result), so it may be its model or architecture; write the report somewhere else")
            }
        }
        try OutputFiles.checkReplaceable(path, overwrite: true)
    }

    /// What a run's reports must also stay off, from its results: every file a case's
    /// fixture names (`CaseResult.namedFiles`, from its check or, when that crashed, from a
    /// child that read only those names), and the folder of each fixture for which neither
    /// said (a fixture names only files inside its folder, so nothing outside it can be one
    /// of them).
    public static func protected(by results: [CaseResult]) -> (files: [String], folders: [String]) {
        var files: [String] = []
        var folders: [String] = []
        for result in results {
            if let named = result.namedFiles {
                files += named
            } else {
                folders.append(OutputFiles.split(result.verificationCase.fixture).folder)
            }
        }
        return (files, folders)
    }
}

extension TensorResult {
    /// A tensor's result as given (one read back from a report or another process).
    public init(name: String, shape: [Int], expectedShape: [Int], maxAbsoluteError: Double, maxRelativeError: Double,
                mismatches: Int, firstMismatch: [Int]?) {
        self.name = name
        self.shape = shape
        self.expectedShape = expectedShape
        self.maxAbsoluteError = maxAbsoluteError
        self.maxRelativeError = maxRelativeError
        self.mismatches = mismatches
        self.firstMismatch = firstMismatch
    }
}
