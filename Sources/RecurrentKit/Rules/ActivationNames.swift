/// Every name an activation goes by, one two-way table per framework. The only place these
/// names are spelled (spec/architecture.md): readers look a name up, writers and the Python
/// emitter look an activation up, in the same table.
enum ActivationNames {
    /// Names ↔ activations. An activation may have several names (aliases read, such as
    /// Keras's `silu`); the first one listed is the one written.
    struct Table: Sendable {
        /// `(name, activation)` pairs, the written name of each activation first.
        let entries: [(name: String, activation: Activation)]

        /// The activation a name stands for, or nil when the table has no such name.
        func activation(_ name: String) -> Activation? {
            entries.first { $0.name == name }?.activation
        }

        /// The name written for an activation, or nil when this framework has none.
        func name(_ activation: Activation) -> String? {
            entries.first { $0.activation == activation }?.name
        }

        /// Every name the table reads, sorted, for error messages.
        var names: [String] { entries.map(\.name).sorted() }
    }

    // MARK: PyTorch

    /// `torch.nn` activation module classes (a version-2 `model_config` module's `type`).
    /// `GELU` appears twice: its `approximate` field (`pytorchGELUApproximation`) tells the two apart.
    static let pytorchModules = Table(entries: [
        ("ReLU", .relu), ("Tanh", .tanh), ("Sigmoid", .sigmoid), ("Softmax", .softmax),
        ("ELU", .elu), ("SELU", .selu), ("Softplus", .softplus), ("Softsign", .softsign),
        ("SiLU", .swish), ("Hardsigmoid", .hardSigmoid), ("GELU", .gelu), ("GELU", .geluTanh),
    ])

    /// `nn.GELU(approximate=...)`: `"none"` is the exact GELU, `"tanh"` the approximation.
    static let pytorchGELUApproximation = Table(entries: [("none", .gelu), ("tanh", .geluTanh)])

    /// `nn.RNN(nonlinearity=...)`: the only two a simple PyTorch RNN computes.
    static let pytorchRNNNonlinearity = Table(entries: [("tanh", .tanh), ("relu", .relu)])

    /// A recurrent module's `activation` / `recurrent_activation` in RecurrentKit's own
    /// `model_config` (spec/pytorch-layout.md). Both hard sigmoids have names here, so a
    /// converted Keras 2 model keeps its meaning.
    static let modelConfigRecurrent = Table(entries: [
        ("tanh", .tanh), ("relu", .relu), ("sigmoid", .sigmoid), ("linear", .linear),
        ("hard_sigmoid", .hardSigmoid), ("hard_sigmoid_keras2", .hardSigmoidKeras2), ("softsign", .softsign),
        ("elu", .elu), ("selu", .selu), ("softplus", .softplus), ("swish", .swish), ("gelu", .gelu),
    ])

    /// The torch expression the Python emitter writes for an activation applied to `x`.
    static let pythonCalls = Table(entries: [
        ("torch.relu(x)", .relu), ("torch.tanh(x)", .tanh), ("torch.sigmoid(x)", .sigmoid),
        ("torch.softmax(x, dim=-1)", .softmax), ("F.elu(x)", .elu), ("F.selu(x)", .selu),
        ("F.softplus(x)", .softplus), ("F.softsign(x)", .softsign), ("F.silu(x)", .swish),
        ("F.gelu(x)", .gelu), ("F.gelu(x, approximate=\"tanh\")", .geluTanh),
        ("F.hardsigmoid(x)", .hardSigmoid),
    ])

    // MARK: Keras

    /// Keras names shared by both versions. `None` is how a config may spell linear.
    private static let kerasCommon: [(name: String, activation: Activation)] = [
        ("linear", .linear), ("None", .linear), ("relu", .relu), ("tanh", .tanh), ("sigmoid", .sigmoid),
        ("softmax", .softmax), ("elu", .elu), ("selu", .selu), ("softplus", .softplus),
        ("softsign", .softsign), ("swish", .swish), ("silu", .swish), ("gelu", .gelu),
    ]

    /// Keras's activation names in `version`. `hard_sigmoid` is a different function in
    /// each: Keras 2 `clip(0.2·x + 0.5, 0, 1)`, Keras 3 `relu6(x + 3)/6 = clip(x/6 + 0.5, 0, 1)`.
    static func keras(_ version: KerasVersion) -> Table {
        switch version {
        case .keras2: return Table(entries: kerasCommon + [("hard_sigmoid", .hardSigmoidKeras2)])
        case .keras3: return Table(entries: kerasCommon + [("hard_sigmoid", .hardSigmoid)])
        }
    }

    /// What a Keras activation name means when the version may be unknown.
    enum KerasLookup: Equatable {
        case activation(Activation)
        /// Neither version has the name.
        case unknownName
        /// The name means different functions in Keras 2 and 3, and the version is unknown.
        case needsVersion
    }

    /// A Keras activation name read in `version`, or with the version unknown (nil): then
    /// names whose meaning does not depend on it still read.
    static func keras(_ name: String, version: KerasVersion?) -> KerasLookup {
        if version == nil && kerasVersionDependent.contains(name) { return .needsVersion }
        return keras(version ?? .keras3).activation(name).map(KerasLookup.activation) ?? .unknownName
    }

    /// Keras names whose meaning depends on the version: reading one needs a known version.
    static let kerasVersionDependent: Set<String> = Set(
        keras(.keras2).entries.filter { keras(.keras3).activation($0.name) != $0.activation }.map(\.name))
}

extension Activation {
    /// The name people know it by, with the equation where names mislead.
    var displayName: String {
        switch self {
        case .hardSigmoidKeras2: return "hard_sigmoid as Keras 2 defines it, clip(0.2x + 0.5, 0, 1)"
        case .hardSigmoid: return "hard_sigmoid as Keras 3 defines it, clip(x/6 + 0.5, 0, 1)"
        case .geluTanh: return "gelu (tanh approximation)"
        case .swish: return "swish (silu)"
        default: return rawValue
        }
    }
}

/// The major Keras version whose semantics a file carries (`KerasVersionResolver` decides it).
enum KerasVersion: Int, Sendable {
    case keras2 = 2
    case keras3 = 3
}
