import HDF5

/// A PyTorch state_dict in HDF5: one dataset per key, `model_config` a root attribute
/// (spec/pytorch-layout.md). Claims every HDF5 file the Keras format before it does not.
struct PyTorchHDF5Format: StateDictFormat {
    var name: String { "pytorch-hdf5" }
    var layouts: [Layout] { [.pytorch] }
    var signatures: [FormatSignature] { FormatSignature.hdf5 }
    var readOptions: Set<ReadOption> { [.architecture, .modules] }

    func title(refusing option: ReadOption) -> String {
        option == .weightsMatching ? "a PyTorch state_dict" : container.fileTitle
    }

    func stateDict(_ source: FormatSource, key: String?) throws -> TensorContainer {
        try source.hdf5()
    }

    func read(_ source: FormatSource, options: ReadOptions) throws -> ModelReading {
        try readStateDict(source, options: options)
    }

    var writing: FormatWriting? {
        FormatWriting(target: .pytorch, extensions: ["h5", "hdf5"]) { request in
            try Converter.writePyTorch(request) { plan, config, path in
                let root = try HDF5File.create(path).root
                for (key, make) in plan.tensors {
                    let tensor = make()
                    try root.write(key, floats: tensor.values, shape: tensor.shape)
                }
                if let config { try root.setAttribute("model_config", .string(config)) }
            }
        }
    }
}

extension Layout {
    public static let pytorch = Layout(rawValue: "pytorch", title: "PyTorch state_dict (HDF5)",
                                       container: .hdf5, framework: .pytorch, content: .stateDict)
}
