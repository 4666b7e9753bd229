// Properties that hold by the definition of masks, directions, merges and readouts.

import XCTest
@testable import RecurrentEngine

final class SemanticsTests: XCTestCase {
    /// A padded row equals that row run alone over its own steps, and is zero after them
    /// (PyTorch packed sequences), in both directions.
    func testLengthsMatchTruncatedRowsAlone() throws {
        var rng = SeededGenerator(seed: 21)
        for variant in CellVariant.allCases {
            for directions in 1...2 {
                let model = randomStack(variant, inputSize: 3, hiddenSize: 4, layers: 2, directions: directions, using: &rng)
                let engine = try Engine(model: model)
                let x = rng.tensor([4, 6, 3], scale: 2)  // padded steps hold garbage on purpose
                let lengths = [6, 2, 0, 5]
                let batched = try engine.run(.features(x), lengths: lengths)
                let f = batched.output.shape[2]
                for (b, n) in lengths.enumerated() {
                    let alone = try engine.run(.features(row(x, b, steps: n)))
                    for t in 0..<6 {
                        let expected = t < n ? step(alone.output, 0, t) : [Float](repeating: 0, count: f)
                        assertClose(step(batched.output, b, t), expected, tolerance: 1e-6, "\(variant) D=\(directions) b=\(b) t=\(t)")
                    }
                    for (k, state) in batched.finalStates.enumerated() {
                        let d = state.h.shape[0], r = state.h.shape[2]
                        for dir in 0..<d {
                            let got = Array(state.h.values[((dir * 4 + b) * r)..<((dir * 4 + b + 1) * r)])
                            let want = Array(alone.finalStates[k].h.values[(dir * r)..<((dir + 1) * r)])
                            assertClose(got, want, tolerance: 1e-6, "\(variant) final h layer \(k) dir \(dir) b=\(b)")
                        }
                    }
                }
            }
        }
    }

    /// The backward half of a bidirectional layer is a forward layer over the reversed input,
    /// read back in time order; the forward half is the forward layer alone.
    func testBackwardDirectionIsForwardOverReversedInput() throws {
        var rng = SeededGenerator(seed: 22)
        for variant in CellVariant.allCases {
            let layer = randomLayer(variant, inputSize: 3, hiddenSize: 3, directions: 2, using: &rng)
            var forward = layer
            forward.directions = [layer.directions[0]]
            var backward = layer
            backward.directions = [layer.directions[1]]
            let x = rng.tensor([2, 5, 3], scale: 1.5)
            let both = try Engine(model: Model(layers: [.recurrent(layer)])).run(.features(x)).output
            let fwd = try Engine(model: Model(layers: [.recurrent(forward)])).run(.features(x)).output
            let bwd = try Engine(model: Model(layers: [.recurrent(backward)])).run(.features(reversedInTime(x))).output
            let r = layer.outputSize
            assertClose(features(both, 0..<r).values, fwd.values, tolerance: 0, "\(variant) forward half")
            assertClose(features(both, r..<(2 * r)).values, reversedInTime(bwd).values, tolerance: 0, "\(variant) backward half")

            // goBackwards emits in processing order: the same as the backward layer's raw output.
            var goingBack = backward
            goingBack.goBackwards = true
            let back = try Engine(model: Model(layers: [.recurrent(goingBack)])).run(.features(x)).output
            assertClose(back.values, bwd.values, tolerance: 0, "\(variant) goBackwards")
        }
    }

    func testMergeModesCombineTheConcatHalves() throws {
        var rng = SeededGenerator(seed: 23)
        let base = randomLayer(.gruAfter, inputSize: 2, hiddenSize: 3, directions: 2, using: &rng)
        let x = rng.tensor([2, 4, 2])
        for returnSequences in [true, false] {
            var concat = base
            concat.returnSequences = returnSequences
            let whole = try Engine(model: Model(layers: [.recurrent(concat)])).run(.features(x), lengths: [4, 2]).output
            let rows = whole.count / 6
            let a = (0..<rows).flatMap { i in whole.values[(i * 6)..<(i * 6 + 3)] }
            let b = (0..<rows).flatMap { i in whole.values[(i * 6 + 3)..<(i * 6 + 6)] }
            for (merge, combine) in [(MergeMode.sum, { (p: Float, q: Float) in p + q }), (.mul, { $0 * $1 }), (.ave, { ($0 + $1) / 2 })] {
                var layer = concat
                layer.merge = merge
                let merged = try Engine(model: Model(layers: [.recurrent(layer)])).run(.features(x), lengths: [4, 2]).output
                XCTAssertEqual(merged.shape.last, 3)
                assertClose(merged.values, zip(a, b).map(combine), tolerance: 0, "\(merge) returnSequences=\(returnSequences)")
            }
        }
    }

