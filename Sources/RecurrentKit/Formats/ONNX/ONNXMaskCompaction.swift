import RecurrentEngine

/// A Keras mask (`mask_zero`, `Masking`) written exactly for any pattern of masked steps —
/// holes, left padding, right padding — by compaction (spec/onnx-layout.md, "Writing").
///
/// Keras's masked recurrence skips a masked step and keeps its state, so a recurrent layer
/// under a mask `m` `[batch, time]` computes over each sequence's valid steps in time order.
/// The written graph gathers them to the front and runs the one recurrent operator on them
/// with `sequence_lens = Σ_t m`:
///
///     order   = TopK(m, time, axis 1, largest, sorted).indices   valid steps first, each group
///                                                                in time order (ties: lower index first)
///     x_c     = GatherND(x, order[…, None], batch_dims 1)         [batch, time, features]
///     Y_c     = LSTM(x_c, sequence_lens = Σ_t m)                 zero past each count
///
/// and maps the outputs back to their steps: `inverse = TopK(order, time, smallest).indices`
/// is each step's place in `order` — `cumsum(m)_t − 1` at a valid step, a place past the count
/// (where `Y_c` is zero) at a masked one — so `Y_c[inverse]` is Keras's output with zeros at
/// masked steps (`MaskedOutput.zero`, both directions of a `Bidirectional`); with
/// `c = cumsum(m)`, `Y_c[Where(c > 0, c − 1, inverse)]` repeats the last valid output and is
/// zero before the first valid step (`MaskedOutput.carry`, one direction). `Y_h` and `Y_c`
/// of the operator are the states after each sequence's last valid step (the reverse
/// direction: after its first), as Keras's.
struct ONNXMaskCompaction {
    /// The mask, int64 `[batch, time]`, 1 at the valid steps; nil without a Keras mask.
    var mask: String?
    /// `order` int64 `[batch, time]`; `order`, `inverse`, `Where(c > 0, c − 1, inverse)`, each
    /// int64 `[batch, time, 1]`; and the mask as bool `[batch, time, 1]`: made once, on first use.
    var orderSteps: String?
    var order: String?
    var inverse: String?
    var carryIndex: String?
    var valid: String?
}

extension ONNXWriter.Writer {
    /// The steps count for TopK's `k`: `Gather(Shape(x), [1])`, int64 `[1]`.
    private mutating func timeCount(_ x: String, name: String) -> String {
        let shape = g.op("Shape", [x], name: name + "_shape")
        let axis = g.int64s(name + "_time_axis", [1])
        return g.op("Gather", [shape, axis], name: name + "_time", [ONNXGraphBuilder.attribute("axis", int: 0)])
    }

    /// `order` (`[batch, time]`) and `inverse`, made once from the steps of `x`.
    private mutating func makeOrder(_ x: String, mask: String, name: String) {
        guard compaction.order == nil else { return }
        let k = timeCount(x, name: name + "_mask")
        let largest = ONNXGraphBuilder.attribute("largest", int: 1), sorted = ONNXGraphBuilder.attribute("sorted", int: 1)
        let axis = ONNXGraphBuilder.attribute("axis", int: 1)
        let order = g.node("TopK", [mask, k], name: name + "_mask_order", outputs: 2, [axis, largest, sorted])[1]
        let inverse = g.node("TopK", [order, k], name: name + "_mask_inverse", outputs: 2,
                             [axis, ONNXGraphBuilder.attribute("largest", int: 0), sorted])[1]
        compaction.orderSteps = order
        compaction.order = unsqueeze(order, [2], name: name + "_mask_order_indices")
        compaction.inverse = unsqueeze(inverse, [2], name: name + "_mask_inverse_indices")
    }

    /// `x` `[batch, time, features]` with each sequence's valid steps first, in time order;
    /// `x` itself without a Keras mask.
    mutating func compacted(_ x: String, name: String) -> String {
        guard let mask = compaction.mask else { return x }
        makeOrder(x, mask: mask, name: name)
        return g.op("GatherND", [x, compaction.order!], name: name + "_compacted", [ONNXGraphBuilder.attribute("batch_dims", int: 1)])
    }

    /// `y` `[batch, time, directions, hidden]` of a recurrent node run on ``compacted(_:name:)``
    /// input, at its own steps, with what `r` emits at masked ones; `y` without a Keras mask.
    mutating func mappedBack(_ y: String, _ r: RecurrentLayer, _ index: Int, name: String) throws -> String {
        guard compaction.mask != nil, let inverse = compaction.inverse else { return y }
        let indices: String
        switch r.maskedOutput {
        case .zero:
            indices = inverse
        case .carry:
            guard r.directions.count == 1 else {
                throw refuse(index, "a bidirectional layer that repeats its last valid output at masked steps under a mask from the padding (Keras's Bidirectional gives zeros there)")
            }
            if compaction.carryIndex == nil {
                let mask = compaction.mask!
                let zero = g.int64s(name + "_zero", [0], shape: []), one = g.int64s(name + "_one", [1], shape: [])
                let count = g.op("CumSum", [mask, g.int64s(name + "_cumsum_axis", [1], shape: [])], name: name + "_mask_count")
                let position = g.op("Sub", [count, one], name: name + "_mask_position")
                let started = g.op("Greater", [count, zero], name: name + "_mask_started")
                let column = unsqueeze(started, [2], name: name + "_mask_started_steps")
                let positions = unsqueeze(position, [2], name: name + "_mask_position_indices")
                compaction.carryIndex = g.op("Where", [column, positions, inverse], name: name + "_mask_carry_indices")
            }
            indices = compaction.carryIndex!
        }
        return g.op("GatherND", [y, indices], name: name + "_steps", [ONNXGraphBuilder.attribute("batch_dims", int: 1)])
    }

