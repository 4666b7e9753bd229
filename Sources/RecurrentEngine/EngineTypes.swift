// The engine's public value types: what goes in, what comes out, and what goes wrong.

/// The input of a model run.
public enum ModelInput: Sendable {
    /// Float features `[batch, time, features]` (or `[batch, features]` for a model without
    /// recurrent layers).
    case features(Tensor)
    /// Token ids, row-major `[batch, time]`, for a model that starts with an embedding.
    case tokens(ids: [Int], batch: Int, time: Int)
    /// Raw texts `[batch]`, for a model with a text vectorizer (Keras's `TextVectorization`),
    /// which makes them the token ids its embedding takes.
    case texts([String])
}

/// The state of one recurrent layer, all directions.
///
/// - `h`: `[directions, batch, outputSize]` (the projection size for a projected LSTM);
/// - `c`: `[directions, batch, hiddenSize]` for an LSTM, nil for other kinds.
///
/// Direction 0 is forward, direction 1 backward, as in PyTorch's `h_n` for one layer.
public struct RecurrentState: Sendable, Equatable {
    public var h: Tensor
    public var c: Tensor?

    public init(h: Tensor, c: Tensor? = nil) {
        self.h = h
        self.c = c
    }
}

/// What a run produces.
public struct RunResult: Sendable {
    /// `[batch, time, features]` or `[batch, features]`.
    public var output: Tensor
    /// The state after the last step of every recurrent layer, in model order
    /// (masked steps carry the state, so for a padded sequence this is the state after its
    /// last valid step).
    public var finalStates: [RecurrentState]

    package init(output: Tensor, finalStates: [RecurrentState]) {
        self.output = output
        self.finalStates = finalStates
    }
}

/// A model, an input or a state the engine refuses, with what was expected.
package struct EngineError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Index of the layer in `Model.layers`, or nil for a problem with the whole input.
    package var layerIndex: Int?
    /// A short name of the layer's kind (`"lstm"`, `"dense"`, ...), or nil.
    package var layerKind: String?
    /// What is wrong, with expected and actual shapes where there are any.
    package var message: String

    package init(layerIndex: Int? = nil, layerKind: String? = nil, message: String) {
        self.layerIndex = layerIndex
        self.layerKind = layerKind
        self.message = message
    }

    /// One line: `layer 2 (lstm): direction 0 input weight has shape [8, 3], expected [16, 3]`.
    package var description: String {
        switch (layerIndex, layerKind) {
        case let (index?, kind?): return "layer \(index) (\(kind)): \(message)"
        case let (index?, nil): return "layer \(index): \(message)"
        case let (nil, kind?): return "\(kind): \(message)"
        case (nil, nil): return message
        }
    }
}

extension Layer {
    /// A short name for error messages.
    var kindName: String {
        switch self {
        case .embedding: return "embedding"
        case .masking: return "masking"
        case .recurrent(let layer): return layer.kind.rawValue
        case .dense: return "dense"
        case .activation(let activation): return "activation \(activation.rawValue)"
        case .readout(let readout): return "readout \(readout.rawValue)"
        case .flatten: return "flatten"
        }
    }
}

/// Formats a shape as `[2, 3, 4]`.
func shapeString(_ shape: [Int]) -> String {
    "[" + shape.map(String.init).joined(separator: ", ") + "]"
}
