// Exhaustive small shapes: every size in 1...3, one or two layers and directions, every
// cell variant, each against a plain scalar implementation of the cell equations
// (ScalarReference.swift); and gate orders are data — permuting the blocks with the
// declaration changes nothing.

import XCTest
@testable import RecurrentEngine

/// All permutations of `items`.
private func permutations<T>(_ items: [T]) -> [[T]] {
    guard items.count > 1 else { return [items] }
    return items.indices.flatMap { i -> [[T]] in
        var rest = items
        let head = rest.remove(at: i)
        return permutations(rest).map { [head] + $0 }
    }
}

/// Reorders gate blocks of every tensor in `weights` into `order`, declaring it.
private func reordered(_ weights: DirectionWeights, hiddenSize: Int, to order: [Gate]) -> DirectionWeights {
    func move(_ tensor: Tensor) -> Tensor {
        let block = tensor.count / weights.gateOrder.count
        let values = order.flatMap { gate -> ArraySlice<Float> in
            let i = weights.gateOrder.firstIndex(of: gate)!
            return tensor.values[(i * block)..<((i + 1) * block)]
        }
        return Tensor(unchecked: tensor.shape, values: values)
    }
    var result = weights
    result.gateOrder = order
    result.inputWeight = move(weights.inputWeight)
    result.recurrentWeight = move(weights.recurrentWeight)
    result.inputBias = weights.inputBias.map(move)
    result.recurrentBias = weights.recurrentBias.map(move)
    return result
}

