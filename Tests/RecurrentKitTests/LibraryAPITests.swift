import Foundation
import XCTest
import TestSupport
import RecurrentKit

/// The README's library example, compiled and run as written there, and the promises of the
/// public API: one error type that keeps its cause, tensors that cannot be inconsistent, one
/// shape of type for initial and final states.
final class LibraryAPITests: XCTestCase {
    func testReadmeExample() throws {
        let path = fixture("pytorch/lstm_bidir_2layer_lengths.h5")
        // --- README example begins ---
        let model = try LoadedModel(contentsOf: path)
        let features = model.inputFeatures!
        // Two sequences of 5 and 3 steps, right-padded to 5: [batch, time, features].
        let x = try Tensor(shape: [2, 5, features], values: (0..<(2 * 5 * features)).map { Float($0 % 7) / 7 })
        let result = try model.run(.features(x), lengths: [5, 3])
        print(result.output.shape)             // [2, 5, 2 × hidden]
        print(result.finalStates[0].h.shape)   // [2 directions, 2, hidden]: one state per layer
        print(result.hN!.shape)                // [layers × directions, 2, hidden]: PyTorch's h_n
        // --- README example ends ---
        let hidden = model.recurrentLayers[0].hiddenSize
        XCTAssertEqual(result.output.shape, [2, 5, 2 * hidden])
        XCTAssertEqual(result.finalStates.count, 2)
        XCTAssertEqual(result.finalStates[0].h.shape, [2, 2, hidden])
        XCTAssertEqual(result.hN?.shape, [4, 2, hidden])
        XCTAssertEqual(result.cN?.shape, [4, 2, hidden])
        // Packed-sequence semantics: nothing past a sequence's length.
        let row = 2 * hidden
        XCTAssertTrue(result.output.values[(5 + 3) * row ..< (5 + 5) * row].allSatisfy { $0 == 0 })
        // The real framework's numbers for the fixture's own input.
        let verification = try Verification(model: model, fixture: Fixture(contentsOf: fixture("pytorch/lstm_bidir_2layer_lengths.fixture.h5")))
        XCTAssertEqual(verification.comparisons.map(\.name).sorted(), ["c_n", "h_n", "output"])
        XCTAssertTrue(verification.passed)
    }

    /// Feeding a sequence in chunks through a stream gives the full run's outputs.
    /// The DocC article's many-fixtures example (Verifying.md), with the fixture folders and
    /// the report in a temporary folder.
    func testVerifyingArticleExample() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("docc-verify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let report = folder.appendingPathComponent("report.xml").path
        // --- Verifying.md example begins ---
        let cases = try VerificationSuite.cases(in: [fixture("pytorch"), fixture("keras")])
        let results = cases.map { VerificationSuite.run($0) }
        let summary = SuiteSummary(results)
        print(summary.line)                       // 74 passed, 0 failed, 0 errors
        try VerificationReports.write(VerificationReports.junit(results), to: report,
                                      protecting: cases.map(\.fixture))
        // --- Verifying.md example ends ---
        let expected = try ["pytorch", "keras"].map { folder in
            try FileManager.default.contentsOfDirectory(atPath: fixture(folder)).filter { $0.hasSuffix(".fixture.h5") }.count
        }.reduce(0, +)
        XCTAssertEqual(summary.line, "\(expected) passed, 0 failed, 0 errors")
        XCTAssertEqual(summary.exitStatus, 0)
        let xml = try String(contentsOfFile: report, encoding: .utf8)
        XCTAssertEqual(xml.components(separatedBy: "<testcase ").count - 1, expected)
    }

