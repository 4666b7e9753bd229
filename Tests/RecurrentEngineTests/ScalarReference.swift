// A plain scalar implementation of the recurrent cells, to check the engine's numbers against
// the equations themselves: one unit, one step and one row at a time, in Double, reading each
// gate's block by the direction's declared gate order. It shares nothing with the engine (no
// packing, no internal gate order, no kernels, no vectorised activations).
//
// PyTorch's equations (torch.nn.RNN, LSTM, GRU), with σ the recurrent activation and φ the
// activation:
//   RNN   h' = φ(W x + b_ih + U h + b_hh)
//   LSTM  i = σ(W_i x + b_ii + U_i h + b_hi), f, o likewise, g = φ(W_g x + b_ig + U_g h + b_hg),
//         c' = f ⊙ c + i ⊙ g, h' = o ⊙ φ(c'), then h' = W_hr h' with a projection
//   GRU   r = σ(W_r x + b_ir + U_r h + b_hr), z likewise,
//         n = φ(W_n x + b_in + r ⊙ (U_n h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h
// and Keras's GRU with `reset_after=False` (`.beforeMatmul`): n = φ(W_n x + b_in + U_n (r ⊙ h) + b_hn).
// A step past a row's length keeps the state and emits zero (`MaskedOutput.zero`).

import Foundation
@testable import RecurrentEngine

/// The reference's results: the last layer's outputs `[B, T, D·R]` and every layer's final
/// `h` `[D, B, R]` and `c` `[D, B, H]` (LSTM).
struct ReferenceRun {
    var output: [Double]
    var h: [[Double]]
    var c: [[Double]?]
}

/// Runs a stack of recurrent layers (directions concatenated, sequences returned, zero initial
/// states) over `x` `[B, T, I]` with right-padded `lengths`.
func referenceRun(_ layers: [RecurrentLayer], x: Tensor, lengths: [Int]) -> ReferenceRun {
    let batch = x.shape[0], time = x.shape[1]
    var input = x.values.map(Double.init)
    var width = x.shape[2]
    var result = ReferenceRun(output: [], h: [], c: [])
    for layer in layers {
        precondition(layer.merge == .concat && layer.returnSequences && !layer.goBackwards
                     && layer.maskedOutput == .zero, "the reference covers the sweep's layers only")
        let directions = layer.directions.count, size = layer.outputSize, hidden = layer.hiddenSize
        var output = [Double](repeating: 0, count: batch * time * directions * size)
        var finalH = [Double](repeating: 0, count: directions * batch * size)
        var finalC = [Double](repeating: 0, count: directions * batch * hidden)
        for d in 0..<directions {
            let cell = ReferenceCell(layer: layer, weights: layer.directions[d])
            for b in 0..<batch {
                var h = [Double](repeating: 0, count: size), c = [Double](repeating: 0, count: hidden)
                let steps = d == 0 ? Array(0..<lengths[b]) : Array((0..<lengths[b]).reversed())
                for t in steps {
                    let xt = Array(input[((b * time + t) * width)..<((b * time + t + 1) * width)])
                    (h, c) = cell.step(x: xt, h: h, c: c)
                    for j in 0..<size { output[((b * time + t) * directions + d) * size + j] = h[j] }
                }
                for j in 0..<size { finalH[(d * batch + b) * size + j] = h[j] }
                for j in 0..<hidden { finalC[(d * batch + b) * hidden + j] = c[j] }
            }
        }
        result.h.append(finalH)
        result.c.append(layer.kind == .lstm ? finalC : nil)
        input = output
        width = directions * size
        result.output = output
    }
    return result
}

/// One direction's cell, reading gate blocks by their declared order.
struct ReferenceCell {
    var layer: RecurrentLayer
    var weights: DirectionWeights

    /// `W_g x + b_ig` for gate `g`: `[H]`.
    func inputPart(_ gate: Gate, _ x: [Double]) -> [Double] {
        let hidden = layer.hiddenSize, block = weights.gateOrder.firstIndex(of: gate)!
        return (0..<hidden).map { j in
            let row = block * hidden + j
            var sum = Double(weights.inputBias?.values[row] ?? 0)
            for p in x.indices { sum += Double(weights.inputWeight.values[row * x.count + p]) * x[p] }
            return sum
        }
    }