    /// The mask as bool `[batch, time, 1]` (the valid steps for pooling); nil without a Keras mask.
    mutating func validMaskSteps(name: String) -> String? {
        guard let mask = compaction.mask else { return nil }
        if compaction.valid == nil {
            let bool = g.op("Cast", [mask], name: name + "_valid", [ONNXGraphBuilder.attribute("to", int: 9)])
            compaction.valid = unsqueeze(bool, [2], name: name + "_valid_steps")
        }
        return compaction.valid
    }

    /// Each sequence's last valid step, int64 `[batch, 1]`: `order[b, Σ_t m − 1]` (the valid
    /// steps come first in `order`, in time order); nil without a Keras mask.
    mutating func lastValidStepColumn(_ data: String, name: String) -> String? {
        guard let mask = compaction.mask else { return nil }
        makeOrder(data, mask: mask, name: name)
        return g.op("GatherElements", [compaction.orderSteps!, lastIndexColumn(name: name)], name: name + "_last_valid",
                    [ONNXGraphBuilder.attribute("axis", int: 1)])
    }
}

// MARK: - Reading the compaction back

extension ONNXMaskValue.Lengths {
    /// The graph's lengths input (right padding by construction), not a mask from the padding.
    var isInput: Bool { if case .input = self { return true } else { return false } }
}

extension ONNXGraph {
    /// The mask a value is, int `[batch, time]`: `mask_zero`'s or `Masking`'s.
    private static func maskSteps(_ value: Value?) -> ONNXMaskValue.Lengths? {
        switch value {
        case .mask(.idsMask)?: return .ids
        case let .mask(.stepMask(v, true, true))?: return .masking(v)
        default: return nil
        }
    }

    private static func intAttribute(_ node: Onnx_NodeProto, _ name: String) -> Int64? {
        node.attribute.first { $0.name == name }.map(\.i)
    }

    private static func axes(_ node: Onnx_NodeProto, _ args: [Value]) -> [Int]? {
        if let attr = node.attribute.first(where: { $0.name == "axes" }) { return attr.ints.map { Int($0) } }
        if case let .constant(c)? = args[safe: 1], let ints = c.ints { return ints.map { Int($0) } }
        return nil
    }

    private static func isScalar(_ value: Value?, _ number: Int64) -> Bool {
        guard case let .constant(c)? = value, c.shape.allSatisfy({ $0 == 1 }), let i = c.ints, i.count == 1 else { return false }
        return i[0] == number
    }

