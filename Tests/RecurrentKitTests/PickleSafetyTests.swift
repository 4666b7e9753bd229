import Foundation
import TestSupport
import XCTest
@testable import RecurrentKit

/// Hostile and damaged pickles: each is refused with one line, nothing it names is ever
/// called (a payload that would create a marker file leaves none), and nothing traps.
final class PickleSafetyTests: XCTestCase {
    /// A protocol 2 pickle calling `module.name(argument)`: GLOBAL, the argument, REDUCE.
    private func callPickle(_ module: String, _ name: String, _ argument: String, stackGlobal: Bool = false) -> [UInt8] {
        func unicode(_ text: String) -> [UInt8] {
            let utf8 = Array(text.utf8)
            return [0x58] + (0..<4).map { UInt8(truncatingIfNeeded: utf8.count >> (8 * $0)) } + utf8
        }
        let global = stackGlobal ? unicode(module) + unicode(name) + [0x93] : [0x63] + Array("\(module)\n\(name)\n".utf8)
        return [0x80, stackGlobal ? 4 : 2] + global + unicode(argument) + [0x85, 0x52, 0x2E]
    }

    /// `pickle` as a torch.save archive's `data.pkl`, beside `version` and `byteorder`.
    private func archive(_ pickle: [UInt8], in folder: URL, name: String = "a.pt",
                         extra: [(String, [UInt8])] = []) throws -> String {
        let path = folder.appendingPathComponent(name).path
        let zip = try ZipWriter(creating: path)
        try zip.add("archive/data.pkl", pickle)
        try zip.add("archive/byteorder", Array("little".utf8))
        try zip.add("archive/version", Array("3\n".utf8))
        for (member, bytes) in extra { try zip.add(member, bytes) }
        try zip.finish()
        return path
    }

