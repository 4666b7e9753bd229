import RecurrentEngine
import TextSafety

/// The ONNX layout's rules for the recurrent operators, declared once (spec/onnx-layout.md).
///
/// With `D` directions (1, or 2 for `bidirectional`, forward first), `G` gates and hidden
/// size `H`: `W [D, G·H, I]`, `R [D, G·H, H]`, `B [D, 2·G·H]` = `[Wb | Rb]` (input bias, then
/// recurrent bias). Each direction's `W[d]` and `R[d]` are already `[G·H, in]` with gate
/// blocks along the rows, the neutral model's convention, so only the block order differs.
enum ONNXLayout {
    /// Gate blocks along the rows of `W`, `R` and each half of `B`: LSTM i, o, f, c;
    /// GRU z, r, h (update, reset, new).
    static let gateOrders = GateOrders(lstm: [.input, .output, .forget, .cell], gru: [.update, .reset, .new])

    /// The operator of each cell kind.
    static let opTypes: [(kind: CellKind, opType: String)] = [(.rnn, "RNN"), (.lstm, "LSTM"), (.gru, "GRU")]

    /// The operator of a cell kind, and back.
    static func opType(_ kind: CellKind) -> String {
        opTypes.first { $0.kind == kind }!.opType
    }

    static func cellKind(opType: String) -> CellKind? {
        opTypes.first { $0.opType == opType }?.kind
    }

    /// Activations per direction: LSTM (f, g, h), GRU (f, g), RNN (f).
    static func activationCount(_ kind: CellKind) -> Int {
        switch kind {
        case .rnn: return 1
        case .lstm: return 3
        case .gru: return 2
        }
    }

    /// The default activations of one direction (the operator schemas').
    static func defaultActivations(_ kind: CellKind) -> [String] {
        switch kind {
        case .rnn: return ["Tanh"]
        case .lstm: return ["Sigmoid", "Tanh", "Tanh"]
        case .gru: return ["Sigmoid", "Tanh"]
        }
    }

    /// Which ONNX activations take `activation_alpha` / `activation_beta` values, in the order
    /// the operators consume them (one alpha, then one beta, per activation that takes them),
    /// with their defaults.
    static func parameters(of name: String) -> (alpha: Float?, beta: Float?) {
        switch name {
        case "HardSigmoid": return (0.2, 0.5)
        case "LeakyRelu": return (0.01, nil)
        case "ThresholdedRelu": return (1.0, nil)
        case "Elu": return (1.0, nil)
        case "ScaledTanh": return (1.0, 1.0)
        case "Affine": return (1.0, 0.0)
        default: return (nil, nil)
        }
    }

    /// An ONNX recurrent activation as the engine computes it, or the reason it cannot be.
    ///
    /// `HardSigmoid(alpha, beta) = clip(alpha·x + beta, 0, 1)`: alpha 0.2, beta 0.5 (the
    /// default, tf-keras's `hard_sigmoid`) is the engine's `hardSigmoidKeras2`; any other pair
    /// is refused (Keras 3's 1/6 is not exactly a float). `Affine(1, 0)` is the identity,
    /// `ScaledTanh(1, 1)` is `tanh`, `Elu(1)` is `elu`.
    static func activation(_ name: String, alpha: Float?, beta: Float?) -> Result<Activation, ActivationRefusal> {
        switch name {
        case "Sigmoid": return .success(.sigmoid)
        case "Tanh": return .success(.tanh)
        case "Relu": return .success(.relu)
        case "Softsign": return .success(.softsign)
        case "Softplus": return .success(.softplus)
        case "HardSigmoid" where alpha == 0.2 && beta == 0.5: return .success(.hardSigmoidKeras2)
        // Keras 3's relu6(x + 3) / 6, as rnnkit writes it (within a rounding of x / 6).
        case "HardSigmoid" where alpha == Float(1.0 / 6.0) && beta == 0.5: return .success(.hardSigmoid)
        case "Elu" where alpha == 1: return .success(.elu)
        case "Affine" where alpha == 1 && beta == 0: return .success(.linear)
        case "ScaledTanh" where alpha == 1 && beta == 1: return .success(.tanh)
        case "HardSigmoid", "Elu", "Affine", "ScaledTanh":
            return .failure(ActivationRefusal(text: "\(name) with alpha \(alpha.map { "\($0)" } ?? "-"), beta \(beta.map { "\($0)" } ?? "-"), which the engine does not compute"))
        case "LeakyRelu", "ThresholdedRelu":
            return .failure(ActivationRefusal(text: "\(name), which the engine does not compute"))
        default:
            return .failure(ActivationRefusal(text: "\(escapedForDisplay(name)), which is not an ONNX recurrent activation"))
        }
    }

    struct ActivationRefusal: Error { var text: String }

    /// SELU's constants as float32 (ONNX `Selu`'s defaults, Keras's and PyTorch's values).
    static let seluAlpha: Float = 1.6732632423543772848170429916717
    static let seluGamma: Float = 1.0507009873554804934193349852946

    /// An element-wise ONNX operator on data as an engine activation, or nil (the graphs rnnkit
    /// writes; Relu, Tanh, Sigmoid and Softmax are read with the exporters' patterns).
    static func dataActivation(_ op: String, alpha: Float?, beta: Float?, gamma: Float?, approximate: String?) -> Activation? {
        switch op {
        case "Elu" where (alpha ?? 1) == 1: return .elu
        case "Selu" where (alpha ?? seluAlpha) == seluAlpha && (gamma ?? seluGamma) == seluGamma: return .selu
        case "Softplus": return .softplus
        case "Softsign": return .softsign
        case "HardSigmoid" where (alpha ?? 0.2) == 0.2 && (beta ?? 0.5) == 0.5: return .hardSigmoidKeras2
        case "HardSigmoid" where alpha == Float(1.0 / 6.0) && (beta ?? 0.5) == 0.5: return .hardSigmoid
        case "Gelu" where (approximate ?? "none") == "none": return .gelu
        case "Gelu" where approximate == "tanh": return .geluTanh
        default: return nil
        }
    }

    /// The ONNX name of an engine activation, for `inspect`.
    static func name(of activation: Activation) -> String {
        switch activation {
        case .sigmoid: return "Sigmoid"
        case .tanh: return "Tanh"
        case .relu: return "Relu"
        case .softsign: return "Softsign"
        case .softplus: return "Softplus"
        case .hardSigmoidKeras2: return "HardSigmoid"
        case .elu: return "Elu"
        case .linear: return "Affine"
        default: return activation.rawValue
        }
    }

    /// The version of the recurrent operators an `ai.onnx` opset holds (their schemas
    /// changed at 1, 3 (GRU), 7, 14 and 22), or nil before 7, which rnnkit does not read.
    static func recurrentOperatorVersion(opset: Int) -> Int? {
        guard opset >= 7 else { return nil }
        return opset >= 22 ? 22 : opset >= 14 ? 14 : 7
    }
}
