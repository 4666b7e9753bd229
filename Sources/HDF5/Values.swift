/// The element type of a dataset or attribute, as stored in the file.
public enum ElementType: Sendable, Equatable, CustomStringConvertible {
    case float(bits: Int, bigEndian: Bool)
    case integer(bits: Int, signed: Bool, bigEndian: Bool)
    case string(variableLength: Bool, utf8: Bool)
    /// Anything else (compound, enum, reference, ...), by HDF5 class name.
    case other(String)

    public var description: String {
        switch self {
        case let .float(bits, bigEndian): return "float\(bits)\(bigEndian ? " big-endian" : "")"
        case let .integer(bits, signed, bigEndian):
            return "\(signed ? "int" : "uint")\(bits)\(bigEndian ? " big-endian" : "")"
        case let .string(variableLength, utf8):
            return "\(variableLength ? "variable" : "fixed")-length \(utf8 ? "UTF-8" : "ASCII") string"
        case let .other(name): return name
        }
    }

    public var isFloat: Bool { if case .float = self { return true } else { return false } }
    public var isInteger: Bool { if case .integer = self { return true } else { return false } }
}

/// An attribute's value, decoded.
///
/// Scalars and 1-D arrays of strings (fixed- or variable-length, ASCII or UTF-8), integers
/// and floats: the forms h5py and Keras write.
public enum AttributeValue: Sendable, Equatable {
    case string(String)
    case strings([String])
    case integer(Int64)
    case integers([Int64])
    case double(Double)
    case doubles([Double])

    /// The value as one string: a scalar string, or the concatenation of a 1-D string array
    /// (how a reader takes a split or array-valued JSON attribute).
    public var stringValue: String? {
        switch self {
        case let .string(s): return s
        case let .strings(list): return list.joined()
        default: return nil
        }
    }

    /// The value as a list of strings (a scalar string is a list of one).
    public var stringList: [String]? {
        switch self {
        case let .string(s): return [s]
        case let .strings(list): return list
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case let .double(d): return d
        case let .integer(i): return Double(i)
        case let .doubles(list) where list.count == 1: return list[0]
        case let .integers(list) where list.count == 1: return Double(list[0])
        default: return nil
        }
    }

    public var integerValue: Int64? {
        switch self {
        case let .integer(i): return i
        case let .integers(list) where list.count == 1: return list[0]
        default: return nil
        }
    }
}

/// How a string attribute is written.
public enum StringForm: Sendable {
    /// Variable-length UTF-8, h5py's form for a Python `str`.
    case variableUTF8
    /// Fixed-length, null-padded ASCII, h5py's form for a numpy `S` array (tf-keras's
    /// `layer_names` and `weight_names`).
    case fixedASCII
}

/// Compression for a written dataset. Compression needs chunking; the chunk is the whole
/// dataset when none is given.
public struct Compression: Sendable, Equatable {
    public var gzipLevel: Int
    public var chunkShape: [Int]?

    public init(gzipLevel: Int = 4, chunkShape: [Int]? = nil) {
        self.gzipLevel = gzipLevel
        self.chunkShape = chunkShape
    }

    public static let gzip = Compression()
}

/// Limits applied before a read allocates memory.
public struct ReadLimits: Sendable, Equatable {
    /// The most elements one dataset read may allocate.
    public var maxElements: Int

    public init(maxElements: Int = 1 << 30) {
        self.maxElements = maxElements
    }

    public static let `default` = ReadLimits()
}

/// What an object in a file is.
public enum ObjectKind: Sendable, Equatable {
    case group, dataset
}
