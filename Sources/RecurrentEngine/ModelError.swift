import TextSafety

/// The one error RecurrentKit throws: a model file that cannot be read, run or converted as
/// asked, or a tensor, input or state that does not fit.
///
/// It keeps what a person needs to act — the file, the object path or key, the layer — and
/// what kind of failure it is; ``description`` is one stable line,
/// `file: path: layer name: message`.
///
/// It is declared beside ``Tensor`` (whose initialiser throws it) and re-exported by
/// RecurrentKit, so a caller of the library meets this type and no other.
public struct ModelError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, in a form code can switch on.
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// The file cannot be read at all: missing, not HDF5 or a `.keras` archive, damaged,
        /// declaring implausible sizes, needing a filter this build lacks, or linking to
        /// something outside itself.
        case unreadableFile
        /// The file reads, but its content does not form the model its layout describes
        /// (a missing or misshapen weight, a config field of the wrong type).
        case invalidModel
        /// A well-formed model or conversion that RecurrentKit refuses rather than
        /// approximates (a custom layer, a conversion that cannot be exact).
        case unsupported
        /// An input, sequence lengths, initial states, a tolerance or a tensor that does not
        /// fit (a shape whose element count differs from the values given, say).
        case invalidInput
        /// An output file could not be written.
        case unwritableOutput
    }

    public var kind: Kind
    /// The file at fault, as the caller named it; nil for a tensor or value built in memory.
    public var file: String?
    /// A dataset path, state_dict key or attribute name, when one is at fault.
    public var path: String?
    /// The layer or module, when one is at fault (`rnn`, `lstm_1 (LSTM)`, `2 (lstm)`).
    public var layer: String?
    /// What is wrong, with expected and actual shapes where there are any.
    public var message: String

    public init(_ kind: Kind = .invalidModel, file: String?, path: String? = nil, layer: String? = nil,
                message: String) {
        self.kind = kind
        self.file = file
        self.path = path
        self.layer = layer
        self.message = message
    }

    /// One line: `file: path: layer name: message`, leaving out what is nil. The file, path
    /// and layer come from files or the command line, so each is escaped and shortened
    /// (`escapedForDisplay`); the message escapes the names it quotes itself and is escaped
    /// again as a whole, so that it is one line that cannot act on a terminal whatever it holds.
    public var description: String {
        var parts: [String] = []
        if let file { parts.append(escapedForDisplay(file)) }
        // A layer reads `name (Class)`, each part already shortened: room for both.
        if let path { parts.append(escapedForDisplay(path, limit: 2 * displayedCharacterLimit + 100)) }
        if let layer { parts.append("layer \(escapedForDisplay(layer, limit: 2 * displayedCharacterLimit + 100))") }
        parts.append(escapedForDisplay(message, limit: ModelError.messageCharacterLimit))
        return parts.joined(separator: ": ")
    }

    /// The most characters of a message ``description`` shows; each name in it is already
    /// shortened to `displayedCharacterLimit`.
    package static let messageCharacterLimit = 4000
}
