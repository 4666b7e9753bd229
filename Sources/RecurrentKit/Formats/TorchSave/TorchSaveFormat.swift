/// A PyTorch state_dict as `torch.save` writes it (`.pt`, `.pth`): a zip with
/// `<folder>/data.pkl` read by the restricted pickle reader (`Containers/Torch/`), or a bare
/// pickle stream (torch's legacy format), which the reader refuses saying which.
struct TorchSaveFormat: StateDictFormat {
    var name: String { "torch-save" }
    var layouts: [Layout] { [.pytorchSave] }

    var signatures: [FormatSignature] {
        [
            // A torch.save zip (and a TorchScript archive, which the torch reader refuses)
            // keeps `data.pkl` or `constants.pkl` in one folder.
            .zip(rank: 21, name: "zip with data.pkl") { names in
                names.contains { $0.hasSuffix("/data.pkl") || $0.hasSuffix("/constants.pkl") || $0 == "data.pkl" }
            },
            FormatSignature(rank: 50, name: "pickle stream") { ModelFileForm.startsLikePickle($0.head) },
        ]
    }

    var readOptions: Set<ReadOption> { [.architecture, .key, .modules] }

    func stateDict(_ source: FormatSource, key: String?) throws -> TensorContainer {
        if let image = source.image { return try TorchSaveFile.read(bytes: image, name: source.file, key: key) }
        return try TorchSaveFile.read(source.file, key: key)
    }

    func read(_ source: FormatSource, options: ReadOptions) throws -> ModelReading {
        try readStateDict(source, options: options)
    }

    var writing: FormatWriting? {
        FormatWriting(target: .pytorch, extensions: ["pt", "pth"]) { request in
            try Converter.writePyTorch(request) { plan, config, path in
                try TorchSaveFile.write(plan.tensors.map { ($0.key, $0.make()) }, modelConfig: config, to: path)
            }
        }
    }
}

extension ModelContainer {
    /// What `torch.save` writes: a zip holding a pickle and the tensors' bytes.
    public static let torchSave = ModelContainer(rawValue: "torch-save", title: "torch.save", fileTitle: "a torch.save file")
}

extension Layout {
    public static let pytorchSave = Layout(rawValue: "pytorch-pt", title: "PyTorch state_dict (torch.save zip)",
                                           container: .torchSave, framework: .pytorch, content: .stateDict)
}
