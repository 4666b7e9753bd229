// Bad models, inputs and states are refused with an EngineError naming the layer, never a trap.

import XCTest
@testable import RecurrentEngine

final class ValidationTests: XCTestCase {
    private func lstm(_ rng: inout SeededGenerator, directions: Int = 1) -> RecurrentLayer {
        randomLayer(.lstm, inputSize: 3, hiddenSize: 4, directions: directions, using: &rng)
    }

    func testGateOrderMustBeAPermutationOfTheCellsGates() {
        var rng = SeededGenerator(seed: 1)
        for order: [Gate] in [[.input, .forget, .cell], [.input, .forget, .cell, .cell],
                              [.input, .forget, .cell, .reset], [.input, .forget, .cell, .output, .new]] {
            var layer = lstm(&rng)
            layer.directions[0].gateOrder = order
            assertEngineError(try Engine(model: Model(layers: [.recurrent(layer)])),
                              contains: ["layer 0 (lstm)", "gate order", "not a permutation"])
        }
        var gru = randomLayer(.gruAfter, inputSize: 2, hiddenSize: 2, directions: 2, using: &rng)
        gru.directions[1].gateOrder = [.update, .reset, .cell]
        assertEngineError(try Engine(model: Model(layers: [.recurrent(gru)])), contains: ["backward direction", "gate order"])
    }

    func testWeightShapesAreCheckedAgainstDeclaredSizes() {
        var rng = SeededGenerator(seed: 2)
        var layer = lstm(&rng)
        layer.directions[0].inputWeight = rng.tensor([16, 2])
        assertEngineError(try Engine(model: Model(layers: [.recurrent(layer)])),
                          contains: ["layer 0 (lstm)", "input weight", "[16, 2]", "expected [16, 3]"])

        layer = lstm(&rng)
        layer.directions[0].recurrentWeight = rng.tensor([12, 4])
        assertEngineError(try Engine(model: Model(layers: [.recurrent(layer)])), contains: ["recurrent weight", "[16, 4]"])

        layer = lstm(&rng)
        layer.directions[0].recurrentBias = rng.tensor([15])
        assertEngineError(try Engine(model: Model(layers: [.recurrent(layer)])), contains: ["recurrent bias", "[16]"])

        // A tensor whose values do not match its shape cannot be made.
        XCTAssertThrowsError(try Tensor(shape: [16], values: [Float](repeating: 0, count: 15)))

        // Projection declared but missing, and present but undeclared.
        layer = lstm(&rng)
        layer.projectionSize = 2
        layer.directions[0].recurrentWeight = rng.tensor([16, 2])
        assertEngineError(try Engine(model: Model(layers: [.recurrent(layer)])), contains: ["no projection weight", "projection size 2"])
        layer = lstm(&rng)
        layer.directions[0].projection = rng.tensor([2, 4])
        assertEngineError(try Engine(model: Model(layers: [.recurrent(layer)])), contains: ["declares no projection size"])
        var gru = randomLayer(.gruAfter, inputSize: 2, hiddenSize: 2, using: &rng)
        gru.projectionSize = 1
        assertEngineError(try Engine(model: Model(layers: [.recurrent(gru)])), contains: ["only defined for an LSTM"])
    }

    func testChainOfLayersIsChecked() {
        var rng = SeededGenerator(seed: 3)
        let first = lstm(&rng, directions: 2)  // emits 8 features
        let second = lstm(&rng)                 // expects 3
        assertEngineError(try Engine(model: Model(layers: [.recurrent(first), .recurrent(second)])),
                          contains: ["layer 1 (lstm)", "input size is 3", "8 features"])
        assertEngineError(try Engine(model: Model(layers: [.recurrent(lstm(&rng)), .readout(.lastHidden), .recurrent(lstm(&rng))])),
                          contains: ["layer 2", "time axis"])
        assertEngineError(try Engine(model: Model(layers: [.readout(.lastHidden)])),
                          contains: ["layer 0", "recurrent layer before"])
        assertEngineError(try Engine(model: Model(layers: [.recurrent(lstm(&rng)), .embedding(Embedding(table: rng.tensor([3, 3])))])),
                          contains: ["layer 1 (embedding)", "first layer"])
        assertEngineError(try Engine(model: Model(layers: [.dense(Dense(weight: rng.tensor([2, 3]), bias: rng.tensor([3])))])),
                          contains: ["layer 0 (dense)", "bias"])
        var bothWays = lstm(&rng, directions: 2)
        bothWays.goBackwards = true
        assertEngineError(try Engine(model: Model(layers: [.recurrent(bothWays)])), contains: ["goBackwards"])
    }