    /// `.carry` repeats the previous output at masked steps (zero before any valid one) and
    /// `.zero` emits zero there; valid steps and the final state are the same for both.
    func testMaskedOutputModes() throws {
        var rng = SeededGenerator(seed: 24)
        for variant in CellVariant.allCases {
            let carry = randomLayer(variant, inputSize: 2, hiddenSize: 3, maskedOutput: .carry, using: &rng)
            var zero = carry
            zero.maskedOutput = .zero
            var values = rng.tensor([1, 7, 2], scale: 1).values
            let masked = [0, 3, 4, 6]
            for t in masked { values[t * 2] = 0.5; values[t * 2 + 1] = 0.5 }
            let x = try Tensor(shape: [1, 7, 2], values: values)
            let c = try Engine(model: Model(layers: [.masking(maskValue: 0.5), .recurrent(carry)])).run(.features(x))
            let z = try Engine(model: Model(layers: [.masking(maskValue: 0.5), .recurrent(zero)])).run(.features(x))
            let f = carry.outputSize
            var previous = [Float](repeating: 0, count: f)
            for t in 0..<7 {
                if masked.contains(t) {
                    XCTAssertEqual(step(c.output, 0, t), previous, "\(variant) carry t=\(t)")
                    XCTAssertEqual(step(z.output, 0, t), [Float](repeating: 0, count: f), "\(variant) zero t=\(t)")
                } else {
                    XCTAssertEqual(step(c.output, 0, t), step(z.output, 0, t))
                    previous = step(c.output, 0, t)
                }
            }
            XCTAssertEqual(c.finalStates, z.finalStates)
            // The masked steps change nothing: running the valid steps alone gives the same.
            let valid = (0..<7).filter { !masked.contains($0) }
            let compact = try Tensor(shape: [1, valid.count, 2], values: valid.flatMap { step(x, 0, $0) })
            let alone = try Engine(model: Model(layers: [.recurrent(zero)])).run(.features(compact))
            XCTAssertEqual(alone.finalStates, z.finalStates)
        }
    }

    func testMasksFromSeveralSourcesCombine() throws {
        var rng = SeededGenerator(seed: 25)
        let layer = randomLayer(.lstm, inputSize: 2, hiddenSize: 2, using: &rng)
        let table = rng.tensor([4, 2])
        let engine = try Engine(model: Model(layers: [.embedding(Embedding(table: table, maskZero: true)), .recurrent(layer)]))
        // Row 0: id 0 at step 1 and length 3 → valid steps 0 and 2.
        let result = try engine.run(.tokens(ids: [1, 0, 2, 3], batch: 1, time: 4), lengths: [3])
        let alone = try engine.run(.tokens(ids: [1, 2], batch: 1, time: 2))
        XCTAssertEqual(result.finalStates, alone.finalStates)
        XCTAssertEqual(step(result.output, 0, 1), [0, 0])
        XCTAssertEqual(step(result.output, 0, 3), [0, 0])
        XCTAssertEqual(step(result.output, 0, 2), step(alone.output, 0, 1))
    }

    func testReadouts() throws {
        var rng = SeededGenerator(seed: 26)
        let layer = randomLayer(.lstmProjected, inputSize: 2, hiddenSize: 3, directions: 2, using: &rng)
        let x = rng.tensor([3, 4, 2])
        let lengths = [4, 0, 2]
        let sequence = try Engine(model: Model(layers: [.recurrent(layer)])).run(.features(x), lengths: lengths)
        let r = layer.outputSize
        func readout(_ mode: Readout) throws -> Tensor {
            try Engine(model: Model(layers: [.recurrent(layer), .readout(mode)])).run(.features(x), lengths: lengths).output
        }
        let h = sequence.finalStates[0].h  // [2, 3, r]
        let lastHidden = try readout(.lastHidden)
        XCTAssertEqual(lastHidden.shape, [3, r])
        XCTAssertEqual(lastHidden.values, Array(h.values[(3 * r)...]))
        let all = try readout(.lastHiddenAllDirections)
        XCTAssertEqual(all.shape, [3, 2 * r])
        for b in 0..<3 {
            XCTAssertEqual(Array(all.values[(b * 2 * r)..<(b * 2 * r + r)]), Array(h.values[(b * r)..<((b + 1) * r)]))
        }
        let last = try readout(.lastValidStep)
        let mean = try readout(.meanOverValidSteps)
        let maximum = try readout(.maxOverValidSteps)
        let maximumAll = try readout(.maxOverAllSteps)
        let f = 2 * r
        for (b, n) in lengths.enumerated() {
            let rowLast = Array(last.values[(b * f)..<((b + 1) * f)])
            let rowMean = Array(mean.values[(b * f)..<((b + 1) * f)])
            let rowMax = Array(maximum.values[(b * f)..<((b + 1) * f)])
            // Padded steps emit zero here (.zero outputs), which the all-steps maximum sees.
            for j in 0..<f {
                let column = (0..<4).map { step(sequence.output, b, $0)[j] }
                XCTAssertEqual(maximumAll.values[b * f + j], column.max()!)
            }
            if n == 0 {
                XCTAssertEqual(rowLast, [Float](repeating: 0, count: f))
                XCTAssertEqual(rowMean, [Float](repeating: 0, count: f))
                XCTAssertEqual(rowMax, [Float](repeating: 0, count: f))
                continue
            }
            XCTAssertEqual(rowLast, step(sequence.output, b, n - 1))
            for j in 0..<f {
                let column = (0..<n).map { step(sequence.output, b, $0)[j] }
                XCTAssertEqual(rowMean[j], column.reduce(0, +) / Float(n), accuracy: 1e-6)
                XCTAssertEqual(rowMax[j], column.max()!)
            }
        }
        // The forward half of the last valid step is the forward final state.
        XCTAssertEqual(Array(last.values[0..<r]), Array(h.values[0..<r]))
    }

