import HDF5

/// An HDF5 file (or one group of it) as a container.
///
/// Every read goes through the `HDF5` module, so its hardening holds for every layout:
/// external and soft links bounded or refused, EXTERNAL and VIRTUAL storage refused,
/// element counts bounded by `ReadLimits`.
struct HDF5Container: TensorContainer {
    let file: String
    /// The group names are relative to.
    let root: HDF5Group

    init(root: HDF5Group, file: String) {
        self.root = root
        self.file = file
    }

    /// The whole file.
    init(_ hdf5: HDF5File) {
        self.init(root: hdf5.root, file: hdf5.path)
    }

    var location: String { root.path }

    func scoped(to path: String) throws -> TensorContainer {
        HDF5Container(root: try root.group(path), file: file)
    }

    func tensorNames(below path: String) throws -> [String] {
        try group(path).datasetPaths()
    }

    func tensor(_ path: String) throws -> NamedTensor? {
        guard try root.kind(of: path) != nil else { return nil }
        let dataset = try root.dataset(path)
        return NamedTensor(name: path, location: dataset.path, shape: dataset.shape, count: dataset.count,
                           dtype: Self.dtype(dataset.elementType), compressed: try !dataset.filters().isEmpty,
                           readFloats: { try dataset.readFloats() },
                           readColumns: { try dataset.readFloats(columns: $0) })
    }

    func kind(of path: String) throws -> ContainerEntryKind? {
        switch try root.kind(of: path) {
        case .group?: return .group
        case .dataset?: return .tensor
        default: return nil
        }
    }

    func memberNames(of path: String) throws -> [String] {
        try group(path).memberNames()
    }

    func stringAttribute(_ name: String, at path: String) throws -> String? {
        try object(path).attribute(name)?.stringValue
    }

    func stringListAttribute(_ name: String, at path: String) throws -> [String]? {
        let object = try object(path)
        if let value = try object.attribute(name) { return value.stringList }
        var parts: [String] = []
        var index = 0
        while let part = try object.attribute("\(name)\(index)") {
            parts += part.stringList ?? []
            index += 1
        }
        return index > 0 ? parts : nil
    }

    func hasAttribute(_ name: String, at path: String) throws -> Bool {
        try object(path).hasAttribute(name)
    }

    private func group(_ path: String) throws -> HDF5Group {
        path.isEmpty ? root : try root.group(path)
    }

    private func object(_ path: String) throws -> HDF5Object {
        if path.isEmpty { return root }
        return try root.kind(of: path) == .dataset ? try root.dataset(path) : try root.group(path)
    }

    /// HDF5's element type as a container dtype.
    static func dtype(_ type: ElementType) -> TensorDType {
        switch type {
        case let .float(bits, bigEndian):
            return TensorDType(kind: .float, bits: bits, byteOrder: bigEndian ? .big : .little)
        case let .integer(bits, signed, bigEndian):
            return TensorDType(kind: signed ? .signedInteger : .unsignedInteger, bits: bits, byteOrder: bigEndian ? .big : .little)
        case .string, .other:
            return TensorDType(kind: .other(type.description), bits: 0, byteOrder: .little)
        }
    }
}