final class SweepTests: XCTestCase {
    func testEveryShapeRunsAndGateOrderIsData() throws {
        var rng = SeededGenerator(seed: 31)
        var checked = 0
        for variant in CellVariant.allCases {
            // Orders other than the internal one (none for a one-block simple RNN).
            let orders = permutations(variant.kind.internalGateOrder).filter { $0 != variant.kind.internalGateOrder }
            for inputSize in 1...3 {
                for hiddenSize in 1...3 {
                    for layerCount in 1...2 {
                        for directions in 1...2 {
                            let model = randomStack(variant, inputSize: inputSize, hiddenSize: hiddenSize,
                                                    layers: layerCount, directions: directions, using: &rng)
                            let engine = try Engine(model: model)
                            let x = rng.tensor([2, 3, inputSize], scale: 1.5)
                            let result = try engine.run(.features(x), lengths: [3, 2])
                            let last = engine.recurrentLayers.last!
                            XCTAssertEqual(result.output.shape, [2, 3, last.mergedOutputSize])
                            XCTAssertEqual(result.finalStates.count, layerCount)
                            // The numbers, against the cell equations computed one unit at a time.
                            let label = "\(variant) I=\(inputSize) H=\(hiddenSize) L=\(layerCount) D=\(directions)"
                            let reference = referenceRun(engine.recurrentLayers, x: x, lengths: [3, 2])
                            XCTAssertNil(referenceMismatch(result.output.values, reference.output), "\(label) output")
                            for (k, state) in result.finalStates.enumerated() {
                                XCTAssertNil(referenceMismatch(state.h.values, reference.h[k]), "\(label) layer \(k) h")
                                XCTAssertEqual(state.c == nil, reference.c[k] == nil, "\(label) layer \(k) c")
                                if let c = state.c, let expected = reference.c[k] {
                                    XCTAssertNil(referenceMismatch(c.values, expected), "\(label) layer \(k) c")
                                }
                            }

                            // A few orders per shape (all 24 for LSTM would only repeat the check).
                            for order in orders.enumerated().filter({ $0.offset % 5 == 0 || $0.offset == orders.count - 1 }).map(\.element) {
                                let permuted = Model(layers: model.layers.map { layer in
                                    guard case .recurrent(var recurrent) = layer else { return layer }
                                    recurrent.directions = recurrent.directions.map {
                                        reordered($0, hiddenSize: recurrent.hiddenSize, to: order)
                                    }
                                    return .recurrent(recurrent)
                                })
                                let again = try Engine(model: permuted).run(.features(x), lengths: [3, 2])
                                XCTAssertEqual(again.output, result.output, "\(variant) I=\(inputSize) H=\(hiddenSize) order \(order)")
                                XCTAssertEqual(again.finalStates, result.finalStates)
                                checked += 1

                                // The check can fail: the same blocks under the old declaration differ.
                                if order == orders.last!, hiddenSize == 2 {
                                    let mislabelled = Model(layers: permuted.layers.map { layer in
                                        guard case .recurrent(var recurrent) = layer else { return layer }
                                        for d in recurrent.directions.indices {
                                            recurrent.directions[d].gateOrder = variant.kind.internalGateOrder
                                        }
                                        return .recurrent(recurrent)
                                    })
                                    let wrong = try Engine(model: mislabelled).run(.features(x), lengths: [3, 2])
                                    XCTAssertNotEqual(wrong.output, result.output, "\(variant) mislabelled gate order")
                                }
                            }
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(checked, 200)
    }

    func testEveryActivationRunsEverywhere() throws {
        var rng = SeededGenerator(seed: 32)
        for activation in Activation.allCases {
            let dense = Dense(weight: rng.tensor([3, 2]), bias: rng.tensor([3]), activation: activation)
            let engine = try Engine(model: Model(layers: [.dense(dense), .activation(activation)]))
            let out = try engine.run(.features(rng.tensor([2, 4, 2], scale: 3)))
            XCTAssertEqual(out.output.shape, [2, 4, 3])
            XCTAssertTrue(out.output.values.allSatisfy(\.isFinite), "\(activation)")
            guard activation.isElementwise else { continue }
            // Every cell with the activation as σ and φ (the engine's general path, not its
            // σ/tanh one), against the cell equations computed one unit at a time.
            for variant in CellVariant.allCases {
                var layer = randomLayer(variant, inputSize: 2, hiddenSize: 3, directions: 2, using: &rng)
                layer.activation = activation
                layer.recurrentActivation = activation
                let x = rng.tensor([2, 3, 2])
                let label = "\(variant) σ = φ = \(activation)"
                let engine = try Engine(model: Model(layers: [.recurrent(layer)]))
                let result = try engine.run(.features(x), lengths: [3, 2])
                let reference = referenceRun(engine.recurrentLayers, x: x, lengths: [3, 2])
                XCTAssertNil(referenceMismatch(result.output.values, reference.output), "\(label) output")
                XCTAssertNil(referenceMismatch(result.finalStates[0].h.values, reference.h[0]), "\(label) h")
                if let c = result.finalStates[0].c, let expected = reference.c[0] {
                    XCTAssertNil(referenceMismatch(c.values, expected), "\(label) c")
                }
            }
        }
    }

    /// Spot values of the activations, from their definitions.
    func testActivationDefinitions() {
        func f(_ a: Activation, _ x: Float) -> Float { a.elementwise(x) }
        XCTAssertEqual(f(.hardSigmoidKeras2, 1), 0.7, accuracy: 1e-7)
        XCTAssertEqual(f(.hardSigmoidKeras2, 3), 1)
        XCTAssertEqual(f(.hardSigmoid, 1), 4 / 6, accuracy: 1e-7)
        XCTAssertEqual(f(.hardSigmoid, -3), 0)
        XCTAssertEqual(f(.elu, -1), Float(-0.6321205588), accuracy: 1e-7)
        XCTAssertEqual(f(.selu, 1), 1.0507009873554805, accuracy: 1e-6)
        XCTAssertEqual(f(.selu, -1), Float(1.0507009873554805 * 1.6732632423543772 * -0.6321205588285577), accuracy: 1e-6)
        XCTAssertEqual(f(.softplus, 0), Float(0.6931471805599453), accuracy: 1e-7)
        XCTAssertEqual(f(.softplus, 100), 100)
        XCTAssertEqual(f(.softplus, -100), 0, accuracy: 1e-30)
        XCTAssertEqual(f(.softsign, 3), 0.75)
        XCTAssertEqual(f(.swish, 1), Float(0.7310585786300049), accuracy: 1e-7)
        XCTAssertEqual(f(.gelu, 1), Float(0.8413447460685429), accuracy: 1e-7)
        XCTAssertEqual(f(.geluTanh, 1), Float(0.8411919906082768), accuracy: 1e-7)
        var row: [Float] = [1, 2, 3, 1000, 1000, 1000]
        Activation.softmax.apply(to: &row, rowLength: 3)
        XCTAssertEqual(row[0], Float(0.09003057317038046), accuracy: 1e-7)
        XCTAssertEqual(row[3], 1.0 / 3, accuracy: 1e-7)
    }
}
