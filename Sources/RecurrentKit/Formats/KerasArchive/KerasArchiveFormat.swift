/// A Keras 3 `.keras` archive: a zip with `config.json`, `metadata.json` and
/// `model.weights.h5` (`Keras/KerasFile.swift`, `KerasArchive`).
struct KerasArchiveFormat: ModelFormat {
    var name: String { "keras-archive" }
    var layouts: [Layout] { [.kerasArchive] }

    var signatures: [FormatSignature] {
        [
            // Before the torch.save zip (rank 21): `config.json` or `model.weights.h5` at the root.
            .zip(rank: 20, name: "zip with config.json") { names in
                names.contains("config.json") || names.contains("model.weights.h5")
            },
        ]
    }

    var readOptions: Set<ReadOption> { [.architecture] }

    func title(refusing option: ReadOption) -> String {
        option == .modules ? "a Keras 3 .keras archive" : container.fileTitle
    }

    func read(_ source: FormatSource, options: ReadOptions) throws -> ModelReading {
        guard source.image == nil else {
            throw ModelError(.unsupported, file: source.file, message: "a .keras archive is read from a file, not from bytes in memory")
        }
        return try KerasFile.readArchive(source.file, architecture: options.architecture.map(KerasFile.Architecture.init(contentsOf:)))
    }

    var writing: FormatWriting? {
        FormatWriting(target: .keras3, extensions: ["keras"]) { request in
            try Converter.writeKeras(request, version: .keras3, config: Keras3ArchiveWriter.modelConfig) { plan, path in
                try Keras3ArchiveWriter.write(plan, to: path,
                                              weightsScratch: request.batch.scratchFile(beside: request.output, suffix: "weights.partial"))
            }
        }
    }
}

extension ModelContainer {
    public static let kerasArchive = ModelContainer(rawValue: "keras-archive", title: ".keras archive (zip)", fileTitle: "a .keras archive")
}

extension Layout {
    public static let kerasArchive = Layout(rawValue: "keras3-archive", title: "Keras 3 archive (.keras)",
                                            container: .kerasArchive, framework: .keras, content: .fullModel)
}

extension ConversionTarget {
    /// A Keras 3 `.keras` archive.
    public static let keras3 = ConversionTarget(known: "keras3") { _ in
        "\(option: .target, "keras3") writes a .keras archive: the name must end in .keras (keras.models.load_model chooses the reader by it); nothing was written"
    }
}
