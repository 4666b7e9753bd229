import Foundation
import TextSafety
import RecurrentEngine

/// An ONNX model read into the neutral model, with what `inspect` shows of it.
struct ONNXReading {
    var model: Model
    /// True for a graph that is one stack of recurrent nodes whose outputs are the sequence
    /// and, optionally, every layer's `Y_h` (`Y_c`) stacked: PyTorch's `output, h_n, c_n`.
    var isBareRecurrentModule: Bool
    var summaries: [LayerSummary]
    var storedTypes: [String]
    var notes: [String]
    /// `ir_version`, the `ai.onnx` opset, `producer_name producer_version`, operators counted.
    var irVersion: Int
    var opset: Int
    var producer: String
    var operators: [String: Int]
    /// The graph's inputs by role: the data (features or token ids), the lengths
    /// (`sequence_lens`), initial states.
    var dataInput: String
    var lengthsInput: String?
    var stateInputs: [(input: String, cell: Bool)]
    /// The batch and time the data input declares as numbers (an export without dynamic axes).
    var fixedBatch: Int?
    var fixedTime: Int?

    /// What `inspect` shows: the graph (opset, IR version, producer, operators, inputs), then
    /// each recurrent node and head as the graph has them.
    var provenance: [LayerSummary] {
        var details: [(String, DetailValue)] = [("ir_version", .integer(irVersion)), ("opset", .integer(opset))]
        if !producer.isEmpty { details.append(("producer", .text(producer))) }
        details.append(("operators", .text(operators.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))))
        details.append(("input", .text(dataInput)))
        if let lengthsInput { details.append(("sequence_lens", .text(lengthsInput))) }
        for state in stateInputs { details.append((state.cell ? "initial_c" : "initial_h", .text(state.input))) }
        if let fixedBatch { details.append(("fixed batch", .integer(fixedBatch))) }
        if let fixedTime { details.append(("fixed time", .integer(fixedTime))) }
        return [LayerSummary(name: model.name, type: "ONNX graph", details: details, gateOrder: nil, parameterCount: 0)] + summaries
    }
}

/// Reads `.onnx` files (spec/onnx-layout.md): a bounded protobuf decode, then the graph by
/// what its nodes compute (``ONNXGraph``).
enum ONNXReader {
    static func read(_ path: String) throws -> ONNXReading {
        try read(ONNXProtobuf.readModel(path), file: path, folder: ONNXExternalData.folder(of: path))
    }

