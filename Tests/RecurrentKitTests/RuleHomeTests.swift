import Foundation
import XCTest
import TestSupport

/// spec/architecture.md's "Where each rule lives": each grep under "Checking that a rule has
/// one copy" prints lines of the files named after it (`# GateRules.swift …`), which the
/// table names, and of no other file. A second copy of a rule (a gate list, a bias sum, an
/// activation or class name, `keras_version`) anywhere else fails here, with the lines.
final class RuleHomeTests: XCTestCase {
    private let root = fixturesFolder.deletingLastPathComponent()

    /// The table's File column: every path it names, as written (`Sources/RecurrentKit/Keras/KerasLayout.swift`,
    /// or shortened after a comma: `KerasWeightSource.swift`, `Model/LoadedModel.swift`).
    private func tableFiles(_ text: String) -> [String] {
        let section = text.components(separatedBy: "## Where each rule lives").dropFirst().first ?? ""
        var files: [String] = []
        for line in section.split(separator: "\n") where line.hasPrefix("| ") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4 else { continue }
            files += cells[2].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasSuffix(".swift") }
        }
        return files
    }

    /// The command lines of the code block under "Checking that a rule has one copy", each
    /// with the files its comment names.
    private func greps(_ text: String) -> [(command: String, files: [String])] {
        let section = text.components(separatedBy: "## Checking that a rule has one copy").dropFirst().first ?? ""
        let block = section.components(separatedBy: "```").dropFirst().first ?? ""
        return block.split(separator: "\n").map(String.init).filter { $0.hasPrefix("grep ") }.map { line in
            let parts = line.components(separatedBy: "  # ")
            return (parts[0], parts.count > 1 ? parts[1].split(separator: " ").map(String.init) : [])
        }
    }

    private func run(_ command: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.currentDirectoryURL = root
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self)
    }

    func testTheGrepsPrintOnlyFilesTheTableNames() throws {
        let text = try String(contentsOf: root.appendingPathComponent("spec/architecture.md"), encoding: .utf8)
        let files = tableFiles(text)
        let commands = greps(text)
        XCTAssertGreaterThanOrEqual(files.count, 20, "the table's File column was not found")
        XCTAssertGreaterThanOrEqual(commands.count, 6, "the greps were not found")
        for file in files where file.hasPrefix("Sources/") {
            XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent(file).path), "the table names \(file), which does not exist")
        }
        func named(_ path: String, in list: [String]) -> Bool {
            list.contains { path == $0 || path.hasSuffix("/" + $0) }
        }
        for (command, homes) in commands {
            XCTAssertFalse(homes.isEmpty, "\(command) names no file after it")
            for home in homes {
                XCTAssertTrue(files.contains { $0 == home || $0.hasSuffix("/" + home) }, "\(command) names \(home), which the table does not")
            }
            for line in try run(command).split(separator: "\n") {
                let path = String(line.prefix { $0 != ":" })
                XCTAssertTrue(named(path, in: homes), "\(command)\nprints a line of a file other than \(homes.joined(separator: ", ")):\n\(line)")
            }
        }
    }
}
