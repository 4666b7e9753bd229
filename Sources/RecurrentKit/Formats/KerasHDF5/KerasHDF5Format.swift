/// A Keras model in HDF5: a full model (Keras 2 / tf-keras, or Keras 3's legacy `.h5`) with
/// its `model_config`, or weights only (legacy `layer_names` or Keras 3's `layers/…/vars`)
/// read with an architecture given beside them (`Keras/KerasFile.swift`).
struct KerasHDF5Format: ModelFormat {
    var name: String { "keras-hdf5" }
    var layouts: [Layout] { [.keras2H5, .keras3H5, .kerasWeights] }
    var signatures: [FormatSignature] { FormatSignature.hdf5 }
    var readOptions: Set<ReadOption> { [.architecture, .weightsMatching] }

    /// Keras attributes or groups at the root (`KerasFile.isKeras`).
    func claims(_ source: FormatSource) throws -> Bool {
        try KerasFile.isKeras(try source.hdf5())
    }

    func title(refusing option: ReadOption) -> String {
        option == .modules ? "a Keras model" : container.fileTitle
    }

    func read(_ source: FormatSource, options: ReadOptions) throws -> ModelReading {
        try KerasFile.read(try source.hdf5(), architecture: options.architecture.map(KerasFile.Architecture.init(contentsOf:)),
                           matching: options.weightsMatching)
    }

    /// Weights only: no `model_config` at the root.
    func needsArchitecture(_ source: FormatSource, key: String?) throws -> Bool {
        try !source.hdf5().hasAttribute("model_config", at: "")
    }

    var writing: FormatWriting? {
        FormatWriting(target: .keras, extensions: ["h5", "hdf5"]) { request in
            try Converter.writeKeras(request, version: .keras2, config: KerasH5Writer.modelConfig) { plan, path in
                try KerasH5Writer.write(plan, to: path)
            }
        }
    }
}

extension ModelContainer {
    public static let hdf5 = ModelContainer(rawValue: "hdf5", title: "HDF5", fileTitle: "an HDF5 file")
}

extension FormatSignature {
    /// HDF5's two rules, shared by the formats kept in HDF5: the superblock signature at
    /// offset 0 (rank 10), and at 512, 1024, 2048, … behind a user block (rank 40, after
    /// safetensors, whose header the block may hold, and before pickle, whose first bytes
    /// the block may hold).
    static let hdf5: [FormatSignature] = [
        FormatSignature(rank: 10, name: "HDF5 signature at 0") { $0.head.starts(with: ModelFileForm.hdf5Signature) },
        FormatSignature(rank: 40, name: "HDF5 signature after a user block") {
            try ModelFileForm.hasUserBlockHDF5Signature($0.probe)
        },
    ]
}

extension Layout {
    public static let keras2H5 = Layout(rawValue: "keras2-h5", title: "Keras 2 / tf-keras full model (HDF5)",
                                        container: .hdf5, framework: .keras, content: .fullModel)
    public static let keras3H5 = Layout(rawValue: "keras3-h5", title: "Keras 3 full model (legacy HDF5)",
                                        container: .hdf5, framework: .keras, content: .fullModel)
    public static let kerasWeights = Layout(rawValue: "keras-weights-h5", title: "Keras weights only (HDF5)",
                                            container: .hdf5, framework: .keras, content: .weightsOnly)
}

extension ConversionTarget {
    /// A tf-keras (Keras 2) legacy HDF5 full model.
    public static let keras = ConversionTarget(known: "keras") { _ in
        "\(option: .target, "keras") writes a tf-keras HDF5 model: the name must end in .h5 or .hdf5 (tf_keras.models.load_model reads it by that); nothing was written"
    }
}
