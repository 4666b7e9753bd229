import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The repository's `fixtures/` folder, found from this file's location.
public let fixturesFolder = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("fixtures")

public func fixture(_ relative: String) -> String {
    fixturesFolder.appendingPathComponent(relative).path
}

/// A fresh temporary folder, removed when the test ends.
public func temporaryFolder(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

public func loadJSON(_ relative: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: fixture(relative)))
    return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
}

/// The result of running a command.
public struct CommandResult {
    public var status: Int32
    /// `.exit`, or `.uncaughtSignal` for a child killed by a signal (`status` is then the signal).
    public var reason: Process.TerminationReason
    public var stdout: String
    public var stderr: String
}

/// Runs the built `rnnkit` with arguments, capturing its output and exit status.
public func rnnkit(_ arguments: String...) throws -> CommandResult {
    try rnnkit(arguments)
}

public func rnnkit(_ arguments: [String]) throws -> CommandResult {
    // The test bundle sits in the build products folder, beside the executable.
    let products = Bundle.main.bundleURL
    var executable = products.appendingPathComponent("rnnkit")
    if !FileManager.default.fileExists(atPath: executable.path) {
        executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("rnnkit")
    }
    return try runCommand(executable, arguments)
}

/// Runs `executable` with `arguments`, writes `input` to its standard input (then closes
/// it), and reads its standard output and standard error at the same time: a child that
/// fills one pipe (64 KB) while the parent waits for the end of the other would block both.
/// `configure` sets anything else on the process (environment, folder) before it starts.
public func runCommand(_ executable: URL, _ arguments: [String], input: Data? = nil,
                       configure: (Process) -> Void = { _ in }) throws -> CommandResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let out = Pipe(), err = Pipe(), stdin = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input == nil ? FileHandle.nullDevice : stdin
    configure(process)
    try process.run()
    let group = DispatchGroup()
    let errors = Collected()
    let errorHandle = err.fileHandleForReading
    DispatchQueue.global().async(group: group) { errors.data = errorHandle.readDataToEndOfFile() }
    if let input {
        let handle = stdin.fileHandleForWriting
        group.enter()
        // A thread of its own, with SIGPIPE blocked: a child that exits without reading all
        // its input (python3 missing) makes the write fail instead of killing the tests.
        Thread {
            var pipeSignal = sigset_t()
            sigemptyset(&pipeSignal)
            sigaddset(&pipeSignal, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
            try? handle.write(contentsOf: input)
            try? handle.close()
            group.leave()
        }.start()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, reason: process.terminationReason,
                         stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errors.data, as: UTF8.self))
}

/// Bytes one thread reads for another, handed over through `DispatchGroup.wait`.
private final class Collected: @unchecked Sendable {
    var data = Data()
}

/// Runs `python3 arguments` (python3 from PATH) with `input`. Where python3 is missing, the
/// test is skipped with a message, or fails when `RNNKIT_REQUIRE_PYTHON=1` (`make test` and
/// so CI set it: a run that needs the Python checks must not pass without them).
public func python3(_ arguments: [String], input: Data? = nil, file: StaticString = #filePath,
                    line: UInt = #line) throws -> CommandResult {
    let result = try runCommand(URL(fileURLWithPath: "/usr/bin/env"), ["python3"] + arguments, input: input)
    // env exits 127 when it finds no python3.
    if result.status == 127 && result.stderr.contains("python3") {
        try missing("python3 is not available (\(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))",
                    file: file, line: line)
    }
    return result
}

/// Skips the test because `what` is missing, or fails it when `RNNKIT_REQUIRE_PYTHON=1`.
public func missing(_ what: String, file: StaticString = #filePath, line: UInt = #line) throws -> Never {
    if ProcessInfo.processInfo.environment["RNNKIT_REQUIRE_PYTHON"] == "1" {
        XCTFail("\(what), and RNNKIT_REQUIRE_PYTHON=1 requires it", file: file, line: line)
        throw MissingRequirement(description: what)
    }
    // Printed as well as recorded: a skipped test is easy to miss in a long log.
    FileHandle.standardError.write(Data("warning: skipped: \(what) (RNNKIT_REQUIRE_PYTHON=1 makes this a failure)\n".utf8))
    throw XCTSkip("\(what) (RNNKIT_REQUIRE_PYTHON=1 makes this a failure)", file: file, line: line)
}

/// A requirement of the test environment that is not met.
public struct MissingRequirement: Error, CustomStringConvertible {
    public var description: String
}
