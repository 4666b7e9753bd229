import RecurrentEngine
import TextSafety

/// Reads an ONNX graph by what its nodes compute, never by their names: every value the
/// graph's outputs depend on is interpreted as one of a few kinds (``ONNXGraph/Value``) —
/// a constant (computed here when all of a node's inputs are constants), a shape or zeros
/// made from the input's batch and time, the lengths input, or data that flows from the
/// graph's input through the neutral model's layers, with the axes its ONNX tensor has.
/// A node that fits none of them is refused naming it, its operator and why.
struct ONNXGraph {
    /// A dimension of a tensor as the graph sees it: known, or the run's batch or time.
    enum Dim: Hashable, CustomStringConvertible {
        case known(Int), batch, time
        /// Batch and time merged into one dimension, batch-major (tf2onnx's Dense on every step
        /// reshapes `[batch, time, features]` to `[batch·time, features]` and back).
        case batchTime
        var description: String {
            switch self {
            case let .known(n): return "\(n)"
            case .batch: return "batch"
            case .time: return "time"
            case .batchTime: return "batch·time"
            }
        }
    }

    /// What one axis of a data tensor is, relative to the neutral model's output.
    enum Axis: Hashable {
        case batch, time
        /// The neutral features (directions side by side, forward first).
        case features(Int)
        /// A recurrent node's direction axis; the hidden axis follows it (after a Transpose,
        /// the batch axis may sit between them).
        case directions(Int)
        case hidden(Int)
        /// An axis of size 1 that means nothing (an Unsqueeze).
        case unit
        /// The batch and time axes merged, batch-major (``Dim/batchTime``).
        case batchTime

        var text: String {
            switch self {
            case .batch: return "batch"
            case .time: return "time"
            case let .features(n): return "features \(n)"
            case let .directions(n): return "directions \(n)"
            case let .hidden(n): return "hidden \(n)"
            case .unit: return "1"
            case .batchTime: return "batch·time"
            }
        }

        var size: Dim {
            switch self {
            case .batch: return .batch
            case .time: return .time
            case let .features(n), let .directions(n), let .hidden(n): return .known(n)
            case .unit: return .known(1)
            case .batchTime: return .batchTime
            }
        }
    }

    /// Axes as messages write them: `[time, batch, features 3]`.
    static func text(_ axes: [Axis]) -> String { "[" + axes.map(\.text).joined(separator: ", ") + "]" }

    /// Data that depends on the graph's inputs.
    struct Flow {
        /// The neutral layers that compute it from the input.
        var layers: [Layer]
        var layerNames: [String]
        /// The axes of the ONNX tensor.
        var axes: [Axis]
        /// What the tensor is.
        var role: Role
        /// True between a packed export's sort of the batch by length and its unsort.
        var sorted = false
        /// The steps of a go_backwards layer in a graph rnnkit writes (``ONNXStepOrder``), or nil.
        var stepOrder: ONNXStepOrder? = nil
        enum Role: Equatable {
            /// The model's output at every step (or, after a readout, per sequence).
            case data
            /// Token ids, before the embedding.
            case tokenIDs
            /// A recurrent node's `Y_h` (`c`: `Y_c`); axes `[directions, batch, hidden]`.
            case finalStates(cell: Bool)
            /// One direction's final `h` of the last recurrent layer, axes `[batch, hidden]`.
            case finalState(direction: Int, of: Int)
            /// `Concat` of every recurrent layer's `Y_h` (or `Y_c`) in order: a bare module's `h_n`.
            case stackedStates(cell: Bool, layers: Int)
            /// A graph input that starts a recurrent node (`initial_h`, `initial_c`).
            case initialState(input: String)
            /// One direction of a bidirectional node's `Y`, sliced out of its direction axis
            /// (tf2onnx's Bidirectional): read only when concatenated back, forward first, on
            /// the features.
            case directionPart(direction: Int, of: Int)
        }
    }

    indirect enum Value {
        case constant(ONNXConstant)
        /// A 1-D integer vector of dims (`Shape` and what is computed from it); `scalar`
        /// when it is one 0-D value (a `Gather` of one index).
        case shape([Dim], scalar: Bool)
        /// Zeros of a shape known only with the run's batch (`ConstantOfShape` of a shape).
        case zeros([Dim])
        case flow(Flow)
        /// The graph's lengths input (`sequence_lens`), perhaps cast; `sorted` after the
        /// TopK of a packed export (`enforce_sorted=False`).
        case lengths(input: String, sorted: Bool)
        /// The order that sorts the lengths (TopK's indices), or its inverse (ScatterElements
        /// of `0..<batch` at those indices): a packed export sorts the batch and unsorts it.
        case permutation(inverse: Bool)
        /// `Range(0, batch, 1)`.
        case range
        /// An optional input left out (`""`).
        case absent
        /// A value of a graph rnnkit writes: a mask, steps, lengths (``ONNXMaskValue``).
        case mask(ONNXMaskValue)
        /// A term of Keras 3's wrap of negative token ids, `where(ids < 0, ids + V, ids)`, as
        /// tf2onnx writes it (``IDTerm``), with the ids' flow.
        case idTerm(IDTerm, Flow)
    }

    /// The terms tf2onnx writes for Keras 3's `where(ids < 0, ids + V, ids)` (its Embedding's
    /// `take`): `Add(ids, V)`, `Less(Cast(ids), 0)`, `Not`, `Cast` of both predicates to
    /// integers, each multiplied by its branch, and the two products added.
    enum IDTerm: Equatable {
        /// `ids + shift`.
        case shifted(Int64)
        /// `ids < 0` (`negative`), or its `Not`.
        case predicate(negative: Bool)
        /// The predicate cast to 0 / 1.
        case indicator(negative: Bool)
        /// `indicator · (ids + shift)`: one branch of the where.
        case branch(negative: Bool, shift: Int64)
        /// `where(ids < 0, ids + V, ids)`.
        case wrapped(Int64)
    }

    let file: String
    let opset: Int
    var values: [String: Value] = [:]
    /// Each recurrent node read, for `inspect`.
    var summaries: [LayerSummary] = []
    var storedTypes: Set<String> = []
    /// Recurrent nodes that take `sequence_lens`, and those that do not.
    var nodesWithLengths = 0
    var nodesWithoutLengths = 0
    var lengthsInput: String?
    var stateInputs: [(input: String, cell: Bool)] = []
    var operators: [String: Int] = [:]
    /// The lengths the recurrent nodes of a written graph take (``ONNXWrittenMask``).
    var writtenMask = ONNXWrittenMask()
    /// The batch and time the graph's input declares as fixed numbers (an export without
    /// dynamic axes): a reshape to those numbers keeps the axis (runs of other sizes are refused).
    var fixedSizes: [Axis: Int] = [:]

    init(file: String, opset: Int) {
        self.file = file
        self.opset = opset
    }

    // MARK: - Errors

    static func isRecurrent(_ layer: Layer) -> Bool { if case .recurrent = layer { return true } else { return false } }

    /// An exporter that unrolls a recurrence (no recurrent node before it) (the dynamo exporter's nn.RNN) takes the sequence
    /// apart step by step: the first step taken alone names it.
    static func unrolledMessage(step: Int64) -> String {
        "takes step \(step) of the sequence alone: the recurrence is unrolled into per-step operators (MatMul, Add, Tanh/Relu for each step, as torch.onnx.export's dynamo exporter writes nn.RNN), with the sequence length fixed at export; rnnkit reads a recurrence written as one LSTM, GRU or RNN operator"
    }

