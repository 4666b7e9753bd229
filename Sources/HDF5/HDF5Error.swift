import TextSafety

/// A failure in the HDF5 layer, naming the file, the object path and HDF5's own message.
public struct HDF5Error: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// The file does not exist, is not HDF5, or is damaged.
        case cannotOpen
        /// Creating a file, group, dataset or attribute failed.
        case cannotCreate
        /// No object or attribute at that path.
        case notFound
        /// The object exists but is of another kind (a group where a dataset was expected).
        case wrongKind
        /// The element type cannot be read as asked (a string dataset read as floats).
        case unsupportedType
        /// The declared size is implausible for this file or over the configured limit.
        case implausibleSize
        /// The dataset needs a filter this build of HDF5 lacks (h5py's lzf, for one).
        case filterUnavailable
        /// HDF5 failed while reading.
        case readFailed
        /// HDF5 failed while writing.
        case writeFailed
        /// The caller passed values that do not fit (a shape that does not match the values).
        case invalidArgument
        /// The file asks to read something outside itself (an external link, EXTERNAL or
        /// VIRTUAL storage, a user-defined link, a link cycle), which is refused.
        case outsideInput
    }

    public var kind: Kind
    /// The file's path as given by the caller.
    public var file: String
    /// The object path inside the file (`/model_weights/lstm`), or nil for the file itself.
    public var path: String?
    /// What went wrong, in words.
    public var message: String
    /// HDF5's own description from its error stack, when it gave one.
    public var hdf5Message: String?

    public init(_ kind: Kind, file: String, path: String? = nil, message: String, hdf5Message: String? = nil) {
        self.kind = kind
        self.file = file
        self.path = path
        self.message = message
        self.hdf5Message = hdf5Message
    }

    /// One line: `file: path: message (HDF5: ...)`; the object path comes from the file, so
    /// it is shown escaped and shortened.
    public var description: String {
        var line = file
        if let path { line += ": \(escapedForDisplay(path))" }
        line += ": \(message)"
        if let hdf5Message, !hdf5Message.isEmpty { line += " (HDF5: \(hdf5Message))" }
        return line
    }
}
