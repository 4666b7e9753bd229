import Foundation
import SwiftProtobuf
import RecurrentEngine
import TextSafety

/// Writes the neutral model as an ONNX graph (spec/onnx-layout.md, "Writing"): one LSTM,
/// GRU or RNN operator per recurrent layer (`layout = 0`, with Transposes around it), never a
/// Loop; masks and lengths as `sequence_lens`, and what each source framework emits past a
/// sequence's length computed in the graph.
///
/// The graph takes `input` — features `[batch, time, features]` float, or token ids
/// `[batch, time]` int64 — and, for a model that runs on lengths (a PyTorch source, an ONNX
/// source with `sequence_lens`), `lengths` `[batch]` int64. A Keras mask (`mask_zero`,
/// `Masking`) is computed from the padding in the graph, exactly for any mask: each recurrent
/// node runs on the valid steps gathered first (``ONNXMaskCompaction``). It gives `output`,
/// `[batch, time, features]` or `[batch, features]`.
enum ONNXWriter {
    /// The opsets rnnkit writes, and the default: opset 17, which ONNX Runtime 1.14 and
    /// later run (the recurrent operators of version 14, with `layout`).
    static let opsets: ClosedRange<Int> = 14...22
    static let defaultOpset = 17

    /// The IR version that goes with `opset` (the ONNX release that introduced it).
    static func irVersion(opset: Int) -> Int64 {
        switch opset {
        case ...18: return 8
        case 19...20: return 9
        default: return 10
        }
    }

    /// Where a model's mask comes from, in the written graph.
    enum MaskSource: Equatable {
        /// A `lengths` graph input (PyTorch's packed sequences; an ONNX source's `sequence_lens`).
        case lengthsInput
        /// The model's own mask layers (Keras `mask_zero`, `Masking`), or none.
        case layers
    }

    /// The graph of `model`, serialised. Throws the refusal of what ONNX cannot compute
    /// exactly, naming the layer. With `stateOutputs` (a bare recurrent module, as PyTorch's
    /// `nn.LSTM` returns `output, (h_n, c_n)`), the graph also gives `h_n` (and `c_n` for an
    /// LSTM): every layer's final states stacked, `[layers·directions, batch, hidden]`.
    static func serialized(_ model: Model, masks: MaskSource, stateOutputs: Bool = false, opset: Int, file: String) throws -> Data {
        var writer = try Writer(model: model, masks: masks, stateOutputs: stateOutputs, opset: opset, file: file)
        return try writer.write().serializedData()
    }

    /// The fingerprint the written graph reads back as: `model`'s, with what cannot change an
    /// output of the graph left out — what a layer emits at masked steps when no mask reaches
    /// it, or when it goes backwards.
    static func expectedModel(_ model: Model, masks: MaskSource) -> Model {
        var result = model
        var masked = masks == .lengthsInput
        for (i, layer) in model.layers.enumerated() {
            switch layer {
            case let .embedding(e) where e.maskZero: masked = true
            case .masking: masked = true
            case var .recurrent(r) where !masked || r.goBackwards:
                // A go_backwards layer meets the masked steps of a right-padded sequence first:
                // it emits zeros there whether it carries its last output or not.
                r.maskedOutput = .zero
                result.layers[i] = .recurrent(r)
            case .readout(.maxOverAllSteps) where !masked:
                // Without a mask every step is valid.
                result.layers[i] = .readout(.maxOverValidSteps)
            default: break
            }
        }
        return result
    }

    struct Writer {
        let model: Model
        let masks: MaskSource
        let stateOutputs: Bool
        let opset: Int
        let file: String
        var g = ONNXGraphBuilder()
        var inputs: [Onnx_ValueInfoProto] = []

        /// The tensor between layers: `[batch, time, features]` (`sequence`) or `[batch, features]`.
        var data = "input"
        var sequence = true
        var features: Int?
        /// Each sequence's valid steps, int64 `[batch]`, once a mask applies; and as int32.
        var lengths: String?
        var lengths32: String?
        /// The last recurrent layer's `Y_h` `[directions, batch, hidden]` while the data is its output.
        var finalStates: (name: String, layer: RecurrentLayer)?
        /// `[batch]` of the graph's input, int64 `[1]`, once computed (for the initial states' shape).
        var batchDim: String?
        /// How many recurrent layers the model has: one names its states `initial_h`, `initial_c`.
        var recurrentCount: Int { model.layers.filter { if case .recurrent = $0 { return true } else { return false } }.count }
        /// Every recurrent layer's `Y_h` (and `Y_c`), for `h_n` and `c_n` (`stateOutputs`).
        var layerStates: [(h: String, c: String?, layer: RecurrentLayer)] = []
        /// A Keras mask's compaction of the steps (ONNXMaskCompaction.swift).
        var compaction = ONNXMaskCompaction()

