import RecurrentEngine

/// Values of the graphs rnnkit writes (`ONNXWriter`) that the exporters' patterns do not
/// cover: a Keras mask computed from the padding, the steps past each length as Keras gives
/// them, the merge of a bidirectional node's directions, and pooling over time
/// (spec/onnx-layout.md, "Writing"). Each is read by what it computes, node by node.
enum ONNXMaskValue {
    /// Where each sequence's length comes from.
    enum Lengths: Equatable {
        /// The graph's lengths input.
        case input(String)
        /// The number of non-zero token ids (Keras `mask_zero`).
        case ids
        /// The number of steps whose features are not all `value` (Keras `Masking`).
        case masking(Float)
    }
    /// `Equal(ids, 0)`, `[batch, time]`.
    case idsPadding
    /// `Not(Equal(ids, 0))` (bool, or cast to an integer), `[batch, time]`.
    case idsMask
    /// `Equal(x, value)` of the graph's input features, `[batch, time, features]`; `Not` of it
    /// when `differs` (bool, or cast to float).
    case features(value: Float, differs: Bool)
    /// `ReduceMax` of the features that differ over the features: the step mask
    /// `[batch, time, 1]` (float, or int64 when `integer`), `[batch, time]` when squeezed.
    case stepMask(value: Float, integer: Bool, squeezed: Bool)
    /// Each sequence's length, `[batch]` int.
    case lengths(Lengths)
    /// `lengths − 1`; `[batch, 1]` when `column`.
    case lastIndex(Lengths, column: Bool)
    /// `Range(0, time)`; `[1, time]` when `row`.
    case timeRange(row: Bool)
    /// `min(t, lengths − 1)`, `[batch, time]`; `[batch, time, 1]` when `unsqueezed`.
    case carryIndex(Lengths, unsqueezed: Bool)
    /// `lengths` cast to float (`float`), `[batch, 1]` when `column`.
    case lengthsAs(Lengths, float: Bool, column: Bool)
    /// `t < lengths` `[batch, time]`; `[batch, time, 1]` when `unsqueezed`.
    case validSteps(Lengths, unsqueezed: Bool)
    /// A sum of `flow` over its time axis (the numerator of a mean over valid steps).
    case timeSum(ONNXGraph.Flow)
    /// `flow` with its steps past each length at the lowest float (before a maximum over valid steps), or
    /// at 0 (`zero`: before a sum over valid steps).
    case validOnly(ONNXGraph.Flow, zero: Bool)
    // A Keras mask's compaction (ONNXMaskCompaction.swift).
    /// `TopK` of the mask's values (unused).
    case sortedMask(Lengths)
    /// The steps valid first, each group in time order (`TopK(m).indices`), or each step's
    /// place in that order (`inverse`), `[batch, time]`; `[batch, time, 1]` when `unsqueezed`.
    case order(Lengths, inverse: Bool, unsqueezed: Bool)
    /// `cumsum(m)` over time (`minusOne`: less 1, each valid step's place), `[batch, time]`;
    /// `[batch, time, 1]` when `unsqueezed`.
    case stepCount(Lengths, minusOne: Bool, unsqueezed: Bool)
    /// `cumsum(m) > 0`: a valid step at or before each step, `[batch, time]`; `[batch, time, 1]`
    /// when `unsqueezed`.
    case started(Lengths, unsqueezed: Bool)
    /// `Where(cumsum(m) > 0, cumsum(m) − 1, inverse)` `[batch, time, 1]`: the place of each
    /// step's last valid output in the order, past the count (zeros) before the first.
    case carryPlace(Lengths)
    /// Each sequence's last valid step, `order[b, Σ m − 1]`, `[batch, 1]`.
    case lastValidStep(Lengths)
    /// Data gathered valid steps first (`output`: a recurrent node's output on such data, in
    /// that order too).
    case compacted(ONNXGraph.Flow, Lengths, output: Bool)
}

