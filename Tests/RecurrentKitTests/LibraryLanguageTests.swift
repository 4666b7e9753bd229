import Foundation
import XCTest
import TestSupport
import RecurrentKit
// The command line's words for the library's options (`ModelError.Option.flag`).
@testable import rnnkit

/// The library speaks its own language: its messages name the options of its API as typed
/// pieces (`ModelError.Option`), which `ModelError.description` words as the API does and
/// the command line as its flags; no command-line flag is written in the library's sources.
final class LibraryLanguageTests: XCTestCase {
    /// The done-when grep of issue 22, `grep -rnE -- "--[a-z][a-z-]+" Sources/RecurrentKit`:
    /// no line of the library (code, doc comments, DocC articles) names a flag.
    func testTheLibrarySourcesNameNoCommandLineFlag() throws {
        let library = fixturesFolder.deletingLastPathComponent().appendingPathComponent("Sources/RecurrentKit")
        let flag = try NSRegularExpression(pattern: "--[a-z][a-z-]+")
        let files = try XCTUnwrap(FileManager.default.subpathsOfDirectory(atPath: library.path))
        var hits: [String] = []
        var read = 0
        for file in files.sorted() {
            var isFolder: ObjCBool = false
            let path = library.appendingPathComponent(file).path
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue,
                  let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            read += 1
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = String(line)
                if flag.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) != nil {
                    hits.append("\(file):\(number + 1): \(line)")
                }
            }
        }
        XCTAssertGreaterThan(read, 50, "the library's sources were found")
        XCTAssertEqual(hits, [], "the library names command-line flags:\n" + hits.joined(separator: "\n"))
    }

    /// One message, two readers: the library words an option as its parameter, the command
    /// line as its flag, and the rest of the line is the same.
    func testATypedCauseIsTheParameterInTheLibraryAndTheFlagOnTheCommandLine() {
        let error = ModelError(.unsupported, file: "in.pt", layer: "embed",
                               message: "pass \(option: .paddingID, "3") to exchange ids, or \(option: .paddingID, "none")")
        XCTAssertEqual(error.options, [.paddingID])
        XCTAssertEqual(error.description, "in.pt: layer embed: pass paddingID: .id(3) to exchange ids, or paddingID: .none")
        XCTAssertEqual(error.commandLineDescription, "in.pt: layer embed: pass --padding-id 3 to exchange ids, or --padding-id none")
        XCTAssertEqual(error.message, "pass paddingID: .id(3) to exchange ids, or paddingID: .none")
        XCTAssertEqual(error.reason.commandLineText, "pass --padding-id 3 to exchange ids, or --padding-id none")

        let forced = ModelError(file: "out.h5", message: "exists; pass \(option: .force) to replace it")
        XCTAssertEqual(forced.description, "out.h5: exists; pass force: true to replace it")
        XCTAssertEqual(forced.commandLineDescription, "out.h5: exists; pass --force to replace it")
        let target = ModelError(file: nil, message: "\(option: .paddingID) goes with \(option: .target, "keras")")
        XCTAssertEqual(target.description, "paddingID goes with target: .keras")
        XCTAssertEqual(target.commandLineDescription, "--padding-id goes with --to keras")
        XCTAssertEqual(target.options, [.paddingID, .target])

        // Plain text names no option, and setting the message keeps it plain.
        var plain = ModelError(file: "f", message: "missing key")
        XCTAssertEqual(plain.options, [])
        XCTAssertEqual(plain.description, plain.commandLineDescription)
        plain.message = "other"
        XCTAssertEqual(plain.reason, "other")
        // Escaping applies to the worded message, whichever words.
        let hostile = ModelError(file: "f", message: "\(option: .key, "a\u{1b}[2J")")
        XCTAssertFalse(hostile.description.contains("\u{1b}"), hostile.description)
        XCTAssertFalse(hostile.commandLineDescription.contains("\u{1b}"), hostile.commandLineDescription)
    }

    /// Every option the library can name is a flag the command line takes (its help lists it).
    func testEveryOptionIsAFlagOfTheCommandLine() throws {
        var help = ""
        for command in ["inspect", "run", "verify", "convert"] {
            help += try rnnkit(command, "--help").stdout
        }
        for option in ModelError.Option.allCases {
            XCTAssertTrue(help.contains(option.flag + " ") || help.contains(option.flag + "\n") || help.contains(option.flag + "="),
                          "\(option): \(option.flag) is not in the help")
            XCTAssertFalse(option.parameterText(nil).hasPrefix("-"), "\(option)")
        }
    }

    /// The same refusals from the library and from the command line: the library's line with
    /// the parameter, the command line's with the flag, byte for byte otherwise.
    func testRefusalsAreWordedByTheirReader() throws {
        let folder = try temporaryFolder(self)
        let input = fixture("pytorch/lesson_lstm_pack.h5")
        let output = folder.appendingPathComponent("out.keras").path
        XCTAssertThrowsError(try Converter.convert(input, to: .keras3, output: output)) { error in
            let library = "\(error)"
            XCTAssertTrue(library.contains("pass paddingID: .id(ID) (the id"), library)
            XCTAssertFalse(library.contains("--"), library)
            guard let command = try? rnnkit("convert", input, output, "--to", "keras3") else { return XCTFail("rnnkit ran") }
            XCTAssertEqual(command.status, 2)
            let expected = library.replacingOccurrences(of: "paddingID: .id(ID)", with: "--padding-id ID")
                .replacingOccurrences(of: "paddingID: .none", with: "--padding-id none")
            XCTAssertEqual(command.stderr, "rnnkit: error: \(expected)\n")
        }
        // A padding id with a PyTorch target: one rule, the library's, before anything is read.
        XCTAssertThrowsError(try Converter.checkOptions(to: .pytorch, paddingID: .id(0))) { error in
            XCTAssertEqual("\(error)", "paddingID goes with target: .keras or target: .keras3")
            XCTAssertEqual((error as? ModelError)?.options, [.paddingID, .target])
        }
        XCTAssertNoThrow(try Converter.checkOptions(to: .keras, paddingID: .id(0)))
        XCTAssertNoThrow(try Converter.checkOptions(to: .pytorch, paddingID: nil))
        let pytorch = try rnnkit("convert", input, folder.appendingPathComponent("out.pt").path, "--to", "pytorch", "--padding-id", "0")
        XCTAssertEqual(pytorch.stderr, "rnnkit: error: --padding-id goes with --to keras or --to keras3 (see 'rnnkit --help')\n")
        XCTAssertEqual(pytorch.status, 2)
        // A note names the option too.
        let report = try Converter.convert(input, to: .keras3, output: output, paddingID: .id(0))
        XCTAssertTrue(report.notes[0].contains("(paddingID: .id(0))"), report.notes[0])
        XCTAssertTrue(report.noteMessages[0].commandLineText.contains("(--padding-id 0)"), report.notes[0])
        XCTAssertEqual(report.noteMessages[0].options, [.paddingID])
    }

    /// A case run in this process keeps its error typed; the same case in `rnnkit verify`'s
    /// child process is worded with the flag, in its line and its report.
    func testAVerifyCaseErrorIsWordedByItsReader() throws {
        let folder = try temporaryFolder(self)
        let model = folder.appendingPathComponent("two.pt").path
        let fixtureFile = folder.appendingPathComponent("two.fixture.h5").path
        try FileManager.default.copyItem(atPath: fixture("pytorch-files/unit/two_state_dicts.pt"), toPath: model)
        try FileManager.default.copyItem(atPath: fixture("pytorch/lstm_basic.fixture.h5"), toPath: fixtureFile)
        let result = VerificationSuite.run(VerificationCase(fixture: fixtureFile, model: model))
        XCTAssertEqual(result.status, .error)
        XCTAssertEqual(result.modelError?.options, [.key])
        XCTAssertTrue(result.error?.hasSuffix("pass key: NAME to choose one") ?? false, result.error ?? "")
        let manifest = folder.appendingPathComponent("cases.json").path
        let entries: [[String: String]] = [["model": model, "fixture": fixtureFile]]
        try JSONSerialization.data(withJSONObject: entries).write(to: URL(fileURLWithPath: manifest))
        let report = folder.appendingPathComponent("report.json").path
        let command = try rnnkit("verify", "--manifest", manifest, "--json", report)
        XCTAssertEqual(command.status, 2, command.stderr)
        let expected = try XCTUnwrap(result.error).replacingOccurrences(of: "key: NAME", with: "--key NAME")
        XCTAssertEqual(command.stdout, "ERROR    \(fixtureFile): \(expected)\n0 passed, 0 failed, 1 error\n")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any]
        let cases = try XCTUnwrap(object?["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.first?["error"] as? String, expected)
    }
}
