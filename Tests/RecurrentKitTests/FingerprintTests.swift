import XCTest
import TestSupport
@testable import RecurrentKit

/// The read-back check of `convert` equates exactly the layout rules' equivalences and
/// nothing more: a relabelled gate order or split biases are the same model; a changed
/// weight, a mislabelled gate order or a changed option are not.
final class FingerprintTests: XCTestCase {
    private func lstm(order: [Gate] = [.input, .forget, .cell, .output], inputBias: [Float]? = nil,
                      recurrentBias: [Float]? = nil, weightScale: Float = 1) -> Model {
        let hidden = 2, input = 3
        // Block k holds the value 10·(position of gate in the canonical order) + index.
        let canonical: [Gate] = [.input, .forget, .cell, .output]
        func weight(_ columns: Int) -> Tensor {
            var values: [Float] = []
            for gate in order {
                let k = Float(canonical.firstIndex(of: gate)!)
                values += (0..<(hidden * columns)).map { (10 * k + Float($0)) * weightScale }
            }
            return Tensor(unchecked: [4 * hidden, columns], values: values)
        }
        func bias(_ values: [Float]?) -> Tensor? { values.map { Tensor(unchecked: [4 * hidden], values: $0) } }
        let direction = DirectionWeights(gateOrder: order, inputWeight: weight(input), recurrentWeight: weight(hidden),
                                         inputBias: bias(inputBias), recurrentBias: bias(recurrentBias))
        return Model(layers: [.recurrent(RecurrentLayer(kind: .lstm, inputSize: input, hiddenSize: hidden, directions: [direction]))])
    }

    func testEquivalencesAndDifferences() {
        let reference = ModelFingerprint(lstm(inputBias: [1, 2, 3, 4, 5, 6, 7, 8]))
        // The same weights stored in Keras's block order (here equal) and as split biases.
        XCTAssertEqual(reference, ModelFingerprint(lstm(inputBias: [1, 2, 3, 4, 5, 6, 7, 8], recurrentBias: [0, 0, 0, 0, 0, 0, 0, 0])))
        XCTAssertEqual(reference, ModelFingerprint(lstm(inputBias: [0.5, 2, 3, 4, 5, 6, 7, 8], recurrentBias: [0.5, 0, 0, 0, 0, 0, 0, 0])))
        // Blocks stored in another order but labelled correctly: the same model.
        let reordered = lstm(order: [.output, .cell, .forget, .input], inputBias: nil)
        XCTAssertEqual(ModelFingerprint(lstm()), ModelFingerprint(reordered))
        // Mislabelled: the blocks of one order declared as another.
        var mislabelled = lstm()
        if case var .recurrent(layer) = mislabelled.layers[0] {
            layer.directions[0].gateOrder = [.forget, .input, .cell, .output]
            mislabelled.layers[0] = .recurrent(layer)
        }
        XCTAssertNotEqual(ModelFingerprint(lstm()), ModelFingerprint(mislabelled))
        // A changed weight, bias or option.
        XCTAssertNotEqual(ModelFingerprint(lstm()), ModelFingerprint(lstm(weightScale: 1.0001)))
        XCTAssertNotEqual(reference, ModelFingerprint(lstm(inputBias: [1, 2, 3, 4, 5, 6, 7, 9])))
        var carried = lstm()
        if case var .recurrent(layer) = carried.layers[0] {
            layer.maskedOutput = .carry
            carried.layers[0] = .recurrent(layer)
        }
        XCTAssertNotEqual(ModelFingerprint(lstm()), ModelFingerprint(carried))
    }

    func testReadoutOfTheLastStateEqualsReturnSequencesFalse() {
        var folded = lstm()
        folded.layers.append(.readout(.lastHidden))
        var keras = lstm()
        if case var .recurrent(layer) = keras.layers[0] {
            layer.returnSequences = false
            layer.maskedOutput = .carry
            keras.layers[0] = .recurrent(layer)
        }
        XCTAssertEqual(ModelFingerprint(folded), ModelFingerprint(keras))
        var mean = lstm()
        mean.layers.append(.readout(.meanOverValidSteps))
        XCTAssertNotEqual(ModelFingerprint(mean), ModelFingerprint(keras))
    }
}
