import Foundation
import XCTest
import TestSupport
@testable import HDF5
#if canImport(Glibc)
import Glibc
#endif

/// Files written by an attacker (fixtures/hostile, generate.py): nothing outside the file is
/// opened, only regular files are read, and the fault handler speaks for HDF5 only.
final class HostileFileTests: XCTestCase {
    /// The weight every hostile PyTorch file replaces.
    private let weight = "rnn.weight_ih_l0"

    private func hostile(_ name: String) -> String { fixture("hostile/\(name)") }

    /// `body` throws an `HDF5Error` of `kind` naming `file` and `path`, whose one-line
    /// description mentions every one of `mentions`.
    private func assertRefused<T>(_ body: @autoclosure () throws -> T, kind: HDF5Error.Kind, file: String,
                                  path: String? = nil, mentions: [String],
                                  sourceFile: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: sourceFile, line: line) { error in
            guard let error = error as? HDF5Error else { return XCTFail("\(error)", file: sourceFile, line: line) }
            XCTAssertEqual(error.kind, kind, "\(error)", file: sourceFile, line: line)
            XCTAssertEqual(error.file, file, file: sourceFile, line: line)
            if let path { XCTAssertEqual(error.path, path, "\(error)", file: sourceFile, line: line) }
            for text in mentions {
                XCTAssertTrue(error.description.contains(text), "'\(text)' in: \(error)", file: sourceFile, line: line)
            }
            XCTAssertFalse(error.description.contains("\n"), file: sourceFile, line: line)
        }
    }

    /// Copies hostile files into a fresh folder (with the external target beside them, so
    /// that following a link would succeed and only a refusal stops it).
    private func copies(_ names: [String]) throws -> URL {
        let folder = try temporaryFolder(self)
        for name in names + ["never_opened_target.h5"] {
            try FileManager.default.copyItem(atPath: hostile(name), toPath: folder.appendingPathComponent(name).path)
        }
        return folder
    }

    func testExternalLinkIsRefusedBeforeItIsFollowed() throws {
        let folder = try copies(["external_link_weight.h5"])
        let path = folder.appendingPathComponent("external_link_weight.h5").path
        let file = try HDF5File.open(path)
        // The target exists, holds a weight of that name and shape: following would succeed.
        XCTAssertEqual(try HDF5File.open(folder.appendingPathComponent("never_opened_target.h5").path)
            .root.dataset(weight).shape, [24, 4])
        let mentions = ["external link", "reads nothing outside its input"]
        assertRefused(try file.root.dataset(weight), kind: .outsideInput, file: path, path: "/\(weight)", mentions: mentions)
        assertRefused(try file.root.kind(of: weight), kind: .outsideInput, file: path, path: "/\(weight)", mentions: mentions)
        assertRefused(try file.root.datasetPaths(), kind: .outsideInput, file: path, path: "/\(weight)", mentions: mentions)
        // The other weights still read.
        XCTAssertEqual(try file.root.dataset("rnn.weight_hh_l0").shape, [24, 6])
    }

    func testSoftLinkThroughAnExternalLinkIsStoppedByTheCallback() throws {
        let folder = try copies(["soft_link_to_external.h5"])
        let path = folder.appendingPathComponent("soft_link_to_external.h5").path
        let root = try HDF5File.open(path).root
        // The weight's own link is soft; only the library-wide callback sees the external
        // link it leads through.
        assertRefused(try root.dataset(weight), kind: .outsideInput, file: path, path: "/\(weight)",
                      mentions: ["leads through an external link"])
        assertRefused(try root.datasetPaths(), kind: .outsideInput, file: path, path: "/elsewhere",
                      mentions: ["is an external link"])
        XCTAssertFalse(HDF5Library.takeRefusedExternalLink(), "the refusal was taken by the lookup")
    }

    func testExternalStorageIsRefusedWhenTheDatasetOpens() throws {
        for name in ["external_storage_passwd.h5", "external_storage_devzero.h5", "external_storage_fifo.h5"] {
            let path = hostile(name)
            let root = try HDF5File.open(path).root
            XCTAssertEqual(try root.kind(of: weight), .dataset, name)
            assertRefused(try root.dataset(weight), kind: .outsideInput, file: path, path: "/\(weight)",
                          mentions: ["EXTERNAL storage", "reads nothing outside its input"])
        }
        let inputs = hostile("inputs_external_passwd.h5")
        assertRefused(try HDF5File.open(inputs).root.dataset("inputs"), kind: .outsideInput, file: inputs,
                      path: "/inputs", mentions: ["EXTERNAL storage"])
    }

    func testExternalStorageOnAFIFODoesNotHang() throws {
        let folder = try copies(["external_storage_fifo.h5"])
        XCTAssertEqual(mkfifo(folder.appendingPathComponent("hostile.fifo").path, 0o600), 0)
        // The storage names `hostile.fifo` relative to the working folder: be there.
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(folder.path))
        defer { FileManager.default.changeCurrentDirectoryPath(previous) }
        let root = try HDF5File.open("external_storage_fifo.h5").root
        assertRefused(try root.dataset(weight), kind: .outsideInput, file: "external_storage_fifo.h5",
                      path: "/\(weight)", mentions: ["EXTERNAL storage"])
    }

    func testVirtualDatasetIsRefusedWhenItOpens() throws {
        let folder = try copies(["virtual_weight.h5"])
        let path = folder.appendingPathComponent("virtual_weight.h5").path
        let root = try HDF5File.open(path).root
        XCTAssertTrue(try root.datasetPaths().contains(weight))
        assertRefused(try root.dataset(weight), kind: .outsideInput, file: path, path: "/\(weight)",
                      mentions: ["VIRTUAL dataset"])
    }

    func testLinkCyclesAreRefused() throws {
        for name in ["soft_link_cycle.h5", "hard_link_cycle.h5"] {
            let path = hostile(name)
            let root = try HDF5File.open(path).root
            assertRefused(try root.datasetPaths(), kind: .outsideInput, file: path, mentions: ["/loop/", "a cycle"])
            // The weights outside the loop are there as usual.
            XCTAssertEqual(try root.dataset(weight).shape, [24, 4], name)
        }
    }

    func testSoftLinksAreFollowedOnlySoDeep() throws {
        let path = hostile("soft_link_chain.h5")
        let root = try HDF5File.open(path).root
        // chain4 reaches the weight through 16 soft links, chain3 through 17.
        XCTAssertEqual(try root.dataset("chain4").shape, [24, 4])
        XCTAssertEqual(HDF5Library.softLinkLimit, 16)
        assertRefused(try root.dataset("chain3"), kind: .readFailed, file: path, path: "/chain3", mentions: ["cannot open object"])
        XCTAssertThrowsError(try root.datasetPaths())
    }

    func testOnlyRegularFilesAreOpened() throws {
        let folder = try temporaryFolder(self)
        let fifo = folder.appendingPathComponent("model.h5").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        assertRefused(try HDF5File.open(fifo), kind: .cannotOpen, file: fifo, mentions: ["is a FIFO"])
        assertRefused(try HDF5File.open("/dev/null"), kind: .cannotOpen, file: "/dev/null", mentions: ["is a device"])
        assertRefused(try HDF5File.open(folder.path), kind: .cannotOpen, file: folder.path, mentions: ["is a directory"])
        assertRefused(try HDF5File.open(folder.appendingPathComponent("absent.h5").path), kind: .cannotOpen,
                      file: folder.appendingPathComponent("absent.h5").path, mentions: ["no such file"])
    }

    func testFilterPluginLoadingIsOff() {
        XCTAssertFalse(HDF5Library.pluginLoadingEnabled())
    }

    func testObjectPathsInErrorsAreEscaped() {
        let error = HDF5Error(.notFound, file: "model.h5", path: "/a\u{1b}]0;title\u{07}", message: "missing")
        XCTAssertEqual(error.description, "model.h5: /a\\x1b]0;title\\x07: missing")
    }

    // MARK: The fault handler

    func testAFaultCountsAsHDF5sOnlyInsideALockedCallOnThatThread() {
        XCTAssertFalse(LibraryFaults.faultIsInsideHDF5())
        HDF5Library.locked {
            XCTAssertTrue(LibraryFaults.faultIsInsideHDF5())
            HDF5Library.locked { XCTAssertTrue(LibraryFaults.faultIsInsideHDF5()) }
            XCTAssertTrue(LibraryFaults.faultIsInsideHDF5(), "a nested call leaves the outer one marked")
            // Another thread, while this one is inside HDF5, is not.
            let done = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var otherThread = true
            Thread.detachNewThread {
                otherThread = LibraryFaults.faultIsInsideHDF5()
                done.signal()
            }
            done.wait()
            XCTAssertFalse(otherThread)
        }
        XCTAssertFalse(LibraryFaults.faultIsInsideHDF5())
    }

    /// Runs this test bundle again, alone on `helper`, with `RNNKIT_FAULT_HELPER=where`.
    private func runFaultHelper(_ place: String) throws -> (process: Process, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = [place == "hang" ? "HDF5Tests.HostileFileTests/testHangHelper" : "HDF5Tests.HostileFileTests/testFaultHelper"]
        let value = place == "hang" ? "hang-reader" : place
        process.environment = ProcessInfo.processInfo.environment.merging(["RNNKIT_FAULT_HELPER": value]) { $1 }
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process, String(decoding: data, as: UTF8.self))
    }

    func testAFaultOutsideHDF5IsACrashNotADamagedFile() throws {
        let (process, stderr) = try runFaultHelper("outside")
        XCTAssertEqual(process.terminationReason, .uncaughtSignal, stderr)
        XCTAssertEqual(process.terminationStatus, SIGSEGV, stderr)
        XCTAssertFalse(stderr.contains("damaged file"), stderr)
    }

    func testAFaultInsideHDF5IsOneLineAndStatus2() throws {
        let (process, stderr) = try runFaultHelper("inside")
        XCTAssertEqual(process.terminationReason, .exit, stderr)
        XCTAssertEqual(process.terminationStatus, 2, stderr)
        XCTAssertTrue(stderr.hasSuffix("helper: damaged file\n"), stderr)
    }

    /// The subprocess of the two tests above: installs the handler and faults, outside HDF5
    /// or inside a locked call. Skipped when run as an ordinary test.
    func testFaultHelper() throws {
        guard let place = ProcessInfo.processInfo.environment["RNNKIT_FAULT_HELPER"] else {
            throw XCTSkip("runs only as the subprocess of the fault-handler tests")
        }
        LibraryFaults.install(message: "helper: damaged file\n")
        let address = UnsafeMutablePointer<Int>(bitPattern: 16)!
        if place == "inside" {
            HDF5Library.locked { address.pointee = 1 }
        } else {
            address.pointee = 1
        }
        XCTFail("no fault")
    }

    /// A file that makes libhdf5 loop inside one attribute read (found by fuzzing): the
    /// watchdog ends the process with its one line and status 2 once the call overruns.
    func testAnHDF5CallThatNeverEndsIsStoppedByTheWatchdog() throws {
        let start = Date()
        let (process, stderr) = try runFaultHelper("hang")
        XCTAssertEqual(process.terminationReason, .exit, stderr)
        XCTAssertEqual(process.terminationStatus, 2, stderr)
        XCTAssertTrue(stderr.hasSuffix("helper: did not finish\n"), stderr)
        XCTAssertLessThan(Date().timeIntervalSince(start), 8, "the watchdog's limit here is 1 s")
    }

    /// The subprocess of the watchdog test: reads every attribute of a file on which libhdf5
    /// loops for ever, with a 1 s watchdog. Skipped when run as an ordinary test.
    func testHangHelper() throws {
        guard ProcessInfo.processInfo.environment["RNNKIT_FAULT_HELPER"] == "hang-reader" else {
            throw XCTSkip("runs only as the subprocess of the watchdog test")
        }
        LibraryFaults.watch(calls: 1, message: "helper: did not finish\n")
        let file = try HDF5File.open(fixture("fuzz/library-hangs/FuzzHDF5Model/h5hg_protect_loop_1.h5"))
        func readAll(_ group: HDF5Group, depth: Int) throws {
            for name in try group.attributeNames() { _ = try? group.attribute(name) }
            guard depth < 4 else { return }
            for name in try group.memberNames() where (try? group.kind(of: name)) == .group {
                try readAll(group.group(name), depth: depth + 1)
            }
        }
        try readAll(file.root, depth: 0)
        XCTFail("the file was read to the end: it no longer makes libhdf5 loop")
    }
}
