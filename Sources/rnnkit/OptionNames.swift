import RecurrentKit

// The library names the options of its API in its messages as typed pieces
// (`ModelError.Option`); here each becomes the flag that sets it on this command line.

extension ModelError.Option {
    /// The flag that sets the option (`--padding-id`).
    var flag: String {
        switch self {
        case .architecture: return "--architecture"
        case .key: return "--key"
        case .modules: return "--modules"
        case .weightsMatchingByName: return "--by-name"
        case .paddingID: return "--padding-id"
        case .target: return "--to"
        case .force: return "--force"
        case .pythonModule: return "--emit-python"
        case .threads: return "--threads"
        }
    }

    /// The option as the command line writes it: the flag, then the value a message gives
    /// it (`--padding-id 3`, `--key NAME`); a flag that takes no value stands alone.
    func commandLineText(_ value: String?) -> String {
        switch self {
        case .force, .weightsMatchingByName: return flag
        default: return value.map { "\(flag) \($0)" } ?? flag
        }
    }
}

extension ModelError.Message {
    /// The message with each option as its flag.
    var commandLineText: String { text(naming: { $0.commandLineText($1) }) }
}

extension ModelError {
    /// ``ModelError/description`` with each option as its flag: the line `rnnkit` prints.
    var commandLineDescription: String { description(naming: { $0.commandLineText($1) }) }
}

/// `error` as the command line words it: a `ModelError` with its options as flags, any
/// other error as it describes itself.
func commandLineText(_ error: any Error) -> String {
    (error as? ModelError)?.commandLineDescription ?? "\(error)"
}