    static let controlFlowMessage = "is control flow; rnnkit reads recurrent models whose recurrence is one LSTM, GRU or RNN operator (tf2onnx writes a Loop for masked layers and GRU reset_after=False)"

    func refusal(_ node: Onnx_NodeProto, _ index: Int, _ message: String, kind: ModelError.Kind = .unsupported) -> ModelError {
        ModelError(kind, file: file, path: Self.label(node, index), message: message)
    }

    /// How a message names a node: its name, else its place and first output.
    static func label(_ node: Onnx_NodeProto, _ index: Int) -> String {
        let type = (node.domain.isEmpty || node.domain == "ai.onnx" ? "" : node.domain + ".") + node.opType
        let name = node.name.isEmpty ? "#\(index)" + (node.output.first.map { " → \($0)" } ?? "") : node.name
        return "node \(escapedForDisplay(name)) (\(escapedForDisplay(type)))"
    }

    // MARK: - Nodes

    /// Interprets `node`, storing a value for each of its outputs.
    mutating func apply(_ node: Onnx_NodeProto, _ index: Int) throws {
        operators[node.opType, default: 0] += 1
        let inputs = node.input.map { name -> Value? in name.isEmpty ? .absent : values[name] }
        if let missing = node.input.indices.first(where: { inputs[$0] == nil }) {
            throw refusal(node, index, "reads \(escapedForDisplay(node.input[missing])), which no node, initializer or graph input makes", kind: .unreadableFile)
        }
        let args = inputs.map { $0! }
        let outputs = try compute(node, index, args)
        for (name, value) in zip(node.output, outputs) where !name.isEmpty {
            values[name] = value
        }
    }