/// The steps of a Keras `go_backwards` layer in a written graph (spec/onnx-layout.md,
/// "Writing"): its input reversed before a forward node, the node's `Y` put back in the
/// order Keras emits its outputs.
enum ONNXStepOrder: Equatable {
    /// The data reversed over every step (`Slice` with step −1; no lengths): the node's `Y`
    /// is in Keras's order.
    case reversed
    /// The data reversed within each sequence's length (`ReverseSequence`): the node's `Y`
    /// is reversed within the lengths, then over every step.
    case reversedWithin(ONNXMaskValue.Lengths)
    /// A go_backwards node's `Y`, still to be reversed within the lengths.
    case outputWithin(ONNXMaskValue.Lengths)
    /// That `Y` reversed within the lengths, still to be reversed over every step.
    case outputReversedWithin
}

/// What the recurrent nodes of a written graph took as `sequence_lens`.
struct ONNXWrittenMask {
    var lengths: ONNXMaskValue.Lengths?
    /// The mask whose valid steps the recurrent node being read takes, gathered to the front.
    var compacting: ONNXMaskValue.Lengths?
}

extension ONNXGraph.Flow {
    /// The flow `[batch, time, features]` read out over its time axis by `readout` (a pooling
    /// or last-step node named `node`): `[batch, features]`.
    func readingOut(_ readout: Readout, node: String) -> ONNXGraph.Flow {
        var flow = self
        flow.axes.remove(at: 1)
        flow.layers.append(.readout(readout))
        flow.layerNames.append(node)
        return flow
    }
}

extension ONNXGraph {
    private func int(_ node: Onnx_NodeProto, _ name: String) -> Int64? {
        node.attribute.first { $0.name == name }.map(\.i)
    }

    private func axesOf(_ node: Onnx_NodeProto, _ args: [Value]) -> [Int]? {
        if let attr = node.attribute.first(where: { $0.name == "axes" }) { return attr.ints.map { Int($0) } }
        if case let .constant(c)? = args[safe: 1], let ints = c.ints { return ints.map { Int($0) } }
        return nil
    }

    private static func isScalar(_ value: Value, _ number: Float) -> Bool {
        guard case let .constant(c) = value, c.shape.allSatisfy({ $0 == 1 }) else { return false }
        if let f = c.floats, f.count == 1 { return f[0] == number }
        if let i = c.ints, i.count == 1 { return Float(i[0]) == number }
        return false
    }

    private func lengthsOf(_ value: Value) -> ONNXMaskValue.Lengths? {
        switch value {
        case let .lengths(input, false): return .input(input)
        case let .mask(.lengths(l)): return l
        default: return nil
        }
    }

    /// Whether a recurrent node that reads `x` is a go_backwards layer (its input reversed),
    /// and the order of the steps of its `Y`. Called once the node's `sequence_lens` is read.
    func writtenStepOrder(_ x: Flow, directions: Int, refuse: (String) -> ModelError) throws -> (Bool, ONNXStepOrder?) {
        switch x.stepOrder {
        case nil: return (false, nil)
        case _ where directions != 1:
            throw refuse("reads reversed steps in both directions; rnnkit reads a go_backwards layer of one direction")
        case .reversed?:
            guard nodesWithLengths == 0 else { throw refuse("takes sequence_lens and steps reversed over the whole time axis") }
            return (true, nil)
        case let .reversedWithin(l)?:
            guard l == writtenMask.lengths else {
                throw refuse("reads steps reversed within other lengths than its sequence_lens")
            }
            return (true, .outputWithin(l))
        default:
            throw refuse("reads a go_backwards layer's outputs before they are put back in the order Keras emits")
        }
    }

    /// The steps of `x` reversed on its time axis by `node` (`ReverseSequence` of `lengths`,
    /// or `Slice` with step −1 over every step), or nil when `node` is not such a reversal.
    private func reversal(_ node: Onnx_NodeProto, _ args: [Value], _ x: Flow) -> ONNXMaskValue.Lengths?? {
        guard x.role == .data, let time = x.axes.firstIndex(of: .time), let batch = x.axes.firstIndex(of: .batch) else { return nil }
        if node.opType == "ReverseSequence", args.count == 2, let l = lengthsOf(args[1]),
           int(node, "time_axis") ?? 0 == Int64(time), int(node, "batch_axis") ?? 1 == Int64(batch) {
            return .some(l)
        }
        if node.opType == "Slice", args.count == 5, case let .constant(starts) = args[1], case let .constant(ends) = args[2],
           case let .constant(axes) = args[3], case let .constant(steps) = args[4],
           starts.ints == [-1], ends.ints == [Int64.min], axes.ints == [Int64(time)] || axes.ints == [Int64(time - x.axes.count)],
           steps.ints == [-1] {
            return .some(nil)
        }
        return nil
    }

