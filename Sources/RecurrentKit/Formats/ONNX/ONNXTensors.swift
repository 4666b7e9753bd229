import Foundation
import RecurrentEngine
import SwiftProtobuf

/// The protobuf front of the ONNX reader: a bounded `ModelProto` decode and the one decoder of
/// `TensorProto` values.
enum ONNXProtobuf {
    /// Most bytes an ONNX model file may hold: every parameter as float32, with room for the
    /// graph around them (the torch file bound).
    static let fileBytes = Limits.torchFileBytes
    /// How deep messages may nest (graphs inside attributes inside nodes…): a recurrent
    /// model's graph is 4 deep; SwiftProtobuf refuses deeper input before building it.
    static let messageDepth = 32
    /// Most nodes a graph may hold (a TorchScript export of a 2-layer bidirectional LSTM
    /// without constant folding has about 200).
    static let nodes = 100_000

    /// Reads and decodes `path` as a `ModelProto`, bounded by ``fileBytes`` and ``messageDepth``.
    static func readModel(_ path: String) throws -> Onnx_ModelProto {
        let data = try InputFiles.read(path, limit: fileBytes, what: "the ONNX model bound, Limits.torchFileBytes")
        return try decodeModel(data, file: path)
    }

    static func decodeModel(_ data: Data, file: String) throws -> Onnx_ModelProto {
        var options = BinaryDecodingOptions()
        options.messageDepthLimit = messageDepth
        options.discardUnknownFields = true
        let model: Onnx_ModelProto
        do {
            model = try Onnx_ModelProto(serializedBytes: data, options: options)
        } catch let error as BinaryDecodingError {
            throw ModelError(.unreadableFile, file: file, message: "is not a readable ONNX model: \(reason(error))")
        } catch {
            throw ModelError(.unreadableFile, file: file, message: "is not a readable ONNX model: \(error)")
        }
        guard model.hasGraph else {
            throw ModelError(.unreadableFile, file: file, message: "is not a readable ONNX model: it has no graph")
        }
        guard model.graph.node.count <= nodes else {
            throw ModelError(.unsupported, file: file, message: "its graph has \(model.graph.node.count) nodes, more than \(nodes); refused")
        }
        return model
    }

    private static func reason(_ error: BinaryDecodingError) -> String {
        switch error {
        case .truncated: return "the protobuf data ends inside a field (truncated, or a length past the end)"
        case .messageDepthLimit: return "messages nest deeper than \(messageDepth)"
        case .malformedProtobuf: return "malformed protobuf data"
        case .invalidUTF8: return "a string field is not valid UTF-8"
        case .missingRequiredFields: return "a required field is missing"
        default: return "\(error)"
        }
    }
}

/// A constant tensor of the graph (an initializer, a `Constant` node, or what the reader
/// computed from them): its shape, and its values as floats or as integers.
struct ONNXConstant {
    var shape: [Int]
    /// Values of a float tensor (float32, or float16 / double converted), row-major.
    var floats: [Float]?
    /// Values of an integer tensor (int64, int32, bool as 0/1), row-major.
    var ints: [Int64]?
    /// The stored element type, for `inspect` (`float32`, `float16`, `float64`).
    var storedType: String

    var count: Int { floats?.count ?? ints?.count ?? 0 }

    /// True for a shape whose dimensions are all at least 0 and whose non-zero dimensions
    /// multiply to at most `Limits.parameters`: every count, stride and sum of dims computed
    /// from it fits in an `Int` (a tensor of no elements may not carry dims of 2^62). Every
    /// constant's shape is one (the decoded tensors', and what Reshape and Concat make).
    static func isBounded(_ shape: [Int]) -> Bool {
        guard shape.allSatisfy({ $0 >= 0 }), let product = elementCount(shape.filter { $0 != 0 }) else { return false }
        return product <= Limits.parameters
    }

    init(shape: [Int], floats: [Float], storedType: String = "float32") {
        self.shape = shape
        self.floats = floats
        self.storedType = storedType
    }

    init(shape: [Int], ints: [Int64]) {
        self.shape = shape
        self.ints = ints
        self.storedType = "int64"
    }

    /// The values as a neutral tensor of `shape` (a float tensor only).
    func tensor(_ shape: [Int]? = nil) -> Tensor? {
        guard let floats else { return nil }
        return Tensor(unchecked: shape ?? self.shape, values: floats)
    }

    /// `TensorProto` element types.
    enum ElementType: Int32 {
        case float = 1, uint8 = 2, int8 = 3, uint16 = 4, int16 = 5, int32 = 6, int64 = 7, string = 8, bool = 9
        case float16 = 10, double = 11, uint32 = 12, uint64 = 13, bfloat16 = 16
    }