    private mutating func compute(_ node: Onnx_NodeProto, _ index: Int, _ args: [Value]) throws -> [Value] {
        let op = node.opType
        let domain = node.domain
        let file = self.file, label = Self.label(node, index)
        // Not capturing self: the mutating helpers below take it.
        let refuse = { (message: String) in ModelError(.unsupported, file: file, path: label, message: message) }
        if !(domain.isEmpty || domain == "ai.onnx") {
            switch (domain, op) {
            case ("com.microsoft", "DynamicQuantizeLSTM"):
                throw refuse("is a quantized model (int8 weights, activations quantized at run time); its results cannot be exact in float, so rnnkit does not read it")
            case ("com.microsoft", let name) where name.contains("Attention"):
                throw refuse("is an attention operator, which the neutral model does not have")
            default:
                throw refuse("is an operator of the domain \(escapedForDisplay(domain)), which rnnkit does not read")
            }
        }
        switch op {
        case "Loop", "Scan", "If":
            throw refuse(Self.controlFlowMessage)
        case _ where ONNXLayout.cellKind(opType: op) != nil:
            return try recurrentNode(node, index, args)
        default:
            break
        }
        // A node of constants is computed here, whatever its inputs mean.
        if args.allSatisfy({ if case .constant = $0 { return true }; if case .absent = $0 { return true }; return false }) {
            return [.constant(try ONNXConstantFolding.evaluate(node, args.map { if case let .constant(c) = $0 { return c } else { return nil } },
                                                                   refuse: refuse, file: file))]
        }
        if let written = try writtenPattern(node, index, args, refuse: refuse) { return written }
        switch op {
        case "Identity", "Dropout":
            return [args[0]]
        case "Cast":
            let to = attribute(node, "to")?.i ?? 1
            switch args[0] {
            case let .idTerm(.predicate(negative), ids) where [6, 7].contains(to): return [.idTerm(.indicator(negative: negative), ids)]
            case let .flow(ids) where ids.role == .tokenIDs && [1, 6, 7].contains(to): return [args[0]]
            case .lengths, .shape, .permutation: return [args[0]]
            case .flow where to == 1: return [args[0]]
            default: throw refuse("casts data to element type \(to); rnnkit computes in float32")
            }
        case "Shape" where { if case .lengths = args[0] { return true }; if case .permutation = args[0] { return true }; return false }():
            return [.shape([.batch], scalar: false)]
        case "ReduceProd":
            guard case let .shape(dims, false) = args[0], (attribute(node, "keepdims")?.i ?? 1) == 0,
                  (attribute(node, "axes")?.ints ?? [0]) == [0] else {
                throw refuse("multiplies values rnnkit cannot follow")
            }
            // One dim; the batch times the time (rows of a batch-major [batch·time, …]); known sizes.
            if dims.count == 1 { return [.shape(dims, scalar: true)] }
            if dims == [.batch, .time] { return [.shape([.batchTime], scalar: true)] }
            let known = dims.compactMap { if case let .known(n) = $0, n >= 0 { return n } else { return nil } }
            guard known.count == dims.count, !dims.isEmpty else { throw refuse("multiplies dims \(dims) rnnkit cannot follow") }
            guard let product = elementCount(known) else { throw refuse("multiplies dims \(dims) past Int.max") }
            return [.shape([.known(product)], scalar: true)]
        case "TopK":
            // A packed export's sort by length: TopK(lengths, batch, largest).
            guard case let .lengths(input, false) = args[0], case .shape([.batch], _) = args[1],
                  (attribute(node, "largest")?.i ?? 1) == 1, (attribute(node, "sorted")?.i ?? 1) == 1 else {
                throw refuse("is a TopK rnnkit does not follow (it follows the sort of the lengths of a packed export)")
            }
            return [.lengths(input: input, sorted: true), .permutation(inverse: false)]
        case "Range":
            guard case let .constant(start) = args[0], start.ints == [0], case .shape([.batch], true) = args[1],
                  case let .constant(step)? = args[safe: 2], step.ints == [1] else {
                throw refuse("is a Range rnnkit does not follow (it follows 0..<batch)")
            }
            return [.range]
        case "ScatterElements":
            guard case .zeros([.batch]) = args[0], case .permutation(false) = args[1], case .range? = args[safe: 2],
                  (attribute(node, "axis")?.i ?? 0) == 0 else {
                throw refuse("is a ScatterElements rnnkit does not follow (it follows the inverse of a packed export's sort)")
            }
            return [.permutation(inverse: true)]
        case "Shape":
            guard case let .flow(flow) = args[0] else { throw refuse("takes the shape of a value rnnkit cannot follow") }
            let start = Int(attribute(node, "start")?.i ?? 0), end = attribute(node, "end").map { Int($0.i) }
            var dims = flow.axes.map(\.size)
            if start != 0 || end != nil {
                let lower = start < 0 ? max(dims.count + start, 0) : min(start, dims.count)
                let upper = end.map { $0 < 0 ? max(dims.count + $0, 0) : min($0, dims.count) } ?? dims.count
                dims = lower < upper ? Array(dims[lower..<upper]) : []
            }
            return [.shape(dims, scalar: false)]
        case "ConstantOfShape":
            let fill = attribute(node, "value").flatMap { try? ONNXConstant($0.t, file: file, what: "value") }
            guard (fill?.floats?.allSatisfy { $0 == 0 } ?? true) && (fill?.ints?.allSatisfy { $0 == 0 } ?? true) else {
                throw refuse("fills with a non-zero value; rnnkit follows zero initial states only")
            }
            guard case let .shape(dims, false) = args[0] else { throw refuse("takes a shape rnnkit cannot follow") }
            return [.zeros(dims)]
        case "Expand":
            if case let .constant(c) = args[0], c.floats?.allSatisfy({ $0 == 0 }) ?? false || c.ints?.allSatisfy({ $0 == 0 }) ?? false,
               case let .shape(dims, false) = args[1] {
                return [.zeros(dims)]
            }
            throw refuse("expands a value other than zeros to the run's shape")
        case "Gather":
            return [try gather(node, index, args, refuse: refuse)]
        case "Unsqueeze", "Squeeze":
            let axes = try axesArgument(node, args, refuse: refuse)
            switch args[0] {
            case let .shape(dims, scalar) where op == "Unsqueeze" && scalar && axes == [0]:
                return [.shape(dims, scalar: false)]
            case let .zeros(dims) where op == "Unsqueeze":
                // Zero states given a direction axis (tf2onnx's initial states).
                var result = dims
                for a in axes.map({ $0 < 0 ? $0 + dims.count + axes.count : $0 }).sorted() {
                    guard a >= 0, a <= result.count else { throw refuse("unsqueezes axis \(a) of zeros of \(dims.count + axes.count)") }
                    result.insert(.known(1), at: a)
                }
                return [.zeros(result)]
            case let .zeros(dims) where op == "Squeeze":
                // One layer's zero state taken out of a stack of them (the dynamo exporter's unbind).
                let rank = dims.count
                let targets = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
                guard targets.allSatisfy({ dims.indices.contains($0) && dims[$0] == .known(1) }) else {
                    throw refuse("squeezes axes \(axes) of zeros of shape \(dims), which are not all of size 1")
                }
                return [.zeros(dims.enumerated().filter { !targets.contains($0.offset) }.map(\.element))]
            case var .flow(flow):
                flow.axes = try op == "Unsqueeze" ? unsqueezed(flow.axes, axes, refuse: refuse) : squeezed(flow.axes, axes, refuse: refuse)
                return [.flow(flow)]
            default:
                throw refuse("\(op == "Squeeze" ? "squeezes" : "unsqueezes") a value rnnkit cannot follow")
            }
        case "Concat":
            return [try concat(node, args, refuse: refuse)]
        case "Slice":
            if case let .zeros(dims) = args[0], case let .constant(starts)? = args[safe: 1], case let .constant(ends)? = args[safe: 2] {
                // Zeros sliced on axis 0 (rows of a stacked initial state) stay zeros.
                let axesValue: [Int64] = { if case let .constant(a)? = args[safe: 3] { return a.ints ?? [0] } else { return [0] } }()
                guard axesValue == [0], let s = starts.ints?.first, let e = ends.ints?.first, case let .known(rows)? = dims.first else {
                    throw refuse("slices zeros in a way rnnkit does not follow")
                }
                let lower = Int(max(0, min(s < 0 ? s + Int64(rows) : s, Int64(rows))))
                let upper = Int(max(0, min(e < 0 ? e + Int64(rows) : e, Int64(rows))))
                return [.zeros([.known(max(upper - lower, 0))] + dims.dropFirst())]
            }
            return [try slice(node, index, args, refuse: refuse)]
        case "Transpose":
            guard case var .flow(flow) = args[0] else { throw refuse("transposes a value rnnkit cannot follow") }
            let perm = attribute(node, "perm")?.ints.map { Int($0) } ?? Array((0..<flow.axes.count).reversed())
            guard perm.sorted() == Array(0..<flow.axes.count) else { throw refuse("has perm \(perm), not a permutation of \(flow.axes.count) axes") }
            flow.axes = perm.map { flow.axes[$0] }
            return [.flow(flow)]
        case "Reshape" where { if case .shape = args[0] { return true } else { return false } }():
            // A shape's dims flattened (`[-1]`) or one dim made a scalar (`[]`).
            guard case let .shape(dims, _) = args[0], case let .constant(c) = args[1], let target = c.ints,
                  target == [-1] || (target.isEmpty && dims.count == 1) else {
                throw refuse("reshapes a shape in a way rnnkit does not follow")
            }
            return [.shape(dims, scalar: target.isEmpty)]
        case "Mul" where args.count == 2 && !args.contains(where: Self.isTokenIDs)
                      && args.contains(where: { if case .shape = $0 { return true } else { return false } }):
            // The product of two known dims (the dynamo exporter's directions · hidden, the
            // features of a recurrent node's Y merged).
            func single(_ v: Value) -> (Int, Bool)? {
                switch v {
                case let .shape(dims, scalar) where dims.count == 1: if case let .known(n) = dims[0] { return (n, scalar) }; return nil
                case let .constant(c) where c.count == 1: return c.ints.map { (Int($0[0]), c.shape.isEmpty) }
                default: return nil
                }
            }
            guard let a = single(args[0]), let b = single(args[1]), a.0 >= 0, b.0 >= 0 else {
                throw refuse("multiplies dims rnnkit cannot follow (it follows products of known sizes)")
            }
            let (product, overflow) = a.0.multipliedReportingOverflow(by: b.0)
            guard !overflow else { throw refuse("multiplies dims \(a.0) and \(b.0) past Int.max") }
            return [.shape([.known(product)], scalar: a.1 && b.1)]
        case "Reshape":
            guard case var .flow(flow) = args[0] else { throw refuse("reshapes a value rnnkit cannot follow") }
            let target: [Dim]
            switch args[1] {
            case let .constant(c): target = (c.ints ?? []).map { $0 == -1 ? .known(-1) : .known(Int($0)) }
            case let .shape(dims, false): target = dims
            default: throw refuse("reshapes to a shape rnnkit cannot follow")
            }
            flow.axes = try reshaped(flow.axes, target, allowZero: attribute(node, "allowzero")?.i == 1, refuse: refuse)
            return [.flow(flow)]
        case "Gemm":
            guard var flow = try dataFlow(args[0], refuse: refuse), case let .constant(b) = args[1], let bTensor = b.tensor(), b.shape.count == 2 else {
                throw refuse("is a Gemm rnnkit does not follow: it reads Gemm(data, constant weight, constant bias)")
            }
            guard (attribute(node, "transA")?.i ?? 0) == 0, (attribute(node, "alpha")?.f ?? 1) == 1, (attribute(node, "beta")?.f ?? 1) == 1 else {
                throw refuse("has transA, alpha or beta other than 0, 1, 1; rnnkit reads Gemm as a Linear layer only")
            }
            let weight = (attribute(node, "transB")?.i ?? 0) == 1 ? bTensor : transposed(bTensor)
            var bias: Tensor?
            if case let .constant(c)? = args[safe: 2] {
                guard let values = c.floats, values.count == weight.shape[0], c.shape.count <= 2, c.shape.last == weight.shape[0] else {
                    throw refuse("has a bias of shape \(shapeText(c.shape)), expected [\(weight.shape[0])]")
                }
                bias = Tensor(unchecked: [values.count], values: values)
            }
            try appendDense(&flow, weight: weight, bias: bias, node: node, index: index)
            storedTypes.insert(b.storedType)
            return [.flow(flow)]
        case "MatMul":
            guard var flow = try dataFlow(args[0], refuse: refuse), case let .constant(b) = args[1], let bTensor = b.tensor(), b.shape.count == 2 else {
                throw refuse("is a MatMul rnnkit does not follow: it reads MatMul(data, constant weight [in, out])")
            }
            try appendDense(&flow, weight: transposed(bTensor), bias: nil, node: node, index: index)
            storedTypes.insert(b.storedType)
            return [.flow(flow)]
        case _ where ["Add", "Mul", "Less", "Not"].contains(op) && args.contains(where: Self.isTokenIDs):
            if let term = Self.idTerm(op, args) { return [term] }
            throw refuse("computes on the token ids (Keras 3's Embedding wraps negative ids, where(ids < 0, ids + vocabulary, ids)); rnnkit reads ids only as the indices of an embedding's Gather")
        case "Add":
            let (data, constant): (Value, Value) = { if case .flow = args[0] { return (args[0], args[1]) } else { return (args[1], args[0]) } }()
            guard case var .flow(flow) = data, case let .constant(c) = constant, let values = c.floats,
                  case var .dense(dense)? = flow.layers.last, dense.bias == nil, dense.activation == .linear,
                  values.count == dense.outputSize, c.shape.filter({ $0 != 1 }).count <= 1 else {
                throw refuse("adds something other than a bias to a MatMul's output; rnnkit reads MatMul + Add as a Linear layer only")
            }
            dense.bias = Tensor(unchecked: [values.count], values: values)
            flow.layers[flow.layers.count - 1] = .dense(dense)
            // The MatMul's summary gains its bias.
            if let last = summaries.indices.last, summaries[last].type == "MatMul" {
                summaries[last].type = "MatMul + Add"
                summaries[last].details = summaries[last].details.map { $0.0 == "bias" ? ("bias", .flag(true)) : $0 }
                summaries[last].parameterCount += values.count
            }
            return [.flow(flow)]
        case "Relu", "Tanh", "Sigmoid", "Softmax":
            guard var flow = try dataFlow(args[0], refuse: refuse) else { throw refuse("applies to a value rnnkit cannot follow") }
            if op == "Softmax" {
                let rank = flow.axes.count
                var axis = Int(attribute(node, "axis")?.i ?? (opset >= 13 ? -1 : 1))
                if axis < 0 { axis += rank }
                guard axis == rank - 1 else { throw refuse("is a Softmax over axis \(axis) of \(rank); rnnkit reads a Softmax over the features (the last axis)") }
            }
            let activation: Activation = ["Relu": .relu, "Tanh": .tanh, "Sigmoid": .sigmoid, "Softmax": .softmax][op]!
            flow.layers.append(.activation(activation))
            flow.layerNames.append(node.name)
            return [.flow(flow)]
        default:
            throw refuse("is not an operator rnnkit reads on data (it reads LSTM, GRU, RNN, Gemm, MatMul + Add, activations and the shape operators the exporters write around them)")
        }
    }

