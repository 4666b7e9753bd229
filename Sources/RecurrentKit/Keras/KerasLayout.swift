/// The Keras layout's rules, declared once: gate orders, kernel transposes, bias shapes and
/// activation names per Keras version. See spec/keras-layout.md.
///
/// Keras stores `kernel` `[in, G·u]` and `recurrent_kernel` `[u, G·u]` (`y = x K`), so the
/// neutral weights (`y = W x`, `[G·u, in]`) are their transposes; gate blocks run along the
/// columns in the order declared here.
enum KerasLayout {
    /// The major Keras version whose semantics a file carries.
    typealias Version = KerasVersion

    /// Gate blocks along the columns of `kernel`, `recurrent_kernel` and `bias`.
    static func gateOrder(_ kind: CellKind) -> [Gate] {
        switch kind {
        case .lstm: return [.input, .forget, .cell, .output]  // i, f, c, o
        case .gru: return [.update, .reset, .new]              // z, r, h
        case .rnn: return [.cell]
        }
    }

    /// The recurrent layer classes and their cell kinds.
    static let recurrentClasses: [String: CellKind] = [
        "SimpleRNN": .rnn, "LSTM": .lstm, "GRU": .gru,
    ]

    /// An activation by its Keras name in `version` (`ActivationNames.keras`).
    static func activation(_ name: String, version: Version) -> Activation? {
        ActivationNames.keras(version).activation(name)
    }

    /// Layers that are the identity at inference and pass the mask on.
    static let identityClasses: Set<String> = [
        "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    ]

    /// Keras 3's name for a layer's group in a `.keras` archive's `model.weights.h5`:
    /// the class name in snake case (`SimpleRNN` → `simple_rnn`,
    /// `GlobalAveragePooling1D` → `global_average_pooling1d`), as `keras.src.utils.naming.to_snake_case`.
    static func snakeCase(_ className: String) -> String {
        var text = className.filter { $0.isLetter || $0.isNumber || $0 == "_" }
        // (.)([A-Z][a-z]+) → \1_\2
        text = text.replacing(/(.)([A-Z][a-z]+)/) { "\($0.1)_\($0.2)" }
        // ([a-z])([A-Z]) → \1_\2
        text = text.replacing(/([a-z])([A-Z])/) { "\($0.1)_\($0.2)" }
        return text.lowercased()
    }
}
