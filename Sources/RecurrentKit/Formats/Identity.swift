/// How a model file's bytes are kept: HDF5, a `.keras` zip, a `torch.save` file, safetensors.
/// The set is open: each format's folder defines its container (`ModelContainer.onnx` in
/// `Formats/ONNX/`).
public struct ModelContainer: Hashable, Sendable, CustomStringConvertible {
    /// A stable name (`hdf5`, `keras-archive`, `torch-save`, `safetensors`), as
    /// a JSON description of the file writes it.
    public let rawValue: String
    /// Its name for people (`HDF5`).
    public let title: String
    /// How a message names a file of it (`an HDF5 file`).
    let fileTitle: String

    public var description: String { rawValue }

    public static func == (a: Self, b: Self) -> Bool { a.rawValue == b.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }
}

/// The framework whose layout a file holds (what its names mean): PyTorch, Keras. Open as
/// ``ModelContainer`` is.
public struct ModelFramework: Hashable, Sendable, CustomStringConvertible {
    /// A stable name (`pytorch`, `keras`), as a JSON description of the file writes it.
    public let rawValue: String
    /// Its name for people (`PyTorch`).
    public let title: String

    public var description: String { rawValue }

    public static func == (a: Self, b: Self) -> Bool { a.rawValue == b.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }

    public static let pytorch = ModelFramework(rawValue: "pytorch", title: "PyTorch")
    public static let keras = ModelFramework(rawValue: "keras", title: "Keras")
}

/// What a file holds of a model.
public enum ModelContent: String, Sendable, Codable {
    /// Architecture and weights together (a Keras full model, a `.keras` archive).
    case fullModel = "full_model"
    /// Weights that need an architecture beside them (a Keras weights-only file).
    case weightsOnly = "weights_only"
    /// A PyTorch state_dict: tensors by key, with or without a `model_config`.
    case stateDict = "state_dict"
}

/// A file's layout as `inspect` names it: its container, its framework and what it holds
/// (`Keras 2 / tf-keras full model (HDF5)`). Each format's folder defines its layouts.
public struct Layout: Hashable, Sendable, Codable, CustomStringConvertible {
    /// A stable name (`pytorch`, `pytorch-pt`, `keras3-archive`), as a JSON description of the file
    /// writes it under `layout`.
    public let rawValue: String
    /// Its name for people (`PyTorch state_dict (HDF5)`).
    public let title: String
    public let container: ModelContainer
    public let framework: ModelFramework
    public let content: ModelContent

    init(rawValue: String, title: String, container: ModelContainer, framework: ModelFramework, content: ModelContent) {
        self.rawValue = rawValue
        self.title = title
        self.container = container
        self.framework = framework
        self.content = content
    }

    public var description: String { rawValue }

    public static func == (a: Self, b: Self) -> Bool { a.rawValue == b.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }

    /// Encoded as its ``rawValue``.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// One of the layouts of the formats rnnkit knows, by its ``rawValue``; nil for none.
    public init?(rawValue: String) {
        guard let layout = Formats.all.flatMap(\.layouts).first(where: { $0.rawValue == rawValue }) else { return nil }
        self = layout
    }

    /// Decoded from its ``rawValue``: one of the layouts of the formats rnnkit knows.
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let name = try container.decode(String.self)
        guard let layout = Layout(rawValue: name) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "no layout is named \(name)")
        }
        self = layout
    }
}