    /// True for token ids or a term computed from them.
    static func isTokenIDs(_ value: Value) -> Bool {
        switch value {
        case let .flow(f): return f.role == .tokenIDs
        case .idTerm: return true
        default: return false
        }
    }

    /// One step of Keras 3's `where(ids < 0, ids + V, ids)` as tf2onnx writes it, or nil for
    /// any other arithmetic on token ids.
    static func idTerm(_ op: String, _ args: [Value]) -> Value? {
        guard args.count == 2 || op == "Not" else { return nil }
        func constant(_ v: Value) -> Int64? {
            guard case let .constant(c) = v, c.count == 1 else { return nil }
            return c.ints?.first ?? c.floats.map { Int64(exactly: $0[0]) } ?? nil
        }
        func ids(_ v: Value) -> Flow? { if case let .flow(f) = v, f.role == .tokenIDs { return f } else { return nil } }
        func term(_ v: Value) -> (IDTerm, Flow)? {
            if let f = ids(v) { return (.shifted(0), f) }
            if case let .idTerm(t, f) = v { return (t, f) }
            return nil
        }
        switch op {
        case "Not":
            guard case let .idTerm(.predicate(negative), f) = args[0] else { return nil }
            return .idTerm(.predicate(negative: !negative), f)
        case "Less":
            guard let f = ids(args[0]), constant(args[1]) == 0 else { return nil }
            return .idTerm(.predicate(negative: true), f)
        case "Add":
            for (a, b) in [(args[0], args[1]), (args[1], args[0])] {
                if let f = ids(a), let v = constant(b), v > 0 { return .idTerm(.shifted(v), f) }
            }
            // The two branches of the where: ids + V where negative, ids elsewhere.
            if let (x, f) = term(args[0]), let (y, _) = term(args[1]) {
                for (p, q) in [(x, y), (y, x)] {
                    if case let .branch(true, v) = p, case .branch(false, 0) = q, v > 0 { return .idTerm(.wrapped(v), f) }
                }
            }
            return nil
        case "Mul":
            guard let (x, f) = term(args[0]), let (y, _) = term(args[1]) else { return nil }
            for (p, q) in [(x, y), (y, x)] {
                if case let .indicator(negative) = p, case let .shifted(v) = q, negative == (v != 0) {
                    return .idTerm(.branch(negative: negative, shift: v), f)
                }
            }
            return nil
        default:
            return nil
        }
    }

    /// `value` as the model's data: a final state of the last recurrent layer's last direction
    /// becomes the readout `h_n[-1]`; nil for a value that is not data.
    func dataFlow(_ value: Value, refuse: (String) -> ModelError) throws -> Flow? {
        guard case var .flow(flow) = value else { return nil }
        switch flow.role {
        case .data: return flow
        case let .finalState(direction, count):
            guard direction == count - 1 else {
                throw refuse("reads the forward direction's final state alone; the neutral model reads the last direction's (h_n[-1]) or both (cat(h_n[-2], h_n[-1]))")
            }
            flow.layers.append(.readout(.lastHidden))
            flow.layerNames.append("")
            flow.role = .data
            return flow
        case let .directionPart(direction, count):
            throw refuse("reads direction \(direction) of \(count) of a recurrent node's output alone; rnnkit reads the directions side by side on the features, forward first")
        default: return nil
        }
    }

    private func attribute(_ node: Onnx_NodeProto, _ name: String) -> Onnx_AttributeProto? {
        node.attribute.first { $0.name == name }
    }

    private mutating func appendDense(_ flow: inout Flow, weight: Tensor, bias: Tensor?, node: Onnx_NodeProto, index: Int) throws {
        guard case let .features(width)? = flow.axes.last, width == weight.shape[1] else {
            throw refusal(node, index, "takes \(weight.shape[1]) features; the data it is given has axes \(Self.text(flow.axes))", kind: .invalidModel)
        }
        flow.layers.append(.dense(Dense(weight: weight, bias: bias)))
        flow.layerNames.append(node.name)
        flow.axes[flow.axes.count - 1] = .features(weight.shape[0])
        summaries.append(LayerSummary(name: node.name, type: node.opType,
                                      details: [("in", .integer(weight.shape[1])), ("out", .integer(weight.shape[0])),
                                                ("bias", .flag(bias != nil))],
                                      gateOrder: nil, parameterCount: weight.count + (bias?.count ?? 0)))
    }

    private func transposed(_ t: Tensor) -> Tensor {
        let rows = t.shape[0], columns = t.shape[1]
        var values = [Float](repeating: 0, count: t.count)
        for r in 0..<rows { for c in 0..<columns { values[c * rows + r] = t.values[r * columns + c] } }
        return Tensor(unchecked: [columns, rows], values: values)
    }

    private func axesArgument(_ node: Onnx_NodeProto, _ args: [Value], refuse: (String) -> ModelError) throws -> [Int] {
        if let attr = attribute(node, "axes") { return attr.ints.map { Int($0) } }
        if case let .constant(c)? = args[safe: 1], let ints = c.ints { return ints.map { Int($0) } }
        if args.count < 2 || { if case .absent = args[1] { return true } else { return false } }() { return [] }
        throw refuse("takes axes rnnkit cannot compute")
    }

    private func unsqueezed(_ axes: [Axis], _ at: [Int], refuse: (String) -> ModelError) throws -> [Axis] {
        var result = axes
        let rank = axes.count + at.count
        for a in at.map({ $0 < 0 ? $0 + rank : $0 }).sorted() {
            guard a >= 0, a <= result.count else { throw refuse("unsqueezes axis \(a) of \(rank)") }
            result.insert(.unit, at: a)
        }
        return result
    }

