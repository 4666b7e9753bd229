/// A model file that cannot be read, run or converted as asked.
///
/// Carries what a person needs to act: the file, the object path or key, the layer, and
/// expected versus actual shapes in the message.
public struct ModelError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// A dataset path, state_dict key or attribute name, when one is at fault.
    public var path: String?
    /// The layer or module, when one is at fault (`rnn`, `lstm_1 (LSTM)`).
    public var layer: String?
    public var message: String

    public init(file: String, path: String? = nil, layer: String? = nil, message: String) {
        self.file = file
        self.path = path
        self.layer = layer
        self.message = message
    }

    /// One line: `file: path: layer: message`.
    public var description: String {
        var parts = [file]
        if let path { parts.append(path) }
        if let layer { parts.append("layer \(layer)") }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}

/// Shapes in messages are written as `[4, 3]`.
func shapeText(_ shape: [Int]) -> String {
    "[" + shape.map(String.init).joined(separator: ", ") + "]"
}
