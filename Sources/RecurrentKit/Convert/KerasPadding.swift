/// How a PyTorch model's padded batches are marked, for a Keras target (the `paddingID`
/// of ``Converter/convert(_:to:output:force:architecture:key:modules:pythonModule:paddingID:weightsMatching:opset:)``).
///
/// PyTorch runs a classifier on right-padded token ids either over every step (padding
/// included) or on the sequences' lengths (`pack_padded_sequence`); a state_dict and its
/// `model_config` do not say which. A Keras model converted from it sees lengths only as a
/// mask, and a mask passed to `model(x, mask=...)` stops at an Embedding that makes none.
public enum PaddingID: Sendable, Hashable {
    /// Sequences are right-padded with this id and the PyTorch model runs on their lengths:
    /// the Keras Embedding masks the padding itself (`mask_zero=True`; an id other than 0 is
    /// exchanged with 0 in the table, since Keras masks only id 0).
    case id(Int)
    /// The PyTorch model runs over every step it is given, padding included (no lengths):
    /// the Keras model is not masked.
    case none
}

/// The masking rule of a PyTorch → Keras conversion (spec/conversion.md, "Padding"): the
/// model the Keras target must compute, and what its user must know, or a refusal.
///
/// - An Embedding first, in a model that uses a mask (a recurrent layer or a readout): the
///   padding id is `padding_idx` 0 or `paddingID`; the Embedding gets `mask_zero=True`
///   (with ids 0 and `k` exchanged in its table for `paddingID: .id(k)`), so that on ids
///   right-padded with 0 Keras masks exactly the steps PyTorch's lengths exclude; masked
///   steps then keep the state, a bidirectional layer's backward direction starts at each
///   sequence's last valid step, and a `return_sequences=False` readout is the last valid
///   step's (spec/keras-layout.md §5), as with packed sequences. `paddingID: .none` writes
///   no mask. Without either, refused, naming the option.
/// - Float features: Keras passes `model(x, mask=mask)` to the first layer unchanged, so the
///   caller's mask is exact and no layer is added (a `Masking` layer would need the padded
///   steps to hold one value that no valid step holds, which PyTorch does not require).
/// - A Keras source keeps its own masks: nothing changes and nothing is noted.
/// - An ONNX graph with `sequence_lens` runs on lengths as packed sequences and follows the
///   PyTorch rule below; one without takes no lengths and is written as it is (a padding id
///   is refused for it).
/// - Every PyTorch source follows the same rule, whatever describes it (a bare module, a
///   version-1, -2 or -3 `model_config`): PyTorch applies a caller's lengths to every
///   layer, so a version-2 document's own masks (`mask_zero`, `Masking`) decide only where
///   they make the lengths unnecessary (an Embedding with `mask_zero` masks id 0 in both
///   frameworks; a model starting with `Masking` is masked by its features in both).
enum KerasPadding {
    /// The model to write for `source` and the notes for its user. `pytorch` is the source's
    /// structure when it is a PyTorch file; `lengthsRefusal` says why the source takes no
    /// lengths at all (`ModelReading.lengthsRefusal`: an ONNX graph without `sequence_lens`).
    /// The rule follows how the source takes lengths, not its framework: an ONNX graph with
    /// `sequence_lens` runs on them as packed sequences, as a PyTorch model does.
    static func apply(to source: Model, pytorch: PyTorchReader.PyTorchSource?, lengthsRefusal: String? = nil,
                      paddingID: PaddingID?, file: String,
                      version: KerasLayout.Version) throws -> (model: Model, notes: [ModelError.Message]) {
        func refuse(_ layer: String?, _ message: ModelError.Message) -> ModelError {
            // A `Message` (not a `String`), so that the options `message` names stay typed.
            let wrapped: ModelError.Message = "cannot be converted to \(version == .keras2 ? "Keras 2" : "Keras 3"): \(message)"
            return ModelError(.unsupported, file: file, layer: layer, message: wrapped)
        }
        func invalid(_ layer: String?, _ message: ModelError.Message) -> ModelError {
            ModelError(.invalidInput, file: file, layer: layer, message: message)
        }
        let option = paddingID.map(Self.argument) ?? ""
        // A model that takes lengths as Keras does (a version-2 document converted from Keras,
        // `"lengths": "keras_mask"`) is a Keras source here: its masks are its own.
        guard source.lengthsRule == .packed, lengthsRefusal == nil else {
            if let lengthsRefusal, paddingID != nil {
                throw invalid(nil, "a padding id (\(option)) applies to a model run on lengths; this one takes none (\(lengthsRefusal)), so the Keras model runs over every step as it does")
            }
            if paddingID != nil {
                throw invalid(nil, pytorch == nil
                    ? "\(option: .paddingID, option) applies to a PyTorch model converted to Keras; a Keras model's masks are its own"
                    : "a padding id (\(option)) applies to a PyTorch model run on lengths; this one takes them as Keras does (its model_config says \"lengths\": \"keras_mask\"), so its masks are its own")
            }
            return (source, [])
        }
        // A text model takes texts, never lengths: its ids and their padding come from its
        // own vectorizer, in both frameworks.
        if source.takesTexts {
            if paddingID != nil {
                throw invalid(nil, "a padding id (\(option)) is for a model that takes token ids; this one takes texts and pads their ids itself")
            }
            return (source, [])
        }
        let usesMask = source.layers.contains {
            switch $0 {
            case .recurrent, .readout: return true
            default: return false
            }
        }
        let label = source.layerName(0) ?? "#0"
        guard case var .embedding(embedding)? = source.layers.first else {
            if paddingID != nil {
                throw invalid(nil, "\(option: .paddingID, option) is for a model that takes token ids; this one takes float features (call the Keras model with mask=)")
            }
            if case let .masking(value)? = source.layers.first {
                guard usesMask else { return (source, []) }
                // Keras's Masking replaces a caller's mask with its own: lengths reach the
                // Keras model only as padding that holds mask_value.
                return (source, ["\(label): Masking(mask_value=\(value)) masks the steps whose features all equal \(value) and ignores a caller's mask=: for a batch the PyTorch model runs on lengths, fill each sequence's padded steps with \(value)"])
            }
            guard usesMask else { return (source, []) }
            return (source, ["the Keras model has no mask layer of its own: for a batch the PyTorch model runs on lengths, call it as model(x, mask=mask) with mask[b, t] = t < lengths[b] ([batch, time] booleans), which reaches its first layer unchanged; called without mask=, it runs over every step, as PyTorch does without lengths"])
        }
        guard usesMask else {
            if paddingID != nil { throw invalid(label, "\(option: .paddingID, option): no layer of this model uses a mask") }
            return (source, [])
        }
        if embedding.maskZero {
            // A model converted from Keras: it masks id 0 itself, and so does the Keras one.
            if let paddingID, paddingID != .id(0) {
                throw invalid(label, "masks id 0 itself (mask_zero); \(option: .paddingID, option) disagrees")
            }
            return (source, [])
        }
        let vocabulary = embedding.vocabularySize
        let pad: Int
        switch (paddingID, embedding.paddingIndex) {
        case (.none?, _):
            embedding.paddingIndex = nil
            return (replacingFirst(source, with: embedding), [])
        case let (.id(id)?, index):
            guard (0..<vocabulary).contains(id) else {
                throw invalid(label, "\(option: .paddingID, "\(id)") is outside the vocabulary 0..<\(vocabulary)")
            }
            if let index, index != id {
                throw invalid(label, "padding_idx \(index) says sequences are padded with \(index); \(option: .paddingID, "\(id)") disagrees")
            }
            pad = id
        case (nil, 0?):
            pad = 0
        case let (nil, index?):
            throw refuse(label, "padding_idx \(index): Keras masks only id 0 (mask_zero); pass \(option: .paddingID, "\(index)") to exchange ids 0 and \(index) in the table (the Keras model then takes ids with 0 and \(index) exchanged), or \(option: .paddingID, "none") if the PyTorch model runs over the padding (no lengths)")
        case (nil, nil):
            throw refuse(label, "no padding_idx says which id pads a sequence, and a PyTorch model run on lengths (packed) has them in Keras only as a mask, which a caller's mask= cannot bring past an Embedding: pass \(option: .paddingID, "ID") (the id sequences are right-padded with; the Embedding gets mask_zero=True), or \(option: .paddingID, "none") if the PyTorch model runs over every step, padding included")
        }
        embedding.maskZero = true
        embedding.paddingIndex = nil
        let expects = "right-padded with 0 and 0 nowhere else, without mask=, as the PyTorch model runs on their lengths"
        let note: ModelError.Message
        if pad == 0 {
            let reason: ModelError.Message = paddingID == nil ? "padding_idx 0" : "\(option: .paddingID, "0")"
            note = "\(label): mask_zero=True (\(reason)): the Keras model masks the steps whose id is 0; call it on ids \(expects)"
                + (paddingID == nil ? " (if it runs over the padding, convert with \(option: .paddingID, "none"))" : "")
        } else {
            embedding.table = exchangingRows(embedding.table, 0, pad)
            note = "\(label): ids 0 and \(pad) exchanged in the table, and mask_zero=True (Keras masks only id 0): the Keras model takes ids with 0 and \(pad) exchanged (\(pad) where the PyTorch model takes 0), \(expects)"
        }
        return (replacingFirst(source, with: embedding), [note])
    }

    /// `id` as a message gives an option's value (`3`, `none`).
    static func argument(_ id: PaddingID) -> String {
        switch id {
        case let .id(value): return "\(value)"
        case .none: return "none"
        }
    }

    private static func replacingFirst(_ model: Model, with embedding: Embedding) -> Model {
        var model = model
        model.layers[0] = .embedding(embedding)
        return model
    }

    /// `table` `[vocabulary, dim]` with rows `a` and `b` exchanged: a relabelling of two ids.
    private static func exchangingRows(_ table: Tensor, _ a: Int, _ b: Int) -> Tensor {
        let width = table.shape[1]
        var values = table.values
        for column in 0..<width {
            values.swapAt(a * width + column, b * width + column)
        }
        return Tensor(unchecked: table.shape, values: values)
    }
}
