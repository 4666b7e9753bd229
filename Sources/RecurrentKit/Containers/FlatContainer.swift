import TextSafety

/// A container whose names are a state_dict's dotted keys, with no groups: a `torch.save`
/// file or a safetensors file, read into memory.
///
/// `stringAttribute(_:at: "")` reads the file's string metadata (safetensors' `__metadata__`,
/// the `rnnkit.model_config` entry of a state_dict's `_metadata`), so a layout asks a flat
/// file the same questions it asks an HDF5 file.
struct FlatContainer: TensorContainer {
    let file: String
    /// Where errors place the root (`archive/data.pkl`, the safetensors header).
    let location: String
    private let byName: [String: NamedTensor]
    /// The names in the file's order.
    private let names: [String]
    let metadata: [String: String]
    /// True for a `torch.save` state_dict (an `OrderedDict` in registration order); a
    /// safetensors header is sorted.
    let keysInRegistrationOrder: Bool

    /// Refuses a name that appears twice, and an empty name.
    init(file: String, location: String, tensors: [NamedTensor], metadata: [String: String],
         keysInRegistrationOrder: Bool = false) throws {
        self.file = file
        self.location = location
        self.metadata = metadata
        self.keysInRegistrationOrder = keysInRegistrationOrder
        var byName: [String: NamedTensor] = [:]
        for tensor in tensors {
            guard !tensor.name.isEmpty else {
                throw ModelError(file: file, path: location, message: "holds a tensor with an empty name")
            }
            guard byName.updateValue(tensor, forKey: tensor.name) == nil else {
                throw ModelError(file: file, path: tensor.location, message: "key '\(escapedForDisplay(tensor.name))' appears twice")
            }
        }
        self.byName = byName
        self.names = tensors.map(\.name)
    }

    func scoped(to path: String) throws -> TensorContainer {
        throw ModelError(file: file, path: path, message: "is not a group: this file holds flat state_dict keys")
    }

    func tensorNames(below path: String) throws -> [String] {
        guard !path.isEmpty else { return names }
        return names.filter { $0.hasPrefix(path + ".") }.map { String($0.dropFirst(path.count + 1)) }
    }

    func tensor(_ path: String) throws -> NamedTensor? { byName[path] }

    func kind(of path: String) throws -> ContainerEntryKind? {
        byName[path] != nil ? .tensor : nil
    }

    func memberNames(of path: String) throws -> [String] {
        path.isEmpty ? names : []
    }

    func stringAttribute(_ name: String, at path: String) throws -> String? {
        path.isEmpty ? metadata[name] : nil
    }

    func stringListAttribute(_ name: String, at path: String) throws -> [String]? { nil }

    func hasAttribute(_ name: String, at path: String) throws -> Bool {
        path.isEmpty && metadata[name] != nil
    }
}
