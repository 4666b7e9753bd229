/// A container: the storage a file form gives a layout, as named tensors and attributes.
///
/// A container knows how bytes are kept (HDF5, a `torch.save` zip, a safetensors file) and
/// nothing of what they mean; a layout (PyTorch, Keras 2, Keras 3) knows
/// what the names mean and nothing of how they are kept. See spec/architecture.md.
///
/// Names are `/`-separated paths from the container's root (`lstm/weight_ih_l0`,
/// `model_weights/lstm/lstm/lstm_cell/kernel:0`, `layers/lstm/cell/vars/0`); a flat
/// container (safetensors) has no `/` in its names and no groups.
protocol TensorContainer {
    /// The file, as errors name it.
    var file: String { get }

    /// Where the container's root is in the file, as errors name it (`/`, `/model_weights`).
    var location: String { get }

    /// The group at `path` as a container of its own (a full model's `model_weights`).
    func scoped(to path: String) throws -> TensorContainer

    /// Every tensor below `path` (`""`: the whole container), relative to it, in a stable order.
    func tensorNames(below path: String) throws -> [String]

    /// The tensor at `path`; nil when nothing is there; the container's own error when
    /// something that is not a tensor is.
    func tensor(_ path: String) throws -> NamedTensor?

    /// What is at `path`: a group of names, a tensor, or nothing (nil).
    func kind(of path: String) throws -> ContainerEntryKind?

    /// The names directly inside the group at `path`.
    func memberNames(of path: String) throws -> [String]

    /// The string attribute `name` of the entry at `path` (`""`: the root), nil when absent.
    /// A 1-D array of strings reads as their concatenation.
    func stringAttribute(_ name: String, at path: String) throws -> String?

    /// The string-list attribute `name` of the entry at `path`, nil when absent. A list too
    /// large for one attribute may be split into `name0`, `name1`, … (tf-keras does that):
    /// the parts read as one list.
    func stringListAttribute(_ name: String, at path: String) throws -> [String]?

    /// True when the entry at `path` has an attribute `name` (of any type).
    func hasAttribute(_ name: String, at path: String) throws -> Bool

    /// True when `tensorNames(below:)` gives the keys in the order the model registered its
    /// modules (a `torch.save` state_dict, an `OrderedDict`); false where the container
    /// sorts them (HDF5 lists names alphabetically, safetensors writes them sorted).
    var keysInRegistrationOrder: Bool { get }
}

extension TensorContainer {
    var keysInRegistrationOrder: Bool { false }
}

/// What a container holds at a path.
enum ContainerEntryKind: Equatable {
    case group
    case tensor
}

/// How a tensor's elements are stored.
struct TensorDType: Equatable, CustomStringConvertible {
    enum Kind: Equatable {
        case float
        /// bfloat16: float32's top 16 bits.
        case bfloat
        case signedInteger
        case unsignedInteger
        /// Anything else, by the container's own name for it.
        case other(String)
    }

    var kind: Kind
    var bits: Int
    var byteOrder: ByteOrder

    enum ByteOrder: Equatable {
        case little, big
    }

    var isFloat: Bool { kind == .float || kind == .bfloat }

    /// `float32`, `float16`, `float32 big-endian`, `int64`, …
    var description: String {
        let order = byteOrder == .big ? " big-endian" : ""
        switch kind {
        case .float: return "float\(bits)\(order)"
        case .bfloat: return "bfloat16\(order)"
        case .signedInteger: return "int\(bits)\(order)"
        case .unsignedInteger: return "uint\(bits)\(order)"
        case let .other(name): return name
        }
    }
}

/// One tensor in a container: its name, shape and element type, and a way to read it.
/// Nothing is read until asked for.
struct NamedTensor {
    /// The path inside the container.
    var name: String
    /// Where errors place the tensor (an HDF5 object path such as `/lstm/weight_ih_l0`).
    var location: String
    var shape: [Int]
    /// The number of elements, as the container declares it (counted against
    /// `Limits.parameters` before anything is read).
    var count: Int
    var dtype: TensorDType
    /// True when the stored bytes are compressed (reading a part decompresses whole chunks).
    var compressed: Bool
    /// The values as `Float`, converted from the stored type, row-major.
    let readFloats: () throws -> [Float]
    /// Columns `range` of a 2-D tensor, `[rows, range.count]` row-major.
    let readColumns: (Range<Int>) throws -> [Float]

}