    /// `folder`: the model's folder, where external data may be read (``ONNXExternalData``);
    /// nil for a model given as bytes.
    static func read(_ proto: Onnx_ModelProto, file: String, folder: String? = nil) throws -> ONNXReading {
        let graph = proto.graph
        guard let opsetID = proto.opsetImport.first(where: { $0.domain.isEmpty || $0.domain == "ai.onnx" }) else {
            throw ModelError(.invalidModel, file: file, message: "imports no ai.onnx opset")
        }
        let opset = Int(clamping: opsetID.version)
        if !graph.sparseInitializer.isEmpty {
            throw ModelError(.unsupported, file: file, path: "graph.sparse_initializer", message: "holds sparse tensors, which rnnkit does not read")
        }
        // Which graph inputs the recurrent nodes take as sequence_lens and initial states
        // (directly or through a Cast).
        var castOf: [String: String] = [:]
        // Cast, Identity and a packed export's TopK (sorted lengths) hand the lengths on.
        for node in graph.node where ["Cast", "Identity", "TopK"].contains(node.opType) {
            if let input = node.input.first, let output = node.output.first { castOf[output] = input }
        }
        // An Expand of a graph input hands on initial states given as optional inputs (the
        // written graphs: a zero initializer of one row, expanded to the batch).
        let declaredInputs = Set(graph.input.map(\.name))
        for node in graph.node where node.opType == "Expand" {
            if let input = node.input.first, declaredInputs.contains(input), let output = node.output.first { castOf[output] = input }
        }
        func source(_ name: String) -> String { var n = name; var hops = 0; while let s = castOf[n], hops < 8 { n = s; hops += 1 }; return n }
        var lengthNames: Set<String> = [], stateNames: Set<String> = []
        for node in graph.node where ONNXLayout.cellKind(opType: node.opType) != nil {
            if let l = node.input[safe: 4], !l.isEmpty { lengthNames.insert(source(l)) }
            for i in [5, 6] { if let s = node.input[safe: i], !s.isEmpty { stateNames.insert(source(s)) } }
        }

        var constants: [String: ONNXConstant] = [:]
        var initializerBytes = 0
        var external = ONNXExternalData(folder: folder, file: file)
        for (i, tensor) in graph.initializer.enumerated() {
            let name = tensor.name.isEmpty ? "initializer \(i)" : tensor.name
            let what = "initializer \(escapedForDisplay(name))"
            let value = try ONNXConstant(external.resolve(tensor, what: what), file: file, what: what)
            initializerBytes += value.count
            guard initializerBytes <= Limits.parameters else {
                throw ModelError(.unsupported, file: file, message: "its initializers hold more than \(Limits.parameters) values (Limits.parameters)")
            }
            constants[tensor.name] = value
        }
        let graphInputs = graph.input.filter { constants[$0.name] == nil }
        // An initializer fed to initial_h (an export without dynamic axes writes its zero states
        // as constants) is a constant, not an input.
        lengthNames.subtract(constants.keys)
        // An initializer that is also a graph input is an optional input (ONNX IR 4 and later:
        // the written graphs' zero states, which a caller may override): a state input.
        stateNames = stateNames.filter { constants[$0] == nil || declaredInputs.contains($0) }
        var dataInput: (name: String, ids: Bool, features: Int?, leading: [Int?])?
        for input in graphInputs {
            let type = input.type.tensorType
            let rank = type.shape.dim.count
            if lengthNames.contains(input.name) || stateNames.contains(input.name) { continue }
            let isFloat = [1, 10, 11].contains(type.elemType), isInt = [6, 7].contains(type.elemType)
            guard dataInput == nil, (isFloat && rank == 3) || (isInt && rank == 2) else {
                throw ModelError(.unsupported, file: file, path: "graph input \(escapedForDisplay(input.name))",
                                 message: "is a second data input or of a type rnnkit does not read (float [batch, time, features] or integer token ids [batch, time]; sequence_lens and initial states)")
            }
            var features: Int?
            if isFloat, case let .dimValue(n)? = type.shape.dim.last?.value { features = Int(clamping: n) }
            // The first two dims as numbers where the graph fixes them (no dim_param).
            let leading = type.shape.dim.prefix(2).map { d -> Int? in
                if case let .dimValue(n)? = d.value, n > 0 { return Int(clamping: n) } else { return nil }
            }
            dataInput = (input.name, isInt, features, leading)
        }
        guard let dataInput else { throw ModelError(.unsupported, file: file, message: "its graph has no data input") }

        // Only the nodes the outputs depend on are read.
        var producers: [String: Int] = [:]
        for (i, node) in graph.node.enumerated() { for o in node.output where !o.isEmpty { producers[o] = i } }
        var needed = Set<Int>()
        var pending = graph.output.map(\.name)
        while let name = pending.popLast() {
            guard let i = producers[name], needed.insert(i).inserted else { continue }
            pending += graph.node[i].input.filter { !$0.isEmpty }
        }

        func interpret(timeMajor: Bool) throws -> ONNXGraph {
            var reader = ONNXGraph(file: file, opset: opset)
            for (name, value) in constants { reader.values[name] = .constant(value) }
            let order: [ONNXGraph.Axis] = timeMajor ? [.time, .batch] : [.batch, .time]
            for (axis, size) in zip(order, dataInput.leading) { if let size { reader.fixedSizes[axis] = size } }
            reader.values[dataInput.name] = .flow(ONNXGraph.Flow(
                layers: [], layerNames: [], axes: dataInput.ids ? order : order + [.features(dataInput.features ?? -1)],
                role: dataInput.ids ? .tokenIDs : .data))
            for name in lengthNames { reader.values[name] = .lengths(input: name, sorted: false) }
            for name in stateNames {
                reader.values[name] = .flow(ONNXGraph.Flow(layers: [], layerNames: [], axes: [], role: .initialState(input: name)))
            }
            // Control flow (a Loop, Scan or If the outputs depend on) is refused by name before
            // the nodes that feed it (tf2onnx's while loop is preceded by its condition's Less).
            if let i = needed.sorted().first(where: { ["Loop", "Scan", "If"].contains(graph.node[$0].opType)
                                                      && ["", "ai.onnx"].contains(graph.node[$0].domain) }) {
                throw reader.refusal(graph.node[i], i, ONNXGraph.controlFlowMessage)
            }
            for (i, node) in graph.node.enumerated() where needed.contains(i) {
                try reader.apply(node, i)
            }
            return reader
        }
        var reader: ONNXGraph
        var timeMajor = false
        do {
            reader = try interpret(timeMajor: false)
        } catch let first as ONNXInputOrder {
            do {
                reader = try interpret(timeMajor: true)
                timeMajor = true
            } catch let second as ONNXInputOrder {
                _ = first
                throw ModelError(.unsupported, file: file, path: second.node,
                                 message: "takes X with axes \(ONNXGraph.text(second.axes)), expected \(ONNXGraph.text(second.expected)) first for its layout; rnnkit cannot follow the graph's input to it")
            }
        }

        // The outputs.
        guard let firstOutput = graph.output.first else { throw ModelError(.invalidModel, file: file, message: "its graph has no output") }
        func flow(_ name: String) throws -> ONNXGraph.Flow {
            guard case let .flow(f)? = reader.values[name] else {
                throw ModelError(.unsupported, file: file, path: "graph output \(escapedForDisplay(name))", message: "does not depend on the graph's input; rnnkit reads models whose output does")
            }
            return f
        }
        let refuseOutput = { (name: String, message: String) in ModelError(.unsupported, file: file, path: "graph output \(escapedForDisplay(name))", message: message) }
        guard var output = try reader.dataFlow(.flow(try flow(firstOutput.name)), refuse: { refuseOutput(firstOutput.name, $0) }) else {
            throw refuseOutput(firstOutput.name, "is not the model's data (a final state alone is read only as h_n[-1])")
        }
        if output.stepOrder != nil {
            throw refuseOutput(firstOutput.name, "has its steps in reversed order (a go_backwards layer's input or output not put back in the order Keras emits)")
        }
        if output.sorted {
            throw refuseOutput(firstOutput.name, "is still sorted by length (a packed export's batch order); rnnkit reads a graph that gives the batch in its own order")
        }
        let recurrentCount = output.layers.filter { if case .recurrent = $0 { return true } else { return false } }.count
        // A model without one is read when it masks (a Keras Masking before Dense and pooling, as rnnkit writes it).
        let masks = output.layers.contains { if case .masking = $0 { return true } else { return false } }
        guard recurrentCount > 0 || masks else { throw refuseOutput(firstOutput.name, "does not come through a recurrent node") }
        var notes: [String] = []
        var outputAxes = output.axes
        // A recurrent node's raw Y: [time, directions, batch, hidden] (layout 0) or [batch, time, directions, hidden].
        if outputAxes.count == 4, case let .hidden(h) = outputAxes[3],
           let d = [1, 2].lazy.compactMap({ i -> Int? in if case let .directions(d) = outputAxes[i] { return d } else { return nil } }).first {
            outputAxes = outputAxes.filter { if case .directions = $0 { return false }; return true }.dropLast() + [.features(d * h)]
        }
        let rawY = outputAxes.count != output.axes.count
        let shapes: Set<[ONNXGraph.Axis]> = [[.batch, .time], [.time, .batch], [.batch]]
        guard shapes.contains(outputAxes.filter { if case .features = $0 { return false } else { return true } }),
              case .features? = outputAxes.last else {
            throw refuseOutput(firstOutput.name, "has axes \(ONNXGraph.text(output.axes)), which rnnkit cannot give as [batch, time, features] or [batch, features]")
        }
        // How the graph's own tensors differ from rnnkit's batch-first ones, in one line.
        var differences: [String] = []
        if timeMajor { differences.append("takes time-major input [time, batch, features]") }
        if rawY { differences.append("gives a recurrent node's Y \(ONNXGraph.text(output.axes))") }
        else if outputAxes.first == .time { differences.append("gives time-major output") }
        if !differences.isEmpty {
            notes.append("the graph \(differences.joined(separator: " and ")); rnnkit takes and gives batch-first tensors, [batch, time, features] with the directions side by side")
        }

        // A bare module: only recurrent layers of one kind and size, outputs `output, h_n[, c_n]`.
        let recurrentLayers = output.layers.compactMap { if case let .recurrent(r) = $0 { return r } else { return nil } }
        var isBare = recurrentLayers.count == output.layers.count
            && Set(recurrentLayers.map(\.kind)).count == 1 && Set(recurrentLayers.map(\.hiddenSize)).count == 1
            && Set(recurrentLayers.map(\.directions.count)).count == 1
        for (i, extra) in graph.output.enumerated().dropFirst() {
            let f = try flow(extra.name)
            let expectedCell = i == 2
            let matches: Bool
            switch f.role {
            case let .stackedStates(cell, layers): matches = cell == expectedCell && layers == recurrentCount
            case let .finalStates(cell): matches = cell == expectedCell && recurrentCount == 1
            default: matches = false
            }
            guard isBare, i <= 2, matches, f.axes.contains(where: { if case .directions = $0 { return true } else { return false } }) else {
                throw refuseOutput(extra.name, "is a second output rnnkit cannot match: it reads one output, or a bare module's output, h_n and c_n (every layer's final states stacked, as [layers·directions, batch, hidden])")
            }
        }
        if graph.output.count == 1 { isBare = isBare && output.axes.count >= 3 }

        // Lengths reach every recurrent node or none.
        if reader.nodesWithLengths > 0 && reader.nodesWithoutLengths > 0 {
            throw ModelError(.unsupported, file: file, message: "\(reader.nodesWithLengths) recurrent node(s) take sequence_lens and \(reader.nodesWithoutLengths) do not; rnnkit applies lengths to every layer")
        }
        if reader.lengthsInput != nil, let readout = reader.lastStepReadouts.first {
            throw ModelError(.unsupported, file: file, path: readout,
                             message: "reads step time − 1 of outputs that ONNX Runtime zeroes past each sequence's length; the neutral model's readout is each sequence's last valid step")
        }
        // Initial states as inputs of one node, or of every node (h, and c for each LSTM) each
        // its own graph input, in the order of the layers (the written graphs).
        let lstmCount = recurrentLayers.filter { $0.kind == .lstm }.count
        let everyNode = reader.stateInputs.filter { !$0.cell }.count == recurrentCount
            && reader.stateInputs.filter(\.cell).count == lstmCount
            && Set(reader.stateInputs.map(\.input)).count == reader.stateInputs.count
            && reader.stateInputs.allSatisfy { declaredInputs.contains($0.input) }
        if !reader.stateInputs.isEmpty && !(isBare && recurrentCount == 1) && !everyNode {
            throw ModelError(.unsupported, file: file, path: "graph input \(escapedForDisplay(reader.stateInputs[0].input))",
                             message: "starts a recurrent node of a model that is not one recurrent node; rnnkit takes initial states as graph inputs for one node only, or for every node, each its own input")
        }
        if isBare, recurrentCount == 1, let layer = recurrentLayers.first, !output.layers.isEmpty {
            output.layers[0] = .recurrent(layer)
        }
        // A Flatten needs the number of steps: the data input's time axis, when it is a size.
        let steps: Int? = output.layers.contains(.flatten)
            ? graph.input.first { $0.name == dataInput.name }.flatMap { input in
                let dims = input.type.tensorType.shape.dim
                guard dims.count >= 2, case let .dimValue(n)? = dims[timeMajor ? 0 : 1].value, n > 0 else { return nil }
                return Int(clamping: n)
            } : nil
        let model = Model(layers: output.layers, name: graph.name.isEmpty ? "onnx" : graph.name,
                          layerNames: output.layerNames, sequenceLength: steps, lengthsRule: .packed)
        let producer = [proto.producerName, proto.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
        return ONNXReading(model: model, isBareRecurrentModule: isBare, summaries: reader.summaries,
                           storedTypes: reader.storedTypes.sorted(), notes: notes, irVersion: Int(clamping: proto.irVersion),
                           opset: opset, producer: producer, operators: reader.operators, dataInput: dataInput.name,
                           lengthsInput: reader.lengthsInput, stateInputs: reader.stateInputs,
                           fixedBatch: reader.fixedSizes[.batch], fixedTime: reader.fixedSizes[.time])
    }
}
