// Streaming in chunks must reproduce one full run exactly.

import XCTest
@testable import RecurrentEngine

final class StreamingTests: XCTestCase {
    /// Splits `[B, T, F]` into chunks of the given step counts.
    private func chunks(_ x: Tensor, sizes: [Int]) -> [Tensor] {
        let batch = x.shape[0], time = x.shape[1], f = x.shape[2]
        var start = 0
        return sizes.map { n in
            var values: [Float] = []
            for b in 0..<batch {
                values += x.values[((b * time + start) * f)..<((b * time + start + n) * f)]
            }
            start += n
            return Tensor(unchecked: [batch, n, f], values: values)
        }
    }

    /// Concatenates `[B, t_i, F]` outputs along time.
    private func concatenated(_ parts: [Tensor]) -> Tensor {
        let batch = parts[0].shape[0], f = parts[0].shape[2]
        let time = parts.map { $0.shape[1] }.reduce(0, +)
        var values: [Float] = []
        for b in 0..<batch {
            for part in parts {
                let n = part.shape[1]
                values += part.values[(b * n * f)..<((b + 1) * n * f)]
            }
        }
        return Tensor(unchecked: [batch, time, f], values: values)
    }

    func testChunksMatchFullRunForEveryCell() throws {
        var rng = SeededGenerator(seed: 11)
        for variant in CellVariant.allCases {
            let first = randomLayer(variant, inputSize: 3, hiddenSize: 5, using: &rng)
            let second = randomLayer(variant, inputSize: first.mergedOutputSize, hiddenSize: 4, using: &rng)
            let model = Model(layers: [
                .recurrent(first), .recurrent(second),
                .dense(Dense(weight: rng.tensor([2, second.mergedOutputSize]), bias: rng.tensor([2]), activation: .softmax)),
            ])
            let engine = try Engine(model: model)
            let x = rng.tensor([3, 11, 3], scale: 1.5)
            let initial = engine.recurrentLayers.map { layer in
                RecurrentState(h: rng.tensor([1, 3, layer.outputSize]),
                               c: layer.kind == .lstm ? rng.tensor([1, 3, layer.hiddenSize]) : nil)
            }
            let full = try engine.run(.features(x), initialStates: initial)

            // On two threads the two layers run as a pipeline (batch 3): the same bits.
            for sizes in [[11], [1, 10], [4, 0, 4, 3], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]] {
                for threads in [1, 2] {
                    let session = try engine.makeStreamingSession(batch: 3, initialStates: initial, threads: threads)
                    let outputs = try chunks(x, sizes: sizes).map { try session.step(.features($0)) }
                    let streamed = concatenated(outputs)
                    XCTAssertEqual(streamed.shape, full.output.shape)
                    assertClose(streamed.values, full.output.values, tolerance: 0, "\(variant) chunks \(sizes) threads \(threads)")
                    XCTAssertEqual(session.states, full.finalStates, "\(variant) chunks \(sizes) threads \(threads)")
                }
            }
        }
    }

    func testChunksMatchWithMaskingAndCarry() throws {
        // A masked stretch crossing a chunk boundary: .carry must repeat the output across it.
        var rng = SeededGenerator(seed: 12)
        let layer = randomLayer(.lstm, inputSize: 2, hiddenSize: 3, maskedOutput: .carry, using: &rng)
        let engine = try Engine(model: Model(layers: [.masking(maskValue: 0), .recurrent(layer)]))
        var values = rng.tensor([2, 8, 2], scale: 1).values
        for t in [0, 3, 4, 5] { values[(0 * 8 + t) * 2] = 0; values[(0 * 8 + t) * 2 + 1] = 0 }
        for t in [6, 7] { values[(1 * 8 + t) * 2] = 0; values[(1 * 8 + t) * 2 + 1] = 0 }
        let x = try Tensor(shape: [2, 8, 2], values: values)
        let full = try engine.run(.features(x))
        let session = try engine.makeStreamingSession(batch: 2)
        let outputs = try chunks(x, sizes: [2, 2, 3, 1]).map { try session.step(.features($0)) }
        assertClose(concatenated(outputs).values, full.output.values, tolerance: 0)
        XCTAssertEqual(session.states, full.finalStates)
    }

    func testTokenChunks() throws {
        var rng = SeededGenerator(seed: 13)
        let layer = randomLayer(.gruAfter, inputSize: 3, hiddenSize: 4, maskedOutput: .carry, using: &rng)
        let engine = try Engine(model: Model(layers: [
            .embedding(Embedding(table: rng.tensor([6, 3]), maskZero: true)), .recurrent(layer),
        ]))
        let ids = [1, 2, 0, 0, 5, 3, 4, 4, 0, 1, 2, 3]
        let full = try engine.run(.tokens(ids: ids, batch: 2, time: 6))
        let session = try engine.makeStreamingSession(batch: 2)
        let a = try session.step(.tokens(ids: [1, 2, 0, 4, 4, 0], batch: 2, time: 3))
        let b = try session.step(.tokens(ids: [0, 5, 3, 1, 2, 3], batch: 2, time: 3))
        assertClose(concatenated([a, b]).values, full.output.values, tolerance: 0)
    }

    func testRefusesNonCausalModels() throws {
        var rng = SeededGenerator(seed: 14)
        let bidirectional = randomLayer(.lstm, inputSize: 2, hiddenSize: 2, directions: 2, using: &rng)
        let backwards = randomLayer(.gruAfter, inputSize: 2, hiddenSize: 2, goBackwards: true, using: &rng)
        let lastOnly = randomLayer(.rnnTanh, inputSize: 2, hiddenSize: 2, returnSequences: false, using: &rng)
        let plain = randomLayer(.rnnTanh, inputSize: 2, hiddenSize: 2, using: &rng)
        let cases: [([Layer], [String])] = [
            ([.recurrent(plain), .recurrent(randomLayer(.lstm, inputSize: 2, hiddenSize: 2, directions: 2, using: &rng))],
             ["layer 1", "bidirectional"]),
            ([.recurrent(bidirectional)], ["layer 0", "bidirectional"]),
            ([.recurrent(backwards)], ["layer 0", "goBackwards"]),
            ([.recurrent(lastOnly)], ["layer 0", "returnSequences"]),
            ([.recurrent(plain), .readout(.meanOverValidSteps)], ["layer 1", "readout"]),
            ([.recurrent(plain), .flatten], ["layer 1", "flatten"]),
        ]
        for (layers, fragments) in cases {
            let engine = try Engine(model: Model(layers: layers))
            assertEngineError(try engine.makeStreamingSession(batch: 1), contains: fragments)
        }
    }

    func testRejectsWrongChunkBatchAndKeepsState() throws {
        var rng = SeededGenerator(seed: 15)
        let engine = try Engine(model: Model(layers: [.recurrent(randomLayer(.lstm, inputSize: 2, hiddenSize: 2, using: &rng))]))
        let session = try engine.makeStreamingSession(batch: 2)
        _ = try session.step(.features(rng.tensor([2, 3, 2])))
        let before = session.states
        assertEngineError(try session.step(.features(rng.tensor([1, 3, 2]))), contains: ["batch 1", "batch 2"])
        assertEngineError(try session.step(.features(rng.tensor([2, 3, 5]))), contains: ["layer 0", "5 features"])
        XCTAssertEqual(session.states, before)
        try session.reset()
        XCTAssertEqual(session.states, engine.zeroStates(batch: 2))
    }
}
