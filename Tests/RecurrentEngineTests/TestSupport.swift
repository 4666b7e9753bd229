// Shared helpers for the engine tests: a seeded generator, random layers, comparisons.

import XCTest
@testable import RecurrentEngine

extension SeededGenerator {
    mutating func floats(_ count: Int, scale: Float = 0.5) -> [Float] {
        (0..<count).map { _ in Float.random(in: -scale...scale, using: &self) }
    }

    mutating func tensor(_ shape: [Int], scale: Float = 0.5) -> Tensor {
        Tensor(unchecked: shape, values: floats(shape.reduce(1, *), scale: scale))
    }
}

/// The cell variants the sweeps cover.
enum CellVariant: CaseIterable {
    case rnnTanh, rnnRelu, lstm, lstmProjected, gruAfter, gruBefore

    var kind: CellKind {
        switch self {
        case .rnnTanh, .rnnRelu: return .rnn
        case .lstm, .lstmProjected: return .lstm
        case .gruAfter, .gruBefore: return .gru
        }
    }
}

/// Random weights for one direction, with gate blocks in `order`.
func randomDirection(kind: CellKind, inputSize: Int, hiddenSize: Int, projectionSize: Int?,
                     order: [Gate], bias: Bool = true, using rng: inout SeededGenerator) -> DirectionWeights {
    let rows = kind.gateCount * hiddenSize
    let recurrent = projectionSize ?? hiddenSize
    return DirectionWeights(
        gateOrder: order,
        inputWeight: rng.tensor([rows, inputSize]),
        recurrentWeight: rng.tensor([rows, recurrent]),
        inputBias: bias ? rng.tensor([rows], scale: 0.3) : nil,
        recurrentBias: bias ? rng.tensor([rows], scale: 0.3) : nil,
        projection: projectionSize.map { rng.tensor([$0, hiddenSize]) })
}

/// A random recurrent layer of `variant`, gate blocks in the engine's internal order.
func randomLayer(_ variant: CellVariant, inputSize: Int, hiddenSize: Int, directions: Int = 1,
                 merge: MergeMode = .concat, maskedOutput: MaskedOutput = .zero,
                 goBackwards: Bool = false, returnSequences: Bool = true,
                 using rng: inout SeededGenerator) -> RecurrentLayer {
    let kind = variant.kind
    let projection: Int? = variant == .lstmProjected ? max(1, hiddenSize - 1) : nil
    let dirs = (0..<directions).map { _ in
        randomDirection(kind: kind, inputSize: inputSize, hiddenSize: hiddenSize, projectionSize: projection,
                        order: kind.internalGateOrder, bias: variant != .gruBefore, using: &rng)
    }
    return RecurrentLayer(
        kind: kind, inputSize: inputSize, hiddenSize: hiddenSize, projectionSize: projection,
        directions: dirs, activation: variant == .rnnRelu ? .relu : .tanh,
        gruResetRule: variant == .gruBefore ? .beforeMatmul : .afterMatmul,
        merge: merge, goBackwards: goBackwards, maskedOutput: maskedOutput, returnSequences: returnSequences)
}

/// A stack of `layers` recurrent layers of one variant over `inputSize` features.
func randomStack(_ variant: CellVariant, inputSize: Int, hiddenSize: Int, layers: Int, directions: Int,
                 using rng: inout SeededGenerator) -> Model {
    var result: [Layer] = []
    var features = inputSize
    for _ in 0..<layers {
        let layer = randomLayer(variant, inputSize: features, hiddenSize: hiddenSize, directions: directions, using: &rng)
        result.append(.recurrent(layer))
        features = layer.mergedOutputSize
    }
    return Model(layers: result)
}

/// Values of `tensor` at `[b, t, :]` of a `[B, T, F]` tensor.
func step(_ tensor: Tensor, _ b: Int, _ t: Int) -> [Float] {
    let time = tensor.shape[1], f = tensor.shape[2]
    return Array(tensor.values[((b * time + t) * f)..<((b * time + t + 1) * f)])
}

/// `[b, :, :]` of a `[B, T, F]` tensor as a `[1, T, F]` tensor, truncated to `steps`.
func row(_ tensor: Tensor, _ b: Int, steps: Int? = nil) -> Tensor {
    let time = tensor.shape[1], f = tensor.shape[2]
    let n = steps ?? time
    return Tensor(unchecked: [1, n, f], values: Array(tensor.values[(b * time * f)..<((b * time + n) * f)]))
}

/// The sequence reversed along time: `[B, T, F]` → `[B, T, F]`.
func reversedInTime(_ tensor: Tensor) -> Tensor {
    let batch = tensor.shape[0], time = tensor.shape[1]
    var values: [Float] = []
    for b in 0..<batch {
        for t in (0..<time).reversed() { values += step(tensor, b, t) }
    }
    return Tensor(unchecked: tensor.shape, values: values)
}

/// Features `[from, to)` of every step of a `[B, T, F]` tensor.
func features(_ tensor: Tensor, _ range: Range<Int>) -> Tensor {
    let batch = tensor.shape[0], time = tensor.shape[1]
    var values: [Float] = []
    for b in 0..<batch {
        for t in 0..<time { values += step(tensor, b, t)[range] }
    }
    return Tensor(unchecked: [batch, time, range.count], values: values)
}

func assertClose(_ actual: [Float], _ expected: [Float], tolerance: Float = 1e-6,
                 _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "count differs. \(message())", file: file, line: line)
    guard actual.count == expected.count else { return }
    var worst: Float = 0
    var worstIndex = 0
    for i in actual.indices {
        let difference = abs(actual[i] - expected[i])
        if !(difference <= worst) { worst = difference; worstIndex = i }
    }
    XCTAssertTrue(worst <= tolerance,
                  "max difference \(worst) at \(worstIndex): \(actual[worstIndex]) vs \(expected[worstIndex]). \(message())",
                  file: file, line: line)
}

/// Asserts that `body` throws an `EngineError` whose description contains every fragment.
func assertEngineError<T>(_ body: @autoclosure () throws -> T, contains fragments: [String],
                          file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected an EngineError containing \(fragments)", file: file, line: line)
    } catch let error as EngineError {
        let text = error.description
        for fragment in fragments {
            XCTAssertTrue(text.contains(fragment), "\"\(text)\" lacks \"\(fragment)\"", file: file, line: line)
        }
        XCTAssertFalse(text.contains("\n"), "error should be one line: \(text)", file: file, line: line)
    } catch {
        XCTFail("expected EngineError, got \(error)", file: file, line: line)
    }
}
