import Foundation

/// Builds an ONNX graph node by node: initializers from floats and integers, nodes with
/// their attributes, and a fresh name for every value (spec/onnx-layout.md, "Writing").
struct ONNXGraphBuilder {
    var nodes: [Onnx_NodeProto] = []
    var initializers: [Onnx_TensorProto] = []
    private var used: Set<String> = []

    /// The ONNX element types the writer uses.
    enum ElementType: Int32 {
        case float = 1, int32 = 6, int64 = 7, bool = 9
    }

    /// A name not yet used, from `base` (`base`, `base_1`, …).
    mutating func fresh(_ base: String) -> String {
        var name = base.isEmpty ? "v" : base
        var n = 0
        while used.contains(name) { n += 1; name = "\(base)_\(n)" }
        used.insert(name)
        return name
    }

    /// Reserves a graph input's or output's name.
    mutating func reserve(_ name: String) { used.insert(name) }

    /// A float initializer of `shape`, stored as little-endian `raw_data`.
    mutating func floats(_ name: String, _ values: [Float], shape: [Int]) -> String {
        var tensor = Onnx_TensorProto()
        tensor.name = fresh(name)
        tensor.dataType = ElementType.float.rawValue
        tensor.dims = shape.map(Int64.init)
        var data = Data(capacity: values.count * 4)
        for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        tensor.rawData = data
        initializers.append(tensor)
        return tensor.name
    }

    /// An int64 initializer; `shape` nil makes a scalar of one value.
    mutating func int64s(_ name: String, _ values: [Int64], shape: [Int]? = nil) -> String {
        var tensor = Onnx_TensorProto()
        tensor.name = fresh(name)
        tensor.dataType = ElementType.int64.rawValue
        tensor.dims = (shape ?? [values.count]).map(Int64.init)
        tensor.int64Data = values
        initializers.append(tensor)
        return tensor.name
    }

    /// A node of `op` on `inputs` ("" for an optional input left out), with `outputs` fresh
    /// output names made from `name`; returns them.
    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], name: String, outputs: Int = 1,
                       _ attributes: [Onnx_AttributeProto] = []) -> [String] {
        var node = Onnx_NodeProto()
        node.opType = op
        node.name = fresh(name + "/" + op)
        node.input = inputs
        node.output = (0..<outputs).map { $0 == 0 ? fresh(name) : fresh(name + "_\($0)") }
        node.attribute = attributes
        nodes.append(node)
        return node.output
    }

    /// One-output ``node(_:_:name:outputs:_:)``.
    mutating func op(_ op: String, _ inputs: [String], name: String, _ attributes: [Onnx_AttributeProto] = []) -> String {
        node(op, inputs, name: name, attributes)[0]
    }

    static func attribute(_ name: String, int value: Int) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .int; a.i = Int64(value); return a
    }

    static func attribute(_ name: String, ints values: [Int]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .ints; a.ints = values.map(Int64.init); return a
    }

    static func attribute(_ name: String, float value: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .float; a.f = value; return a
    }

    static func attribute(_ name: String, floats values: [Float]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .floats; a.floats = values; return a
    }

    static func attribute(_ name: String, string value: String) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .string; a.s = Data(value.utf8); return a
    }

    static func attribute(_ name: String, strings values: [String]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .strings; a.strings = values.map { Data($0.utf8) }; return a
    }

    /// A graph input or output: a tensor of `type` whose dims are known sizes or named
    /// run-time dims (`dim_param`: `batch`, `time`).
    static func valueInfo(_ name: String, _ type: ElementType, _ dims: [Dim]) -> Onnx_ValueInfoProto {
        var info = Onnx_ValueInfoProto()
        info.name = name
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = type.rawValue
        var shape = Onnx_TensorShapeProto()
        shape.dim = dims.map { dim in
            var d = Onnx_TensorShapeProto.Dimension()
            switch dim {
            case let .known(n): d.dimValue = Int64(n)
            case let .named(s): d.dimParam = s
            }
            return d
        }
        tensor.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = tensor
        info.type = type
        return info
    }

    enum Dim { case known(Int), named(String) }
}