        init(model: Model, masks: MaskSource, stateOutputs: Bool, opset: Int, file: String) throws {
            guard ONNXWriter.opsets.contains(opset) else {
                throw ModelError(.invalidInput, file: file, message: "cannot be written at ONNX opset \(opset): rnnkit writes opsets \(ONNXWriter.opsets.lowerBound) to \(ONNXWriter.opsets.upperBound)")
            }
            self.model = model
            self.masks = masks
            self.stateOutputs = stateOutputs
            self.opset = opset
            self.file = file
        }

        func refuse(_ index: Int?, _ message: String) -> ModelError {
            let layer = index.map { i in model.layerName(i).map { "\(escapedForDisplay($0))" } ?? "layer \(i)" }
            return ModelError(.unsupported, file: file, layer: layer, message: "cannot be written as ONNX: " + message)
        }

        func axes(_ values: [Int]) -> Onnx_AttributeProto { ONNXGraphBuilder.attribute("axes", ints: values) }

        /// `op` with its `axes` as an input (the opset that made it one) or an attribute.
        mutating func reduce(_ op: String, _ x: String, axes values: [Int], keepdims: Bool, name: String) -> String {
            let keep = ONNXGraphBuilder.attribute("keepdims", int: keepdims ? 1 : 0)
            let asInput = op == "ReduceSum" || op == "Squeeze" || op == "Unsqueeze" ? opset >= 13 : opset >= 18
            if asInput {
                let axesName = g.int64s(name + "_axes", values.map(Int64.init))
                return g.op(op, [x, axesName], name: name, op.hasPrefix("Reduce") ? [keep] : [])
            }
            return g.op(op, [x], name: name, op.hasPrefix("Reduce") ? [axes(values), keep] : [axes(values)])
        }

        mutating func unsqueeze(_ x: String, _ values: [Int], name: String) -> String {
            reduce("Unsqueeze", x, axes: values, keepdims: false, name: name)
        }

        mutating func squeeze(_ x: String, _ values: [Int], name: String) -> String {
            reduce("Squeeze", x, axes: values, keepdims: false, name: name)
        }

        mutating func write() throws -> Onnx_ModelProto {
            g.reserve("input")
            g.reserve("output")
            if stateOutputs { g.reserve("h_n"); g.reserve("c_n") }
            let batch = ONNXGraphBuilder.Dim.named("batch"), time = model.sequenceLength.map(ONNXGraphBuilder.Dim.known) ?? .named("time")
            if model.takesTexts {
                throw refuse(nil, "the model takes texts (a TextVectorization in front of its embedding), which ONNX's operators do not split and look up as Keras does; convert the model without its text front")
            }
            if model.takesTokenIDs {
                inputs.append(ONNXGraphBuilder.valueInfo("input", .int64, [batch, time]))
            } else {
                guard let width = model.inputFeatures else { throw refuse(nil, "its input features are not known") }
                features = width
                inputs.append(ONNXGraphBuilder.valueInfo("input", .float, [batch, time, .known(width)]))
            }
            if masks == .lengthsInput {
                g.reserve("lengths")
                inputs.append(ONNXGraphBuilder.valueInfo("lengths", .int64, [batch]))
                lengths = "lengths"
            }
            for (i, layer) in model.layers.enumerated() {
                let name = model.layerName(i).map(Self.cleanName) ?? "layer\(i)"
                let keepsFinalStates: Bool
                switch layer {
                case let .embedding(e): try embedding(e, i, name); keepsFinalStates = false
                case let .masking(value): try masking(value, i, name); keepsFinalStates = false
                case let .recurrent(r): try recurrent(r, i, name); keepsFinalStates = true
                case let .dense(d): try dense(d, i, name); keepsFinalStates = false
                case let .activation(a): try activation(a, i, name); keepsFinalStates = false
                case let .readout(r): try readout(r, i, name); keepsFinalStates = false
                case .flatten: try flatten(i, name); keepsFinalStates = false
                }
                if !keepsFinalStates { finalStates = nil }
            }
            // The output, under its own name.
            let output = g.op("Identity", [data], name: "output_identity")
            g.nodes[g.nodes.count - 1].output = ["output"]
            _ = output
            let outputDims: [ONNXGraphBuilder.Dim] = sequence ? [.named("batch"), time, .known(features ?? 0)]
                                                             : [.named("batch"), .known(features ?? 0)]
            var outputs = [ONNXGraphBuilder.valueInfo("output", .float, outputDims)]
            if stateOutputs {
                outputs += try stackedStates()
            }
            var graph = Onnx_GraphProto()
            graph.name = Self.cleanName(model.name)
            graph.node = g.nodes
            graph.initializer = g.initializers
            graph.input = inputs
            graph.output = outputs
            var proto = Onnx_ModelProto()
            proto.irVersion = ONNXWriter.irVersion(opset: opset)
            proto.producerName = "rnnkit"
            var opsetID = Onnx_OperatorSetIdProto()
            opsetID.domain = ""
            opsetID.version = Int64(opset)
            proto.opsetImport = [opsetID]
            proto.graph = graph
            return proto
        }

