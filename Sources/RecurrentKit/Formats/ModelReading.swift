import RecurrentEngine

/// What a format's read gives: the neutral model and what the file says of it (what
/// `inspect` shows). `LoadedModel` is made from it in one place (`LoadedModel.init(_:)`) and keeps it.
package struct ModelReading: Sendable {
    /// The file as the caller named it.
    package var file: String
    package var layout: Layout
    /// The framework-neutral model.
    package var model: Model
    /// True for a file that is one nn.RNN / nn.LSTM / nn.GRU.
    package var isBareRecurrentModule: Bool
    /// Each layer or module as the file describes it.
    package var summaries: [LayerSummary]
    /// On-disk element types of the weights (`float32`, `float16 (big-endian)`).
    package var storedTypes: [String]
    /// True when any weight is stored compressed.
    package var compressed: Bool
    /// The model class a Keras config names (`Sequential`, `Functional`); nil for PyTorch.
    package var modelClass: String? = nil
    /// The Keras major version whose semantics the model carries (2 or 3); nil for PyTorch.
    package var kerasVersion: Int? = nil
    /// For a PyTorch file: its module structure and key names, which a PyTorch target keeps.
    var pytorchSource: PyTorchReader.PyTorchSource? = nil
    /// How errors name each layer of `model.layers`, when the reader knows better than the
    /// layer names; nil otherwise.
    var moduleLabels: [String?]? = nil
    /// What reading the file did that its user should know, one line each (`LoadedModel.notes`).
    package var notes: [String] = []
    /// Why the model takes no lengths, when its file says so (an ONNX graph without a
    /// `sequence_lens` input: its framework runs every step); nil when it takes them.
    package var lengthsRefusal: String? = nil
    /// Why the model takes no initial states, when its file says so (an ONNX graph without
    /// `initial_h`/`initial_c` inputs: its states start at zero); nil when it takes them.
    package var initialStatesRefusal: String? = nil
    /// The batch and time the file fixes, when it fixes them (an ONNX graph exported without
    /// dynamic axes declares its input's sizes; ONNX Runtime runs no other): a run of other
    /// sizes is refused. Nil: any size.
    package var fixedBatch: Int? = nil
    package var fixedTime: Int? = nil
}