    private func squeezed(_ axes: [Axis], _ at: [Int], refuse: (String) -> ModelError) throws -> [Axis] {
        let targets = at.isEmpty ? axes.indices.filter { axes[$0].size == .known(1) } : at.map { $0 < 0 ? $0 + axes.count : $0 }
        var result: [Axis] = []
        for (i, axis) in axes.enumerated() {
            if targets.contains(i) {
                switch axis {
                case .unit, .directions(1): continue
                default: throw refuse("squeezes axis \(i), which is not of size 1 in every run")
                }
            }
            result.append(axis)
        }
        return Self.normalized(result)
    }

    /// A hidden axis without its direction axis (squeezed away) is the features.
    static func normalized(_ axes: [Axis]) -> [Axis] {
        guard !axes.contains(where: { if case .directions = $0 { return true } else { return false } }) else { return axes }
        return axes.map { if case let .hidden(h) = $0 { return .features(h) } else { return $0 } }
    }

    /// `Reshape` of data: each target dimension takes whole axes of the input in order;
    /// `[directions, hidden]` merge into the features (forward first, as the neutral model
    /// has them), size-1 axes come and go, and the batch and time stay whole.
    private func reshaped(_ axes: [Axis], _ target: [Dim], allowZero: Bool, refuse: (String) -> ModelError) throws -> [Axis] {
        var result: [Axis] = []
        var p = 0
        func fail() -> ModelError { refuse("reshapes axes \(Self.text(axes)) to \(target); rnnkit follows reshapes that merge [directions, hidden], merge [batch, time] and split them back, or add and remove size-1 axes") }
        // [batch, time, …] → [batch·time, …] (a target of -1 or the batch·time product first),
        // and [batch·time, …] → [batch, time, …]: a Dense on every step as tf2onnx writes it.
        if axes.count >= 2, axes[0] == .batch, axes[1] == .time, target.count >= 2,
           target[0] == .batchTime || (target[0] == .known(-1) && !target.dropFirst().contains(.known(-1))) {
            return [.batchTime] + (try reshaped(Array(axes.dropFirst(2)), Array(target.dropFirst()), allowZero: allowZero, refuse: refuse))
        }
        if axes.first == .batchTime, target.count >= 2, target[0] == .batch, target[1] == .time {
            return [.batch, .time] + (try reshaped(Array(axes.dropFirst()), Array(target.dropFirst(2)), allowZero: allowZero, refuse: refuse))
        }
        for (i, dim) in target.enumerated() {
            // Size-1 axes of the input before a non-1 target are dropped.
            switch dim {
            case .known(0) where !allowZero:
                guard i == p, p < axes.count else { throw fail() }
                result.append(axes[p]); p += 1
            case .batch, .time:
                while p < axes.count, axes[p] == .unit || axes[p] == .directions(1) { p += 1 }
                guard p < axes.count, axes[p].size == dim else { throw fail() }
                result.append(axes[p]); p += 1
            case .known(-1) where i == target.count - 1:
                let rest = Array(axes[p...])
                p = axes.count
                result.append(try merged(rest, fail))
            case let .known(n) where n >= 1 && { () -> Bool in
                // The exported batch or time, fixed by the graph's input: that axis, whole.
                var q = p
                while q < axes.count, axes[q] == .unit || axes[q] == .directions(1) { q += 1 }
                return q < axes.count && fixedSizes[axes[q]] == n && n != 1
            }():
                while axes[p] == .unit || axes[p] == .directions(1) { p += 1 }
                result.append(axes[p]); p += 1
            case let .known(n) where n >= 1:
                if n == 1, p >= axes.count || axes[p].size != .known(1) { result.append(.unit); continue }
                var group: [Axis] = []
                var product = 1
                while p < axes.count, product < n || (axes[p].size == .known(1) && product == n && group.isEmpty) {
                    guard case let .known(size) = axes[p].size else { throw fail() }
                    let (next, overflow) = product.multipliedReportingOverflow(by: size)
                    guard !overflow else { throw fail() }
                    group.append(axes[p]); product = next; p += 1
                }
                guard product == n else { throw fail() }
                result.append(try merged(group, fail))
            default:
                throw fail()
            }
        }
        while p < axes.count, axes[p].size == .known(1) { p += 1 }
        guard p == axes.count else { throw fail() }
        return Self.normalized(result)
    }

    private func merged(_ group: [Axis], _ fail: () -> ModelError) throws -> Axis {
        let meaningful = group.filter { $0 != .unit }
        switch meaningful.count {
        case 0: return .unit
        case 1: return meaningful[0]
        case 2:
            if case let .directions(d) = meaningful[0], case let .hidden(h) = meaningful[1] { return .features(d * h) }
            throw fail()
        default: throw fail()
        }
    }

    private mutating func gather(_ node: Onnx_NodeProto, _ index: Int, _ args: [Value], refuse: (String) -> ModelError) throws -> Value {
        var axis = Int(attribute(node, "axis")?.i ?? 0)
        switch (args[0], args[1]) {
        case let (.shape(dims, false), .constant(c)):
            guard let ints = c.ints, c.shape.count <= 1 else { throw refuse("gathers from a shape with indices rnnkit cannot follow") }
            let picked = try ints.map { i -> Dim in
                let k = Int(i < 0 ? i + Int64(dims.count) : i)
                guard dims.indices.contains(k) else { throw refuse("gathers index \(i) of a shape of \(dims.count)") }
                return dims[k]
            }
            return .shape(picked, scalar: c.shape.isEmpty)
        case let (.constant(table), .flow(ids)) where ids.role == .tokenIDs && axis == 0,
             let (.constant(table), .idTerm(_, ids)) where axis == 0:
            // Keras 3 wraps a negative id to id + V before its Gather; the engine refuses ids
            // outside 0..<V at run, as rnnkit does for the same model read from its .keras file.
            if case let .idTerm(term, _) = args[1], term != .wrapped(Int64(table.shape.first ?? -1)) {
                throw refuse("gathers rows at token ids changed by arithmetic other than Keras 3's where(ids < 0, ids + vocabulary, ids)")
            }
            guard let tableTensor = table.tensor(), table.shape.count == 2 else { throw refuse("gathers ids from a table that is not a 2-D float constant") }
            var flow = ids
            flow.layers.append(.embedding(Embedding(table: tableTensor)))
            flow.layerNames.append(node.name)
            flow.axes.append(.features(table.shape[1]))
            flow.role = .data
            storedTypes.insert(table.storedType)
            summaries.append(LayerSummary(name: node.name, type: "Gather (embedding)",
                                          details: [("vocabulary", .integer(table.shape[0])), ("dim", .integer(table.shape[1]))],
                                          gateOrder: nil, parameterCount: tableTensor.count))
            return .flow(flow)
        case let (.flow(flow), .permutation(inverse)):
            if axis < 0 { axis += flow.axes.count }
            guard flow.axes[safe: axis] == .batch, flow.sorted == inverse else {
                throw refuse("reorders data in a way rnnkit does not follow (a packed export sorts the batch by length, then unsorts it)")
            }
            var result = flow
            result.sorted = !inverse
            return .flow(result)
        case let (.lengths(input, false), .permutation(false)) where axis == 0:
            return .lengths(input: input, sorted: true)
        case let (.flow(flow), .constant(c)):
            guard let ints = c.ints, c.shape.isEmpty, let i = ints.first else { throw refuse("gathers data with indices rnnkit cannot follow (one constant index only)") }
            if axis < 0 { axis += flow.axes.count }
            guard flow.axes.indices.contains(axis) else { throw refuse("gathers on axis \(axis) of \(flow.axes.count)") }
            var result = flow
            result.axes.remove(at: axis)
            switch (flow.role, flow.axes[axis]) {
            case (.data, .time):
                // y[:, -1]: the step at time − 1, each sequence's last when no lengths are given.
                if !flow.layers.contains(where: Self.isRecurrent), i >= 0 { throw refuse(Self.unrolledMessage(step: i)) }
                // With the time fixed at export, step time − 1 is written as its number.
                guard i == -1 || fixedSizes[.time].map({ Int64($0) - 1 == i }) == true else {
                    throw refuse("reads step \(i) of the sequence; rnnkit reads the last step (index −1) only")
                }
                guard case .recurrent? = flow.layers.last else { throw refuse("reads the last step of data that is not a recurrent layer's output") }
                result.layers.append(.readout(.lastValidStep))
                result.layerNames.append(node.name)
                lastStepReadouts.append(Self.label(node, index))
                return .flow(result)
            case let (.finalStates(cell: false), .directions(d)):
                let k = Int(i < 0 ? i + Int64(d) : i)
                guard (0..<d).contains(k) else { throw refuse("reads direction \(i) of \(d)") }
                result.role = .finalState(direction: k, of: d)
                result.axes = Self.normalized(result.axes)
                return .flow(result)
            case let (.stackedStates(cell: false, layers: n), .directions(rows)):
                // h_n[-1] / h_n[-2] of a stacked module: the last layer's directions.
                let k = Int(i < 0 ? i + Int64(rows) : i)
                let d = rows / max(n, 1)
                guard k >= rows - d, k < rows else { throw refuse("reads the final state of a layer below the last; rnnkit reads the last layer's") }
                result.role = .finalState(direction: k - (rows - d), of: d)
                result.axes = Self.normalized(result.axes)
                return .flow(result)
            default:
                throw refuse("gathers from data in a way rnnkit does not follow")
            }
        default:
            throw refuse("gathers in a way rnnkit does not follow (a shape's dims, an embedding's rows, the last step or a final state)")
        }
    }

