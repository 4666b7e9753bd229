/// A PyTorch state_dict in a safetensors file (`Containers/SafetensorsFile.swift`), its
/// `model_config` in `__metadata__`.
struct SafetensorsFormat: StateDictFormat {
    var name: String { "safetensors" }
    var layouts: [Layout] { [.pytorchSafetensors] }

    var signatures: [FormatSignature] {
        [
            // Length, `{`, and a header that ends in `}` within the file: before HDF5's user
            // block and pickle, whose first bytes a header length may spell.
            FormatSignature(rank: 30, name: "safetensors header") { input in
                try ModelFileForm.safetensorsShape(input.probe, head: input.head) == .whole
            },
            // `{` at byte 8 alone: a damaged safetensors file, which the reader explains.
            FormatSignature(rank: 70, name: "damaged safetensors header") { input in
                try ModelFileForm.safetensorsShape(input.probe, head: input.head) == .start
            },
        ]
    }

    var readOptions: Set<ReadOption> { [.architecture, .modules] }

    func stateDict(_ source: FormatSource, key: String?) throws -> TensorContainer {
        if let image = source.image { return try SafetensorsFile.read(bytes: image, name: source.file) }
        return try SafetensorsFile.read(source.file)
    }

    func read(_ source: FormatSource, options: ReadOptions) throws -> ModelReading {
        try readStateDict(source, options: options)
    }

    var writing: FormatWriting? {
        FormatWriting(target: .pytorch, extensions: ["safetensors"]) { request in
            try Converter.writePyTorch(request) { plan, config, path in
                try SafetensorsFile.write(plan.tensors.map { ($0.key, $0.make()) },
                                          metadata: config.map { ["model_config": $0, "format": "pt"] } ?? ["format": "pt"], to: path)
            }
        }
    }
}

extension ModelContainer {
    public static let safetensors = ModelContainer(rawValue: "safetensors", title: "safetensors", fileTitle: "a safetensors file")
}

extension Layout {
    public static let pytorchSafetensors = Layout(rawValue: "pytorch-safetensors", title: "PyTorch state_dict (safetensors)",
                                                  container: .safetensors, framework: .pytorch, content: .stateDict)
}
