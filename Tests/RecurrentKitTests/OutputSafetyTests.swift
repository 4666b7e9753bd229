import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit
#if canImport(Glibc)
import Glibc
#endif

/// Outputs are files, not names: `run --output`, `convert`'s OUTPUT and `--emit-python` are
/// never an input by any name, never a device, FIFO or folder, never an existing file
/// without `--force`; the converted file and the module land together or not at all; and
/// nothing temporary survives an error or an interrupt.
final class OutputSafetyTests: XCTestCase {
    private let manager = FileManager.default

    /// A folder holding copies of a model and a fixture (`/inputs` for `run`).
    private func workspace() throws -> (folder: URL, model: String, inputs: String) {
        let folder = try temporaryFolder(self)
        let model = folder.appendingPathComponent("model.h5").path
        let inputs = folder.appendingPathComponent("in.h5").path
        try manager.copyItem(atPath: fixture("pytorch/lstm_basic.h5"), toPath: model)
        try manager.copyItem(atPath: fixture("pytorch/lstm_basic.fixture.h5"), toPath: inputs)
        return (folder, model, inputs)
    }

    private func bytes(_ path: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path))
    }

    /// Names in `folder` that a writer left behind (`.NAME.<random>.partial` and the like).
    private func leftovers(in folder: URL) throws -> [String] {
        try manager.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(".") || $0.contains("partial") }
    }

    private func assertRefused(_ result: CommandResult, mentioning fragments: [String],
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 2, result.stdout + result.stderr, file: file, line: line)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr, file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("rnnkit: error: "), result.stderr, file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(result.stderr.contains(fragment), "\(result.stderr) lacks \(fragment)", file: file, line: line)
        }
    }

    // MARK: Outputs that are inputs

    func testRunRefusesEverySpellingOfItsInputs() throws {
        let (folder, model, inputs) = try workspace()
        try manager.createDirectory(at: folder.appendingPathComponent("sub"), withIntermediateDirectories: false)
        let symbolic = folder.appendingPathComponent("link.h5").path
        let hard = folder.appendingPathComponent("hard.h5").path
        try manager.createSymbolicLink(atPath: symbolic, withDestinationPath: "in.h5")
        XCTAssertEqual(link(inputs, hard), 0)
        let before = (try bytes(model), try bytes(inputs))
        let spellings: [(String, String)] = [
            (folder.path + "/./in.h5", "the input file"),
            (folder.path + "/sub/../in.h5", "the input file"),
            (symbolic, "the input file"),
            (hard, "the input file"),
            (model, "the model"),
            (folder.path + "//model.h5", "the model"),
        ]
        for (output, role) in spellings {
            let result = try rnnkit("run", model, "--input", inputs, "--output", output)
            assertRefused(result, mentioning: [output + ": is \(role)", role == "the model" ? model : inputs])
        }
        XCTAssertEqual(try bytes(model), before.0, "the model is unchanged")
        XCTAssertEqual(try bytes(inputs), before.1, "the inputs are unchanged")
        XCTAssertEqual(try leftovers(in: folder), [])
    }

    func testRunRefusesARelativeSpellingOfItsInput() throws {
        let (folder, model, _) = try workspace()
        let before = try bytes(model)
        let previous = manager.currentDirectoryPath
        XCTAssertTrue(manager.changeCurrentDirectoryPath(folder.path))
        defer { _ = manager.changeCurrentDirectoryPath(previous) }
        let result = try rnnkit("run", "model.h5", "--input", "in.h5", "--output", "./in.h5")
        assertRefused(result, mentioning: ["./in.h5: is the input file in.h5"])
        let absolute = try rnnkit("run", "model.h5", "--input", "in.h5", "--output", model)
        assertRefused(absolute, mentioning: ["\(model): is the model model.h5"])
        XCTAssertEqual(try bytes(model), before)
    }

    func testConvertRefusesItsInputAndArchitectureByAnyName() throws {
        let folder = try temporaryFolder(self)
        let weights = folder.appendingPathComponent("w.weights.h5").path
        let architecture = folder.appendingPathComponent("arch.keras").path
        try manager.copyItem(atPath: fixture("keras/k3_stacked_bilstm.weights.h5"), toPath: weights)
        try manager.copyItem(atPath: fixture("keras/k3_stacked_bilstm.keras"), toPath: architecture)
        let symbolic = folder.appendingPathComponent("link.keras").path
        try manager.createSymbolicLink(atPath: symbolic, withDestinationPath: architecture)
        let before = (try bytes(weights), try bytes(architecture))
        for (output, role) in [(folder.path + "/./arch.keras", "the architecture file"), (symbolic, "the architecture file"),
                               (folder.path + "/../\(folder.lastPathComponent)/w.weights.h5", "the input file")] {
            let result = try rnnkit("convert", weights, output, "--to", "keras3", "--architecture", architecture, "--force")
            assertRefused(result, mentioning: ["\(output): is \(role)"])
        }
        XCTAssertEqual(try bytes(weights), before.0)
        XCTAssertEqual(try bytes(architecture), before.1)
        XCTAssertEqual(try leftovers(in: folder), [])
    }

    func testEmitPythonNeverOverwritesTheModel() throws {
        let (folder, model, _) = try workspace()
        let out = folder.appendingPathComponent("out.h5").path
        let before = try bytes(model)
        for module in [model, folder.path + "/./model.h5"] {
            let result = try rnnkit("convert", model, out, "--to", "pytorch", "--emit-python", module, "--force")
            assertRefused(result, mentioning: ["\(module): is the input file"])
        }
        // Nor the converted file, by another spelling.
        let same = try rnnkit("convert", model, out, "--to", "pytorch", "--emit-python", folder.path + "/./out.h5")
        assertRefused(same, mentioning: ["is the converted file"])
        XCTAssertEqual(try bytes(model), before)
        XCTAssertFalse(manager.fileExists(atPath: out), "nothing written")
        XCTAssertEqual(try leftovers(in: folder), [])
    }

    // MARK: Outputs that are not regular files

    func testDevicesFIFOsFoldersAndLinksAreNeverReplaced() throws {
        let (folder, model, inputs) = try workspace()
        let fifo = folder.appendingPathComponent("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let other = folder.appendingPathComponent("other.h5").path
        try Data("keep".utf8).write(to: URL(fileURLWithPath: other))
        let symbolic = folder.appendingPathComponent("link.h5").path
        try manager.createSymbolicLink(atPath: symbolic, withDestinationPath: other)
        let cases = [("/dev/null", "a character device"), (fifo, "a FIFO"), (folder.path, "a folder"),
                     (symbolic, "a symbolic link")]
        for (output, kind) in cases {
            assertRefused(try rnnkit("run", model, "--input", inputs, "--output", output), mentioning: ["\(output): is \(kind)"])
            assertRefused(try rnnkit("convert", model, output, "--to", "keras", "--force"), mentioning: ["\(output): is \(kind)"])
            let module = try rnnkit("convert", model, folder.appendingPathComponent("c.h5").path, "--to", "pytorch",
                                    "--emit-python", output, "--force")
            assertRefused(module, mentioning: ["\(output): is \(kind)"])
        }
        var status = stat()
        XCTAssertEqual(stat("/dev/null", &status), 0)
        XCTAssertEqual(status.st_mode & S_IFMT, S_IFCHR, "/dev/null is still a device")
        XCTAssertEqual(lstat(fifo, &status), 0)
        XCTAssertEqual(status.st_mode & S_IFMT, S_IFIFO, "the FIFO is still a FIFO")
        XCTAssertEqual(lstat(symbolic, &status), 0)
        XCTAssertEqual(status.st_mode & S_IFMT, S_IFLNK, "the link is still a link")
        XCTAssertEqual(try String(contentsOfFile: other, encoding: .utf8), "keep")
        XCTAssertFalse(manager.fileExists(atPath: folder.appendingPathComponent("c.h5").path))
        XCTAssertEqual(try leftovers(in: folder), [])
    }

    func testExistingRegularFilesNeedForceForConvertAndAreReplacedByRun() throws {
        let (folder, model, inputs) = try workspace()
        let out = folder.appendingPathComponent("out.h5").path
        let module = folder.appendingPathComponent("model_def.py").path
        try Data("old module".utf8).write(to: URL(fileURLWithPath: module))
        // Without --force, an existing module stops the conversion before anything is written.
        assertRefused(try rnnkit("convert", model, out, "--to", "pytorch", "--emit-python", module),
                      mentioning: ["\(module): exists; pass --force"])
        XCTAssertFalse(manager.fileExists(atPath: out))
        XCTAssertEqual(try String(contentsOfFile: module, encoding: .utf8), "old module")
        let forced = try rnnkit("convert", model, out, "--to", "pytorch", "--emit-python", module, "--force")
        XCTAssertEqual(forced.status, 0, forced.stderr)
        XCTAssertTrue(try String(contentsOfFile: module, encoding: .utf8).contains("class Model"))
        // run replaces an existing regular OUT, as documented.
        let first = try rnnkit("run", model, "--input", inputs, "--output", out)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(try HDF5File.open(out).root.memberNames(), ["c_n", "h_n", "output"])
        XCTAssertEqual(try leftovers(in: folder), [])
    }

    // MARK: All or nothing

    /// A module named `forward` cannot be an `nn.Module` attribute: the emission is refused
    /// after the conversion succeeded, and then neither file may be in place. (A whole model:
    /// a bare module's emitted class holds it as `rnn`, whatever its keys are named.)
    func testARefusedEmissionLeavesNoOutputAndNoTemporary() throws {
        let folder = try temporaryFolder(self)
        let model = folder.appendingPathComponent("forward.h5").path
        try renamingModule(of: fixture("pytorch/lstm_basic.h5"), to: "forward", writing: model,
                           modelConfig: #"{"modules": [{"type": "LSTM", "name": "forward", "input_size": 4, "hidden_size": 6}]}"#)
        let out = folder.appendingPathComponent("out.h5").path
        let module = folder.appendingPathComponent("out.py").path
        let plain = try rnnkit("convert", model, folder.appendingPathComponent("plain.h5").path, "--to", "pytorch")
        XCTAssertEqual(plain.status, 0, "the conversion alone succeeds: \(plain.stderr)")
        let result = try rnnkit("convert", model, out, "--to", "pytorch", "--emit-python", module)
        assertRefused(result, mentioning: ["forward"])
        XCTAssertFalse(manager.fileExists(atPath: out), "the converted file is not put in place without its module")
        XCTAssertFalse(manager.fileExists(atPath: module))
        XCTAssertEqual(try leftovers(in: folder), [])
    }

    /// Copies a PyTorch model's state_dict with its module renamed (`rnn.weight_ih_l0` →
    /// `NAME.weight_ih_l0`); the file is closed on return.
    private func renamingModule(of source: String, to name: String, writing path: String,
                                modelConfig: String? = nil) throws {
        let root = try HDF5File.open(source).root
        let written = try HDF5File.create(path).root
        for key in try root.datasetPaths() {
            let dataset = try root.dataset(key)
            let renamed = name + "." + key.split(separator: ".").dropFirst().joined(separator: ".")
            try written.write(renamed, floats: try dataset.readFloats(), shape: dataset.shape)
        }
        if let modelConfig { try written.setAttribute("model_config", .string(modelConfig)) }
    }

    func testRefusedConversionsLeaveNothingBehind() throws {
        let folder = try temporaryFolder(self)
        for (target, name) in [("keras3", "proj.keras"), ("keras", "proj.h5"), ("pytorch", "proj.pt")] {
            let out = folder.appendingPathComponent(name).path
            let result = try rnnkit("convert", fixture("pytorch/lstm_proj.h5"), out, "--to", target)
            if target == "pytorch" { XCTAssertEqual(result.status, 0, result.stderr); continue }
            assertRefused(result, mentioning: [])
            XCTAssertFalse(result.stderr.contains(".partial"), result.stderr)
            XCTAssertFalse(manager.fileExists(atPath: out))
        }
        XCTAssertEqual(try leftovers(in: folder), [])
    }

    /// The library's side: both files or neither, and a replaced file restored when a later
    /// one cannot be placed.
    func testABatchPlacesEveryFileOrNone() throws {
        let folder = try temporaryFolder(self)
        let first = folder.appendingPathComponent("a.h5").path
        let second = folder.appendingPathComponent("b.py").path
        func attempt(overwrite: Bool) -> Error? {
            do {
                try OutputBatch.writing { batch in
                    try batch.write(first, overwrite: overwrite) { try writeNewFile($0, contents: Data("new a".utf8)) }
                    // Creates nothing: the second file cannot be put in place, after the first was.
                    try batch.write(second, overwrite: overwrite) { _ in }
                }
                return nil
            } catch {
                return error
            }
        }
        let error = try XCTUnwrap(attempt(overwrite: false))
        XCTAssertTrue("\(error)".hasPrefix(second), "\(error)")
        XCTAssertFalse(manager.fileExists(atPath: first), "a new first file is taken back")
        try Data("old a".utf8).write(to: URL(fileURLWithPath: first))
        XCTAssertNotNil(attempt(overwrite: true))
        XCTAssertEqual(try String(contentsOfFile: first, encoding: .utf8), "old a", "a replaced first file is restored")
        XCTAssertEqual(try leftovers(in: folder), [])
        XCTAssertEqual(TemporaryFiles.livePaths.filter { $0.hasPrefix(folder.path) }, [])
    }

    func testPrintedOutputPathsAreEscaped() throws {
        let (folder, model, inputs) = try workspace()
        let out = folder.appendingPathComponent("o\u{1b}[2J.h5").path
        let run = try rnnkit("run", model, "--input", inputs, "--output", out)
        XCTAssertEqual(run.status, 0, run.stderr)
        let converted = try rnnkit("convert", model, out, "--to", "keras", "--force")
        XCTAssertEqual(converted.status, 0, converted.stderr)
        for text in [run.stdout, converted.stdout] {
            XCTAssertFalse(text.contains("\u{1b}"), text)
            XCTAssertTrue(text.contains("o\\x1b[2J.h5"), text)
        }
    }

    // MARK: Temporaries

    func testTemporariesSitBesideTheOutputNamedAfterItAndErrorsNameTheOutput() throws {
        let folder = try temporaryFolder(self)
        let out = folder.appendingPathComponent("result.h5").path
        var seen = ""
        XCTAssertThrowsError(try AtomicFile.write(to: out, overwrite: false) { temporary in
            seen = temporary
            XCTAssertTrue(TemporaryFiles.livePaths.contains(temporary), "registered for removal on a signal")
            _ = try HDF5File.create(temporary).root
            // Created exclusively: a second create at the same name fails.
            _ = try HDF5File.create(temporary)
        }) { error in
            XCTAssertTrue("\(error)".hasPrefix(out + ": "), "\(error)")
            XCTAssertFalse("\(error)".contains(".partial"), "\(error)")
        }
        let name = URL(fileURLWithPath: seen).lastPathComponent
        XCTAssertEqual(URL(fileURLWithPath: seen).deletingLastPathComponent().path, folder.path)
        XCTAssertTrue(name.hasPrefix(".result.h5.") && name.hasSuffix(".partial"), name)
        XCTAssertFalse(TemporaryFiles.livePaths.contains(seen))
        XCTAssertEqual(try manager.contentsOfDirectory(atPath: folder.path), [])
        // A plain ModelError naming the temporary is rewritten too.
        XCTAssertThrowsError(try AtomicFile.write(to: out, overwrite: false) { temporary in
            throw ModelError(file: temporary, message: "boom at \(temporary)")
        }) { error in
            XCTAssertEqual("\(error)", "\(out): boom at \(out)")
        }
        // The module writer never follows or replaces what is at its name.
        let planted = folder.appendingPathComponent("planted").path
        try manager.createSymbolicLink(atPath: planted, withDestinationPath: "/dev/null")
        XCTAssertThrowsError(try writeNewFile(planted, contents: Data("x".utf8)))
    }

    // MARK: Signals

    /// A PyTorch LSTM large enough that converting it takes a second or more.
    private func largeModel(in folder: URL, hidden: Int = 512) throws -> String {
        let path = folder.appendingPathComponent("large.h5").path
        let root = try HDF5File.create(path).root
        let gates = 4 * hidden
        var values = [Float](repeating: 0, count: gates * hidden)
        for index in values.indices { values[index] = Float(index % 97) / 97 - 0.5 }
        try root.write("rnn.weight_ih_l0", floats: values, shape: [gates, hidden])
        try root.write("rnn.weight_hh_l0", floats: values, shape: [gates, hidden])
        try root.write("rnn.bias_ih_l0", floats: Array(values[0..<gates]), shape: [gates])
        try root.write("rnn.bias_hh_l0", floats: Array(values[0..<gates]), shape: [gates])
        return path
    }

    private func interruptedConversion(target: String, signal: Int32, expecting status: Int32) throws {
        let folder = try temporaryFolder(self)
        let model = try largeModel(in: folder)
        let outputs = folder.appendingPathComponent("out")
        try manager.createDirectory(at: outputs, withIntermediateDirectories: false)
        let out = outputs.appendingPathComponent(["pytorch": "converted.pt", "keras": "converted.h5"][target] ?? "converted.keras").path
        let process = Process()
        process.executableURL = rnnkitExecutable()
        process.arguments = ["convert", model, out, "--to", target]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until a temporary exists, so the signal lands in the middle of the writing.
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning, try leftovers(in: outputs).isEmpty, Date() < deadline { usleep(2000) }
        XCTAssertTrue(process.isRunning, "the conversion was still running when signalled")
        XCTAssertFalse(try leftovers(in: outputs).isEmpty, "a temporary appeared")
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit)
        XCTAssertEqual(process.terminationStatus, status)
        XCTAssertEqual(try manager.contentsOfDirectory(atPath: outputs.path), [], "nothing left: no OUT, no temporary")
    }

    func testSIGINTRemovesTemporariesAndExits130() throws {
        try interruptedConversion(target: "keras3", signal: SIGINT, expecting: 130)
    }

    func testSIGTERMRemovesTemporariesAndExits143() throws {
        try interruptedConversion(target: "pytorch", signal: SIGTERM, expecting: 143)
    }

    /// The built `rnnkit`, beside the test bundle.
    private func rnnkitExecutable() -> URL {
        let beside = Bundle.main.bundleURL.appendingPathComponent("rnnkit")
        if manager.fileExists(atPath: beside.path) { return beside }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("rnnkit")
    }
}
