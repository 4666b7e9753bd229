@_exported import RecurrentEngine

/// RecurrentKit: read, convert, run and verify recurrent-network weight files.
public enum RecurrentKit {
    /// The toolkit's version (the command-line tool prints it too).
    public static let version = "0.1.0"
}