    /// The values of a written graph's mask, merge and pooling nodes; nil for a node that is
    /// none of them (the exporters' patterns then read it).
    mutating func writtenPattern(_ node: Onnx_NodeProto, _ index: Int, _ args: [Value],
                                 refuse: (String) -> ModelError) throws -> [Value]? {
        let op = node.opType
        let keepdims = (int(node, "keepdims") ?? 1) != 0
        // go_backwards: the steps reversed before the node and put back after it.
        if case let .flow(x)? = args.first, let reversed = reversal(node, args, x) {
            var flow = x
            switch (x.stepOrder, reversed) {
            case let (nil, l?): flow.stepOrder = .reversedWithin(l)
            case (nil, nil): flow.stepOrder = .reversed
            case let (.outputWithin(taken)?, l?) where l == taken: flow.stepOrder = .outputReversedWithin
            case (.outputReversedWithin?, nil): flow.stepOrder = nil
            default: throw refuse("reverses steps in an order rnnkit does not follow (a go_backwards layer's input, then its output within the lengths and over every step)")
            }
            return [.flow(flow)]
        }
        if args.contains(where: { if case let .flow(f) = $0 { return f.stepOrder != nil }; return false }),
           !["Transpose", "Reshape", "Identity"].contains(op) {
            throw refuse("computes on steps in reversed order (a go_backwards layer's input or output before it is put back in the order Keras emits)")
        }
        if let compaction = try compactionPattern(node, args, refuse: refuse) { return compaction }
        switch (op, args.first) {
        // Keras mask_zero: Not(Equal(ids, 0)), cast, summed over time.
        case let ("Equal", .flow(ids)?) where ids.role == .tokenIDs && args.count == 2 && Self.isScalar(args[1], 0):
            return [.mask(.idsPadding)]
        case ("Not", .mask(.idsPadding)?):
            return [.mask(.idsMask)]
        case ("Cast", .mask(.idsMask)?) where [6, 7].contains(int(node, "to") ?? 0):
            return [.mask(.idsMask)]
        case ("ReduceSum", .mask(.idsMask)?) where axesOf(node, args) == [1] && !keepdims:
            return [.mask(.lengths(.ids))]
        // Keras Masking of the input features: any(x ≠ value) over the features.
        case let ("Equal", .flow(x)?) where x.role == .data && x.layers.isEmpty && args.count == 2:
            guard case let .constant(c) = args[1], let f = c.floats, f.count == 1, c.shape.allSatisfy({ $0 == 1 }) else { return nil }
            return [.mask(.features(value: f[0], differs: false))]
        case let ("Not", .mask(.features(value, false))?):
            return [.mask(.features(value: value, differs: true))]
        case let ("Cast", .mask(.features(value, true))?) where int(node, "to") == 1:
            return [.mask(.features(value: value, differs: true))]
        case let ("ReduceMax", .mask(.features(value, true))?) where axesOf(node, args).map({ $0 == [2] || $0 == [-1] }) ?? false && keepdims:
            return [.mask(.stepMask(value: value, integer: false, squeezed: false))]
        case let ("Mul", .flow(x)?) where args.count == 2 && { if case .mask = args[1] { return true }; return false }():
            guard case let .mask(.stepMask(value, false, false)) = args[1], x.role == .data, x.layers.isEmpty,
                  x.axes.count == 3 else { throw refuse("multiplies data by a mask rnnkit cannot follow") }
            var flow = x
            flow.layers.append(.masking(maskValue: value))
            flow.layerNames.append(node.name)
            return [.flow(flow)]
        case let ("Cast", .mask(.stepMask(value, _, squeezed))?) where int(node, "to") == 7:
            return [.mask(.stepMask(value: value, integer: true, squeezed: squeezed))]
        case let ("Squeeze", .mask(.stepMask(value, true, false))?) where axesOf(node, args).map({ $0 == [2] || $0 == [-1] }) ?? false:
            return [.mask(.stepMask(value: value, integer: true, squeezed: true))]
        case let ("ReduceSum", .mask(.stepMask(value, true, true))?) where axesOf(node, args) == [1] && !keepdims:
            return [.mask(.lengths(.masking(value)))]
        case let ("Cast", .mask(.lengths(l))?) where [6, 7].contains(int(node, "to") ?? 0):
            return [.mask(.lengths(l))]
        // Steps: len − 1, 0..<time, min(t, len − 1), t < len.
        case ("Sub", _?) where args.count == 2 && Self.isScalar(args[1], 1) && lengthsOf(args[0]) != nil:
            return [.mask(.lastIndex(lengthsOf(args[0])!, column: false))]
        case ("Range", .constant(let start)?) where start.ints == [0] && args.count == 3:
            guard case .shape([.time], true) = args[1], Self.isScalar(args[2], 1) else { return nil }
            return [.mask(.timeRange(row: false))]
        case ("Unsqueeze", .mask(let m)?):
            let axes = axesOf(node, args)
            switch m {
            case let .lastIndex(l, false) where axes == [1]: return [.mask(.lastIndex(l, column: true))]
            case .timeRange(false) where axes == [0]: return [.mask(.timeRange(row: true))]
            case let .carryIndex(l, false) where axes == [2] || axes == [-1]: return [.mask(.carryIndex(l, unsqueezed: true))]
            case let .validSteps(l, false) where axes == [2] || axes == [-1]: return [.mask(.validSteps(l, unsqueezed: true))]
            case let .lengthsAs(l, float, false) where axes == [1]: return [.mask(.lengthsAs(l, float: float, column: true))]
            case let .lengths(l) where axes == [1]: return [.mask(.lengthsAs(l, float: false, column: true))]
            default: throw refuse("unsqueezes a mask value rnnkit cannot follow")
            }
        case let ("Unsqueeze", .lengths(input, false)?) where axesOf(node, args) == [1]:
            return [.mask(.lengthsAs(.input(input), float: false, column: true))]
        case ("Min", .mask(.timeRange(true))?) where args.count == 2:
            guard case let .mask(.lastIndex(l, true)) = args[1] else { return nil }
            return [.mask(.carryIndex(l, unsqueezed: false))]
        case ("Less", .mask(.timeRange(true))?) where args.count == 2:
            guard case let .mask(.lengthsAs(l, false, true)) = args[1] else { return nil }
            guard l.isInput else {
                throw refuse("compares the steps with the number of unmasked steps, which is the mask only when it is a suffix (right padding); rnnkit reads the mask itself")
            }
            return [.mask(.validSteps(l, unsqueezed: false))]
        case ("Cast", _?) where int(node, "to") == 1 && lengthsOf(args[0]) != nil:
            return [.mask(.lengthsAs(lengthsOf(args[0])!, float: true, column: false))]
        case ("Cast", _?) where [6, 7].contains(int(node, "to") ?? 0) && lengthsOf(args[0]) != nil && { if case .mask = args[0] { return false }; return true }():
            // The lengths input cast for the comparison of steps stays the lengths.
            return nil
        // The steps past each length as Keras gives them, and the last valid step.
        case let ("GatherND", .flow(y)?) where args.count == 2 && int(node, "batch_dims") == 1:
            guard y.role == .data, y.axes.count == 3, y.axes[0] == .batch, y.axes[1] == .time,
                  case var .recurrent(layer)? = y.layers.last, layer.returnSequences else {
                throw refuse("gathers steps of data that is not a recurrent layer's sequence")
            }
            switch args[1] {
            case let .mask(.carryIndex(l, true)) where l == writtenMask.lengths && l.isInput:
                layer.maskedOutput = .carry
                var flow = y
                flow.layers[flow.layers.count - 1] = .recurrent(layer)
                return [.flow(flow)]
            case let .mask(.lastIndex(l, true)) where l == writtenMask.lengths && l.isInput:
                return [.flow(y.readingOut(.lastValidStep, node: node.name))]
            default:
                throw refuse("gathers steps by indices rnnkit cannot follow (it follows min(t, length − 1) and length − 1 of the lengths its recurrent nodes take)")
            }
        // Merged directions: a sum, product or mean over a bidirectional node's direction axis.
        case let (reduction, .flow(y)?) where ["ReduceSum", "ReduceProd", "ReduceMean"].contains(reduction) && !keepdims:
            guard let axes = axesOf(node, args), axes.count == 1 else { return nil }
            let k = axes[0] < 0 ? axes[0] + y.axes.count : axes[0]
            let merge: MergeMode = reduction == "ReduceSum" ? .sum : reduction == "ReduceProd" ? .mul : .ave
            if case .directions(2)? = y.axes[safe: k], case .hidden(let h)? = y.axes.last, y.axes.count == 4 || y.axes.count == 3,
               case var .recurrent(layer)? = y.layers.last, layer.directions.count == 2 {
                var flow = y
                layer.merge = merge
                if case .finalStates(cell: false) = y.role {
                    // Y_h [2, batch, hidden] merged: the layer's last output.
                    guard y.axes.count == 3, k == 0 else { throw refuse("merges final states on an axis other than their directions") }
                    layer.returnSequences = false
                    flow.axes = [.batch, .features(h)]
                } else {
                    guard y.role == .data, y.axes == [.batch, .time, .directions(2), .hidden(h)] else {
                        throw refuse("merges directions of a recurrent node's output laid out as \(Self.text(y.axes)); rnnkit follows [batch, time, directions, hidden]")
                    }
                    flow.axes = [.batch, .time, .features(h)]
                }
                flow.role = .data
                flow.layers[flow.layers.count - 1] = .recurrent(layer)
                return [.flow(flow)]
            }
            // Pooling over time.
            guard y.role == .data, y.axes.count == 3, y.axes[0] == .batch, y.axes[1] == .time, k == 1 else { return nil }
            guard reduction == "ReduceMean", nodesWithLengths == 0 else {
                throw refuse("averages every step of a masked sequence; rnnkit reads a mean over each sequence's valid steps")
            }
            return [.flow(y.readingOut(.meanOverValidSteps, node: node.name))]
        case let ("ReduceMax", .flow(y)?) where !keepdims && axesOf(node, args) == [1]:
            guard y.role == .data, y.axes.count == 3, y.axes[0] == .batch, y.axes[1] == .time else { return nil }
            // Without a mask every step is valid; with one (lengths, or a Masking), this is the
            // maximum over every step.
            let masked = nodesWithLengths > 0 || y.layers.contains { if case .masking = $0 { return true } else { return false } }
            return [.flow(y.readingOut(masked ? .maxOverAllSteps : .maxOverValidSteps, node: node.name))]
        case let ("ReduceSum", .mask(.validOnly(y, true))?) where !keepdims && axesOf(node, args) == [1]:
            return [.mask(.timeSum(y))]
        case let ("ReduceMax", .mask(.validOnly(y, false))?) where !keepdims && axesOf(node, args) == [1]:
            return [.flow(y.readingOut(.maxOverValidSteps, node: node.name))]
        case let ("Div", .mask(.timeSum(y))?) where args.count == 2:
            // The sum over the valid steps / lengths: the mean over valid steps.
            guard case let .mask(.lengthsAs(l, true, true)) = args[1], l == writtenMask.lengths else {
                throw refuse("divides a sum over the valid steps by something other than their number")
            }
            return [.flow(y.readingOut(.meanOverValidSteps, node: node.name))]
        case ("Where", .mask(.validSteps(let l, true))?) where args.count == 3:
            guard l == writtenMask.lengths, case let .flow(y) = args[1], y.role == .data, y.axes.count == 3,
                  y.axes[0] == .batch, y.axes[1] == .time,
                  case let .constant(c) = args[2], c.floats == [-Float.greatestFiniteMagnitude] || c.floats == [0], c.shape.allSatisfy({ $0 == 1 }) else {
                throw refuse("selects steps in a way rnnkit does not follow (it follows the valid steps of data, the lowest float or 0 elsewhere)")
            }
            return [.mask(.validOnly(y, zero: c.floats == [0]))]
        // An initial state given as an optional input, expanded to [directions, batch, hidden].
        case let ("Expand", .flow(state)?) where args.count == 2:
            guard case .initialState = state.role, case let .shape(dims, false) = args[1], dims.count == 3, dims[1] == .batch else {
                return nil
            }
            return [args[0]]
        // Flatten: [batch, time, features] → [batch, time · features], for a fixed time.
        case let ("Reshape", .flow(x)?) where args.count == 2:
            guard x.role == .data, x.axes.count == 3, x.axes[0] == .batch, x.axes[1] == .time, case let .features(f) = x.axes[2],
                  case let .constant(c) = args[1], let target = c.ints, target.count == 2, target[0] == 0,
                  f > 0, target[1] > 0, target[1] % Int64(f) == 0 else { return nil }
            var flow = x
            flow.axes = [.batch, .features(Int(target[1]))]
            flow.layers.append(.flatten)
            flow.layerNames.append(node.name)
            return [.flow(flow)]
        // Activations of the graphs rnnkit writes.
        case let (name, value?) where ["Elu", "Selu", "Softplus", "Softsign", "HardSigmoid", "Gelu"].contains(name) && args.count == 1:
            let attr = { (key: String) in node.attribute.first { $0.name == key } }
            guard var flow = try dataFlow(value, refuse: refuse),
                  let activation = ONNXLayout.dataActivation(name, alpha: attr("alpha")?.f, beta: attr("beta")?.f, gamma: attr("gamma")?.f,
                                                             approximate: attr("approximate").map { String(decoding: $0.s, as: UTF8.self) }) else {
                throw refuse("is an activation rnnkit does not read with these attributes")
            }
            flow.layers.append(.activation(activation))
            flow.layerNames.append(node.name)
            return [.flow(flow)]
        // swish: x · sigmoid(x).
        case let ("Mul", .flow(x)?) where args.count == 2:
            guard case let .flow(s) = args[1], case .activation(.sigmoid)? = s.layers.last, Array(s.layers.dropLast()) == x.layers,
                  s.axes == x.axes, x.role == .data, s.role == .data else { return nil }
            var flow = x
            flow.layers.append(.activation(.swish))
            flow.layerNames.append(node.name)
            return [.flow(flow)]
        default:
            if case .mask = args.first ?? .absent { throw refuse("computes on a mask in a way rnnkit does not follow") }
            if args.contains(where: { if case .mask = $0 { return true }; return false }) {
                throw refuse("computes on a mask in a way rnnkit does not follow")
            }
            return nil
        }
    }