    func testInputIsChecked() throws {
        var rng = SeededGenerator(seed: 4)
        let engine = try Engine(model: Model(layers: [.recurrent(lstm(&rng))]))
        assertEngineError(try engine.run(.features(rng.tensor([2, 5, 4]))), contains: ["layer 0 (lstm)", "4 features", "expected 3"])
        assertEngineError(try engine.run(.features(rng.tensor([2, 3]))), contains: ["layer 0", "time axis"])
        assertEngineError(try engine.run(.features(rng.tensor([5]))), contains: ["expected [batch, time, features]"])
        assertEngineError(try engine.run(.tokens(ids: [1, 2], batch: 1, time: 2)), contains: ["does not start with an embedding"])
        XCTAssertThrowsError(try Tensor(shape: [1, 2, 3], values: [Float](repeating: 0, count: 7)))
    }

    func testTokenIdsMustBeInTheVocabulary() throws {
        var rng = SeededGenerator(seed: 5)
        let engine = try Engine(model: Model(layers: [
            .embedding(Embedding(table: rng.tensor([5, 3]))), .recurrent(lstm(&rng)),
        ]))
        XCTAssertNoThrow(try engine.run(.tokens(ids: [0, 4, 1, 2], batch: 2, time: 2)))
        assertEngineError(try engine.run(.tokens(ids: [0, 5, 1, 2], batch: 2, time: 2)),
                          contains: ["layer 0 (embedding)", "token id 5", "[0, 1]", "0..<5"])
        assertEngineError(try engine.run(.tokens(ids: [0, 1, -1, 2], batch: 2, time: 2)), contains: ["token id -1"])
        assertEngineError(try engine.run(.tokens(ids: [0, 1, 2], batch: 2, time: 2)), contains: ["3 token ids"])
        assertEngineError(try engine.run(.features(rng.tensor([2, 2, 3]))), contains: ["takes token ids"])
    }

    func testLengthsAreChecked() throws {
        var rng = SeededGenerator(seed: 6)
        let engine = try Engine(model: Model(layers: [.recurrent(lstm(&rng))]))
        let x = rng.tensor([2, 4, 3])
        XCTAssertNoThrow(try engine.run(.features(x), lengths: [0, 4]))
        assertEngineError(try engine.run(.features(x), lengths: [5, 1]), contains: ["lengths[0] is 5", "0...4"])
        assertEngineError(try engine.run(.features(x), lengths: [1, -1]), contains: ["lengths[1] is -1"])
        assertEngineError(try engine.run(.features(x), lengths: [1]), contains: ["1 entries", "(2)"])
    }

    func testInitialStatesAreChecked() throws {
        var rng = SeededGenerator(seed: 7)
        let gru = randomLayer(.gruAfter, inputSize: 8, hiddenSize: 2, using: &rng)
        let engine = try Engine(model: Model(layers: [.recurrent(lstm(&rng, directions: 2)), .recurrent(gru)]))
        let x = rng.tensor([3, 2, 3])
        var states = engine.zeroStates(batch: 3)
        XCTAssertNoThrow(try engine.run(.features(x), initialStates: states))
        assertEngineError(try engine.run(.features(x), initialStates: [states[0]]), contains: ["1 initial states", "(2)"])

        states[0].h = try Tensor(zeros: [1, 3, 4])
        assertEngineError(try engine.run(.features(x), initialStates: states),
                          contains: ["layer 0 (lstm)", "initial state h", "[1, 3, 4]", "expected [2, 3, 4]"])
        states = engine.zeroStates(batch: 3)
        states[0].c = nil
        assertEngineError(try engine.run(.features(x), initialStates: states), contains: ["layer 0", "no c"])
        states = engine.zeroStates(batch: 3)
        states[1].c = try Tensor(zeros: [1, 3, 2])
        assertEngineError(try engine.run(.features(x), initialStates: states), contains: ["layer 1 (gru)", "no cell state"])
        states = engine.zeroStates(batch: 2)
        assertEngineError(try engine.run(.features(x), initialStates: states), contains: ["layer 0", "expected [2, 3, 4]"])
    }
}