    func testReturnSequencesFalseIsTheFinalState() throws {
        var rng = SeededGenerator(seed: 27)
        for variant in CellVariant.allCases {
            var layer = randomLayer(variant, inputSize: 2, hiddenSize: 3, directions: 2, using: &rng)
            let x = rng.tensor([2, 5, 2])
            let full = try Engine(model: Model(layers: [.recurrent(layer)])).run(.features(x), lengths: [5, 3])
            layer.returnSequences = false
            let last = try Engine(model: Model(layers: [.recurrent(layer)])).run(.features(x), lengths: [5, 3])
            let r = layer.outputSize
            XCTAssertEqual(last.output.shape, [2, 2 * r])
            let h = full.finalStates[0].h.values
            var expected: [Float] = []
            for b in 0..<2 {
                expected += h[(b * r)..<((b + 1) * r)]          // forward, row b
                expected += h[((2 + b) * r)..<((3 + b) * r)]    // backward, row b
            }
            XCTAssertEqual(last.output.values, expected)
            XCTAssertEqual(last.finalStates, full.finalStates)
        }
    }

    /// Splitting a sequence and passing the first part's final state as the second part's
    /// initial state gives the outputs of the whole sequence.
    func testInitialStatesContinueASequence() throws {
        var rng = SeededGenerator(seed: 28)
        for variant in CellVariant.allCases {
            let engine = try Engine(model: randomStack(variant, inputSize: 2, hiddenSize: 3, layers: 2, directions: 1, using: &rng))
            let x = rng.tensor([2, 6, 2])
            let whole = try engine.run(.features(x))
            let firstPart = try Tensor(shape: [2, 4, 2], values: [0, 1].flatMap { row(x, $0, steps: 4).values })
            let secondPart = try Tensor(shape: [2, 2, 2], values: [0, 1].flatMap { b in (4..<6).flatMap { step(x, b, $0) } })
            let a = try engine.run(.features(firstPart))
            let b = try engine.run(.features(secondPart), initialStates: a.finalStates)
            XCTAssertEqual(b.finalStates, whole.finalStates, "\(variant)")
            for bb in 0..<2 {
                XCTAssertEqual(step(b.output, bb, 1), step(whole.output, bb, 5))
            }
        }
    }

    func testDenseFlattenAndEmptyShapes() throws {
        var rng = SeededGenerator(seed: 29)
        let layer = randomLayer(.gruBefore, inputSize: 2, hiddenSize: 2, using: &rng)
        let dense = Dense(weight: rng.tensor([3, 6]), bias: nil, activation: .relu)
        let engine = try Engine(model: Model(layers: [.recurrent(layer), .flatten, .dense(dense)]))
        let out = try engine.run(.features(rng.tensor([2, 3, 2])))
        XCTAssertEqual(out.output.shape, [2, 3])
        // Flatten makes the dense input depend on the step count: checked at run time.
        assertEngineError(try engine.run(.features(rng.tensor([2, 4, 2]))), contains: ["layer 2 (dense)", "8 features"])
        // Zero steps and zero rows run and give empty or zero results.
        let plain = try Engine(model: Model(layers: [.recurrent(layer), .readout(.meanOverValidSteps)]))
        XCTAssertEqual(try plain.run(.features(Tensor(zeros: [2, 0, 2]))).output, try Tensor(zeros: [2, 2]))
        XCTAssertEqual(try plain.run(.features(Tensor(zeros: [0, 3, 2]))).output.shape, [0, 2])
    }
}
