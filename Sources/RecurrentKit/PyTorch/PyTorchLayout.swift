/// The PyTorch layout's rules, declared once: gate orders, parameter names and shapes.
///
/// See spec/pytorch-layout.md. Weights are stored as PyTorch keeps them, `[G·H, in]`
/// with gate blocks along the rows, which is also the neutral model's convention, so the
/// layout only needs to declare the block order.
enum PyTorchLayout {
    /// Gate blocks along the rows of `weight_ih`, `weight_hh` and the biases:
    /// LSTM i, f, g, o; GRU r, z, n.
    static let gateOrders = GateOrders(lstm: [.input, .forget, .cell, .output], gru: [.reset, .update, .new])

    /// Gate blocks along the rows for a cell kind (`gateOrders[kind]`).
    static func gateOrder(_ kind: CellKind) -> [Gate] { gateOrders[kind] }

    /// The module type name PyTorch uses for a cell kind.
    static func moduleType(_ kind: CellKind) -> String {
        switch kind {
        case .rnn: return "RNN"
        case .lstm: return "LSTM"
        case .gru: return "GRU"
        }
    }

    static func cellKind(gateCount: Int) -> CellKind? {
        switch gateCount {
        case 1: return .rnn
        case 3: return .gru
        case 4: return .lstm
        default: return nil
        }
    }

    /// A recurrent parameter name: `weight_ih_l0`, `bias_hh_l1_reverse`, `weight_hr_l0`.
    struct ParameterName: Hashable {
        enum Role: String, CaseIterable {
            case weightIH = "weight_ih", weightHH = "weight_hh", biasIH = "bias_ih", biasHH = "bias_hh", weightHR = "weight_hr"
        }
        var role: Role
        var layer: Int
        var reverse: Bool

        var text: String { "\(role.rawValue)_l\(layer)\(reverse ? "_reverse" : "")" }

        init(role: Role, layer: Int, reverse: Bool) {
            self.role = role
            self.layer = layer
            self.reverse = reverse
        }

        init?(_ text: Substring) {
            guard let match = text.wholeMatch(of: /(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d{1,4})(_reverse)?/),
                  let role = Role(rawValue: String(match.1)), let layer = Int(match.2) else { return nil }
            self.init(role: role, layer: layer, reverse: match.3 != nil)
        }
    }

    /// The sizes a recurrent module's first layer shows. `weight_hr_l0` `[P, H]` (an LSTM
    /// with `proj_size`) gives the projection P and the hidden size H; otherwise
    /// `weight_hh_l0` `[G·H, H]` gives H. Sizes a `model_config` states are taken over the
    /// shapes. The reader and the skeleton both decide by this.
    struct RecurrentSizes {
        var hiddenSize: Int
        /// 0: no projection.
        var projectionSize: Int
        /// G, when `weight_hh_l0`'s rows are a whole number of blocks of H (H > 0).
        var gateBlocks: Int?
        /// The kind G gate blocks make (1 RNN, 3 GRU, 4 LSTM).
        var kind: CellKind? { gateBlocks.flatMap(PyTorchLayout.cellKind(gateCount:)) }
    }

    /// The sizes `weight_hh_l0`'s 2-D shape `hh` and `weight_hr_l0`'s shape `hr` (nil when
    /// absent) show, with `hiddenSize` and `projectionSize` when stated.
    static func recurrentSizes(weightHH hh: [Int], weightHR hr: [Int]?, hiddenSize: Int? = nil,
                               projectionSize: Int? = nil) -> RecurrentSizes {
        let hr = hr.flatMap { $0.count == 2 ? $0 : nil }
        let projection = projectionSize ?? hr?[0] ?? 0
        let hidden = hiddenSize ?? (projection > 0 ? hr?[1] ?? 0 : hh[1])
        let blocks = hidden > 0 && hh[0] % hidden == 0 ? hh[0] / hidden : nil
        return RecurrentSizes(hiddenSize: hidden, projectionSize: projection, gateBlocks: blocks)
    }

    /// Expected shape of each parameter of layer `k`, direction `reverse`.
    ///
    /// `G` gates, hidden `H`, projection `P` (0 = none), `R = P > 0 ? P : H`, input `I` for
    /// layer 0 and `D·R` above (`D` directions concatenated; 1 when a version-2 config
    /// merges them by sum, mul or ave).
    static func expectedShape(_ role: ParameterName.Role, layer: Int, kind: CellKind, inputSize: Int,
                              hiddenSize: Int, projectionSize: Int, mergedDirections: Int) -> [Int] {
        let rows = kind.gateCount * hiddenSize
        let recurrent = projectionSize > 0 ? projectionSize : hiddenSize
        let input = layer == 0 ? inputSize : mergedDirections * recurrent
        switch role {
        case .weightIH: return [rows, input]
        case .weightHH: return [rows, recurrent]
        case .biasIH, .biasHH: return [rows]
        case .weightHR: return [projectionSize, hiddenSize]
        }
    }
}
