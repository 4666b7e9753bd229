import Foundation
import XCTest
import HDF5
import TestSupport
@testable import RecurrentKit
#if canImport(Glibc)
import Glibc
#endif

/// The readers on files written by an attacker (fixtures/hostile): through the library and
/// through `rnnkit`, each is refused with one line naming the file and the reason — nothing
/// outside the input is opened, nothing hangs, nothing is left in the temporary folder.
final class HostileReadTests: XCTestCase {
    private func hostile(_ name: String) -> String { fixture("hostile/\(name)") }
    private let pytorchModel = fixture("pytorch/lstm_basic.h5")
    private let pytorchFixture = fixture("pytorch/lstm_basic.fixture.h5")

    // MARK: Helpers

    /// `body` throws one line naming `file` and mentioning each of `mentions`.
    private func assertRefused<T>(_ body: @autoclosure () throws -> T, file: String, mentions: [String],
                                  sourceFile: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: sourceFile, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(file), "names \(file): \(text)", file: sourceFile, line: line)
            for mention in mentions {
                XCTAssertTrue(text.contains(mention), "'\(mention)' in: \(text)", file: sourceFile, line: line)
            }
            XCTAssertFalse(text.contains("\n"), file: sourceFile, line: line)
            XCTAssertFalse(text.contains("root:"), "nothing from /etc/passwd", file: sourceFile, line: line)
        }
    }

    private struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the built `rnnkit` in `folder` (default: a fresh one) with `TMPDIR` pointing at
    /// an empty folder of its own; fails, instead of hanging, past 30 seconds.
    private func rnnkit(_ arguments: [String], in folder: URL? = nil,
                        sourceFile: StaticString = #filePath, line: UInt = #line) throws -> (Outcome, temporary: URL) {
        let products = Bundle.main.bundleURL
        var executable = products.appendingPathComponent("rnnkit")
        if !FileManager.default.fileExists(atPath: executable.path) {
            executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("rnnkit")
        }
        let temporary = try temporaryFolder(self)
        let directory = try folder ?? temporaryFolder(self)
        let result = try runCommand(executable, arguments) { process in
            process.currentDirectoryURL = directory
            process.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": temporary.path]) { $1 }
            DispatchQueue.global().asyncAfter(deadline: .now() + 30) { [process] in
                if process.isRunning { process.terminate() }
            }
        }
        XCTAssertEqual(result.reason, .exit, "\(arguments) hung or crashed", file: sourceFile, line: line)
        return (Outcome(status: result.status, stdout: result.stdout, stderr: result.stderr), temporary)
    }

    /// `rnnkit arguments` exits 2 with one line `rnnkit: error: FILE: ...` mentioning each of
    /// `mentions`, prints nothing from /etc/passwd, and leaves its temporary folder empty.
    private func assertCommandRefused(_ arguments: [String], names file: String, mentions: [String], in folder: URL? = nil,
                                      sourceFile: StaticString = #filePath, line: UInt = #line) throws {
        let (result, temporary) = try rnnkit(arguments, in: folder, sourceFile: sourceFile, line: line)
        XCTAssertEqual(result.status, 2, "\(arguments): \(result.stdout) \(result.stderr)", file: sourceFile, line: line)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr, file: sourceFile, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("rnnkit: error: \(file)"), result.stderr, file: sourceFile, line: line)
        for mention in mentions {
            XCTAssertTrue(result.stderr.contains(mention), "'\(mention)' in: \(result.stderr)", file: sourceFile, line: line)
        }
        XCTAssertFalse((result.stdout + result.stderr).contains("root:"), file: sourceFile, line: line)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temporary.path), [],
                       "\(arguments) left files in TMPDIR", file: sourceFile, line: line)
    }

    /// Copies fixtures into a fresh folder, `hostile.fifo` made there as a FIFO.
    private func folder(with paths: [String], fifo: Bool = false) throws -> URL {
        let folder = try temporaryFolder(self)
        for path in paths {
            try FileManager.default.copyItem(atPath: path, toPath: folder.appendingPathComponent((path as NSString).lastPathComponent).path)
        }
        if fifo { XCTAssertEqual(mkfifo(folder.appendingPathComponent("hostile.fifo").path, 0o600), 0) }
        return folder
    }

    /// A copy of the PyTorch fixture with `attributes` set.
    private func fixtureCopy(_ attributes: [String: AttributeValue], in folder: URL? = nil) throws -> String {
        let folder = try folder ?? temporaryFolder(self)
        let path = folder.appendingPathComponent("edited.fixture.h5").path
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: pytorchFixture, toPath: path)
        let file = try HDF5File.openForUpdate(path)
        for (name, value) in attributes { try file.root.setAttribute(name, value) }
        return path
    }

    // MARK: Nothing outside the input

    func testHostileHDF5ModelsAreRefusedByTheLibraryAndTheCommandLine() throws {
        let cases: [(String, [String])] = [
            ("external_link_weight.h5", ["/rnn.weight_ih_l0", "external link"]),
            ("soft_link_to_external.h5", ["external link"]),
            ("external_storage_passwd.h5", ["/rnn.weight_ih_l0", "EXTERNAL storage"]),
            ("external_storage_devzero.h5", ["/rnn.weight_ih_l0", "EXTERNAL storage"]),
            ("external_storage_fifo.h5", ["/rnn.weight_ih_l0", "EXTERNAL storage"]),
            ("virtual_weight.h5", ["/rnn.weight_ih_l0", "VIRTUAL dataset"]),
            ("soft_link_cycle.h5", ["/loop/again", "cycle"]),
            ("hard_link_cycle.h5", ["/loop/self_", "cycle"]),
        ]
        let names = cases.map(\.0)
        // The link targets exist beside the files and a FIFO is where EXTERNAL storage points.
        let folder = try folder(with: (names + ["never_opened_target.h5"]).map(hostile), fifo: true)
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(folder.path))
        defer { FileManager.default.changeCurrentDirectoryPath(previous) }
        for (name, mentions) in cases {
            assertRefused(try LoadedModel(contentsOf: name), file: name, mentions: mentions)
            try assertCommandRefused(["inspect", name], names: name, mentions: mentions, in: folder)
            try assertCommandRefused(["convert", name, "out.h5", "--to", "keras"], names: name, mentions: mentions, in: folder)
            try assertCommandRefused(["run", name, "--input", pytorchFixture, "--output", "out.h5"], names: name,
                                     mentions: mentions, in: folder)
            try assertCommandRefused(["verify", name, pytorchFixture], names: name, mentions: mentions, in: folder)
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("out.h5").path))
        }
    }

    func testInputsFromAnotherFileAreRefused() throws {
        let inputs = hostile("inputs_external_passwd.h5")
        assertRefused(try InputFile(contentsOf: inputs), file: inputs, mentions: ["/inputs", "EXTERNAL storage"])
        try assertCommandRefused(["run", pytorchModel, "--input", inputs, "--output", "out.h5"], names: inputs,
                                 mentions: ["/inputs", "EXTERNAL storage"])
    }

    func testOnlyRegularFilesAreReadAsInputs() throws {
        let folder = try folder(with: [], fifo: true)
        let fifo = folder.appendingPathComponent("hostile.fifo").path
        let keras = fixture("keras/tfk_stacked_bilstm.weights.h5")
        for (path, kind) in [(fifo, "FIFO"), ("/dev/null", "device"), (folder.path, "directory")] {
            assertRefused(try LoadedModel(contentsOf: path), file: path, mentions: [kind])
            assertRefused(try Fixture(contentsOf: path), file: path, mentions: [kind])
            assertRefused(try InputFile(contentsOf: path), file: path, mentions: [kind])
            assertRefused(try LoadedModel(contentsOf: keras, architecture: path), file: path, mentions: [kind])
            XCTAssertFalse(KerasFile.isZip(path))
            try assertCommandRefused(["inspect", path], names: path, mentions: [kind])
            try assertCommandRefused(["run", path, "--input", pytorchFixture, "--output", "out.h5"], names: path, mentions: [kind])
            try assertCommandRefused(["run", pytorchModel, "--input", path, "--output", "out.h5"], names: path, mentions: [kind])
            try assertCommandRefused(["verify", pytorchModel, path], names: path, mentions: [kind])
            try assertCommandRefused(["inspect", keras, "--architecture", path], names: path, mentions: [kind])
            try assertCommandRefused(["convert", path, "out.h5", "--to", "keras"], names: path, mentions: [kind])
        }
        XCTAssertThrowsError(try InputFiles.read(fifo, limit: 10, what: "a test bound"))
    }

    func testJSONArchitectureIsReadWithinTheBound() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("config.json").path
        try Data("{".utf8 + [UInt8](repeating: UInt8(ascii: " "), count: 100)).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try InputFiles.read(path, limit: 50, what: "Limits.test")) { error in
            XCTAssertTrue("\(error)".contains("more than 50 bytes (Limits.test)"), "\(error)")
        }
        XCTAssertEqual(try InputFiles.read(path, limit: 101, what: "Limits.test").count, 101)
    }

    // MARK: .keras archives

    /// Names of `rnnkit-*` files in the process's temporary folder (the test runner's own
    /// `rnnkit-tests-*` folders aside).
    private func temporaryLeftovers() throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path)
            .filter { $0.hasPrefix("rnnkit-") && !$0.hasPrefix("rnnkit-tests-") })
    }

    func testHostileArchivesAreRefused() throws {
        let cases: [(String, [String])] = [
            ("symlink_weights.keras", ["model.weights.h5", "symbolic link entry"]),
            ("duplicate_weights.keras", ["model.weights.h5", "appears twice", "ambiguous"]),
            ("directory_config.keras", ["config.json", "directory entry"]),
            ("lying_size.keras", ["model.weights.h5", "inflates past its declared size of 25000 bytes"]),
            ("metadata_bomb.keras", ["metadata.json", "over the limit of \(Limits.configJSONBytes)", "Limits.configJSONBytes"]),
        ]
        let before = try temporaryLeftovers()
        let weightsOnly = fixture("keras/k3_stacked_bilstm.weights.h5")
        for (name, mentions) in cases {
            let path = hostile(name)
            assertRefused(try LoadedModel(contentsOf: path), file: path, mentions: mentions)
            try assertCommandRefused(["inspect", path], names: path, mentions: mentions)
            try assertCommandRefused(["convert", path, "out.h5", "--to", "pytorch"], names: path, mentions: mentions)
            if name != "lying_size.keras" {
                // The architecture reader reads the same archive the same way.
                assertRefused(try KerasFile.Architecture(contentsOf: path), file: path, mentions: mentions)
                try assertCommandRefused(["inspect", weightsOnly, "--architecture", path], names: path, mentions: mentions)
            }
        }
        XCTAssertEqual(try temporaryLeftovers(), before, "reading archives leaves nothing in the temporary folder")
    }

    func testArchiveMembersAreCountedAsTheyInflateNotTakenFromTheHeader() throws {
        let path = hostile("lying_size.keras")
        // The header claims 25 000 bytes, within both bounds below; the 10 MB it inflates to
        // are refused as they arrive, at the bound or at the claimed size, whichever is met.
        assertRefused(try KerasFile.readArchive(path, memberLimit: 25_000), file: path,
                      mentions: ["model.weights.h5", "inflates past 25000 bytes"])
        let archive = try KerasArchive(path)
        XCTAssertThrowsError(try archive.member("model.weights.h5", limit: 25_000)) { error in
            XCTAssertTrue("\(error)".contains("inflates past 25000 bytes"), "\(error)")
        }
        XCTAssertThrowsError(try archive.member("model.weights.h5", limit: Limits.archiveMemberBytes)) { error in
            XCTAssertTrue("\(error)".contains("inflates past its declared size of 25000 bytes"), "\(error)")
        }
        // A claim over the bound is refused before anything inflates.
        XCTAssertThrowsError(try archive.member("model.weights.h5", limit: 8192)) { error in
            XCTAssertTrue("\(error)".contains("declares 25000 bytes, over the limit of 8192 by 16808"), "\(error)")
        }
        // An honest member reads in full, in memory.
        let good = try KerasArchive(fixture("keras/k3_text_rnn.keras"))
        XCTAssertEqual(try good.member("model.weights.h5", limit: Limits.archiveMemberBytes)?.prefix(4),
                       [0x89, 0x48, 0x44, 0x46])
    }

    func testGoodArchiveLeavesNothingInTheTemporaryFolder() throws {
        let before = try temporaryLeftovers()
        let path = fixture("keras/k3_text_rnn.keras")
        XCTAssertNoThrow(try LoadedModel(contentsOf: path))
        XCTAssertEqual(try temporaryLeftovers(), before)
        let (result, temporary) = try rnnkit(["verify", path, fixture("keras/k3_text_rnn.fixture.h5")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temporary.path), [])
    }

    // MARK: Fixtures

    func testFixtureReferencesStayInsideTheFixturesFolder() throws {
        let cases: [(String, [String])] = [
            ("architecture_absolute.fixture.h5", ["architecture", "'/etc/passwd'", "absolute path"]),
            ("architecture_parent.fixture.h5", ["architecture", "'../pytorch/lstm_basic.h5'", "leaves the fixture's folder"]),
            ("architecture_fifo.fixture.h5", ["architecture", "'hostile.fifo'", "FIFO"]),
            ("model_absolute.fixture.h5", ["model", "'/etc/passwd'", "absolute path"]),
        ]
        let folder = try folder(with: cases.map { hostile($0.0) }, fifo: true)
        for (name, mentions) in cases {
            let path = folder.appendingPathComponent(name).path
            assertRefused(try Fixture(contentsOf: path), file: path, mentions: mentions)
            try assertCommandRefused(["verify", pytorchModel, path], names: path, mentions: mentions)
        }
    }

    func testFixtureReferenceThroughASymbolicLinkMustStayInside() throws {
        let folder = try temporaryFolder(self)
        let outside = folder.appendingPathComponent("outside.h5").path
        let inner = folder.appendingPathComponent("inner")
        try FileManager.default.createDirectory(at: inner, withIntermediateDirectories: false)
        try FileManager.default.copyItem(atPath: pytorchModel, toPath: outside)
        try FileManager.default.copyItem(atPath: pytorchModel, toPath: inner.appendingPathComponent("model.h5").path)
        try FileManager.default.createSymbolicLink(atPath: inner.appendingPathComponent("escape.h5").path, withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: inner.appendingPathComponent("alias.h5").path, withDestinationPath: "model.h5")
        let escaping = try fixtureCopy(["architecture": .string("escape.h5")], in: inner)
        assertRefused(try Fixture(contentsOf: escaping), file: escaping,
                      mentions: ["architecture", "'escape.h5'", "outside the fixture's folder"])
        // A link that stays inside the folder is fine.
        let staying = try fixtureCopy(["architecture": .string("alias.h5"), "model": .string("model.h5")], in: inner)
        let fixture = try Fixture(contentsOf: staying)
        XCTAssertEqual(fixture.architecturePath, inner.appendingPathComponent("alias.h5").path)
        XCTAssertNoThrow(try LoadedModel(contentsOf: try XCTUnwrap(fixture.architecturePath)))
    }

    /// `cafe\u{301}/` (NFD) and `café/` (NFC) are two folders to Linux and equal Strings
    /// to Swift: a link from one into the other leaves the folder, and containment is decided
    /// on the real paths' bytes (`InputFiles.resolves`), for a fixture's `model` and
    /// `architecture`, a folder's listed fixtures and the models paired with them by name.
    func testContainmentComparesBytesNotCanonicallyEquivalentStrings() throws {
        let root = try temporaryFolder(self)
        let nfd = root.appendingPathComponent("cafe\u{301}").path
        let nfc = root.appendingPathComponent("caf\u{E9}").path
        XCTAssertEqual(nfd, nfc, "Swift calls the two spellings equal")
        XCTAssertEqual(mkdir(nfd, 0o755), 0)
        XCTAssertEqual(mkdir(nfc, 0o755), 0)
        XCTAssertNotEqual(Array(nfd.utf8), Array(nfc.utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.path).count, 2, "two folders on disk")
        try Data(contentsOf: URL(fileURLWithPath: pytorchModel)).write(to: URL(fileURLWithPath: nfc + "/victim.h5"))
        try Data(contentsOf: URL(fileURLWithPath: pytorchFixture)).write(to: URL(fileURLWithPath: nfc + "/outside.fixture.h5"))
        // In the NFD folder: links into the NFC one.
        XCTAssertEqual(symlink("../caf\u{E9}/victim.h5", nfd + "/model.h5"), 0)
        XCTAssertEqual(symlink("../caf\u{E9}/victim.h5", nfd + "/paired.h5"), 0)
        XCTAssertEqual(symlink("../caf\u{E9}/outside.fixture.h5", nfd + "/listed.fixture.h5"), 0)
        XCTAssertFalse(InputFiles.resolves(nfd + "/model.h5", inside: nfd))
        XCTAssertTrue(InputFiles.resolves(nfc + "/victim.h5", inside: nfc))

        let folder = URL(fileURLWithPath: nfd)
        for attribute in ["model", "architecture"] {
            let path = try fixtureCopy([attribute: .string("model.h5")], in: folder)
            assertRefused(try Fixture(contentsOf: path), file: path,
                          mentions: [attribute, "'model.h5'", "outside the fixture's folder"])
        }
        try FileManager.default.removeItem(atPath: nfd + "/edited.fixture.h5")
        // `paired.fixture.h5` would pair with `paired.h5` by name; the listed link is refused.
        try Data(contentsOf: URL(fileURLWithPath: pytorchFixture)).write(to: URL(fileURLWithPath: nfd + "/paired.fixture.h5"))
        let cases = try VerificationSuite.cases(in: [nfd])
        XCTAssertEqual(cases.map(\.name), ["listed", "paired"])
        XCTAssertNotNil(cases[0].refusal)
        XCTAssertNil(cases[1].modelByName, "a model by name that leads out of the folder is never paired")
        let (outcome, _) = try rnnkit(["verify", nfd])
        XCTAssertEqual(outcome.status, 2, outcome.stdout + outcome.stderr)
        XCTAssertEqual(outcome.stdout.split(separator: "\n").last, "0 passed, 0 failed, 2 errors", outcome.stdout)
    }

    func testToleranceThatIsNotAFiniteNonNegativeNumberRefusesTheFixture() throws {
        let bad: [(String, AttributeValue, String)] = [
            ("atol", .double(-1), "is -1.0"),
            ("atol", .double(.nan), "is nan"),
            ("rtol", .double(.infinity), "is inf"),
            ("rtol", .double(-0.5), "is -0.5"),
            ("atol", .string("1e-3"), "is not a number"),
        ]
        for (name, value, message) in bad {
            let path = try fixtureCopy([name: value])
            assertRefused(try Fixture(contentsOf: path), file: path, mentions: [name, message])
            try assertCommandRefused(["verify", pytorchModel, path], names: path, mentions: [name, message])
        }
        // The library refuses a caller's tolerance of the same kinds.
        let model = try LoadedModel(contentsOf: pytorchModel)
        let plain = try Fixture(contentsOf: pytorchFixture)
        assertRefused(try Verification(model: model, fixture: plain, atol: -1), file: pytorchFixture, mentions: ["atol", "is -1.0"])
        assertRefused(try Verification(model: model, fixture: plain, rtol: .nan), file: pytorchFixture, mentions: ["rtol", "is nan"])
        // A proper tolerance is taken.
        let path = try fixtureCopy(["atol": .double(1e-3), "rtol": .integer(0)])
        let fixture = try Fixture(contentsOf: path)
        XCTAssertEqual(fixture.atol, 1e-3)
        XCTAssertEqual(fixture.rtol, 0)
        let (result, _) = try rnnkit(["verify", pytorchModel, path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.hasPrefix("tolerance: atol 0.001, rtol 0.0"), result.stdout)
    }

    /// fixtures/hostile/probes.json: each reproduction gives its expected status (a refusal
    /// in one line saying what the probe says), within 10 s and 1 GiB, writing nothing onto
    /// an input. A probe marked `large` uses the files `generate.py --large` writes (too
    /// large to commit), made once here with python3 and linked into the probe's folder.
    func testProbesGiveTheirExpectedStatus() throws {
        struct Probe: Decodable {
            var name: String
            var args: [String]
            var status: Int32
            var says: String?
            var prints: String?
            var unchanged: [String]?
            var absent: [String]?
            var large: Bool?
        }
        struct Probes: Decodable { var probes: [Probe] }
        let listing = try Data(contentsOf: URL(fileURLWithPath: hostile("probes.json")))
        let probes = try JSONDecoder().decode(Probes.self, from: listing).probes
        XCTAssertGreaterThanOrEqual(probes.count, 8)
        let source = fixture("hostile")
        var large: URL?
        #if DEBUG
        let makesLarge = false
        #else
        let makesLarge = probes.contains { $0.large ?? false }
        #endif
        if makesLarge {
            let folder = try temporaryFolder(self)
            let generator = Process()
            generator.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            generator.arguments = ["python3", hostile("generate.py"), "--large", folder.path]
            do { try generator.run() } catch { throw XCTSkip("python3 is not available: \(error)") }
            generator.waitUntilExit()
            if generator.terminationStatus == 127 { throw XCTSkip("python3 is not available") }
            XCTAssertEqual(generator.terminationStatus, 0, "generate.py --large")
            large = folder
        }
        // The largest resident size of any child so far (Linux: KiB): a probe that takes more
        // than 1 GiB raises it past the bound.
        func childrenPeakBytes() -> Int {
            var usage = rusage()
            getrusage(__rusage_who_t(truncatingIfNeeded: RUSAGE_CHILDREN.rawValue), &usage)
            return usage.ru_maxrss * 1024
        }
        let memoryBound = 1 << 30
        let checksMemory = childrenPeakBytes() <= memoryBound
        for probe in probes {
            #if DEBUG
            // The bounds are the optimized build's (`make test`); a debug build is many times
            // slower on a vocabulary of millions of tokens.
            if probe.large ?? false { continue }
            #endif
            let folder = try temporaryFolder(self)
            for name in try FileManager.default.contentsOfDirectory(atPath: source) {
                try FileManager.default.copyItem(atPath: source + "/" + name, toPath: folder.appendingPathComponent(name).path)
            }
            if probe.large ?? false, let large {
                for name in try FileManager.default.contentsOfDirectory(atPath: large.path) {
                    try FileManager.default.linkItem(at: large.appendingPathComponent(name), to: folder.appendingPathComponent(name))
                }
            }
            let before = try (probe.unchanged ?? []).map { try Data(contentsOf: folder.appendingPathComponent($0)) }
            let arguments = probe.args.map { $0.replacingOccurrences(of: "{fixtures}", with: fixturesFolder.path) }
            let start = Date()
            let (result, _) = try rnnkit(arguments, in: folder)
            XCTAssertLessThan(Date().timeIntervalSince(start), 10, probe.name)
            if checksMemory {
                XCTAssertLessThanOrEqual(childrenPeakBytes(), memoryBound, probe.name)
            }
            XCTAssertEqual(result.status, probe.status, "\(probe.name): \(result.stdout) \(result.stderr)")
            if probe.status == 2 {
                XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "\(probe.name): \(result.stderr)")
                XCTAssertTrue(result.stderr.hasPrefix("rnnkit: error: "), "\(probe.name): \(result.stderr)")
            }
            if let says = probe.says { XCTAssertTrue(result.stderr.contains(says), "\(probe.name): \(result.stderr)") }
            if let prints = probe.prints { XCTAssertTrue(result.stdout.contains(prints), "\(probe.name): \(result.stdout)") }
            for (name, data) in zip(probe.unchanged ?? [], before) {
                XCTAssertEqual(try Data(contentsOf: folder.appendingPathComponent(name)), data, "\(probe.name): \(name)")
            }
            for name in probe.absent ?? [] {
                XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path), "\(probe.name): \(name)")
            }
        }
    }

    func testFloatTokenIdsAreNotBlamedOnLengths() throws {
        let path = hostile("float_tokens.fixture.h5")
        let read = try Fixture(contentsOf: path)
        guard case let .features(tensor) = read.input else { return XCTFail("float inputs read as features") }
        XCTAssertEqual(tensor.shape, [4, 7])
        XCTAssertEqual(read.lengths?.count, 4)
        let model = fixture("pytorch/clf_embed_rnn_mean.h5")
        let (result, _) = try rnnkit(["verify", model, path])
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertTrue(result.stderr.contains("token ids"), result.stderr)
        XCTAssertFalse(result.stderr.contains("lengths["), result.stderr)
    }

    func testEmptyInputWithAHugeBatchReadsWithoutTrapping() throws {
        let path = hostile("inputs_huge_batch.h5")
        let inputs = try InputFile(contentsOf: path)
        guard case let .features(tensor) = inputs.input else { return XCTFail("float inputs read as features") }
        XCTAssertEqual(tensor.shape, [1 << 40, 0, 4])
        XCTAssertEqual(tensor.values.count, 0)
        let (result, _) = try rnnkit(["run", pytorchModel, "--input", path, "--output", "out.h5"])
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertFalse(result.stderr.contains("Fatal error"), result.stderr)
    }
}
