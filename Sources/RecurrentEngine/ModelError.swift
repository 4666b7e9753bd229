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
    /// What is wrong, as text and typed pieces: the options of the API that would change the
    /// outcome are ``Option`` values, not words (``options`` lists them). ``message`` is it
    /// in the library's words.
    public var reason: Message

    /// What is wrong, with expected and actual shapes where there are any, each option named
    /// as the API names it (`paddingID: .id(3)`; ``Option/parameterText(_:)``). Setting it
    /// replaces ``reason`` with plain text.
    public var message: String {
        get { reason.description }
        set { reason = Message(newValue) }
    }

    /// The options of the API the message names, in order: what a caller would pass, or pass
    /// differently, to change the outcome (the typed causes of the error).
    public var options: [Option] { reason.options }

    public init(_ kind: Kind = .invalidModel, file: String?, path: String? = nil, layer: String? = nil,
                message: String) {
        self.init(kind, file: file, path: path, layer: layer, message: Message(message))
    }

    /// An error whose message names options of the API as typed pieces
    /// (`"pass \(option: .paddingID, "none") if …"`).
    public init(_ kind: Kind = .invalidModel, file: String?, path: String? = nil, layer: String? = nil,
                message: Message) {
        self.kind = kind
        self.file = file
        self.path = path
        self.layer = layer
        self.reason = message
    }

    /// One line: `file: path: layer name: message`, leaving out what is nil. The file, path
    /// and layer come from files or the command line, so each is escaped and shortened
    /// (`escapedForDisplay`); the message escapes the names it quotes itself and is escaped
    /// again as a whole, so that it is one line that cannot act on a terminal whatever it holds.
    /// Options are named as the API names them (``Option/parameterText(_:)``).
    public var description: String {
        description(naming: { $0.parameterText($1) })
    }

    /// ``description`` with each option of the message spelled by `name` — a tool built on
    /// the library passes its own spelling (a command line, its flag: `--padding-id 3`).
    ///
    /// - Parameter name: the text for an option and the value the message gives it (nil
    ///   when it gives none), as ``Message/Piece/option(_:value:)`` holds them.
    public func description(naming name: (Option, String?) -> String) -> String {
        var parts: [String] = []
        if let file { parts.append(escapedForDisplay(file)) }
        // A layer reads `name (Class)`, each part already shortened: room for both.
        if let path { parts.append(escapedForDisplay(path, limit: 2 * displayedCharacterLimit + 100)) }
        if let layer { parts.append("layer \(escapedForDisplay(layer, limit: 2 * displayedCharacterLimit + 100))") }
        parts.append(escapedForDisplay(reason.text(naming: name), limit: ModelError.messageCharacterLimit))
        return parts.joined(separator: ": ")
    }

    /// The most characters of a message ``description`` shows; each name in it is already
    /// shortened to `displayedCharacterLimit`.
    package static let messageCharacterLimit = 4000
}

extension ModelError {
    /// An option of RecurrentKit's API that a message names: what a caller passes, or passes
    /// differently, to change the outcome. The library's messages carry options as these
    /// values, never as the words of a tool built on it; ``ModelError/description`` names
    /// each as the API does (``parameterText(_:)``), and a tool maps them to its own
    /// (``ModelError/description(naming:)``).
    public enum Option: String, Sendable, Hashable, CaseIterable {
        /// `architecture:` — the file describing what weights alone do not say (a Keras
        /// model or config for Keras weights, a `model_config` for a PyTorch state_dict).
        case architecture
        /// `key:` — the state_dict inside a `torch.save` checkpoint that holds several.
        case key
        /// `modules:` — the modules of a PyTorch state_dict to read, by key prefix.
        case modules
        /// `weightsMatching: .name` — a legacy Keras weights file's layers paired by name.
        case weightsMatchingByName
        /// `paddingID:` — how a PyTorch model's padded batches are marked for a Keras target.
        case paddingID
        /// `to:` — the framework a conversion writes for (`ConversionTarget`).
        case target
        /// `force: true` — replace an existing output file.
        case force
        /// `pythonModule:` — the Python module a conversion to PyTorch also writes.
        case pythonModule
        /// `threads:` — how many threads a run uses.
        case threads

