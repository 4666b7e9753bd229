import Foundation

/// One layer option's value as the file gives it, typed: a JSON writer writes numbers and
/// booleans as such, a text form writes `description`.
public enum DetailValue: Sendable, Equatable, Encodable, CustomStringConvertible {
    case text(String)
    case integer(Int)
    case number(Double)
    case flag(Bool)

    public var description: String {
        switch self {
        case let .text(text): return text
        case let .integer(value): return "\(value)"
        case let .number(value): return "\(value)"
        case let .flag(value): return "\(value)"
        }
    }

    /// The value itself: a string, an integer, a number or a boolean.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case let .text(text): try container.encode(text)
        case let .integer(value): try container.encode(value)
        case let .number(value): try container.encode(value)
        case let .flag(value): try container.encode(value)
        }
    }
}

/// One layer or module as the file describes it, for `inspect`.
public struct LayerSummary: Sendable {
    /// The layer's name in the file (`lstm_1`), or the module's key prefix; empty when the
    /// file gives none.
    public var name: String
    /// The class or module type (`LSTM`, `Bidirectional`, `nn.GRU`).
    public var type: String
    /// Ordered `(option, value)` pairs: sizes and flags as the framework names them
    /// (`("hidden_size", .integer(64))`, `("bidirectional", .flag(true))`).
    public var details: [(String, DetailValue)]
    /// The gate order of the file's layout, for recurrent layers.
    public var gateOrder: [Gate]?
    public var parameterCount: Int
}