    /// Decodes `proto`, checking everything against everything else before a value is read:
    /// data kept in the model (external data refused), one place for the values (`raw_data`
    /// or the typed field, never both), an element count from the dims computed without
    /// overflow and within `Limits.parameters`, and exactly that many values.
    init(_ proto: Onnx_TensorProto, file: String, what: String) throws {
        func refuse(_ message: String) -> ModelError {
            ModelError(.unsupported, file: file, path: what, message: message)
        }
        if proto.dataLocation == .external || !proto.externalData.isEmpty {
            throw refuse("keeps its values in external data (data_location = EXTERNAL); rnnkit reads only tensors stored in the model")
        }
        let dims = proto.dims.map { Int(clamping: $0) }
        guard let count = elementCount(dims) else {
            throw ModelError(.unreadableFile, file: file, path: what, message: "dims \(shapeText(dims)) have a negative dimension or more elements than Int.max")
        }
        guard count <= Limits.parameters else {
            throw refuse("holds \(count) values, more than \(Limits.parameters) (Limits.parameters)")
        }
        guard Self.isBounded(dims) else {
            throw ModelError(.unreadableFile, file: file, path: what, message: "dims \(shapeText(dims)) hold no values but multiply past \(Limits.parameters) without their zeros; refused")
        }
        guard let type = ElementType(rawValue: proto.dataType) else {
            throw refuse("has element type \(proto.dataType), which rnnkit does not read (float32, float16, float64 and integers only)")
        }
        let typedCounts = [proto.floatData.count, proto.int32Data.count, proto.int64Data.count, proto.doubleData.count,
                           proto.uint64Data.count, proto.stringData.count]
        let typed = typedCounts.reduce(0, +)
        if proto.hasRawData && typed > 0 {
            throw ModelError(.unreadableFile, file: file, path: what, message: "holds its values both in raw_data and in a typed field; refused")
        }
        func mismatch(_ found: Int) -> ModelError {
            ModelError(.unreadableFile, file: file, path: what, message: "dims \(shapeText(dims)) hold \(count) values, the tensor stores \(found)")
        }
        let raw = proto.hasRawData ? [UInt8](proto.rawData) : nil
        func rawValues<T>(_ size: Int, _ decode: (ArraySlice<UInt8>) -> T) throws -> [T]? {
            guard let raw else { return nil }
            guard raw.count == count * size else { throw mismatch(raw.count / size) }
            return (0..<count).map { decode(raw[$0 * size ..< ($0 + 1) * size]) }
        }
        func littleEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 {
            bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }
        shape = dims
        switch type {
        case .float:
            storedType = "float32"
            let values = try rawValues(4) { Float(bitPattern: UInt32(truncatingIfNeeded: littleEndian($0))) } ?? proto.floatData
            guard values.count == count, typed == proto.floatData.count else { throw mismatch(values.count) }
            floats = values
        case .double:
            storedType = "float64"
            let values = try rawValues(8) { Double(bitPattern: littleEndian($0)) } ?? proto.doubleData
            guard values.count == count, typed == proto.doubleData.count else { throw mismatch(values.count) }
            floats = values.map { Float($0) }
        case .float16:
            storedType = "float16"
            // Typed float16 values are int32_data, one 16-bit pattern each.
            let bits = try rawValues(2) { UInt16(truncatingIfNeeded: littleEndian($0)) }
                ?? proto.int32Data.map { UInt16(truncatingIfNeeded: $0) }
            guard bits.count == count, typed == (raw == nil ? proto.int32Data.count : 0) else { throw mismatch(bits.count) }
            floats = bits.map { Float(Float16(bitPattern: $0)) }
        case .int64:
            storedType = "int64"
            let values = try rawValues(8) { Int64(bitPattern: littleEndian($0)) } ?? proto.int64Data
            guard values.count == count, typed == proto.int64Data.count else { throw mismatch(values.count) }
            ints = values
        case .int32, .int16, .int8, .uint8, .uint16, .bool:
            storedType = "int32"
            let size = [ElementType.int32: 4, .int16: 2, .uint16: 2][type] ?? 1
            let values: [Int64] = try rawValues(size) { bytes -> Int64 in
                let value = littleEndian(bytes)
                switch type {
                case .int32: return Int64(Int32(truncatingIfNeeded: value))
                case .int16: return Int64(Int16(truncatingIfNeeded: value))
                case .int8: return Int64(Int8(truncatingIfNeeded: value))
                default: return Int64(value)
                }
            } ?? proto.int32Data.map { Int64($0) }
            guard values.count == count, typed == (raw == nil ? proto.int32Data.count : 0) else { throw mismatch(values.count) }
            ints = values
        case .string, .uint32, .uint64, .bfloat16:
            throw refuse("has element type \(type), which rnnkit does not read (float32, float16, float64 and integers only)")
        }
        if let floats, floats.contains(where: { !$0.isFinite }) {
            throw ModelError(.invalidModel, file: file, path: what, message: "holds a value that is not finite")
        }
    }
}
