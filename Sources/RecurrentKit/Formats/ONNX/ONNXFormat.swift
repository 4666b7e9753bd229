import Foundation

/// An ONNX model: a protobuf `ModelProto` (onnx.proto), read by `ONNXReader` into the neutral
/// model (spec/onnx-layout.md).
struct ONNXFormat: ModelFormat {
    var name: String { "onnx" }
    var layouts: [Layout] { [.onnx] }

    var signatures: [FormatSignature] {
        [FormatSignature(rank: 60, name: "ONNX ModelProto") { try Self.isONNXModel($0.probe) }]
    }

    /// An ONNX model carries its whole graph: an architecture, modules, a key or a name
    /// matching given beside it is refused naming the file, never ignored.
    var readOptions: Set<ReadOption> { [] }

    func read(_ source: FormatSource, options: ReadOptions) throws -> ModelReading {
        try options.check(taken: readOptions, title: title(refusing:), file: source.file)
        // What is read as ONNX is what is recognised as ONNX (a protobuf parser would also take
        // fields out of order or with other wire types, which the recognition refuses).
        guard try source.withProbe(Self.isONNXModel) else {
            throw ModelError(.unreadableFile, file: source.file,
                             message: "is not an ONNX ModelProto as exporters write it: ir_version first, then ModelProto's fields with their wire types up to the graph (spec/architecture.md, \"Which container\")")
        }
        let proto = try source.image.map { try ONNXProtobuf.decodeModel(Data($0), file: source.file) }
            ?? ONNXProtobuf.readModel(source.file)
        // External data is read only beside a model read from its file (not from bytes in memory).
        let reading = try ONNXReader.read(proto, file: source.file,
                                          folder: source.image == nil ? ONNXExternalData.folder(of: source.file) : nil)
        return ModelReading(file: source.file, layout: .onnx, model: reading.model,
                            isBareRecurrentModule: reading.isBareRecurrentModule, summaries: reading.provenance,
                            storedTypes: reading.storedTypes, compressed: false, notes: reading.notes,
                            lengthsRefusal: reading.lengthsInput == nil
                                ? "the ONNX graph has no sequence_lens input (ONNX Runtime runs it over every step)" : nil,
                            initialStatesRefusal: reading.stateInputs.isEmpty
                                ? "the ONNX graph has no initial_h or initial_c input (its states start at zero)" : nil,
                            fixedBatch: reading.fixedBatch, fixedTime: reading.fixedTime)
    }

    /// An ONNX graph of one recurrent operator per layer (`ONNXWriter`), read back by
    /// ``ONNXReader`` and compared with the source.
    var writing: FormatWriting? {
        FormatWriting(target: .onnx, extensions: ["onnx"]) { request in
            let loaded = request.loaded
            // Lengths become a graph input where the source takes them as such (PyTorch's
            // packed sequences, an ONNX graph's sequence_lens); a Keras model's mask is its layers'.
            let masks: ONNXWriter.MaskSource = loaded.model.lengthsRule == .packed && loaded.reading.lengthsRefusal == nil
                ? .lengthsInput : .layers
            let data = try ONNXWriter.serialized(loaded.model, masks: masks, stateOutputs: loaded.isBareRecurrentModule,
                                                 opset: request.opset ?? ONNXWriter.defaultOpset,
                                                 file: request.input)
            try writeNewFile(request.path, contents: data)
            return WrittenModel(expected: ModelFingerprint(ONNXWriter.expectedModel(loaded.model, masks: masks)))
        }
    }

    // MARK: Recognition

    /// `ModelProto`'s fields (onnx.proto) and their wire types: 1 `ir_version` (varint),
    /// 2 `producer_name`, 3 `producer_version`, 4 `domain` (strings), 5 `model_version`
    /// (varint), 6 `doc_string`, 7 `graph`, 8 `opset_import`, 14 `metadata_props`,
    /// 20 `training_info`, 25 `functions`, 26 `configuration` (length-delimited).
    private static let modelFields: [UInt64: UInt64] = [
        1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2,
    ]

    /// True for a protobuf `ModelProto`: `ir_version` first (tag `0x08`, a version from 1
    /// to 255), then only `ModelProto`'s fields with their wire types, each within the file,
    /// up to a `graph` field that ends within the file. At most 64 fields are looked at.
    static func isONNXModel(_ probe: FileProbe) throws -> Bool {
        var offset = 0
        var fields = 0
        while fields < 64, offset < probe.size {
            let window = try probe.bytes(at: offset, count: 20)
            var cursor = 0
            guard let tag = varint(window, &cursor), let wireType = modelFields[tag >> 3], tag & 7 == wireType else {
                return false
            }
            if fields == 0 && tag != 0x08 { return false }
            if wireType == 0 {
                guard let value = varint(window, &cursor) else { return false }
                if fields == 0 && !(1...255).contains(value) { return false }
                offset += cursor
            } else {
                guard let length = varint(window, &cursor), length <= UInt64(probe.size - offset - cursor) else {
                    return false
                }
                offset += cursor + Int(length)
                if tag >> 3 == 7 { return true }
            }
            fields += 1
        }
        return false
    }

    /// A protobuf varint at `cursor` in `bytes` (at most 10 bytes), or nil.
    private static func varint(_ bytes: [UInt8], _ cursor: inout Int) -> UInt64? {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 70, by: 7) {
            guard cursor < bytes.count else { return nil }
            let byte = bytes[cursor]
            cursor += 1
            if shift == 63 && byte > 1 { return nil }
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        return nil
    }
}

extension ConversionTarget {
    /// An ONNX model (`.onnx`): one LSTM, GRU or RNN operator per recurrent layer.
    public static let onnx = ConversionTarget(known: "onnx") { _ in
        "\(option: .target, "onnx") writes an ONNX model: the name must end in .onnx; nothing was written"
    }
}

extension ModelContainer {
    /// A protobuf `ModelProto`.
    public static let onnx = ModelContainer(rawValue: "onnx", title: "ONNX (protobuf)", fileTitle: "an ONNX model")
}

extension ModelFramework {
    public static let onnx = ModelFramework(rawValue: "onnx", title: "ONNX")
}

extension Layout {
    /// An ONNX graph of LSTM / GRU / RNN operators (spec/onnx-layout.md).
    public static let onnx = Layout(rawValue: "onnx", title: "ONNX model (protobuf)", container: .onnx, framework: .onnx,
                                    content: .fullModel)
}

extension ModelFileForm {
    static var onnx: ModelFileForm { .container(.onnx) }
}