    /// The values of a Keras mask's compaction (``ONNXMaskCompaction``); nil for a node that
    /// is none of them.
    mutating func compactionPattern(_ node: Onnx_NodeProto, _ args: [Value], refuse: (String) -> ModelError) throws -> [Value]? {
        let op = node.opType
        let batchDims = Self.intAttribute(node, "batch_dims") ?? 0
        switch (op, args.first) {
        case ("TopK", let first?) where args.count == 2:
            guard case .shape([.time], false) = args[1], [1, -1].contains(Self.intAttribute(node, "axis") ?? -1),
                  (Self.intAttribute(node, "sorted") ?? 1) == 1 else { return nil }
            let largest = (Self.intAttribute(node, "largest") ?? 1) == 1
            if largest, let l = Self.maskSteps(first) {
                return [.mask(.sortedMask(l)), .mask(.order(l, inverse: false, unsqueezed: false))]
            }
            if !largest, case let .mask(.order(l, false, false)) = first {
                return [.mask(.sortedMask(l)), .mask(.order(l, inverse: true, unsqueezed: false))]
            }
            throw refuse("sorts a mask in a way rnnkit does not follow (it follows the valid steps first, in time order, and the inverse of that order)")
        case ("Unsqueeze", .mask(let m)?) where Self.axes(node, args) == [2] || Self.axes(node, args) == [-1]:
            switch m {
            case let .order(l, inverse, false): return [.mask(.order(l, inverse: inverse, unsqueezed: true))]
            case let .stepCount(l, minusOne, false): return [.mask(.stepCount(l, minusOne: minusOne, unsqueezed: true))]
            case let .started(l, false): return [.mask(.started(l, unsqueezed: true))]
            default: return nil
            }
        case ("CumSum", let first?) where Self.maskSteps(first) != nil && args.count == 2:
            guard Self.isScalar(args[1], 1), (Self.intAttribute(node, "exclusive") ?? 0) == 0,
                  (Self.intAttribute(node, "reverse") ?? 0) == 0 else {
                throw refuse("sums a mask in a way rnnkit does not follow (it follows the running count over time)")
            }
            return [.mask(.stepCount(Self.maskSteps(first)!, minusOne: false, unsqueezed: false))]
        case let ("Sub", .mask(.stepCount(l, false, false))?) where args.count == 2 && Self.isScalar(args[1], 1):
            return [.mask(.stepCount(l, minusOne: true, unsqueezed: false))]
        case let ("Greater", .mask(.stepCount(l, false, false))?) where args.count == 2 && Self.isScalar(args[1], 0):
            return [.mask(.started(l, unsqueezed: false))]
        case let ("Where", .mask(.started(l, true))?) where args.count == 3:
            guard case .mask(.stepCount(l, true, true)) = args[1], case .mask(.order(l, true, true)) = args[2] else {
                throw refuse("selects places of the steps rnnkit does not follow (it follows each step's last valid place)")
            }
            return [.mask(.carryPlace(l))]
        case ("Cast", let first?) where Self.maskSteps(first) != nil && Self.intAttribute(node, "to") == 9:
            return [.mask(.validSteps(Self.maskSteps(first)!, unsqueezed: false))]
        case let ("GatherElements", .mask(.order(l, false, false))?) where args.count == 2 && Self.intAttribute(node, "axis") == 1:
            guard case .mask(.lastIndex(l, true)) = args[1] else {
                throw refuse("picks from the order of the valid steps in a way rnnkit does not follow (it follows the last valid one)")
            }
            return [.mask(.lastValidStep(l))]
        case let ("Transpose", .mask(.compacted(flow, l, output))?):
            let perm = node.attribute.first { $0.name == "perm" }?.ints.map { Int($0) } ?? Array((0..<flow.axes.count).reversed())
            guard perm.sorted() == Array(0..<flow.axes.count) else { throw refuse("has perm \(perm), not a permutation of \(flow.axes.count) axes") }
            var result = flow
            result.axes = perm.map { flow.axes[$0] }
            return [.mask(.compacted(result, l, output: output))]
        case let ("GatherND", .flow(x)?) where args.count == 2 && batchDims == 1:
            switch args[1] {
            case let .mask(.order(l, false, true)):
                // The valid steps first: the input of a recurrent node.
                guard x.role == .data, x.axes.count == 3, x.axes[0] == .batch, x.axes[1] == .time else {
                    throw refuse("gathers the valid steps of data that is not [batch, time, features]")
                }
                return [.mask(.compacted(x, l, output: false))]
            case let .mask(.lastValidStep(l)):
                guard l == writtenMask.lengths, x.role == .data, x.axes.count == 3, x.axes[0] == .batch, x.axes[1] == .time else {
                    throw refuse("gathers the last valid step of data rnnkit cannot follow")
                }
                return [.flow(x.readingOut(.lastValidStep, node: node.name))]
            default:
                return nil
            }
        case let ("GatherND", .mask(.compacted(y, l, output))?) where args.count == 2 && batchDims == 1:
            // A recurrent node's output on the valid steps, back at its own steps.
            guard output, l == writtenMask.lengths, y.role == .data, y.axes.count >= 3, y.axes[0] == .batch, y.axes[1] == .time,
                  case var .recurrent(layer)? = y.layers.last, layer.returnSequences else {
                throw refuse("gathers steps of data that is not a recurrent node's output on the valid steps")
            }
            switch args[1] {
            case .mask(.order(l, true, true)):
                layer.maskedOutput = .zero
            case .mask(.carryPlace(l)) where layer.directions.count == 1:
                layer.maskedOutput = .carry
            default:
                throw refuse("gathers a recurrent node's output on the valid steps by indices rnnkit cannot follow (it follows each step's place, or its last valid place for one direction)")
            }
            var flow = y
            flow.layers[flow.layers.count - 1] = .recurrent(layer)
            return [.flow(flow)]
        default:
            return nil
        }
    }

    /// A recurrent node; on data gathered valid steps first (a Keras mask's compaction) it
    /// must take that mask's number of steps as `sequence_lens`, and its `Y` is in that order
    /// until gathered back.
    mutating func recurrentNode(_ node: Onnx_NodeProto, _ index: Int, _ args: [Value]) throws -> [Value] {
        guard case let .mask(.compacted(x, l, false))? = args.first else { return try recurrent(node, index, args) }
        guard case .mask(.lengths(l))? = args[safe: 4] else {
            throw refusal(node, index, "runs on the valid steps gathered first without their number as sequence_lens")
        }
        var plain = args
        plain[0] = .flow(x)
        writtenMask.compacting = l
        defer { writtenMask.compacting = nil }
        var outputs = try recurrent(node, index, plain)
        if case let .flow(y) = outputs[0] { outputs[0] = .mask(.compacted(y, l, output: true)) }
        return outputs
    }
}