    var lastStepReadouts: [String] = []

    /// `Slice` of a shape (its dims) or of data (zeros are sliced in `compute`):
    /// one direction of a bidirectional node's `Y`, or the last step (`[-1:]` on the time axis).
    private mutating func slice(_ node: Onnx_NodeProto, _ index: Int, _ args: [Value], refuse: (String) -> ModelError) throws -> Value {
        guard case let .constant(startsValue)? = args[safe: 1], case let .constant(endsValue)? = args[safe: 2],
              let starts = startsValue.ints, let ends = endsValue.ints, starts.count == 1, ends.count == 1 else {
            throw refuse("slices with starts and ends rnnkit cannot compute (it follows one constant axis)")
        }
        var axis: Int64 = 0
        switch args[safe: 3] {
        case nil, .absent?: break
        case let .constant(a)? where a.ints?.count == 1: axis = a.ints![0]
        default: throw refuse("slices on axes rnnkit cannot compute")
        }
        switch args[safe: 4] {
        case nil, .absent?: break
        case let .constant(s)? where s.ints == [1]: break
        default: throw refuse("slices with a step other than 1")
        }
        func bounds(_ size: Int) -> Range<Int> {
            let n = Int64(size)
            let clamp = { (v: Int64) in Int(max(0, min(v < 0 ? v + n : v, n))) }
            let lower = clamp(starts[0]), upper = clamp(ends[0])
            return lower..<max(lower, upper)
        }
        switch args[0] {
        case let .shape(dims, false):
            guard axis == 0 || axis == -1 else { throw refuse("slices a shape on axis \(axis)") }
            return .shape(Array(dims[bounds(dims.count)]), scalar: false)
        case var .flow(flow) where flow.role == .data:
            let rank = flow.axes.count
            let k = Int(axis < 0 ? axis + Int64(rank) : axis)
            guard flow.axes.indices.contains(k) else { throw refuse("slices axis \(axis) of \(rank)") }
            switch flow.axes[k] {
            case let .directions(d) where d == 2:
                let range = bounds(d)
                guard range.count == 1, flow.axes[(k + 1)...].contains(where: { if case .hidden = $0 { return true } else { return false } }) else {
                    throw refuse("slices the directions of a recurrent node other than one at a time")
                }
                flow.axes[k] = .unit
                flow.role = .directionPart(direction: range.lowerBound, of: d)
                return .flow(flow)
            case .time:
                // y[-1:] on the time axis: the last step (ends at or past the end).
                if !flow.layers.contains(where: Self.isRecurrent), starts[0] >= 0, ends[0] == starts[0] + 1 {
                    throw refuse(Self.unrolledMessage(step: starts[0]))
                }
                guard starts[0] == -1, ends[0] >= Int64(Int32.max) else {
                    throw refuse("slices steps \(starts[0])..<\(ends[0]) of the sequence; rnnkit reads the last step ([-1:]) only")
                }
                guard case .recurrent? = flow.layers.last else { throw refuse("reads the last step of data that is not a recurrent layer's output") }
                flow.axes[k] = .unit
                flow.layers.append(.readout(.lastValidStep))
                flow.layerNames.append(node.name)
                lastStepReadouts.append(Self.label(node, index))
                return .flow(flow)
            default:
                throw refuse("slices the data on its \(flow.axes[k].text) axis; rnnkit follows slices of one direction of a recurrent node's output or of its last step")
            }
        default:
            throw refuse("slices the data; rnnkit reads the slices of constants, shapes and zero states, one direction or the last step of a recurrent node's output")
        }
    }

