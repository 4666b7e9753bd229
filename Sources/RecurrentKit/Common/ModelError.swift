import TextSafety

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

    /// One line: `file: path: layer: message`. The file, path and layer come from files or
    /// the command line, so each is escaped and shortened (`escapedForDisplay`); the message
    /// escapes the names it quotes itself (`shown(_:)`) and is escaped again as a whole, so
    /// that it is one line that cannot act on a terminal whatever it holds.
    public var description: String {
        var parts = [escapedForDisplay(file)]
        // A layer reads `name (Class)`, each part already shortened by `shown(_:)`: room for both.
        if let path { parts.append(escapedForDisplay(path, limit: 2 * displayedCharacterLimit + 100)) }
        if let layer { parts.append("layer \(escapedForDisplay(layer, limit: 2 * displayedCharacterLimit + 100))") }
        parts.append(escapedForDisplay(message, limit: messageCharacterLimit))
        return parts.joined(separator: ": ")
    }
}

/// The most characters of a message `ModelError.description` shows; each name in it is
/// already shortened to `displayedCharacterLimit`.
let messageCharacterLimit = 4000

/// Shapes in messages are written as `[4, 3]`.
func shapeText(_ shape: [Int]) -> String {
    "[" + shape.map(String.init).joined(separator: ", ") + "]"
}

/// A name, key, class name or attribute value from a file, as a message quotes it:
/// controls, C1 controls and bidirectional overrides escaped, long text shortened with its
/// length noted.
func shown(_ text: String) -> String {
    escapedForDisplay(text)
}

/// Names from a file, as a message lists them: each `shown(_:)`, at most `limit` of them,
/// the rest counted (`a, b, c (and 9997 more)`).
func shownList(_ names: [String], limit: Int = 10) -> String {
    let listed = names.prefix(limit).map(shown).joined(separator: ", ")
    return names.count > limit ? listed + " (and \(names.count - limit) more)" : listed
}