    /// `U_g v + b_hg` for gate `g`: `[H]` (`v` is `h`, or `r ⊙ h`).
    func recurrentPart(_ gate: Gate, _ v: [Double]) -> [Double] {
        let hidden = layer.hiddenSize, block = weights.gateOrder.firstIndex(of: gate)!
        return (0..<hidden).map { j in
            let row = block * hidden + j
            var sum = Double(weights.recurrentBias?.values[row] ?? 0)
            for p in v.indices { sum += Double(weights.recurrentWeight.values[row * v.count + p]) * v[p] }
            return sum
        }
    }

    func sigma(_ v: Double) -> Double { activation(layer.recurrentActivation, v) }
    func phi(_ v: Double) -> Double { activation(layer.activation, v) }

    func step(x: [Double], h: [Double], c: [Double]) -> (h: [Double], c: [Double]) {
        let hidden = layer.hiddenSize
        switch layer.kind {
        case .rnn:
            let a = inputPart(.cell, x), u = recurrentPart(.cell, h)
            return ((0..<hidden).map { phi(a[$0] + u[$0]) }, c)
        case .lstm:
            func gate(_ g: Gate) -> [Double] { zip(inputPart(g, x), recurrentPart(g, h)).map(+) }
            let i = gate(.input).map(sigma), f = gate(.forget).map(sigma)
            let g = gate(.cell).map(phi), o = gate(.output).map(sigma)
            let next = (0..<hidden).map { f[$0] * c[$0] + i[$0] * g[$0] }
            let out = (0..<hidden).map { o[$0] * phi(next[$0]) }
            guard let projection = weights.projection else { return (out, next) }
            let size = projection.shape[0]
            let projected = (0..<size).map { k in
                (0..<hidden).reduce(0.0) { $0 + Double(projection.values[k * hidden + $1]) * out[$1] }
            }
            return (projected, next)
        case .gru:
            let r = zip(inputPart(.reset, x), recurrentPart(.reset, h)).map(+).map(sigma)
            let z = zip(inputPart(.update, x), recurrentPart(.update, h)).map(+).map(sigma)
            let a = inputPart(.new, x)
            let n: [Double]
            switch layer.gruResetRule {
            case .afterMatmul:
                let u = recurrentPart(.new, h)
                n = (0..<hidden).map { phi(a[$0] + r[$0] * u[$0]) }
            case .beforeMatmul:
                let u = recurrentPart(.new, (0..<hidden).map { r[$0] * h[$0] })
                n = (0..<hidden).map { phi(a[$0] + u[$0]) }
            }
            return ((0..<hidden).map { (1 - z[$0]) * n[$0] + z[$0] * h[$0] }, c)
        }
    }

    /// The element-wise activations from their definitions (Keras's and PyTorch's
    /// documentation), in Double.
    func activation(_ a: Activation, _ v: Double) -> Double {
        switch a {
        case .linear: return v
        case .tanh: return Foundation.tanh(v)
        case .sigmoid: return 1 / (1 + Foundation.exp(-v))
        case .relu: return max(0, v)
        case .hardSigmoidKeras2: return min(max(0.2 * v + 0.5, 0), 1)
        case .hardSigmoid: return min(max(v / 6 + 0.5, 0), 1)
        case .elu: return v > 0 ? v : Foundation.exp(v) - 1
        case .selu: return 1.0507009873554805 * (v > 0 ? v : 1.6732632423543772 * (Foundation.exp(v) - 1))
        case .softplus: return Foundation.log(1 + Foundation.exp(v))
        case .softsign: return v / (1 + abs(v))
        case .swish: return v / (1 + Foundation.exp(-v))
        case .gelu: return 0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot()))
        case .geluTanh: return 0.5 * v * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v)))
        case .softmax: preconditionFailure("softmax is not element-wise")
        }
    }
}

/// Whether every `actual` is within `atol + rtol · |expected|` of `expected`; the worst
/// offender otherwise, for the message.
func referenceMismatch(_ actual: [Float], _ expected: [Double], atol: Double = 1e-5, rtol: Double = 1e-4) -> String? {
    guard actual.count == expected.count else { return "\(actual.count) values, expected \(expected.count)" }
    for i in actual.indices where !(abs(Double(actual[i]) - expected[i]) <= atol + rtol * abs(expected[i])) {
        return "at \(i): \(actual[i]) vs \(expected[i])"
    }
    return nil
}