        /// `h_n` (and `c_n`): the layers' `Y_h` (`Y_c`) concatenated along the direction axis,
        /// as PyTorch stacks them, `[layers·directions, batch, hidden]`.
        mutating func stackedStates() throws -> [Onnx_ValueInfoProto] {
            guard let first = layerStates.first?.layer,
                  layerStates.allSatisfy({ $0.layer.kind == first.kind && $0.layer.outputSize == first.outputSize
                                           && $0.layer.directions.count == first.directions.count }) else {
                throw refuse(nil, "final states of recurrent layers of different kinds, sizes or directions, which no one tensor h_n holds")
            }
            let rows = layerStates.count * first.directions.count
            let dims: [ONNXGraphBuilder.Dim] = [.known(rows), .named("batch"), .known(first.outputSize)]
            var result: [Onnx_ValueInfoProto] = []
            let cells = layerStates.compactMap(\.c)
            for (name, states) in [("h_n", layerStates.map(\.h)), ("c_n", cells)] where !states.isEmpty {
                if states.count == 1 {
                    _ = g.op("Identity", states, name: name + "_identity")
                } else {
                    _ = g.op("Concat", states, name: name + "_stacked", [ONNXGraphBuilder.attribute("axis", int: 0)])
                }
                g.nodes[g.nodes.count - 1].output = [name]
                result.append(ONNXGraphBuilder.valueInfo(name, .float, dims))
            }
            return result
        }

