import Foundation
import XCTest
import TestSupport
import RecurrentKit

/// The README's library example, compiled and run as written there.
final class LibraryAPITests: XCTestCase {
    func testReadmeExample() throws {
        let path = fixture("pytorch/lstm_bidir_2layer_lengths.h5")
        // --- README example begins ---
        let model = try LoadedModel(contentsOf: path)
        let inputSize = model.recurrentLayers[0].inputSize
        // Two sequences of 5 and 3 steps, right-padded to 5: [batch, time, features].
        let x = Tensor(shape: [2, 5, inputSize], values: (0..<(2 * 5 * inputSize)).map { Float($0 % 7) / 7 })
        let result = try model.run(.features(x), lengths: [5, 3])
        print(result.output.shape)   // [2, 5, 2 × hidden]
        print(result.hN!.shape)      // [layers × directions, 2, hidden]
        // --- README example ends ---
        let hidden = model.recurrentLayers[0].hiddenSize
        XCTAssertEqual(result.output.shape, [2, 5, 2 * hidden])
        XCTAssertEqual(result.hN?.shape, [4, 2, hidden])
        XCTAssertEqual(result.cN?.shape, [4, 2, hidden])
        // Packed-sequence semantics: nothing past a sequence's length.
        let row = 2 * hidden
        XCTAssertTrue(result.output.values[(5 + 3) * row ..< (5 + 5) * row].allSatisfy { $0 == 0 })
    }

    /// Feeding a sequence in chunks through a streaming session gives the full run's outputs.
    func testStreamingMatchesFullRun() throws {
        for name in ["lstm_proj", "gru_basic", "rnn_tanh", "lstm_basic"] {
            let model = try LoadedModel(contentsOf: fixture("pytorch/\(name).h5"))
            let fixtureData = try Fixture(contentsOf: fixture("pytorch/\(name).fixture.h5"))
            guard case let .features(x) = fixtureData.input else { return XCTFail(name) }
            let (batch, time, features) = (x.shape[0], x.shape[1], x.shape[2])
            let full = try model.run(.features(x))
            let session = try model.engine.makeStreamingSession(batch: batch)
            var streamed: [[Float]] = Array(repeating: [], count: batch)
            var start = 0
            for size in [1, 2, time] where start < time {
                let end = min(time, start + size)
                var chunk: [Float] = []
                for b in 0..<batch { chunk += x.values[(b * time + start) * features ..< (b * time + end) * features] }
                let out = try session.step(.features(Tensor(shape: [batch, end - start, features], values: chunk)))
                let width = out.shape[2]
                for b in 0..<batch { streamed[b] += out.values[b * (end - start) * width ..< (b + 1) * (end - start) * width] }
                start = end
            }
            let joined = Tensor(shape: full.output.shape, values: streamed.flatMap { $0 })
            XCTAssertTrue(Comparison(name: name, actual: joined, expected: full.output, atol: 1e-6, rtol: 1e-6).passed, name)
        }
    }
}