    /// A recurrent node's `sequence_lens` computed from the padding: the model's first layer
    /// masks (an embedding's `mask_zero`, `Masking`), every node takes the same lengths.
    mutating func takeWrittenLengths(_ value: ONNXMaskValue, _ x: inout Flow, refuse: (String) -> ModelError) throws {
        guard case let .lengths(l) = value, l != .input("") else {
            throw refuse("takes sequence_lens computed in a way rnnkit does not follow")
        }
        func uncompacted() -> ModelError {
            refuse("takes the number of unmasked steps as sequence_lens on the steps in time order, which is the mask only when it is a suffix (right padding); rnnkit reads them on the valid steps gathered first")
        }
        if let taken = writtenMask.lengths, taken != l {
            throw refuse("takes other lengths than the recurrent nodes before it")
        }
        switch l {
        case .ids:
            guard writtenMask.compacting == l else { throw uncompacted() }
            guard case var .embedding(e)? = x.layers.first else {
                throw refuse("takes the number of non-zero token ids as sequence_lens, but its input does not come from an embedding of them")
            }
            e.maskZero = true
            x.layers[0] = .embedding(e)
        case let .masking(value):
            guard writtenMask.compacting == l else { throw uncompacted() }
            guard case .masking(value)? = x.layers.first else {
                throw refuse("takes the number of unmasked steps as sequence_lens, but its input does not come through that Masking")
            }
        case .input:
            throw refuse("takes sequence_lens computed in a way rnnkit does not follow")
        }
        writtenMask.lengths = l
        nodesWithLengths += 1
    }
}