        /// The option's parameter name in the API (`paddingID`, `weightsMatching`).
        public var parameter: String {
            switch self {
            case .weightsMatchingByName: return "weightsMatching"
            default: return rawValue
            }
        }

        /// The option as the library's own messages write it: the parameter's name, with
        /// `value` (as a message gives it: `3`, `none`, `keras`, a placeholder such as `ID`)
        /// in Swift's spelling — `paddingID: .id(3)`, `paddingID: .none`, `target: .keras`,
        /// `key: NAME`, `force: true`, `weightsMatching: .name`; the name alone without one.
        public func parameterText(_ value: String?) -> String {
            switch self {
            case .force: return "force: true"
            case .weightsMatchingByName: return "weightsMatching: .name"
            case .paddingID:
                guard let value else { return parameter }
                return value == "none" ? "paddingID: .none" : "paddingID: .id(\(value))"
            case .target:
                return value.map { "target: .\($0)" } ?? parameter
            default:
                return value.map { "\(parameter): \($0)" } ?? parameter
            }
        }
    }

    /// Text whose mentions of the API's options are typed pieces: the library words a
    /// message once, and each reader names the options in its own words. Written as a string
    /// with `\(option:)` interpolations:
    ///
    ///     let message: ModelError.Message = "pass \(option: .paddingID, "none") to write no mask"
    ///     message.description   // pass paddingID: .none to write no mask
    public struct Message: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringInterpolation {
        /// One piece of a message.
        public enum Piece: Sendable, Hashable {
            case text(String)
            /// An option, and the value the message gives it as text (`3`, `none`, `NAME`),
            /// nil when it gives none.
            case option(Option, value: String?)
        }

        public private(set) var pieces: [Piece]

        public init(_ pieces: [Piece]) {
            self.pieces = []
            for piece in pieces { append(piece) }
        }

        /// Plain text, naming no option.
        public init(_ text: String) {
            self.init([.text(text)])
        }

        public init(stringLiteral value: String) {
            self.init(value)
        }

        public init(stringInterpolation: StringInterpolation) {
            self.init(stringInterpolation.pieces)
        }

        /// The options the message names, in order (each once).
        public var options: [Option] {
            var seen: [Option] = []
            for case let .option(option, _) in pieces where !seen.contains(option) { seen.append(option) }
            return seen
        }

        /// The message with each option spelled by `name(option, value)`.
        public func text(naming name: (Option, String?) -> String) -> String {
            pieces.map { piece in
                switch piece {
                case let .text(text): return text
                case let .option(option, value): return name(option, value)
                }
            }.joined()
        }

        /// The message in the library's words (``Option/parameterText(_:)``).
        public var description: String { text(naming: { $0.parameterText($1) }) }

        /// The message with every text piece passed through `transform` (options kept).
        public func mappingText(_ transform: (String) -> String) -> Message {
            Message(pieces.map { piece in
                if case let .text(text) = piece { return .text(transform(text)) }
                return piece
            })
        }

        public static func + (lhs: Message, rhs: Message) -> Message {
            Message(lhs.pieces + rhs.pieces)
        }

        private mutating func append(_ piece: Piece) {
            // Adjacent text is one piece, so that equal messages have equal pieces.
            if case let .text(text) = piece {
                if text.isEmpty { return }
                if case let .text(last)? = pieces.last {
                    pieces[pieces.count - 1] = .text(last + text)
                    return
                }
            }
            pieces.append(piece)
        }

        public struct StringInterpolation: StringInterpolationProtocol {
            var pieces: [Piece] = []

            public init(literalCapacity: Int, interpolationCount: Int) {}

            public mutating func appendLiteral(_ literal: String) {
                pieces.append(.text(literal))
            }

            /// Any value, as a plain string interpolation writes it.
            public mutating func appendInterpolation<T>(_ value: T) {
                pieces.append(.text(String(describing: value)))
            }

            /// Another message, its options kept.
            public mutating func appendInterpolation(_ message: Message) {
                pieces += message.pieces
            }

            /// An option of the API, and the value the message gives it (`"3"`, `"none"`,
            /// a placeholder such as `"ID"`).
            public mutating func appendInterpolation(option: Option, _ value: String? = nil) {
                pieces.append(.option(option, value: value))
            }
        }
    }
}