        static func cleanName(_ name: String) -> String {
            let cleaned = String(name.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) || "_./-".unicodeScalars.contains($0) ? Character($0) : "_" })
            return cleaned.isEmpty ? "model" : cleaned
        }

        // MARK: Masks

        /// Int32 lengths for `sequence_lens`.
        mutating func sequenceLens() -> String? {
            guard let lengths else { return nil }
            if let lengths32 { return lengths32 }
            let cast = g.op("Cast", [lengths], name: "sequence_lens", [ONNXGraphBuilder.attribute("to", int: 6)])
            lengths32 = cast
            return cast
        }

        /// Lengths from a `[batch, time]` int64 0/1 mask: the number of unmasked steps.
        mutating func lengths(fromMask mask: String, name: String) throws -> String {
            reduce("ReduceSum", mask, axes: [1], keepdims: false, name: name + "_lengths")
        }

        mutating func combine(_ newLengths: String, _ index: Int) throws {
            guard lengths == nil else {
                throw refuse(index, "a second mask after the first (lengths, mask_zero or Masking); the written graph computes one")
            }
            lengths = newLengths
        }

        // MARK: Layers

        mutating func embedding(_ e: Embedding, _ index: Int, _ name: String) throws {
            guard index == 0 else { throw refuse(index, "an embedding that is not the model's first layer") }
            let table = g.floats(name + "_table", e.table.values, shape: e.table.shape)
            let ids = data
            data = g.op("Gather", [table, ids], name: name, [ONNXGraphBuilder.attribute("axis", int: 0)])
            features = e.dimension
            if e.maskZero {
                // mask = ids ≠ 0 (as int64), lengths = its sum over time.
                let zero = g.int64s(name + "_pad", [0], shape: [])
                let equal = g.op("Equal", [ids, zero], name: name + "_padding")
                let not = g.op("Not", [equal], name: name + "_mask")
                let mask = g.op("Cast", [not], name: name + "_mask_int", [ONNXGraphBuilder.attribute("to", int: 7)])
                try combine(try lengths(fromMask: mask, name: name), index)
                compaction.mask = mask
            }
        }

        mutating func masking(_ value: Float, _ index: Int, _ name: String) throws {
            guard sequence else { throw refuse(index, "a Masking layer after the time axis is gone") }
            // mask = any(x ≠ value) over the features, [batch, time, 1]; x · mask; lengths.
            let v = g.floats(name + "_value", [value], shape: [])
            let equal = g.op("Equal", [data, v], name: name + "_equal")
            let not = g.op("Not", [equal], name: name + "_differs")
            let differs = g.op("Cast", [not], name: name + "_differs_float", [ONNXGraphBuilder.attribute("to", int: 1)])
            let mask = reduce("ReduceMax", differs, axes: [2], keepdims: true, name: name + "_mask")
            data = g.op("Mul", [data, mask], name: name)
            let maskInt = g.op("Cast", [mask], name: name + "_mask_int", [ONNXGraphBuilder.attribute("to", int: 7)])
            let steps = squeeze(maskInt, [2], name: name + "_mask_steps")
            try combine(try lengths(fromMask: steps, name: name), index)
            compaction.mask = steps
        }

        mutating func recurrent(_ r: RecurrentLayer, _ index: Int, _ name: String) throws {
            guard sequence, features == r.inputSize else {
                throw refuse(index, "a recurrent layer that does not follow a sequence of \(r.inputSize) features")
            }
            if r.projectionSize != nil {
                throw refuse(index, "an LSTM projection (proj_size): ONNX's LSTM has none, and a projected state fed back into the recurrence cannot be written around the operator")
            }
            if r.goBackwards && r.directions.count != 1 {
                throw refuse(index, "go_backwards on a bidirectional layer (both directions over the reversed sequence), which ONNX's bidirectional operator does not compute")
            }
            let names = try (0..<r.directions.count).map { d in
                try ONNXWriter.activationNames(r.activations(ofDirection: d), kind: r.kind, refuse: { refuse(index, $0) })
            }
            let directions = r.directions.count
            let gateRows = r.kind.gateCount * r.hiddenSize
            let order = ONNXLayout.gateOrders[r.kind]
            var w: [Float] = [], rr: [Float] = [], b: [Float] = [], p: [Float] = []
            for d in r.directions {
                let o = d.reordered(to: order)
                w += o.inputWeight.values
                rr += o.recurrentWeight.values
                b += o.inputBias?.values ?? [Float](repeating: 0, count: gateRows)
                b += o.recurrentBias?.values ?? [Float](repeating: 0, count: gateRows)
                // ONNX's P: [directions, 3·H], blocks i, o, f (a direction without is zeros).
                p += d.peepholes?.reorderingRowBlocks(from: DirectionWeights.peepholeOrder, to: ONNXLayout.peepholeOrder).values
                    ?? [Float](repeating: 0, count: 3 * r.hiddenSize)
            }
            let hasPeepholes = r.directions.contains { $0.peepholes != nil }
            let wName = g.floats(name + "_W", w, shape: [directions, gateRows, r.inputSize])
            let rName = g.floats(name + "_R", rr, shape: [directions, gateRows, r.hiddenSize])
            let bName = r.hasBias ? g.floats(name + "_B", b, shape: [directions, 2 * gateRows]) : ""
            // go_backwards: the forward operator on the input reversed (within each sequence's
            // length when there is a mask, so that the padding stays at the end). Under a Keras
            // mask the steps are compacted forwards (ONNXMaskCompaction.swift), which a reversal
            // within lengths would not follow for holes or left padding: refused.
            if r.goBackwards, compaction.mask != nil {
                throw refuse(index, "go_backwards under a Keras mask (Keras runs the valid steps backwards wherever the mask puts them), which rnnkit does not write yet")
            }
            let input = r.goBackwards ? reversed(data, within: lengths, name: name + "_reversed_input") : compacted(data, name: name)
            let x = g.op("Transpose", [input], name: name + "_time_major", [ONNXGraphBuilder.attribute("perm", ints: [1, 0, 2])])
            var attributes = [ONNXGraphBuilder.attribute("hidden_size", int: r.hiddenSize),
                              ONNXGraphBuilder.attribute("direction", string: directions == 2 ? "bidirectional" : r.reversed ? "reverse" : "forward"),
                              ONNXGraphBuilder.attribute("activations", strings: names.flatMap(\.names))]
            if names.contains(where: { !$0.alphas.isEmpty }) {
                attributes.append(ONNXGraphBuilder.attribute("activation_alpha", floats: names.flatMap(\.alphas)))
            }
            if names.contains(where: { !$0.betas.isEmpty }) {
                attributes.append(ONNXGraphBuilder.attribute("activation_beta", floats: names.flatMap(\.betas)))
            }
            if let clip = r.clip { attributes.append(ONNXGraphBuilder.attribute("clip", float: clip)) }
            if r.inputForget { attributes.append(ONNXGraphBuilder.attribute("input_forget", int: 1)) }
            if r.kind == .gru {
                attributes.append(ONNXGraphBuilder.attribute("linear_before_reset", int: r.gruResetRule == .afterMatmul ? 1 : 0))
            }
            let states = initialStates(r, name: name)
            var nodeInputs = [x, wName, rName, bName, sequenceLens() ?? "", states.h, states.c ?? ""]
            if hasPeepholes {
                // X, W, R, B, sequence_lens, initial_h, initial_c, P.
                while nodeInputs.count < 7 { nodeInputs.append("") }
                nodeInputs.append(g.floats(name + "_P", p, shape: [directions, 3 * r.hiddenSize]))
            }
            while nodeInputs.last == "" { nodeInputs.removeLast() }
            let cellState = stateOutputs && r.kind == .lstm
            let outs = g.node(ONNXLayout.opType(r.kind), nodeInputs, name: name, outputs: cellState ? 3 : 2, attributes)
            let (y, yh) = (outs[0], outs[1])
            finalStates = (yh, r)
            layerStates.append((yh, cellState ? outs[2] : nil, r))
            let width = r.mergedOutputSize
            if r.returnSequences {
                // Y [time, directions, batch, hidden] → [batch, time, directions, hidden].
                let batchFirst = try mappedBack(g.op("Transpose", [y], name: name + "_batch_first", [ONNXGraphBuilder.attribute("perm", ints: [2, 0, 1, 3])]), r, index, name: name)
                if directions == 1 || r.merge == .concat {
                    let shape = g.int64s(name + "_merged_shape", [0, 0, -1])
                    data = g.op("Reshape", [batchFirst, shape], name: name + "_sequence")
                } else {
                    data = reduce(Self.mergeReduction(r.merge), batchFirst, axes: [2], keepdims: false, name: name + "_" + r.merge.rawValue)
                }
                if r.goBackwards, let lengths {
                    // Keras emits the outputs in processing order: the masked steps (at the end
                    // of the sequence) first, as zeros, then the valid ones. The node's Y holds the
                    // valid ones first: reversed within the lengths and then over every step, it is
                    // shifted by time − length. No valid step follows a masked one, so `.carry`
                    // has nothing to repeat.
                    let within = reversed(data, within: lengths, name: name + "_outputs_within")
                    data = reversed(within, within: nil, name: name + "_outputs")
                } else if r.maskedOutput == .carry, lengths != nil, compaction.mask == nil {
                    data = carried(data, name: name)
                }
                sequence = true
            } else {
                // The last output: Y_h, both directions merged.
                if directions == 1 {
                    let zero = g.int64s(name + "_direction", [0], shape: [])
                    data = g.op("Gather", [yh, zero], name: name + "_last", [ONNXGraphBuilder.attribute("axis", int: 0)])
                } else if r.merge == .concat {
                    let zero = g.int64s(name + "_forward", [0], shape: []), one = g.int64s(name + "_backward", [1], shape: [])
                    let f = g.op("Gather", [yh, zero], name: name + "_last_forward", [ONNXGraphBuilder.attribute("axis", int: 0)])
                    let bw = g.op("Gather", [yh, one], name: name + "_last_backward", [ONNXGraphBuilder.attribute("axis", int: 0)])
                    data = g.op("Concat", [f, bw], name: name + "_last", [ONNXGraphBuilder.attribute("axis", int: 1)])
                } else {
                    data = reduce(Self.mergeReduction(r.merge), yh, axes: [0], keepdims: false, name: name + "_last_" + r.merge.rawValue)
                }
                sequence = false
            }
            features = width
        }

        /// The layer's initial states as optional graph inputs, `[directions, batch, hidden]`:
        /// `initial_h` (and `initial_c` for an LSTM) when the model has one recurrent layer,
        /// `<layer>_initial_h` otherwise. Each has a zero initializer of `[directions, 1, hidden]`
        /// (ONNX IR 4 and later: an initializer makes the input optional), and the node takes
        /// `Expand(state, [directions, batch, hidden])`: zeros for every sequence when the input
        /// is not given, the given states (or one row broadcast) when it is. Returns the
        /// expanded values.
        mutating func initialStates(_ r: RecurrentLayer, name: String) -> (h: String, c: String?) {
            let directions = r.directions.count
            let zeros = [Float](repeating: 0, count: directions * r.hiddenSize)
            let shape: String
            if let batchDim {
                shape = g.op("Concat", [g.int64s(name + "_state_directions", [Int64(directions)]), batchDim,
                                        g.int64s(name + "_state_hidden", [Int64(r.hiddenSize)])],
                             name: name + "_state_shape", [ONNXGraphBuilder.attribute("axis", int: 0)])
            } else {
                let inputShape = g.op("Shape", ["input"], name: "input_shape")
                let first = g.int64s("input_batch_axis", [0])
                let batch = g.op("Gather", [inputShape, first], name: "input_batch", [ONNXGraphBuilder.attribute("axis", int: 0)])
                batchDim = batch
                return initialStates(r, name: name)
            }
            func state(_ kind: String) -> String {
                let input = g.floats(recurrentCount == 1 ? kind : name + "_" + kind, zeros, shape: [directions, 1, r.hiddenSize])
                inputs.append(ONNXGraphBuilder.valueInfo(input, .float, [.known(directions), .named("batch"), .known(r.hiddenSize)]))
                return g.op("Expand", [input, shape], name: name + "_" + kind + "_batch")
            }
            let h = state("initial_h")
            return (h, r.kind == .lstm ? state("initial_c") : nil)
        }

        /// `x` `[batch, time, features]` with its steps reversed: within each sequence's
        /// `lengths` (`ReverseSequence`, the steps past it left in place), or over every step
        /// (`Slice` with step −1).
        mutating func reversed(_ x: String, within lengths: String?, name: String) -> String {
            if let lengths {
                return g.op("ReverseSequence", [x, lengths], name: name, [ONNXGraphBuilder.attribute("batch_axis", int: 0),
                                                                         ONNXGraphBuilder.attribute("time_axis", int: 1)])
            }
            let starts = g.int64s(name + "_starts", [-1]), ends = g.int64s(name + "_ends", [Int64.min])
            let axes = g.int64s(name + "_axes", [1]), steps = g.int64s(name + "_steps", [-1])
            return g.op("Slice", [x, starts, ends, axes, steps], name: name)
        }

        static func mergeReduction(_ merge: MergeMode) -> String {
            switch merge {
            case .concat, .sum: return "ReduceSum"
            case .mul: return "ReduceProd"
            case .ave: return "ReduceMean"
            }
        }

        /// Keras's output at masked steps: the last valid step's, `y[b, min(t, len_b − 1)]`
        /// (right padding: the steps before the first valid one do not exist).
        mutating func carried(_ y: String, name: String) -> String {
            let index = stepIndex(of: y, name: name)
            let indices = unsqueeze(index, [2], name: name + "_carry_indices")
            return g.op("GatherND", [y, indices], name: name + "_carried", [ONNXGraphBuilder.attribute("batch_dims", int: 1)])
        }

        /// `min(t, len_b − 1)` `[batch, time]` int64 for the steps of `y`.
        mutating func stepIndex(of y: String, name: String) -> String {
            let row = timeRow(of: y, name: name)
            let last = lastIndexColumn(name: name)
            return g.op("Min", [row, last], name: name + "_carry_index")
        }

        /// `[0, 1, …, time − 1]` as a row `[1, time]` int64, `time` from the shape of `y`.
        mutating func timeRow(of y: String, name: String) -> String {
            let shape = g.op("Shape", [y], name: name + "_shape")
            let one = g.int64s(name + "_time_axis", [1], shape: [])
            let steps = g.op("Gather", [shape, one], name: name + "_steps", [ONNXGraphBuilder.attribute("axis", int: 0)])
            let start = g.int64s(name + "_start", [0], shape: []), delta = g.int64s(name + "_delta", [1], shape: [])
            let range = g.op("Range", [start, steps, delta], name: name + "_time_range")
            return unsqueeze(range, [0], name: name + "_time_row")
        }

        /// `len_b − 1`, `[batch, 1]` int64.
        mutating func lastIndexColumn(name: String) -> String {
            let one = g.int64s(name + "_one", [1], shape: [])
            let last = g.op("Sub", [lengths!, one], name: name + "_last_index")
            return unsqueeze(last, [1], name: name + "_last_index_column")
        }

        /// `y` at the steps `t < len`, `fill` elsewhere.
        mutating func validOnly(_ y: String, fill: Float, name: String) -> String {
            if let steps = validMaskSteps(name: name) {
                return g.op("Where", [steps, y, g.floats(name + "_fill", [fill], shape: [])], name: name + "_valid_only")
            }
            let row = timeRow(of: y, name: name)
            let column = unsqueeze(lengths!, [1], name: name + "_lengths_column")
            let valid = g.op("Less", [row, column], name: name + "_valid")
            let valid3 = unsqueeze(valid, [2], name: name + "_valid_steps")
            let filler = g.floats(name + "_fill", [fill], shape: [])
            return g.op("Where", [valid3, y, filler], name: name + "_valid_only")
        }

        /// Keras `Flatten` of `[batch, time, features]`: `Reshape [0, time · features]`, for the
        /// number of steps the model fixes (its input's `time` is then that size).
        mutating func flatten(_ index: Int, _ name: String) throws {
            guard sequence, let steps = model.sequenceLength, let width = features else {
                throw refuse(index, "a Flatten of data whose number of steps the model does not fix (its input shape)")
            }
            let shape = g.int64s(name + "_shape", [0, Int64(steps * width)])
            data = g.op("Reshape", [data, shape], name: name)
            features = steps * width
            sequence = false
        }

        mutating func dense(_ d: Dense, _ index: Int, _ name: String) throws {
            guard features == d.inputSize else { throw refuse(index, "a Dense of \(d.inputSize) inputs after \(features ?? 0) features") }
            // W is [out, in]: MatMul takes [in, out].
            var transposed = [Float](repeating: 0, count: d.weight.count)
            let rows = d.outputSize, columns = d.inputSize
            for r in 0..<rows { for c in 0..<columns { transposed[c * rows + r] = d.weight.values[r * columns + c] } }
            if sequence {
                let weight = g.floats(name + "_weight", transposed, shape: [columns, rows])
                data = g.op("MatMul", [data, weight], name: d.bias == nil ? name : name + "_matmul")
                if let bias = d.bias {
                    let b = g.floats(name + "_bias", bias.values, shape: [rows])
                    data = g.op("Add", [data, b], name: name)
                }
            } else {
                let weight = g.floats(name + "_weight", d.weight.values, shape: [rows, columns])
                var gemmInputs = [data, weight]
                if let bias = d.bias { gemmInputs.append(g.floats(name + "_bias", bias.values, shape: [rows])) }
                data = g.op("Gemm", gemmInputs, name: name, [ONNXGraphBuilder.attribute("transB", int: 1)])
            }
            features = rows
            try activation(d.activation, index, name + "_activation")
        }

        mutating func activation(_ a: Activation, _ index: Int, _ name: String) throws {
            switch a {
            case .linear: return
            case .relu: data = g.op("Relu", [data], name: name)
            case .tanh: data = g.op("Tanh", [data], name: name)
            case .sigmoid: data = g.op("Sigmoid", [data], name: name)
            case .softmax: data = g.op("Softmax", [data], name: name, [ONNXGraphBuilder.attribute("axis", int: -1)])
            case .elu: data = g.op("Elu", [data], name: name, [ONNXGraphBuilder.attribute("alpha", float: 1)])
            case .selu:
                data = g.op("Selu", [data], name: name, [ONNXGraphBuilder.attribute("alpha", float: ONNXLayout.seluAlpha),
                                                        ONNXGraphBuilder.attribute("gamma", float: ONNXLayout.seluGamma)])
            case .softplus: data = g.op("Softplus", [data], name: name)
            case .softsign: data = g.op("Softsign", [data], name: name)
            case .hardSigmoidKeras2:
                data = g.op("HardSigmoid", [data], name: name, [ONNXGraphBuilder.attribute("alpha", float: 0.2), ONNXGraphBuilder.attribute("beta", float: 0.5)])
            case .hardSigmoid:
                data = g.op("HardSigmoid", [data], name: name, [ONNXGraphBuilder.attribute("alpha", float: Float(1.0 / 6.0)), ONNXGraphBuilder.attribute("beta", float: 0.5)])
            case .gelu where opset >= 20, .geluTanh where opset >= 20:
                data = g.op("Gelu", [data], name: name, [ONNXGraphBuilder.attribute("approximate", string: a == .gelu ? "none" : "tanh")])
            case .swish:
                let sigmoid = g.op("Sigmoid", [data], name: name + "_sigmoid")
                data = g.op("Mul", [data, sigmoid], name: name)
            default:
                throw refuse(index, "the activation \(a.rawValue), which ONNX has from opset 20 (Gelu); write it with a later opset")
            }
        }

        mutating func readout(_ r: Readout, _ index: Int, _ name: String) throws {
            guard sequence else { throw refuse(index, "a readout of data that has no time axis") }
            switch r {
            case .lastHidden, .lastHiddenAllDirections, .lastValidStep:
                guard let (yh, layer) = finalStates else {
                    throw refuse(index, "a readout of the last step of data that is not a recurrent layer's output")
                }
                let bidirectional = layer.directions.count == 2
                if r == .lastHidden || (!bidirectional && r == .lastHiddenAllDirections) || (!bidirectional && !layer.goBackwards && r == .lastValidStep) {
                    // h_n[-1]: the last direction's final state (each sequence's last valid step when unidirectional).
                    let last = g.int64s(name + "_direction", [-1], shape: [])
                    data = g.op("Gather", [yh, last], name: name, [ONNXGraphBuilder.attribute("axis", int: 0)])
                    features = layer.outputSize
                } else if r == .lastHiddenAllDirections {
                    let zero = g.int64s(name + "_forward", [0], shape: []), one = g.int64s(name + "_backward", [1], shape: [])
                    let f = g.op("Gather", [yh, zero], name: name + "_forward_state", [ONNXGraphBuilder.attribute("axis", int: 0)])
                    let bw = g.op("Gather", [yh, one], name: name + "_backward_state", [ONNXGraphBuilder.attribute("axis", int: 0)])
                    data = g.op("Concat", [f, bw], name: name, [ONNXGraphBuilder.attribute("axis", int: 1)])
                    features = 2 * layer.outputSize
                } else if lengths == nil {
                    // y[:, -1]: every step is valid.
                    let last = g.int64s(name + "_step", [-1], shape: [])
                    data = g.op("Gather", [data, last], name: name, [ONNXGraphBuilder.attribute("axis", int: 1)])
                } else {
                    // y[b, len_b − 1]; under a Keras mask the last step whose mask is 1.
                    let last = lastValidStepColumn(data, name: name) ?? lastIndexColumn(name: name)
                    data = g.op("GatherND", [data, last], name: name, [ONNXGraphBuilder.attribute("batch_dims", int: 1)])
                }
            case .meanOverValidSteps where lengths != nil:
                // Σ_{t < len} y / len.
                let kept = validOnly(data, fill: 0, name: name)
                let sum = reduce("ReduceSum", kept, axes: [1], keepdims: false, name: name + "_sum")
                let float = g.op("Cast", [lengths!], name: name + "_count", [ONNXGraphBuilder.attribute("to", int: 1)])
                let column = unsqueeze(float, [1], name: name + "_count_column")
                data = g.op("Div", [sum, column], name: name)
            case .maxOverValidSteps where lengths != nil:
                // max over t < len: the lowest float elsewhere (an initializer is finite).
                let kept = validOnly(data, fill: -Float.greatestFiniteMagnitude, name: name)
                data = reduce("ReduceMax", kept, axes: [1], keepdims: false, name: name)
            case .meanOverValidSteps, .maxOverValidSteps, .maxOverAllSteps:
                data = reduce(r == .meanOverValidSteps ? "ReduceMean" : "ReduceMax", data, axes: [1], keepdims: false, name: name)
            }
            sequence = false
        }
    }

    /// The ONNX activations of one direction (LSTM f, g, h; GRU f, g; RNN g) with the alphas
    /// and betas they take, in the order the operators consume them.
    static func activationNames(_ set: CellActivations, kind: CellKind, refuse: (String) -> ModelError) throws
        -> (names: [String], alphas: [Float], betas: [Float]) {
        var names: [String] = [], alphas: [Float] = [], betas: [Float] = []
        func add(_ activation: CellActivation, _ role: String) throws {
            switch activation {
            case let .affine(alpha, beta): names.append("Affine"); alphas.append(alpha); betas.append(beta)
            case let .leakyRelu(alpha): names.append("LeakyRelu"); alphas.append(alpha)
            case let .thresholdedRelu(alpha): names.append("ThresholdedRelu"); alphas.append(alpha)
            case let .scaledTanh(alpha, beta): names.append("ScaledTanh"); alphas.append(alpha); betas.append(beta)
            case let .hardSigmoid(alpha, beta): names.append("HardSigmoid"); alphas.append(alpha); betas.append(beta)
            case let .elu(alpha): names.append("Elu"); alphas.append(alpha)
            case let .standard(a):
                switch a {
                case .sigmoid: names.append("Sigmoid")
                case .tanh: names.append("Tanh")
                case .relu: names.append("Relu")
                case .softsign: names.append("Softsign")
                case .softplus: names.append("Softplus")
                case .hardSigmoidKeras2: names.append("HardSigmoid"); alphas.append(0.2); betas.append(0.5)
                case .hardSigmoid: names.append("HardSigmoid"); alphas.append(Float(1.0 / 6.0)); betas.append(0.5)
                case .elu: names.append("Elu"); alphas.append(1)
                case .linear: names.append("Affine"); alphas.append(1); betas.append(0)
                default:
                    throw refuse("its \(role) activation is \(a.rawValue), which ONNX's recurrent operators do not have")
                }
            }
        }
        switch kind {
        case .rnn: try add(set.candidate, "")
        case .lstm: try add(set.gate, "gate"); try add(set.candidate, "candidate"); try add(set.cellOutput, "cell output")
        case .gru: try add(set.gate, "gate"); try add(set.candidate, "candidate")
        }
        return (names, alphas, betas)
    }
}
