import Foundation
import HDF5
import FuzzEntryPoints
@testable import RecurrentKit
import TestSupport
import XCTest

/// Replays the fuzzers' findings (fixtures/fuzz) through the same entry points the fuzz
/// targets call (FuzzEntry), and checks that those entry points reach the readers at all:
/// a harness that refused every committed model would fuzz nothing but its own first check.
final class FuzzRegressionTests: XCTestCase {
    static let targets = ["FuzzHDF5Model", "FuzzKerasConfig", "FuzzKerasArchive", "FuzzPyTorchModelConfig", "FuzzFixture",
                          "FuzzTorchFile", "FuzzONNX"]

    /// The files of `fixtures/<folder>` whose names end in `suffix`. A folder that is missing
    /// or cannot be listed fails the test: a replay of nothing would pass.
    private func files(_ folder: String, suffix: String = "", file: StaticString = #filePath, line: UInt = #line) -> [String] {
        let path = fixture(folder)
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            XCTFail("\(path): cannot list the folder (\(error.localizedDescription))", file: file, line: line)
            return []
        }
        return names.filter { $0.hasSuffix(suffix) && !$0.hasPrefix(".") && $0 != "README.md" }.sorted().map { path + "/" + $0 }
    }

    private func bytes(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Runs one fuzz target's entry point on `input`; returns the refusal, or nil.
    private func replay(_ target: String, _ input: [UInt8], scratch: URL) -> String? {
        switch target {
        case "FuzzHDF5Model":
            return FuzzEntry.hdf5Model(input)
        case "FuzzKerasConfig":
            return FuzzEntry.kerasConfig(input, weights: FuzzEntry.archiveWeights(folder: fixture("keras")))
        case "FuzzKerasArchive":
            return FuzzEntry.kerasArchive(input, path: scratch.appendingPathComponent("input.keras").path)
        case "FuzzPyTorchModelConfig":
            return FuzzEntry.pytorchModelConfig(input, stateDicts: FuzzEntry.configuredStateDicts(folder: fixture("pytorch")))
        case "FuzzFixture":
            return FuzzEntry.fixture(input, path: scratch.appendingPathComponent("input.fixture.h5").path)
        case "FuzzTorchFile":
            return FuzzEntry.torchFile(input)
        case "FuzzONNX":
            return FuzzEntry.onnx(input)
        default:
            XCTFail("fixtures/fuzz/regressions/\(target): no such fuzz target (expected one of \(Self.targets))")
            return nil
        }
    }

    /// Every committed regression input returns (accepted or refused) with no trap, fault or
    /// HDF5 handle left open (FuzzEntry traps on that).
    func testRegressionsReturn() throws {
        let scratch = try temporaryFolder(self)
        let folders = files("fuzz/regressions")
        XCTAssertFalse(folders.isEmpty, "fixtures/fuzz/regressions holds no target's folder")
        for folder in folders {
            let target = URL(fileURLWithPath: folder).lastPathComponent
            let inputs = files("fuzz/regressions/\(target)")
            XCTAssertFalse(inputs.isEmpty, "\(folder): no input to replay")
            for path in inputs {
                let refusal = replay(target, try bytes(path), scratch: scratch)
                // A refusal is one line, as the command line prints it.
                XCTAssertFalse(refusal?.contains("\n") ?? false, "\(path): \(refusal ?? "")")
            }
        }
    }

    /// Inputs that fault inside libhdf5 itself cannot be replayed in this process; through
    /// the command line each gives a result or one error line with status 2, never a crash.
    func testLibraryFaultsThroughTheCommandLine() throws {
        let paths = files("fuzz/library-faults/FuzzHDF5Model")
        XCTAssertFalse(paths.isEmpty, "fixtures/fuzz/library-faults/FuzzHDF5Model holds no input")
        for path in paths {
            let result = try rnnkit("inspect", path)
            XCTAssert([0, 2].contains(result.status), "\(path): status \(result.status), \(result.stderr)")
            if result.status == 2 {
                XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "\(path): \(result.stderr)")
            }
        }
    }

    /// A file on which libhdf5 allocates and fills 4.2 GB before any check of ours runs
    /// (found by fuzzing): the per-call memory cap makes the allocation fail, and the command
    /// answers with one line and status 2, in well under 1 GiB.
    func testLibraryAllocationsAreCapped() throws {
        let path = fixture("fuzz/library-faults/FuzzHDF5Model/h5c_protect_huge_allocation.h5")
        let result = try rnnkit("inspect", path)
        XCTAssertEqual(result.status, 2, result.stdout + result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("memory allocation failed"), result.stderr)
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        XCTAssertLessThan(usage.ru_maxrss, 1 << 20, "the largest child so far, in KB")
    }

    /// glibc aborts (after printing its own line) when libhdf5 frees a block twice: inside an
    /// HDF5 call that is a damaged file, and standard error carries only rnnkit's line.
    func testAnAbortInsideHDF5IsOneLine() throws {
        let result = try rnnkit("inspect", fixture("fuzz/library-faults/FuzzHDF5Model/h5mm_xfree_double_free.h5"))
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertEqual(result.stderr, "rnnkit: error: \(fixture("fuzz/library-faults/FuzzHDF5Model/h5mm_xfree_double_free.h5")): damaged file: the HDF5 library failed reading it (memory fault)\n")
    }

    /// The committed models, archives, configs and fixtures are accepted through the entry
    /// points: the fuzzers start from inputs that reach the end of each reader.
    func testEntryPointsAcceptTheCommittedFixtures() throws {
        let scratch = try temporaryFolder(self)
        let pytorch = files("pytorch", suffix: ".h5").filter { !$0.hasSuffix(".fixture.h5") }
        XCTAssertFalse(pytorch.isEmpty)
        for path in pytorch {
            XCTAssertNil(FuzzEntry.hdf5Model(try bytes(path)), path)
        }
        for path in files("keras", suffix: ".h5") where !path.hasSuffix(".fixture.h5") && !path.contains("weights.") {
            XCTAssertNil(FuzzEntry.hdf5Model(try bytes(path)), path)
        }
        let archives = files("keras", suffix: ".keras")
        XCTAssertFalse(archives.isEmpty)
        for path in archives {
            XCTAssertNil(FuzzEntry.kerasArchive(try bytes(path), path: scratch.appendingPathComponent("a.keras").path), path)
        }
        for path in files("pytorch", suffix: ".fixture.h5") + files("keras", suffix: ".fixture.h5") {
            XCTAssertNil(FuzzEntry.fixture(try bytes(path), path: scratch.appendingPathComponent("f.h5").path), path)
        }

        // Each archive's config.json planned against its own weights (selector = its index).
        let weights = FuzzEntry.archiveWeights(folder: fixture("keras"))
        XCTAssertEqual(weights.count, archives.count)
        let configs = FuzzEntry.archiveConfigs(folder: fixture("keras"))
        XCTAssertEqual(configs.count, archives.count)
        for (index, config) in configs.enumerated() {
            let refusal = FuzzEntry.kerasConfig([UInt8(index)] + config, weights: weights)
            // An adapted TextVectorization keeps its vocabulary in the archive's assets, which
            // a config alone does not have: that one refusal, and only for such an archive.
            let assets = try ZipArchive(path: archives[index]).names.contains { $0.hasPrefix("assets/") && $0.hasSuffix("vocabulary.txt") }
            if assets {
                XCTAssertTrue(refusal?.contains("holds no vocabulary") ?? false, "\(archives[index]): \(refusal ?? "accepted")")
            } else {
                XCTAssertNil(refusal, archives[index])
            }
        }
        // With no weights selected, the config is parsed and refused at the first layer with weights.
        XCTAssertNotNil(FuzzEntry.kerasConfig([UInt8(weights.count)] + Array(#"{"class_name": "Sequential"}"#.utf8), weights: weights))

        // Each PyTorch model_config built against its own state_dict.
        let stateDicts = FuzzEntry.configuredStateDicts(folder: fixture("pytorch"))
        XCTAssertFalse(stateDicts.isEmpty)
        for (index, file) in stateDicts.enumerated() {
            let text = try XCTUnwrap(try file.root.attribute("model_config")?.stringValue)
            XCTAssertNil(FuzzEntry.pytorchModelConfig([UInt8(index)] + Array(text.utf8), stateDicts: stateDicts), file.path)
        }
    }
}
