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

    /// The blocks of an LSTM's peepholes `P [D, 3·H]`: i, o, f.
    static let peepholeOrder: [Gate] = [.input, .output, .forget]

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

    /// The ONNX recurrent activations, with the parameters each takes and their defaults: ONNX's
    /// (the operator schemas': "the same as of the corresponding ONNX operators"; nil where
    /// ONNX gives none) and ONNX Runtime's (`rnn_helpers.cc`; 0 where it has no entry).
    struct ActivationSpec {
        var takesAlpha: Bool
        var takesBeta: Bool
        var onnxDefault: (alpha: Float?, beta: Float?)
        var runtimeDefault: (alpha: Float, beta: Float)
    }

    static func spec(of name: String) -> ActivationSpec? {
        switch name {
        case "Sigmoid", "Tanh", "Relu", "Softsign", "Softplus":
            return ActivationSpec(takesAlpha: false, takesBeta: false, onnxDefault: (nil, nil), runtimeDefault: (0, 0))
        case "HardSigmoid":
            return ActivationSpec(takesAlpha: true, takesBeta: true, onnxDefault: (0.2, 0.5), runtimeDefault: (0.2, 0.5))
        case "LeakyRelu":
            return ActivationSpec(takesAlpha: true, takesBeta: false, onnxDefault: (0.01, nil), runtimeDefault: (0.01, 0))
        case "ThresholdedRelu":
            return ActivationSpec(takesAlpha: true, takesBeta: false, onnxDefault: (1.0, nil), runtimeDefault: (0, 0))
        case "Elu":
            return ActivationSpec(takesAlpha: true, takesBeta: false, onnxDefault: (1.0, nil), runtimeDefault: (1.0, 0))
        case "ScaledTanh":
            return ActivationSpec(takesAlpha: true, takesBeta: true, onnxDefault: (nil, nil), runtimeDefault: (0, 0))
        case "Affine":
            return ActivationSpec(takesAlpha: true, takesBeta: true, onnxDefault: (1.0, 0.0), runtimeDefault: (0, 0))
        default:
            return nil
        }
    }

    /// The activations of a node (`names`, every direction's in turn) with their parameters,
    /// or the reason they cannot be read.
    ///
    /// ONNX consumes `activation_alpha` and `activation_beta` in the order of the activations,
    /// one value per activation that takes the parameter, and fills the rest with the ONNX
    /// operators' defaults. ONNX Runtime does so for LSTM and GRU with defaults of its own
    /// (0 for ThresholdedRelu, ScaledTanh and Affine), and for RNN takes `activation_alpha[d]`
    /// for direction `d` (0 without the attribute). Where the two read a parameter differently
    /// the node's result depends on the runtime, so it is refused.
    static func activations(_ names: [String], alphas: [Float]?, betas: [Float]?,
                            kind: CellKind, perDirection: Int) -> Result<[CellActivation], ActivationRefusal> {
        var onnxAlphas = (alphas ?? [])[...], onnxBetas = (betas ?? [])[...]
        var runtimeAlphas = onnxAlphas, runtimeBetas = onnxBetas
        var resolved: [CellActivation] = []
        for (index, name) in names.enumerated() {
            guard let spec = spec(of: name) else {
                return .failure(ActivationRefusal(text: "\(escapedForDisplay(name)), which is not an ONNX recurrent activation"))
            }
            func parameter(_ takes: Bool, _ what: String, onnx: inout ArraySlice<Float>, runtime: inout ArraySlice<Float>,
                           given: [Float]?, onnxDefault: Float?, runtimeDefault: Float) -> Result<Float, ActivationRefusal> {
                guard takes else { return .success(0) }
                let fromONNX = onnx.popFirst() ?? onnxDefault
                let fromRuntime: Float?
                if kind == .rnn {
                    fromRuntime = given.map { index / perDirection < $0.count ? $0[index / perDirection] : nil } ?? 0
                } else {
                    fromRuntime = runtime.popFirst() ?? runtimeDefault
                }
                guard let fromONNX, let fromRuntime, fromONNX == fromRuntime, fromONNX.isFinite else {
                    func text(_ value: Float?) -> String { value.map { "\($0)" } ?? "nothing" }
                    return .failure(ActivationRefusal(text: "\(name) whose \(what) ONNX reads as \(text(fromONNX)) and ONNX Runtime as \(text(fromRuntime)); rnnkit reads the parameters both read alike"))
                }
                return .success(fromONNX)
            }
            let alpha: Float, beta: Float
            switch parameter(spec.takesAlpha, "alpha", onnx: &onnxAlphas, runtime: &runtimeAlphas, given: alphas,
                             onnxDefault: spec.onnxDefault.alpha, runtimeDefault: spec.runtimeDefault.alpha) {
            case let .success(value): alpha = value
            case let .failure(why): return .failure(why)
            }
            switch parameter(spec.takesBeta, "beta", onnx: &onnxBetas, runtime: &runtimeBetas, given: betas,
                             onnxDefault: spec.onnxDefault.beta, runtimeDefault: spec.runtimeDefault.beta) {
            case let .success(value): beta = value
            case let .failure(why): return .failure(why)
            }
            resolved.append(activation(name, alpha: alpha, beta: beta))
        }
        return .success(resolved)
    }

    /// An ONNX recurrent activation (a name `spec(of:)` knows) as the engine computes it: the
    /// engine's own function where one is the same — `HardSigmoid(0.2, 0.5)` is tf-keras's
    /// `hard_sigmoid`, `Elu(1)` is `elu`, `Affine(1, 0)` the identity, `ScaledTanh(1, 1)` is
    /// `tanh` — so that such a layer converts and runs the fast paths; else the parameterised one.
    static func activation(_ name: String, alpha: Float, beta: Float) -> CellActivation {
        switch name {
        case "Sigmoid": return .standard(.sigmoid)
        case "Tanh": return .standard(.tanh)
        case "Relu": return .standard(.relu)
        case "Softsign": return .standard(.softsign)
        case "Softplus": return .standard(.softplus)
        // Keras 3's relu6(x + 3) / 6, as rnnkit writes it (within a rounding of x / 6).
        case "HardSigmoid" where alpha == Float(1.0 / 6.0) && beta == 0.5: return .standard(.hardSigmoid)
        case "HardSigmoid": return alpha == 0.2 && beta == 0.5 ? .standard(.hardSigmoidKeras2) : .hardSigmoid(alpha: alpha, beta: beta)
        case "Elu": return alpha == 1 ? .standard(.elu) : .elu(alpha: alpha)
        case "Affine": return alpha == 1 && beta == 0 ? .standard(.linear) : .affine(alpha: alpha, beta: beta)
        case "ScaledTanh": return alpha == 1 && beta == 1 ? .standard(.tanh) : .scaledTanh(alpha: alpha, beta: beta)
        case "LeakyRelu": return .leakyRelu(alpha: alpha)
        default: return .thresholdedRelu(alpha: alpha)
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
