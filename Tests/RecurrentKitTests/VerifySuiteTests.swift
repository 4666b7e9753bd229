import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit
// The child-process runner of `rnnkit verify` (`VerifyChild`) is the command line's own.
@testable import rnnkit

/// `rnnkit verify` over folders, fixtures and manifests: each case in its own process, one
/// line per case and a summary, JUnit and JSON reports, exit 0 / 1 / 2.
final class VerifySuiteTests: XCTestCase {
    private let manager = FileManager.default

    /// The `*.fixture.h5` files in a folder, listed here (not counted by hand).
    private func fixtureCount(_ folder: String) throws -> Int {
        try manager.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".fixture.h5") }.count
    }

    /// The report's cases and counts, parsed back with XMLParser.
    private final class JUnitCounts: NSObject, XMLParserDelegate {
        var testcases = 0, failures = 0, errors = 0, suites = 0
        var suiteTests = 0, suiteFailures = 0, suiteErrors = 0
        var failureMessages: [String] = []
        var names: [String] = []
        /// Each `<system-out>`'s text (a passing case's numbers).
        var standardOutputs: [String] = []
        private var inStandardOutput = false
        func parser(_ parser: XMLParser, didStartElement element: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            switch element {
            case "testsuite":
                suites += 1
                suiteTests += Int(attributes["tests"] ?? "") ?? -1000
                suiteFailures += Int(attributes["failures"] ?? "") ?? -1000
                suiteErrors += Int(attributes["errors"] ?? "") ?? -1000
            case "testcase":
                testcases += 1
                names.append(attributes["name"] ?? "")
            case "failure":
                failures += 1
                failureMessages.append(attributes["message"] ?? "")
                XCTAssertEqual(attributes["type"], "mismatch")
            case "error": errors += 1
            case "system-out":
                inStandardOutput = true
                standardOutputs.append("")
            default: break
            }
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if inStandardOutput { standardOutputs[standardOutputs.count - 1] += string }
        }
        func parser(_ parser: XMLParser, didEndElement element: String, namespaceURI: String?, qualifiedName: String?) {
            if element == "system-out" { inStandardOutput = false }
        }
    }

    private func parseJUnit(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> JUnitCounts {
        let parser = try XCTUnwrap(XMLParser(contentsOf: URL(fileURLWithPath: path)), file: file, line: line)
        let counts = JUnitCounts()
        parser.delegate = counts
        XCTAssertTrue(parser.parse(), "\(path): \(String(describing: parser.parserError))", file: file, line: line)
        XCTAssertEqual(counts.suiteTests, counts.testcases, "testsuite tests= counts", file: file, line: line)
        XCTAssertEqual(counts.suiteFailures, counts.failures, "testsuite failures= counts", file: file, line: line)
        XCTAssertEqual(counts.suiteErrors, counts.errors, "testsuite errors= counts", file: file, line: line)
        return counts
    }

    private func loadJSONReport(_ path: String) throws -> (summary: [String: Any], cases: [[String: Any]]) {
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        return (try XCTUnwrap(object["summary"] as? [String: Any]), try XCTUnwrap(object["cases"] as? [[String: Any]]))
    }

    /// A copy of `fixtures/pytorch`'s `names` (model and fixture each) in a new folder.
    private func copyOfPyTorchCases(_ names: [String]) throws -> URL {
        let folder = try temporaryFolder(self)
        for name in names {
            for file in ["\(name).h5", "\(name).fixture.h5"] {
                try manager.copyItem(atPath: fixture("pytorch/\(file)"), toPath: folder.appendingPathComponent(file).path)
            }
        }
        return folder
    }

    /// Rewrites `folder/NAME.fixture.h5` with `/expected/output[index]` moved by `delta`.
    private func perturb(_ name: String, in folder: URL, index: Int, by delta: Float, keepModel: Bool = true) throws {
        let path = folder.appendingPathComponent("\(name).fixture.h5").path
        let original = try Fixture(contentsOf: path)
        try manager.removeItem(atPath: path)
        let root = try HDF5File.create(path).root
        guard case let .features(x) = original.input else { return XCTFail("float inputs expected") }
        try root.write("inputs", floats: x.values, shape: x.shape)
        if let lengths = original.lengths { try root.write("lengths", integers: lengths.map(Int64.init), shape: [lengths.count]) }
        if let h0 = original.h0 { try root.write("h0", floats: h0.values, shape: h0.shape) }
        if let c0 = original.c0 { try root.write("c0", floats: c0.values, shape: c0.shape) }
        for (tensorName, tensor) in original.expected {
            var values = tensor.values
            if tensorName == "output" { values[index] += delta }
            try root.write("expected/\(tensorName)", floats: values, shape: tensor.shape)
        }
        if keepModel { try root.setAttribute("model", .string(try XCTUnwrap(original.model))) }
    }

    // MARK: Folders

    func testEveryCommittedFolderPasses() throws {
        for folder in ["pytorch", "keras", "pytorch-files"] {
            let path = fixture(folder)
            let expected = try fixtureCount(path)
            XCTAssertGreaterThan(expected, 5, folder)
            let result = try rnnkit("verify", path, "--jobs", "2")
            XCTAssertEqual(result.status, 0, "\(folder): \(result.stdout) \(result.stderr)")
            let lines = result.stdout.split(separator: "\n")
            XCTAssertEqual(lines.count, expected + 1, result.stdout)
            XCTAssertEqual(lines.filter { $0.hasPrefix("ok       ") }.count, expected, result.stdout)
            XCTAssertEqual(lines.last.map(String.init), "\(expected) passed, 0 failed, 0 errors")
            // In input order: sorted by fixture name, whatever order the jobs finished in.
            let fixtures = lines.dropLast().map { $0.dropFirst(9).split(separator: " ").first.map(String.init) ?? "" }
            XCTAssertEqual(fixtures, fixtures.sorted(), folder)
        }
    }

    /// The checkpoint fixture names its entry (`key`), so the folder passes without --key.
    func testCheckpointFixtureNamesItsKey() throws {
        let read = try Fixture(contentsOf: fixture("pytorch-files/lstm_checkpoint.fixture.h5"))
        XCTAssertEqual(read.key, PyTorchFileFixtureTests.checkpointKey)
        let result = VerificationSuite.run(VerificationCase(name: "c", group: "g", fixture: fixture("pytorch-files/lstm_checkpoint.fixture.h5")))
        XCTAssertEqual(result.status, .passed, result.error ?? "")
        XCTAssertEqual(result.verificationCase.key, "model_state_dict")
    }

    // MARK: One mismatch

    func testOnePerturbedFixtureIsTheOneFailureInTextJUnitAndJSON() throws {
        let names = ["gru_basic", "lstm_basic", "rnn_tanh"]
        let folder = try copyOfPyTorchCases(names)
        try perturb("lstm_basic", in: folder, index: 4, by: 0.25)
        let reports = try temporaryFolder(self)
        let junit = reports.appendingPathComponent("report.xml").path
        let json = reports.appendingPathComponent("report.json").path
        let result = try rnnkit("verify", folder.path, "--junit", junit, "--json", json, "--jobs", "3")
        XCTAssertEqual(result.status, 1, result.stdout + result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4, result.stdout)
        let mismatch = try XCTUnwrap(lines.first { $0.hasPrefix("MISMATCH ") })
        XCTAssertTrue(mismatch.contains("lstm_basic.fixture.h5 (lstm_basic.h5): output [3, 7, 6]: max abs error 0.25"), mismatch)
        XCTAssertTrue(mismatch.contains("1 outside tolerance, first at [0, 0, 4]"), mismatch)
        XCTAssertEqual(lines.filter { $0.hasPrefix("ok       ") }.count, 2, result.stdout)
        XCTAssertEqual(lines.last, "2 passed, 1 failed, 0 errors")

        let counts = try parseJUnit(junit)
        XCTAssertEqual(counts.testcases, 3)
        XCTAssertEqual(counts.failures, 1)
        XCTAssertEqual(counts.errors, 0)
        XCTAssertEqual(counts.suites, 1)
        XCTAssertEqual(Set(counts.names), Set(names))
        XCTAssertTrue(counts.failureMessages.first?.contains("output [3, 7, 6]: max abs error 0.25") ?? false, "\(counts.failureMessages)")
        XCTAssertTrue(counts.failureMessages.first?.contains("first at [0, 0, 4]") ?? false, "\(counts.failureMessages)")
        // The two passing cases give their numbers in <system-out>, the failing one in <failure>.
        XCTAssertEqual(counts.standardOutputs.count, 2, "\(counts.standardOutputs)")
        for output in counts.standardOutputs {
            XCTAssertTrue(output.contains("tolerance: atol 1e-05, rtol 0.0001") && output.contains("ok       output ["), output)
            XCTAssertTrue(output.contains(": max abs error "), output)
        }

        let (summary, cases) = try loadJSONReport(json)
        XCTAssertEqual(summary["passed"] as? Int, 2)
        XCTAssertEqual(summary["failed"] as? Int, 1)
        XCTAssertEqual(summary["errors"] as? Int, 0)
        XCTAssertEqual(cases.map { $0["name"] as? String }, names)
        let failed = try XCTUnwrap(cases.first { $0["status"] as? String == "failed" })
        XCTAssertEqual(failed["name"] as? String, "lstm_basic")
        let output = try XCTUnwrap((failed["tensors"] as? [[String: Any]])?.first { $0["name"] as? String == "output" })
        XCTAssertEqual(output["mismatches"] as? Int, 1)
        XCTAssertEqual(output["first_mismatch"] as? [Int], [0, 0, 4])
        XCTAssertEqual(output["shape"] as? [Int], [3, 7, 6])
        XCTAssertEqual(try XCTUnwrap(output["max_abs_error"] as? Double), 0.25, accuracy: 1e-3)
        XCTAssertEqual(failed["atol"] as? Double, 1e-5)

        // A tolerance from the command line lets it pass; a manifest entry's wins over it.
        XCTAssertEqual(try rnnkit("verify", folder.path, "--atol", "0.3").status, 0)
        let manifest = folder.appendingPathComponent("cases.json").path
        try Data(#"[{"model": "lstm_basic.h5", "fixture": "lstm_basic.fixture.h5", "atol": 1e-5}]"#.utf8)
            .write(to: URL(fileURLWithPath: manifest))
        XCTAssertEqual(try rnnkit("verify", "--manifest", manifest, "--atol", "0.3").status, 1)
    }

    // MARK: Cases that cannot run

    func testMissingModelAndHostileFilesAreErrorsAndTheOthersStillRun() throws {
        let folder = try copyOfPyTorchCases(["gru_basic", "lstm_basic"])
        try manager.removeItem(at: folder.appendingPathComponent("gru_basic.h5"))
        // A model file that makes libhdf5 fault: its child process ends, reported as one line.
        let faulting = fixture("fuzz/library-faults/FuzzHDF5Model/h5hg_read_fault_1.h5")
        let manifest = folder.appendingPathComponent("cases.yaml").path
        try Data("""
        cases:
          - model: \(faulting)
            fixture: lstm_basic.fixture.h5
            name: faulting
        """.utf8).write(to: URL(fileURLWithPath: manifest))
        let json = folder.appendingPathComponent("report.json").path
        let result = try rnnkit("verify", folder.path, fixture("hostile/model_absolute.fixture.h5"), "--manifest", manifest,
                                "--json", json, "--jobs", "2")
        XCTAssertEqual(result.status, 2, result.stdout + result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 5, result.stdout)
        // Manifest cases first, then the paths in order.
        XCTAssertTrue(lines[0].hasPrefix("ERROR    "), lines[0])
        XCTAssertTrue(lines[0].contains("damaged file"), lines[0])
        XCTAssertTrue(lines[1].hasPrefix("ERROR    ") && lines[1].contains("gru_basic.h5: no such file"), lines[1])
        XCTAssertTrue(lines[2].hasPrefix("ok       ") && lines[2].contains("lstm_basic.fixture.h5"), lines[2])
        XCTAssertTrue(lines[3].hasPrefix("ERROR    ") && lines[3].contains("'/etc/passwd', an absolute path"), lines[3])
        XCTAssertEqual(lines[4], "1 passed, 0 failed, 3 errors")
        XCTAssertFalse(result.stdout.contains("root:"), "nothing of /etc/passwd")
        let (summary, cases) = try loadJSONReport(json)
        XCTAssertEqual(summary["errors"] as? Int, 3)
        XCTAssertEqual(cases.filter { $0["status"] as? String == "error" }.compactMap { $0["error"] as? String }.count, 3)
    }

    /// The child process runner on its own: a crash, a hang and an exit 2 each become an
    /// error, and the other cases still run.
    func testChildProcessesThatCrashHangOrFailAreErrors() throws {
        let cases = ["crash", "hang", "fail", "garbage", "quiet-hang"].map {
            VerificationCase(name: $0, group: "g", fixture: "\($0).fixture.h5")
        }
        let script = """
        case "$2" in
          crash.fixture.h5) kill -SEGV $$ ;;
          hang.fixture.h5) exec sleep 30 ;;
          quiet-hang.fixture.h5) exec sleep 30 >&- 2>&- ;;
          fail.fixture.h5) echo "rnnkit: error: fail.fixture.h5: refused for a reason" >&2; exit 2 ;;
          *) echo "not json" ;;
        esac
        """
        let start = Date()
        let results = VerifyChild.runIsolated(cases, jobs: 4, executable: "/bin/sh", arguments: ["-c", script, "sh"],
                                                    caseSeconds: 2)
        XCTAssertLessThan(Date().timeIntervalSince(start), 20)
        XCTAssertEqual(results.map(\.status), [.error, .error, .error, .error, .error])
        XCTAssertTrue(results[0].error?.contains("crashed (signal 11)") ?? false, results[0].error ?? "")
        XCTAssertTrue(results[1].error?.contains("did not finish within 2 s") ?? false, results[1].error ?? "")
        XCTAssertEqual(results[2].error, "fail.fixture.h5: refused for a reason")
        XCTAssertEqual(results[2].line, "ERROR    fail.fixture.h5: refused for a reason")
        XCTAssertTrue(results[3].error?.contains("printed no result") ?? false, results[3].error ?? "")
        // Its output closed, it still runs: the deadline stops it all the same.
        XCTAssertTrue(results[4].error?.contains("did not finish within 2 s") ?? false, results[4].error ?? "")
    }

    func testNoCasesAndBatchOnlyOptionsAreRefused() throws {
        let empty = try temporaryFolder(self)
        for arguments in [["verify", empty.path],
                          ["verify", fixture("pytorch"), "--key", "model_state_dict"],
                          ["verify", fixture("pytorch"), "--jobs", "0"],
                          ["verify", fixture("pytorch/lstm_basic.h5")]] {
            let result = try rnnkit(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stdout)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.hasPrefix("rnnkit: error: "), result.stderr)
        }
    }

    // MARK: Manifests

    func testManifestsInJSONAndYAML() throws {
        let folder = try copyOfPyTorchCases(["gru_basic", "lstm_basic"])
        let json = folder.appendingPathComponent("m.json").path
        try Data(#"{"cases": [{"model": "gru_basic.h5", "fixture": "gru_basic.fixture.h5", "name": "first"}, {"model": "lstm_basic.h5", "fixture": "lstm_basic.fixture.h5", "rtol": 0.001}]}"#.utf8)
            .write(to: URL(fileURLWithPath: json))
        let yaml = folder.appendingPathComponent("m.yaml").path
        try Data("""
        # the same two, in YAML
        - model: gru_basic.h5
          fixture: gru_basic.fixture.h5
          name: first
        - {model: lstm_basic.h5, fixture: 'lstm_basic.fixture.h5', rtol: 1e-3}
        """.utf8).write(to: URL(fileURLWithPath: yaml))
        for manifest in [json, yaml] {
            let cases = try VerificationSuite.cases(manifest: manifest)
            XCTAssertEqual(cases.map(\.name), ["first", "lstm_basic"], manifest)
            XCTAssertEqual(cases.map(\.rtol), [nil, 1e-3], manifest)
            XCTAssertEqual(cases[1].model, folder.appendingPathComponent("lstm_basic.h5").path, manifest)
            let result = try rnnkit("verify", "--manifest", manifest)
            XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
            XCTAssertEqual(result.stdout.split(separator: "\n").last, "2 passed, 0 failed, 0 errors")
        }
    }

    func testManifestRefusals() throws {
        let folder = try temporaryFolder(self)
        var bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            bomb += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        bomb += "cases: []\n"
        let cases: [(String, String, [String])] = [
            ("bomb.yaml", bomb, ["line 1 sets the YAML anchor &a0", "no YAML anchors or aliases"]),
            ("key.yaml", "a: &a [x]\n*a : 1\n", ["line 1 sets the YAML anchor &a"]),
            ("undefined.yaml", "- {model: m.h5, fixture: *f}\n", ["line 1 uses the YAML alias *f"]),
            ("unknown.yaml", "- model: m.h5\n  fixture: f.fixture.h5\n  tolerance: 1\n", ["entry 0", "unknown field 'tolerance'"]),
            ("unknown.json", #"[{"model": "m.h5", "fixture": "f.fixture.h5"}, {"model": "m.h5", "fixture": "f.fixture.h5", "atoll": 1}]"#,
             ["entry 1", "unknown field 'atoll'"]),
            ("nofixture.json", #"[{"model": "m.h5"}]"#, ["entry 0", "has no 'fixture'"]),
            ("negative.yaml", "- {model: m.h5, fixture: f.fixture.h5, atol: -1}\n", ["entry 0", "'atol'"]),
            ("broken.json", #"[{"model": "#, ["not valid JSON"]),
            ("scalar.yaml", "just text\n", ["a manifest is a list"]),
        ]
        for (name, text, mentions) in cases {
            let path = folder.appendingPathComponent(name).path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try VerificationSuite.cases(manifest: path), name) { error in
                for mention in mentions { XCTAssertTrue("\(error)".contains(mention), "\(name): \(error)") }
            }
            let result = try rnnkit("verify", "--manifest", path)
            XCTAssertEqual(result.status, 2, name)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "\(name): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(mentions[0]), "\(name): \(result.stderr)")
        }
        // Over the byte bound.
        let big = folder.appendingPathComponent("big.yaml").path
        try Data(repeating: UInt8(ascii: " "), count: Limits.manifestBytes + 1).write(to: URL(fileURLWithPath: big))
        XCTAssertThrowsError(try VerificationSuite.cases(manifest: big)) { XCTAssertTrue("\($0)".contains("Limits.manifestBytes"), "\($0)") }
    }

    /// Aliases used as keys where no `:` follows them — a flow mapping's lone key `{ *a }`,
    /// an explicit key `{? *a}`, a key in block style `? *a` — over eight nested anchors of
    /// ten aliases each (10^8 leaves, which Yams hashed in full when comparing keys): each
    /// refused, without expanding anything, from libyaml's events.
    func testAliasesAreRefusedWhereverTheyStand() throws {
        var anchors = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...7 {
            anchors += "l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        let forms = ["cases: [ { *l7 } ]\n", "cases: [ {? *l7} ]\n", "cases:\n  - ? *l7\n", "cases: [ {*l7 : x} ]\n",
                     "cases: [ [*l7]: x ]\n", "cases: *l7\n"]
        let folder = try temporaryFolder(self)
        for (index, form) in forms.enumerated() {
            let path = folder.appendingPathComponent("alias\(index).yaml").path
            try Data((anchors + form).utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertLessThan(try Data(contentsOf: URL(fileURLWithPath: path)).count, 1024)
            let start = Date()
            XCTAssertThrowsError(try VerificationSuite.cases(manifest: path), form) { error in
                XCTAssertTrue("\(error)".contains("line 1 sets the YAML anchor &l0"), "\(error)")
            }
            // The refusal reads the text once: nothing near the seconds an expansion takes.
            XCTAssertLessThan(Date().timeIntervalSince(start), 1, form)
            // The aliases alone, their anchors defined nowhere, are refused as aliases.
            try Data(form.utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try VerificationSuite.cases(manifest: path), form) { error in
                XCTAssertTrue("\(error)".contains("uses the YAML alias *l7"), "\(error)")
            }
        }
        // `&` and `*` inside scalars are text, not anchors or aliases.
        let plain = folder.appendingPathComponent("plain.yaml").path
        try Data("- {model: 'a&b*c.h5', fixture: \"*f.fixture.h5\", name: x&y}\n".utf8).write(to: URL(fileURLWithPath: plain))
        let cases = try VerificationSuite.cases(manifest: plain)
        XCTAssertEqual(cases.map(\.name), ["x&y"])
        XCTAssertEqual(cases.first?.model, folder.appendingPathComponent("a&b*c.h5").path)
    }

    // MARK: Pairing by name

    func testFixturesPairWithTheirModelByName() throws {
        let folder = try temporaryFolder(self)
        for name in ["a.fixture.h5", "a.h5", "b.weights.fixture.h5", "b.pt", "c.fixture.h5", "c.keras", "c.pt",
                     "d.fixture.h5", "other.h5"] {
            manager.createFile(atPath: folder.appendingPathComponent(name).path, contents: Data())
        }
        let cases = try VerificationSuite.cases(in: [folder.path])
        XCTAssertEqual(cases.map(\.name), ["a", "b.weights", "c", "d"])
        XCTAssertEqual(cases[0].modelByName, folder.appendingPathComponent("a.h5").path)
        XCTAssertEqual(cases[1].modelByName, folder.appendingPathComponent("b.pt").path)
        XCTAssertNil(cases[2].modelByName)
        XCTAssertTrue(cases[2].modelByNameProblem?.contains("c.keras, c.pt") ?? false, cases[2].modelByNameProblem ?? "")
        XCTAssertNil(cases[3].modelByName)
        XCTAssertTrue(cases[3].modelByNameProblem?.contains("no model file") ?? false, cases[3].modelByNameProblem ?? "")
    }

    /// A fixture without a `model` attribute pairs by name in a real run.
    func testAFixtureWithoutModelAttributeRunsWithItsNamesake() throws {
        let folder = try copyOfPyTorchCases(["lstm_basic"])
        let path = folder.appendingPathComponent("renamed.fixture.h5").path
        try manager.moveItem(atPath: folder.appendingPathComponent("lstm_basic.fixture.h5").path, toPath: path)
        try manager.moveItem(atPath: folder.appendingPathComponent("lstm_basic.h5").path,
                             toPath: folder.appendingPathComponent("renamed.h5").path)
        // The attribute points to the old name: the fixture is written again without it.
        try perturb("renamed", in: folder, index: 0, by: 0, keepModel: false)
        XCTAssertNil(try Fixture(contentsOf: path).model)
        let result = try rnnkit("verify", path)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.hasPrefix("ok       \(path) (renamed.h5)"), result.stdout)
    }

    // MARK: Reports

    /// A folder's entries are read only when they stay inside it: a fixture that is a
    /// symbolic link out of the folder is that case's error without being opened, and a model
    /// beside a fixture by name is not one that leads out of the folder.
    func testFolderEntriesThatLeaveTheFolderAreRefused() throws {
        let folder = try copyOfPyTorchCases(["lstm_basic", "gru_basic"])
        let outside = try temporaryFolder(self)
        // Outside the folder: a file that is not a fixture, and a real model.
        let secret = outside.appendingPathComponent("secret.txt").path
        try Data("not for rnnkit\n".utf8).write(to: URL(fileURLWithPath: secret))
        try manager.createSymbolicLink(atPath: folder.appendingPathComponent("leak.fixture.h5").path,
                                       withDestinationPath: secret)
        // gru_basic's fixture without its model attribute, its model moved out and linked back.
        try perturb("gru_basic", in: folder, index: 0, by: 0, keepModel: false)
        let movedModel = outside.appendingPathComponent("gru_basic.h5").path
        try manager.moveItem(atPath: folder.appendingPathComponent("gru_basic.h5").path, toPath: movedModel)
        try manager.createSymbolicLink(atPath: folder.appendingPathComponent("gru_basic.h5").path,
                                       withDestinationPath: movedModel)
        let result = try rnnkit("verify", folder.path)
        XCTAssertEqual(result.status, 2, result.stdout + result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4, result.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("ERROR    \(folder.path)/gru_basic.fixture.h5: names no model, and no model file is beside it by name") }, result.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("ERROR    \(folder.path)/leak.fixture.h5: does not resolve to a file inside its folder") }, result.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("ok       \(folder.path)/lstm_basic.fixture.h5") }, result.stdout)
        XCTAssertEqual(lines.last, "1 passed, 0 failed, 2 errors")
        // Named by the user, the same link is read (and is no HDF5 file).
        let named = try rnnkit("verify", folder.appendingPathComponent("leak.fixture.h5").path)
        XCTAssertEqual(named.status, 2)
        XCTAssertTrue(named.stdout.contains("not a readable HDF5 file"), named.stdout)
    }

    func testJUnitEscapesHostileNames() throws {
        let name = "bad\u{1b}[31m<&\"'\u{202e}\u{0}name"
        let item = VerificationCase(name: name, group: "g\u{7}<", fixture: name + ".fixture.h5")
        let results = [CaseResult.failure(item, "broke: \u{1b}]0;x\u{7} & <tag>"),
                       CaseResult(verificationCase: item, status: .passed)]
        let data = VerificationReports.junit(results)
        let text = String(decoding: data, as: UTF8.self)
        for forbidden in ["\u{1b}", "\u{0}", "\u{7}", "\u{202e}", "<tag>"] { XCTAssertFalse(text.contains(forbidden), forbidden) }
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("r.xml").path
        try VerificationReports.write(data, to: path, protecting: [])
        let counts = try parseJUnit(path)
        XCTAssertEqual(counts.testcases, 2)
        XCTAssertEqual(counts.errors, 1)
        XCTAssertTrue(counts.names.first?.contains("\\x1b[31m<&\"'") ?? false, "\(counts.names)")
        // JSON: NaN is null.
        var nan = CaseResult(verificationCase: item, status: .failed)
        nan.tensors = [TensorResult(name: "output", shape: [1], expectedShape: [1], maxAbsoluteError: .nan,
                                    maxRelativeError: .nan, mismatches: 1, firstMismatch: [0])]
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: VerificationReports.json([nan])) as? [String: Any])
        let tensor = try XCTUnwrap(((object["cases"] as? [[String: Any]])?.first?["tensors"] as? [[String: Any]])?.first)
        XCTAssertTrue(tensor["max_abs_error"] is NSNull, "\(tensor)")
    }

    func testReportIsNeverWrittenOntoAnInput() throws {
        let folder = try copyOfPyTorchCases(["lstm_basic"])
        let fixturePath = folder.appendingPathComponent("lstm_basic.fixture.h5").path
        let before = try Data(contentsOf: URL(fileURLWithPath: fixturePath))
        let link = folder.appendingPathComponent("link.xml").path
        try manager.createSymbolicLink(atPath: link, withDestinationPath: fixturePath)
        for arguments in [["verify", folder.path, "--junit", fixturePath],
                          ["verify", folder.path, "--json", folder.appendingPathComponent("lstm_basic.h5").path],
                          ["verify", folder.appendingPathComponent("lstm_basic.h5").path, fixturePath, "--json", link]] {
            let result = try rnnkit(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stdout)")
            XCTAssertTrue(result.stderr.contains("the same file") || result.stderr.contains("symbolic link"), result.stderr)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: fixturePath)), before)
    }

    /// A copy of pytorch/lstm_basic.fixture.h5 at `path` with string attributes set.
    private func fixtureWithAttributes(_ attributes: [String: String], at path: String) throws -> String {
        try manager.copyItem(atPath: fixture("pytorch/lstm_basic.fixture.h5"), toPath: path)
        let file = try HDF5File.openForUpdate(path)
        for (name, value) in attributes { try file.root.setAttribute(name, .string(value)) }
        return path
    }

    /// Files a fixture names are inputs whether or not they are used: its `architecture`
    /// attribute in the two-file form (the protected list is made after the fixture is read),
    /// and a `model` attribute a manifest overrides, from what the case's child says.
    func testReportIsNeverWrittenOntoAFileAFixtureNames() throws {
        let folder = try copyOfPyTorchCases(["lstm_basic"])
        let model = folder.appendingPathComponent("lstm_basic.h5").path
        let fixturePath = folder.appendingPathComponent("lstm_basic.fixture.h5").path
        let architecture = folder.appendingPathComponent("m.json").path
        let unused = folder.appendingPathComponent("other.pt").path
        let victim = Data("{\"victim\": true}".utf8)
        for path in [architecture, unused] { try victim.write(to: URL(fileURLWithPath: path)) }
        try manager.removeItem(atPath: fixturePath)
        _ = try fixtureWithAttributes(["architecture": "m.json", "model": "other.pt"], at: fixturePath)
        let pair = try rnnkit("verify", model, fixturePath, "--json", architecture)
        XCTAssertEqual(pair.status, 2, pair.stdout)
        XCTAssertEqual(pair.stderr, "rnnkit: error: \(architecture): is the input \(architecture), the same file; write the report somewhere else\n")
        // Over a manifest whose model wins over the fixture's `model` attribute.
        try manager.removeItem(atPath: fixturePath)
        _ = try fixtureWithAttributes(["model": "other.pt"], at: fixturePath)
        let manifest = folder.appendingPathComponent("cases.yaml").path
        try Data("- {model: lstm_basic.h5, fixture: lstm_basic.fixture.h5}\n".utf8).write(to: URL(fileURLWithPath: manifest))
        for report in [unused] {
            let result = try rnnkit("verify", "--manifest", manifest, "--junit", report)
            XCTAssertEqual(result.status, 2, result.stdout + result.stderr)
            XCTAssertTrue(result.stdout.hasSuffix("1 passed, 0 failed, 0 errors\n"), result.stdout)
            XCTAssertTrue(result.stderr.contains("the same file"), result.stderr)
        }
        for path in [architecture, unused] { XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), victim) }
        // A report beside them that names nothing is written.
        let report = folder.appendingPathComponent("r.xml").path
        XCTAssertEqual(try rnnkit("verify", "--manifest", manifest, "--junit", report).status, 0)
        XCTAssertTrue(manager.fileExists(atPath: report))
    }

    /// A case whose child did not say what its fixture names (it crashed, was stopped or
    /// printed no result) may have a fixture naming any file in its folder: a report never
    /// replaces an existing file there. Its child's own answer is taken for the others.
    func testReportStaysOffTheFolderOfAFixtureWhoseCheckDidNotSay() throws {
        let root = try temporaryFolder(self)
        let crashed = root.appendingPathComponent("crashed"), fine = root.appendingPathComponent("fine")
        for folder in [crashed, fine] {
            try manager.createDirectory(at: folder.appendingPathComponent("sub"), withIntermediateDirectories: true)
            try Data("model".utf8).write(to: folder.appendingPathComponent("sub/victim.pt"))
        }
        let cases = [VerificationCase(fixture: crashed.path + "/a.fixture.h5"), VerificationCase(fixture: fine.path + "/b.fixture.h5"),
                     VerificationCase(fixture: fine.path + "/c.fixture.h5")]
        // `a` crashes whatever it is asked (its names too); `b` answers; `c` crashes on its
        // check and names its files when asked for only that (`--case-names`).
        let script = """
        case "$1 $2" in
          *a.fixture.h5) kill -SEGV $$ ;;
          "--case-names "*c.fixture.h5) printf '%s\\n' '["c-named.pt"]' ;;
          *c.fixture.h5) kill -SEGV $$ ;;
          *) printf '%s\\n' '{"status": "passed", "tensors": [], "named_files": ["named.pt"]}' ;;
        esac
        """
        let results = VerifyChild.runIsolated(cases, jobs: 2, executable: "/bin/sh", arguments: ["-c", script, "sh"],
                                                    caseSeconds: 10)
        XCTAssertEqual(results.map(\.status), [.error, .passed, .error])
        XCTAssertNil(results[0].namedFiles)
        XCTAssertEqual(results[1].namedFiles, ["named.pt"])
        XCTAssertEqual(results[2].namedFiles, ["c-named.pt"])
        let protected = VerificationReports.protected(by: results)
        XCTAssertEqual(protected.files, ["named.pt", "c-named.pt"])
        XCTAssertEqual(protected.folders, [crashed.path])
        XCTAssertThrowsError(try VerificationReports.checkOutput(crashed.path + "/sub/victim.pt", protecting: [],
                                                                 folders: protected.folders)) { error in
            XCTAssertTrue("\(error)".contains("the folder of a fixture whose check did not say"), "\(error)")
        }
        // A new file there, and any file elsewhere, may be written.
        XCTAssertNoThrow(try VerificationReports.checkOutput(crashed.path + "/new.xml", protecting: [], folders: protected.folders))
        XCTAssertNoThrow(try VerificationReports.checkOutput(fine.path + "/sub/victim.pt", protecting: [], folders: protected.folders))

        // The command line: cases stopped by --timeout did not say either.
        let folder = try copyOfPyTorchCases(["lstm_basic", "gru_basic"])
        let victim = folder.appendingPathComponent("victim.pt").path
        try Data(contentsOf: URL(fileURLWithPath: fixture("pytorch/lstm_basic.h5"))).write(to: URL(fileURLWithPath: victim))
        let before = try Data(contentsOf: URL(fileURLWithPath: victim))
        let result = try rnnkit("verify", folder.path, "--timeout", "0.001", "--junit", victim)
        XCTAssertEqual(result.status, 2, result.stdout)
        XCTAssertTrue(result.stderr.contains("the folder of a fixture whose check did not say"), result.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: victim)), before)
    }

    /// `--timeout` bounds the whole run: the case running then is stopped, the ones not
    /// started are errors that say so, and the run ends soon after.
    func testTheWholeRunIsBoundedByItsTimeout() throws {
        let cases = ["one", "two", "three", "four"].map { VerificationCase(name: $0, group: "g", fixture: "\($0).fixture.h5") }
        let start = Date()
        let results = VerifyChild.runIsolated(cases, jobs: 1, executable: "/bin/sh", arguments: ["-c", "exec sleep 30", "sh"],
                                                    caseSeconds: 20, totalSeconds: 1)
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
        XCTAssertEqual(results.map(\.status), [.error, .error, .error, .error])
        XCTAssertEqual(results[0].error, "did not finish within the run's time limit of 1 s; stopped")
        for result in results.dropFirst() {
            XCTAssertTrue(result.error?.hasSuffix("not run: the run's time limit of 1 s had passed") ?? false, result.error ?? "")
        }
        for arguments in [["verify", fixture("pytorch"), "--timeout", "0"], ["verify", fixture("pytorch"), "--timeout", "nan"],
                          ["verify", fixture("pytorch/lstm_basic.h5"), fixture("pytorch/lstm_basic.fixture.h5"), "--timeout", "5"]] {
            let result = try rnnkit(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments)")
            XCTAssertTrue(result.stderr.contains("--timeout"), result.stderr)
        }
    }

    // MARK: The two-file form

    func testTwoFileFormIsUnchangedAndWritesReports() throws {
        let model = fixture("pytorch/lstm_basic.h5"), fixtureFile = fixture("pytorch/lstm_basic.fixture.h5")
        let result = try rnnkit("verify", model, fixtureFile)
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "tolerance: atol 1e-05, rtol 0.0001")
        XCTAssertEqual(lines.count, 4, result.stdout)
        XCTAssertTrue(lines[1].hasPrefix("ok       c_n [1, 3, 6]: max abs error "), lines[1])
        XCTAssertTrue(lines[3].hasPrefix("ok       output [3, 7, 6]: max abs error "), lines[3])
        XCTAssertFalse(result.stdout.contains("passed"), "no summary line in the two-file form")

        let folder = try temporaryFolder(self)
        let junit = folder.appendingPathComponent("r.xml").path, json = folder.appendingPathComponent("r.json").path
        let reported = try rnnkit("verify", model, fixtureFile, "--junit", junit, "--json", json)
        XCTAssertEqual(reported.stdout, result.stdout)
        let counts = try parseJUnit(junit)
        XCTAssertEqual(counts.testcases, 1)
        XCTAssertEqual(counts.failures + counts.errors, 0)
        let (summary, cases) = try loadJSONReport(json)
        XCTAssertEqual(summary["passed"] as? Int, 1)
        XCTAssertEqual(cases.first?["model"] as? String, model)
        XCTAssertEqual(cases.first?["name"] as? String, "lstm_basic")
        XCTAssertEqual(cases.first?["group"] as? String, fixture("pytorch"))
        XCTAssertEqual(cases.first?["status"] as? String, "passed")
        XCTAssertEqual((cases.first?["tensors"] as? [Any])?.count, 3)
    }
}