    private mutating func concat(_ node: Onnx_NodeProto, _ args: [Value], refuse: (String) -> ModelError) throws -> Value {
        let axis = Int(attribute(node, "axis")?.i ?? 0)
        // Shapes: dims and constant integers side by side.
        if args.allSatisfy({ if case .shape(_, false) = $0 { return true }; if case let .constant(c) = $0 { return c.ints != nil && c.shape.count == 1 }; return false }) {
            var dims: [Dim] = []
            for arg in args {
                if case let .shape(d, _) = arg { dims += d }
                if case let .constant(c) = arg { dims += c.ints!.map { .known(Int($0)) } }
            }
            return .shape(dims, scalar: false)
        }
        // Zeros side by side (tf2onnx's initial states of both directions): zeros.
        let zeros = args.compactMap { if case let .zeros(dims) = $0 { return dims } else { return nil } }
        if zeros.count == args.count, let first = zeros.first {
            let rank = first.count, k = axis < 0 ? axis + rank : axis
            guard (0..<rank).contains(k), zeros.allSatisfy({ $0.count == rank && $0.enumerated().allSatisfy { i, d in i == k || d == first[i] } }) else {
                throw refuse("concatenates zeros of shapes rnnkit cannot match")
            }
            let sizes = zeros.compactMap { if case let .known(n) = $0[k] { return n } else { return nil } }
            guard sizes.count == zeros.count else { throw refuse("concatenates zeros along a dimension known only at run time") }
            var dims = first
            var total = 0
            for size in sizes {
                let (next, overflow) = total.addingReportingOverflow(size)
                guard size >= 0, !overflow else { throw refuse("concatenates zeros of sizes \(sizes)") }
                total = next
            }
            dims[k] = .known(total)
            return .zeros(dims)
        }
        let flows = args.compactMap { if case let .flow(f) = $0 { return f } else { return nil } }
        guard flows.count == args.count, let first = flows.first else { throw refuse("concatenates values rnnkit cannot follow") }
        // A bidirectional node's Y sliced into its directions, put back side by side on the
        // features, forward first: the neutral features.
        if flows.count == 2, case .directionPart(0, 2) = flows[0].role, case .directionPart(1, 2) = flows[1].role {
            let rank = first.axes.count, k = axis < 0 ? axis + rank : axis
            // Both halves of one node: the same layers (weights included) made them.
            guard k == rank - 1, flows[0].axes == flows[1].axes, flows[0].layers == flows[1].layers,
                  flows[0].layerNames == flows[1].layerNames,
                  case let .features(h)? = first.axes.last else {
                throw refuse("concatenates directions other than both of one recurrent node on the features, forward first")
            }
            var result = first
            result.role = .data
            result.axes[k] = .features(2 * h)
            return .flow(result)
        }
        // cat([h_n[-2], h_n[-1]], 1): both directions' final states of the last layer.
        if flows.count == 2, case .finalState(0, 2) = flows[0].role, case .finalState(1, 2) = flows[1].role,
           axis == 1 || axis == -1, flows[0].layers.count == flows[1].layers.count {
            var result = first
            result.role = .data
            result.axes = [.batch, .features(2 * (first.axes.last.map { if case let .features(h) = $0 { return h } else { return 0 } } ?? 0))]
            result.layers.append(.readout(.lastHiddenAllDirections))
            result.layerNames.append(node.name)
            return .flow(result)
        }
        // A bare module's h_n / c_n: every layer's Y_h (Y_c) stacked on axis 0, in order.
        if axis == 0, case let .finalStates(cell) = first.role {
            let recurrentCount = { (f: Flow) in f.layers.filter { if case .recurrent = $0 { return true } else { return false } }.count }
            let ordered = flows.enumerated().allSatisfy { i, f in f.role == .finalStates(cell: cell) && recurrentCount(f) == i + 1 }
            guard ordered, case let .directions(d)? = first.axes.first else { throw refuse("stacks final states rnnkit cannot match to the layers") }
            var result = flows.last!
            result.role = .stackedStates(cell: cell, layers: flows.count)
            result.axes[0] = .directions(d * flows.count)
            return .flow(result)
        }
        throw refuse("concatenates data in a way rnnkit does not follow")
    }

    // MARK: - Recurrent nodes