    private func assertRefused(_ body: () throws -> Any, naming parts: [String], _ message: String = "",
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), message, file: file, line: line) { error in
            let text = "\(error)"
            for part in parts { XCTAssertTrue(text.contains(part), "\(message): \(text)", file: file, line: line) }
            XCTAssertFalse(text.contains("\n"), text, file: file, line: line)
            XCTAssertTrue(error is ModelError, file: file, line: line)
        }
    }

    func testDangerousGlobalsAreRefusedByNameWithNoSideEffect() throws {
        let folder = try temporaryFolder(self)
        let marker = folder.appendingPathComponent("marker").path
        let globals = [("os", "system"), ("posix", "system"), ("nt", "system"), ("builtins", "eval"), ("builtins", "exec"),
                       ("subprocess", "Popen"), ("builtins", "getattr"), ("builtins", "__import__"), ("mymodule", "do")]
        for (module, name) in globals {
            for stackGlobal in [false, true] {
                let pickle = callPickle(module, name, "touch \(marker)", stackGlobal: stackGlobal)
                let parts = ["'\(module).\(name)'", "never imports or calls"]
                assertRefused({ try TorchSaveFile.read(bytes: pickle, name: "bare.pkl") }, naming: parts, "bare \(module).\(name)")
                let path = try archive(pickle, in: folder, name: "\(module)-\(name)-\(stackGlobal).pt")
                assertRefused({ try TorchSaveFile.read(path) }, naming: parts + ["archive/data.pkl"], "zip \(module).\(name)")
                XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "\(module).\(name) ran")
            }
        }
        // Python 2's module name for builtins is named as builtins.
        assertRefused({ try TorchSaveFile.read(bytes: self.callPickle("__builtin__", "eval", "1"), name: "p") },
                      naming: ["'builtins.eval'"])
    }

    func testHostileFilesWrittenByPythonsPicklerAreRefused() throws {
        for (name, global) in [("hostile_posix_system.pt", "posix.system"), ("hostile_eval.pt", "builtins.eval")] {
            assertRefused({ try TorchSaveFile.read(fixture("pytorch-files/unit/\(name)")) },
                          naming: ["'\(global)'", "never imports or calls", "data.pkl"], name)
        }
    }

    func testModelClassesAreRefusedAsWholeModules() throws {
        for (module, name) in [("__main__", "Net"), ("torch.nn.modules.linear", "Linear"), ("mypackage.models", "Encoder")] {
            assertRefused({ try TorchSaveFile.read(bytes: self.callPickle(module, name, "x"), name: "m.pt") },
                          naming: ["'\(module).\(name)'", "whole pickled module", "torch.save(model.state_dict(), \"m.pt\")"])
        }
    }

    func testAFileStringWithTerminalEscapesIsShownEscaped() throws {
        let pickle = callPickle("os\u{1B}[31m", "system", "x")
        XCTAssertThrowsError(try TorchSaveFile.read(bytes: pickle, name: "p")) { error in
            XCTAssertFalse("\(error)".contains("\u{1B}"), "\(error)")
        }
    }

    func testDamagedPicklesAreRefused() throws {
        let cases: [(String, [UInt8], String)] = [
            ("BINGET of an unset index", [0x80, 2, 0x68, 5, 0x2E], "never set"),
            ("LONG_BINGET of an unset index", [0x80, 2, 0x6A, 0xFF, 0xFF, 0xFF, 0xFF, 0x2E], "never set"),
            ("huge BINUNICODE", [0x80, 2, 0x58, 0xFF, 0xFF, 0xFF, 0x7F, 0x2E], "declares 2147483647 bytes"),
            ("huge BINBYTES8", [0x80, 2, 0x8E] + [UInt8](repeating: 0xFF, count: 8) + [0x2E], "declares"),
            ("negative BINSTRING", [0x80, 2, 0x54, 0xFF, 0xFF, 0xFF, 0xFF], "negative length"),
            ("huge FRAME", [0x80, 4, 0x95] + [UInt8](repeating: 0xEE, count: 8), "declares"),
            ("LONG1 past 64 bits", [0x80, 2, 0x8A, 9] + [UInt8](repeating: 1, count: 9) + [0x2E], "64 bits"),
            ("LONG4 huge", [0x80, 2, 0x8B, 0, 0, 0, 0x40, 0x2E], "declares"),
            ("REDUCE on an empty stack", [0x80, 2, 0x52, 0x2E], "underflow"),
            ("STOP on an empty stack", [0x80, 2, 0x2E], "underflow"),
            ("APPEND to a non-list", [0x80, 2, 0x4E, 0x4E, 0x61, 0x2E], "not a list"),
            ("SETITEMS without MARK", [0x80, 2, 0x7D, 0x75, 0x2E], "MARK"),
            ("TUPLE across a MARK", [0x80, 2, 0x4E, 0x28, 0x86, 0x2E], "underflow"),
            ("truncated", [0x80, 2, 0x4A, 1], "truncated"),
            ("no STOP", [0x80, 2, 0x4E], "STOP"),
            ("protocol 0 INT", [0x80, 2, 0x49] + Array("1\n.".utf8), "INT (0x49)"),
            ("INST", [0x80, 2, 0x69] + Array("os\nsystem\n.".utf8), "INST (0x69)"),
            ("NEWOBJ_EX", [0x80, 4, 0x92, 0x2E], "NEWOBJ_EX"),
            ("unknown opcode", [0x80, 2, 0xFF, 0x2E], "unknown opcode 0xff"),
            ("protocol 9", [0x80, 9, 0x4E, 0x2E], "protocol 9"),
            ("REDUCE of a string", [0x80, 2, 0x4E, 0x29, 0x52, 0x2E], "calls None"),
            ("a list as a dict key", [0x80, 2, 0x7D, 0x5D, 0x4E, 0x73, 0x2E], "dict key"),
            ("BUILD on a list", [0x80, 2, 0x5D, 0x7D, 0x62, 0x2E], "BUILD"),
            ("persistent id that is not a storage", [0x80, 2, 0x4E, 0x51, 0x2E], "persistent id"),
        ]
        for (label, pickle, part) in cases {
            assertRefused({ try PickleMachine.run(pickle, file: "f", location: "data.pkl") }, naming: [part], label)
            // The same inside an archive, through the public entry point.
            assertRefused({ try TorchSaveFile.read(try self.archive(pickle, in: try temporaryFolder(self))) },
                          naming: [part], label)
        }
    }

    func testBoundsOnNestingValuesAndOperations() throws {
        // A tuple nested 100 deep.
        let deep: [UInt8] = [0x80, 2, 0x29] + [UInt8](repeating: 0x85, count: 100) + [0x2E]
        assertRefused({ try PickleMachine.run(deep, file: "f", location: "p") }, naming: ["Limits.pickleNesting"])
        // A list appended to itself: a cycle, no recursion, no trap.
        let cycle: [UInt8] = [0x80, 2, 0x5D, 0x71, 0, 0x68, 0, 0x61, 0x2E]
        XCTAssertNoThrow(try PickleMachine.run(cycle, file: "f", location: "p"))
        // More values than the bound, pushed one byte each.
        let many: [UInt8] = [0x80, 2] + [UInt8](repeating: 0x4E, count: Limits.pickleValues + 1) + [0x2E]
        assertRefused({ try PickleMachine.run(many, file: "f", location: "p") }, naming: ["Limits.pickleValues"])
        // More opcodes than the bound, each a cheap POP of what DUP pushed.
        let busy: [UInt8] = [0x80, 2, 0x4E] + Array([[UInt8]](repeating: [0x32, 0x30], count: Limits.pickleOperations / 2 + 1).joined()) + [0x2E]
        assertRefused({ try PickleMachine.run(busy, file: "f", location: "p") }, naming: ["Limits.pickleOperations"])
    }

    func testTensorsOutsideTheirStorageAndDamagedArchivesAreRefused() throws {
        let folder = try temporaryFolder(self)
        // A state_dict with one float tensor of shape [2, 3] over a storage of `numel` floats.
        func stateDict(numel: Int, offset: Int = 0, stride: [Int] = [3, 1]) -> [UInt8] {
            var pickle = PickleWriter()
            pickle.emptyOrderedDict()
            pickle.mark()
            pickle.string("lstm.weight_ih_l0")
            pickle.global("torch._utils", "_rebuild_tensor_v2")
            pickle.mark()
            pickle.mark()
            pickle.string("storage")
            pickle.global("torch", "FloatStorage")
            pickle.string("0")
            pickle.string("cpu")
            pickle.int(numel)
            pickle.tupleFromMark()
            pickle.persistentID()
            pickle.int(offset)
            pickle.intTuple([2, 3])
            pickle.intTuple(stride)
            pickle.bool(false)
            pickle.emptyOrderedDict()
            pickle.tupleFromMark()
            pickle.reduce()
            pickle.setItems()
            pickle.stop()
            return pickle.bytes
        }
        func file(_ pickle: [UInt8], storage: [UInt8], name: String, extra: [(String, [UInt8])] = []) throws -> String {
            try archive(pickle, in: folder, name: name, extra: [("archive/data/0", storage)] + extra)
        }
        let six = [UInt8](repeating: 0, count: 24)
        XCTAssertNoThrow(try TorchSaveFile.read(try file(stateDict(numel: 6), storage: six, name: "ok.pt")))
        assertRefused({ try TorchSaveFile.read(try file(stateDict(numel: 6, offset: 1), storage: six, name: "o.pt")) },
                      naming: ["state_dict key 'lstm.weight_ih_l0'", "reaches element 6"])
        assertRefused({ try TorchSaveFile.read(try file(stateDict(numel: 6, stride: [4, 1]), storage: six, name: "s.pt")) },
                      naming: ["state_dict key 'lstm.weight_ih_l0'", "reaches element"])
        assertRefused({ try TorchSaveFile.read(try file(stateDict(numel: 6, stride: [-3, 1]), storage: six, name: "n.pt")) },
                      naming: ["negative stride"])
        assertRefused({ try TorchSaveFile.read(try file(stateDict(numel: Int.max / 2), storage: six, name: "h.pt")) },
                      naming: ["Limits.torchStorageBytes"])
        assertRefused({ try TorchSaveFile.read(try file(stateDict(numel: 6), storage: Array(six.prefix(20)), name: "short.pt")) },
                      naming: ["archive/data/0", "20 bytes"])
        assertRefused({ try TorchSaveFile.read(try self.archive(stateDict(numel: 6), in: folder, name: "missing.pt")) },
                      naming: ["archive/data/0", "missing"])
        assertRefused({ try TorchSaveFile.read(try file(stateDict(numel: 6), storage: six, name: "dup.pt",
                                                       extra: [("archive/data/0", six)])) },
                      naming: ["appears twice"])
        assertRefused({ try TorchSaveFile.read(try file(stateDict(numel: 6), storage: six, name: "out.pt",
                                                       extra: [("other/x", [])])) },
                      naming: ["other/x", "outside"])
        // Every proper prefix of a good pickle is refused.
        let good = stateDict(numel: 6)
        for length in 0..<good.count {
            assertRefused({ try PickleMachine.run(Array(good.prefix(length)), file: "f", location: "p") }, naming: ["f: p"],
                          "prefix \(length)")
        }
    }

    func testMutatedFilesNeverTrap() throws {
        // Every prefix of a real data.pkl, and single-byte changes all through a real archive:
        // each is read or refused with a ModelError, never a trap.
        var generator = SystemRandomNumberGenerator()
        for name in ["views.pt", "views_deflated.pt"] {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture("pytorch-files/unit/\(name)"))))
            for index in stride(from: 0, to: bytes.count, by: 3) {
                var mutated = bytes
                mutated[index] = UInt8.random(in: 0...255, using: &generator)
                do { _ = try TorchSaveFile.read(bytes: mutated, name: "m.pt") } catch { XCTAssertTrue(error is ModelError, "\(error)") }
            }
        }
        let checkpoint = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture("pytorch-files/unit/checkpoint_adam.pt"))))
        for length in stride(from: 0, to: checkpoint.count, by: 7) {
            do { _ = try TorchSaveFile.read(bytes: Array(checkpoint.prefix(length)), name: "t.pt") } catch {
                XCTAssertTrue(error is ModelError, "\(error)")
            }
        }
    }
}
