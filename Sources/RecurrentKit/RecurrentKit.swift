import HDF5
@_exported import RecurrentEngine

/// RecurrentKit: read, convert, run and verify recurrent-network weight files.
public enum RecurrentKit {
    /// The toolkit's version (the command-line tool prints it too). The one place it is
    /// written: the Python wheel (`make wheel`) takes its version from the version the built
    /// binary prints, so the package, the binary and the wheel cannot disagree.
    public static let version = "0.1.0"

    /// The version of the libhdf5 this process runs ("1.10.8"), which the tool's version reports:
    /// a wheel carries its own copy.
    public static var hdf5Version: String { HDF5File.libraryVersion }
}