    mutating func recurrent(_ node: Onnx_NodeProto, _ index: Int, _ args: [Value]) throws -> [Value] {
        func refuse(_ message: String) -> ModelError { refusal(node, index, message) }
        func invalid(_ message: String) -> ModelError { refusal(node, index, message, kind: .invalidModel) }
        let kind = ONNXLayout.cellKind(opType: node.opType)!
        let attributes = Dictionary(node.attribute.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        if attributes["output_sequence"] != nil {
            throw refuse("has output_sequence, an attribute of opset 1 that later opsets dropped; rnnkit reads the recurrent operators of opset 7 and later")
        }
        guard ONNXLayout.recurrentOperatorVersion(opset: opset) != nil else {
            throw refuse("is of opset \(opset); rnnkit reads the recurrent operators of opset 7 and later")
        }
        for name in attributes.keys where !["activation_alpha", "activation_beta", "activations", "clip", "direction", "hidden_size",
                                               "input_forget", "layout", "linear_before_reset"].contains(name) {
            throw refuse("has the attribute \(escapedForDisplay(name)), which \(node.opType) does not define")
        }
        let clip = attributes["clip"].map(\.f)
        if let clip, !(clip.isFinite && clip > 0) {
            throw invalid("has clip \(clip); a clip is a positive threshold")
        }
        let inputForget = (attributes["input_forget"]?.i ?? 0) != 0
        if inputForget && kind != .lstm {
            throw refuse("has the attribute input_forget, which \(node.opType) does not define")
        }
        let direction = attributes["direction"].map { String(decoding: $0.s, as: UTF8.self) } ?? "forward"
        guard ["forward", "reverse", "bidirectional"].contains(direction) else { throw invalid("has direction \(escapedForDisplay(direction))") }
        let directions = direction == "bidirectional" ? 2 : 1
        let layout = Int(attributes["layout"]?.i ?? 0)
        guard layout == 0 || layout == 1 else { throw invalid("has layout \(layout); 0 and 1 are defined") }
        let resetRule: GRUResetRule = (attributes["linear_before_reset"]?.i ?? 0) != 0 ? .afterMatmul : .beforeMatmul

        // Weights.
        func constant(_ i: Int, _ name: String) throws -> ONNXConstant? {
            switch args[safe: i] {
            case nil, .absent?: return nil
            case let .constant(c)?:
                guard c.floats != nil else { throw invalid("input \(name) is not a float tensor") }
                storedTypes.insert(c.storedType)
                return c
            default: throw refuse("takes \(name) computed from the data; rnnkit reads constant weights only")
            }
        }
        guard let w = try constant(1, "W"), let r = try constant(2, "R") else { throw invalid("lacks W or R") }
        let gates = kind.gateCount
        guard r.shape.count == 3, r.shape[0] == directions, r.shape[2] > 0 else {
            throw invalid("input R has shape \(shapeText(r.shape)), expected [\(directions), \(gates)·hidden, hidden]")
        }
        let hidden = Int(attributes["hidden_size"]?.i ?? Int64(r.shape[2]))
        let (gateRows, overflow) = hidden.multipliedReportingOverflow(by: gates)
        guard hidden > 0, !overflow, r.shape == [directions, gateRows, hidden] else {
            throw invalid("input R has shape \(shapeText(r.shape)), expected \(overflow ? "[\(directions), \(gates)·\(hidden), \(hidden)]" : shapeText([directions, gateRows, hidden]))")
        }
        guard w.shape.count == 3, w.shape[0] == directions, w.shape[1] == gateRows, w.shape[2] > 0 else {
            throw invalid("input W has shape \(shapeText(w.shape)), expected [\(directions), \(gateRows), input]")
        }
        let inputSize = w.shape[2]
        let b = try constant(3, "B")
        if let b, b.shape != [directions, 2 * gateRows] {
            throw invalid("input B has shape \(shapeText(b.shape)), expected \(shapeText([directions, 2 * gateRows]))")
        }
        // Peepholes `[D, 3·H]` (i, o, f); all zeros are none.
        var peepholes: ONNXConstant?
        if kind == .lstm, let p = try constant(7, "P") {
            let (size, pOverflow) = hidden.multipliedReportingOverflow(by: 3)
            guard !pOverflow, p.shape == [directions, size] else {
                throw invalid("input P has shape \(shapeText(p.shape)), expected \(pOverflow ? "[\(directions), 3·\(hidden)]" : shapeText([directions, size]))")
            }
            if !p.floats!.allSatisfy({ $0 == 0 }) { peepholes = p }
        }

        // Activations, per direction: f (gates), g (candidate), and an LSTM's h (cell output).
        let perDirection = ONNXLayout.activationCount(kind)
        var names = attributes["activations"]?.strings.map { String(decoding: $0, as: UTF8.self) } ?? []
        if names.isEmpty { names = Array(repeating: ONNXLayout.defaultActivations(kind), count: directions).flatMap { $0 } }
        guard names.count == perDirection * directions else {
            throw invalid("lists \(names.count) activations; \(node.opType) with \(directions) direction(s) takes \(perDirection * directions)")
        }
        let resolved: [CellActivation]
        switch ONNXLayout.activations(names, alphas: attributes["activation_alpha"]?.floats,
                                      betas: attributes["activation_beta"]?.floats, kind: kind, perDirection: perDirection) {
        case let .success(values): resolved = values
        case let .failure(why): throw refuse("has the activation \(why.text)")
        }
        let sets = (0..<directions).map { d in
            let own = Array(resolved[(d * perDirection)..<((d + 1) * perDirection)])
            switch kind {
            case .rnn: return CellActivations(gate: .standard(.sigmoid), candidate: own[0], cellOutput: own[0])
            case .lstm: return CellActivations(gate: own[0], candidate: own[1], cellOutput: own[2])
            case .gru: return CellActivations(gate: own[0], candidate: own[1], cellOutput: own[1])
            }
        }
        // One set of the engine's own functions for the whole layer, as Keras and PyTorch have,
        // is the layer's pair; anything else is kept per direction (`cellActivations`).
        var gateActivation = Activation.sigmoid, candidate = Activation.tanh
        var cellActivations: [CellActivations]? = sets
        if sets.allSatisfy({ $0 == sets[0] }), case let .standard(gate) = sets[0].gate,
           case let .standard(g) = sets[0].candidate, sets[0].cellOutput == sets[0].candidate {
            gateActivation = gate
            candidate = g
            cellActivations = nil
        }

        // The data, time-major (layout 0) or batch-major (layout 1).
        guard case var .flow(x) = args[0], x.role == .data else { throw refuse("reads X that rnnkit cannot follow from the graph's input") }
        let expected: [Axis] = layout == 0 ? [.time, .batch] : [.batch, .time]
        guard x.axes.count == 3, Array(x.axes[0..<2]) == expected, case let .features(features) = x.axes[2] else {
            throw ONNXInputOrder(node: Self.label(node, index), axes: x.axes, expected: expected)
        }
        guard features == inputSize else {
            throw invalid("takes \(inputSize) features (W is \(shapeText(w.shape))); its input X has \(features)")
        }
        // sequence_lens, initial_h, initial_c.
        switch args[safe: 4] {
        case nil, .absent?: nodesWithoutLengths += 1
        case let .lengths(input, sorted)?:
            guard sorted == x.sorted else {
                throw refuse("takes sequence_lens \(sorted ? "sorted" : "unsorted") by length and X \(x.sorted ? "sorted" : "unsorted"); rnnkit follows a packed export's sort of both")
            }
            nodesWithLengths += 1
            lengthsInput = input
            if !sorted { writtenMask.lengths = .input(input) }
        case let .mask(m)?:
            let (file, label) = (self.file, Self.label(node, index))
            try takeWrittenLengths(m, &x, refuse: { ModelError(.unsupported, file: file, path: label, message: $0) })
        default: throw refuse("takes sequence_lens that rnnkit cannot follow to a graph input (lengths)")
        }
        for (i, cell) in [(5, false), (6, true)] where kind == .lstm || !cell {
            switch args[safe: i] {
            case nil, .absent?, .zeros?: break
            case let .constant(c)? where (c.floats ?? []).allSatisfy({ $0 == 0 }): break
            case let .flow(f)? where { if case .initialState = f.role { return true } else { return false } }():
                if case let .initialState(input) = f.role { stateInputs.append((input, cell)) }
            default: throw refuse("starts from \(cell ? "initial_c" : "initial_h") that is neither zeros nor a graph input")
            }
        }

        var weights: [DirectionWeights] = []
        let order = ONNXLayout.gateOrders[kind]
        for d in 0..<directions {
            let wSize = gateRows * inputSize, rSize = gateRows * hidden
            let bias = b.map { Array($0.floats![(d * 2 * gateRows)..<((d * 2 + 2) * gateRows)]) }
            let peephole = peepholes.map {
                Tensor(unchecked: [3 * hidden], values: Array($0.floats![(d * 3 * hidden)..<((d + 1) * 3 * hidden)]))
                    .reorderingRowBlocks(from: ONNXLayout.peepholeOrder, to: DirectionWeights.peepholeOrder)
            }
            weights.append(DirectionWeights(
                gateOrder: order,
                inputWeight: Tensor(unchecked: [gateRows, inputSize], values: Array(w.floats![(d * wSize)..<((d + 1) * wSize)])),
                recurrentWeight: Tensor(unchecked: [gateRows, hidden], values: Array(r.floats![(d * rSize)..<((d + 1) * rSize)])),
                inputBias: bias.map { Tensor(unchecked: [gateRows], values: Array($0[0..<gateRows])) },
                recurrentBias: bias.map { Tensor(unchecked: [gateRows], values: Array($0[gateRows...])) },
                peepholes: peephole))
        }
        var layer = RecurrentLayer(kind: kind, inputSize: inputSize, hiddenSize: hidden, directions: weights,
                                   activation: candidate, recurrentActivation: gateActivation, gruResetRule: resetRule)
        let (goBackwards, outputOrder) = try writtenStepOrder(x, directions: directions, refuse: refuse)
        layer.goBackwards = goBackwards
        layer.reversed = direction == "reverse"
        layer.cellActivations = cellActivations
        layer.clip = clip
        layer.inputForget = inputForget
        x.layers.append(.recurrent(layer))
        x.layerNames.append(node.name)
        var details: [(String, DetailValue)] = [("input", .integer(inputSize)), ("hidden_size", .integer(hidden)),
                                                ("direction", .text(direction)), ("layout", .integer(layout)),
                                                ("activations", .text(names.joined(separator: ", "))), ("bias (B)", .flag(b != nil))]
        var parameters: [(String, DetailValue)] = []
        if let alphas = attributes["activation_alpha"]?.floats { parameters.append(("activation_alpha", .text(alphas.map { "\($0)" }.joined(separator: ", ")))) }
        if let betas = attributes["activation_beta"]?.floats { parameters.append(("activation_beta", .text(betas.map { "\($0)" }.joined(separator: ", ")))) }
        details.insert(contentsOf: parameters, at: 5)  // after the activations
        if kind == .gru { details.append(("linear_before_reset", .integer(resetRule == .afterMatmul ? 1 : 0))) }
        if let clip { details.append(("clip", .text("\(clip)"))) }
        if inputForget { details.append(("input_forget", .integer(1))) }
        if peepholes != nil { details.append(("peepholes (P)", .flag(true))) }
        summaries.append(LayerSummary(name: node.name.isEmpty ? "#\(index)" : node.name, type: node.opType, details: details, gateOrder: order,
                                      parameterCount: w.count + r.count + (b?.count ?? 0) + (peepholes?.count ?? 0)))

        let y: [Axis] = layout == 0 ? [.time, .directions(directions), .batch, .hidden(hidden)]
                                    : [.batch, .time, .directions(directions), .hidden(hidden)]
        let states: [Axis] = layout == 0 ? [.directions(directions), .batch, .hidden(hidden)]
                                         : [.batch, .directions(directions), .hidden(hidden)]
        var outputs: [Value] = [.flow(Flow(layers: x.layers, layerNames: x.layerNames, axes: y, role: .data, sorted: x.sorted,
                                           stepOrder: outputOrder)),
                                .flow(Flow(layers: x.layers, layerNames: x.layerNames, axes: states, role: .finalStates(cell: false),
                                           sorted: x.sorted))]
        if kind == .lstm {
            outputs.append(.flow(Flow(layers: x.layers, layerNames: x.layerNames, axes: states, role: .finalStates(cell: true),
                                      sorted: x.sorted)))
        }
        return outputs
    }
}

/// The graph's input reached a recurrent node in the other order of batch and time: the
/// reader tries the input the other way round before it refuses.
struct ONNXInputOrder: Error {
    var node: String
    var axes: [ONNXGraph.Axis]
    var expected: [ONNXGraph.Axis]
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