    func testStreamingMatchesFullRun() throws {
        for name in ["lstm_proj", "gru_basic", "rnn_tanh", "lstm_basic"] {
            let model = try LoadedModel(contentsOf: fixture("pytorch/\(name).h5"))
            let fixtureData = try Fixture(contentsOf: fixture("pytorch/\(name).fixture.h5"))
            guard case let .features(x) = fixtureData.input else { return XCTFail(name) }
            let (batch, time, features) = (x.shape[0], x.shape[1], x.shape[2])
            let full = try model.run(.features(x))
            let stream = try model.makeStream(batch: batch)
            var streamed: [[Float]] = Array(repeating: [], count: batch)
            var start = 0
            for size in [1, 2, time] where start < time {
                let end = min(time, start + size)
                var chunk: [Float] = []
                for b in 0..<batch { chunk += x.values[(b * time + start) * features ..< (b * time + end) * features] }
                let out = try stream.step(.features(Tensor(shape: [batch, end - start, features], values: chunk)))
                let width = out.shape[2]
                for b in 0..<batch { streamed[b] += out.values[b * (end - start) * width ..< (b + 1) * (end - start) * width] }
                start = end
            }
            let joined = try Tensor(shape: full.output.shape, values: streamed.flatMap { $0 })
            XCTAssertTrue(Comparison(name: name, actual: joined, expected: full.output, atol: 1e-6, rtol: 1e-6).passed, name)
            XCTAssertEqual(stream.states, full.finalStates, name)
        }
    }

    /// A run's final states are the next run's initial states: the same type in and out.
    /// Two halves of a sequence, the second started from the first's final states, give the
    /// whole run's second half and final states.
    func testFinalStatesContinueARun() throws {
        let model = try LoadedModel(contentsOf: fixture("pytorch/gru_initial_state.h5"))
        let fixtureData = try Fixture(contentsOf: fixture("pytorch/gru_initial_state.fixture.h5"))
        guard case let .features(x) = fixtureData.input else { return XCTFail("features expected") }
        let (batch, time, features) = (x.shape[0], x.shape[1], x.shape[2])
        let initial = try model.initialStates(h0: fixtureData.h0, c0: fixtureData.c0, batch: batch)
        let whole = try model.run(.features(x), initialStates: initial)
        func steps(_ range: Range<Int>) throws -> Tensor {
            var values: [Float] = []
            for b in 0..<batch { values += x.values[(b * time + range.lowerBound) * features ..< (b * time + range.upperBound) * features] }
            return try Tensor(shape: [batch, range.count, features], values: values)
        }
        let half = time / 2
        let first = try model.run(.features(steps(0..<half)), initialStates: initial)
        let second = try model.run(.features(steps(half..<time)), initialStates: first.finalStates)
        XCTAssertEqual(second.finalStates, whole.finalStates)
        let width = whole.output.shape[2]
        var tail: [Float] = []
        for b in 0..<batch { tail += whole.output.values[(b * time + half) * width ..< (b + 1) * time * width] }
        XCTAssertEqual(second.output.values, tail)
        // The whole run, from the fixture's states, computes what PyTorch computed.
        XCTAssertNil(fixtureData.lengths, "the fixture runs every step")
        XCTAssertNotNil(initial, "the fixture gives initial states")
        let expected = try XCTUnwrap(fixtureData.expected.first { $0.name == "output" }?.tensor)
        XCTAssertTrue(Comparison(name: "output", actual: whole.output, expected: expected, atol: 1e-5, rtol: 1e-4).passed)
    }

    /// A tensor's shape is checked once, when it is made; both fields are constants.
    func testTensorValidatesItsShape() throws {
        XCTAssertEqual(try Tensor(shape: [2, 3], values: Array(repeating: 1, count: 6)).count, 6)
        XCTAssertEqual(try Tensor(shape: [4, 0, 2], values: []).count, 0)
        XCTAssertEqual(try Tensor(zeros: [2, 2]).values, [0, 0, 0, 0])
        let refusals: [(() throws -> Tensor, String)] = [
            ({ try Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5]) }, "tensor shape [2, 3] holds 6 values, 5 given"),
            ({ try Tensor(shape: [2, -3], values: []) }, "tensor shape [2, -3] has a negative dimension or more elements than Int.max"),
            ({ try Tensor(shape: [1 << 40, 1 << 40], values: []) }, "tensor shape [1099511627776, 1099511627776] has a negative dimension or more elements than Int.max"),
            ({ try Tensor(zeros: [-1]) }, "tensor shape [-1] has a negative dimension or more elements than Int.max"),
        ]
        for (make, message) in refusals {
            XCTAssertThrowsError(try make()) { error in
                let error = error as? ModelError
                XCTAssertEqual(error?.kind, .invalidInput)
                XCTAssertNil(error?.file)
                XCTAssertEqual(error?.description, message)
            }
        }
    }

    /// Every failure reaches the caller as a `ModelError` that keeps the file, the object
    /// path, the layer and the kind, with one stable line.
    func testOneErrorTypeKeepsItsCause() throws {
        // HDF5's own failure: the file and HDF5's message, as an unreadable file.
        let truncated = fixture("hdf5/truncated.h5")
        XCTAssertThrowsError(try LoadedModel(contentsOf: truncated)) { error in
            guard let error = error as? ModelError else { return XCTFail("\(type(of: error)): \(error)") }
            XCTAssertEqual(error.kind, .unreadableFile)
            XCTAssertEqual(error.file, truncated)
            XCTAssertTrue(error.description.hasPrefix("\(truncated): not a readable HDF5 file (HDF5: "), error.description)
        }
        let random = fixture("hdf5/random.h5")
        XCTAssertThrowsError(try Fixture(contentsOf: random)) { error in
            XCTAssertEqual((error as? ModelError)?.kind, .unreadableFile, "\(error)")
        }
        // The engine's refusal of an input: the file and the layer, as an invalid input.
        let path = fixture("pytorch/lstm_basic.h5")
        let model = try LoadedModel(contentsOf: path)
        let features = try XCTUnwrap(model.inputFeatures)
        XCTAssertThrowsError(try model.run(.features(Tensor(zeros: [2, 3, features + 1])))) { error in
            guard let error = error as? ModelError else { return XCTFail("\(type(of: error)): \(error)") }
            XCTAssertEqual(error.kind, .invalidInput)
            XCTAssertEqual(error.file, path)
            XCTAssertEqual(error.layer, "rnn (LSTM)")
            XCTAssertEqual(error.description, "\(path): layer rnn (LSTM): input has \(features + 1) features, expected \(features) (input size)")
        }
        // States of the wrong shape, given directly or in PyTorch's stacked form.
        XCTAssertThrowsError(try model.run(.features(Tensor(zeros: [2, 3, features])),
                                           initialStates: [RecurrentState(h: Tensor(zeros: [1, 3, 1]))])) { error in
            XCTAssertEqual((error as? ModelError)?.kind, .invalidInput, "\(error)")
        }
        XCTAssertThrowsError(try model.initialStates(h0: Tensor(zeros: [1, 3, 1]), c0: nil, batch: 2)) { error in
            XCTAssertEqual((error as? ModelError)?.path, "h0", "\(error)")
        }
        // A stream refuses a model that is not causal, naming the layer.
        let bidirectional = try LoadedModel(contentsOf: fixture("pytorch/lstm_bidir_2layer_lengths.h5"))
        XCTAssertThrowsError(try bidirectional.makeStream(batch: 1)) { error in
            XCTAssertEqual((error as? ModelError)?.layer, "rnn (LSTM, layer 0)", "\(error)")
        }
        // A conversion that cannot be exact: refused as unsupported, naming the input.
        let folder = try temporaryFolder(self)
        XCTAssertThrowsError(try Converter.convert(fixture("pytorch/lstm_proj.h5"), to: .keras,
                                                   output: folder.appendingPathComponent("proj.h5").path)) { error in
            guard let error = error as? ModelError else { return XCTFail("\(type(of: error)): \(error)") }
            XCTAssertEqual(error.file, fixture("pytorch/lstm_proj.h5"))
            XCTAssertTrue(error.description.contains("proj_size"), error.description)
        }
    }
}
