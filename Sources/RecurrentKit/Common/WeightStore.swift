import HDF5

/// One weight tensor read from a file, with where it came from.
public struct StoredTensor: Sendable {
    /// The dataset's path in the file.
    public var path: String
    public var tensor: Tensor
    /// The on-disk element type (`float16`, `float32 big-endian`, ...).
    public var storedType: String
    public var compressed: Bool
}

/// Every float dataset below a group, read into memory and keyed by path.
struct WeightStore {
    let file: String
    /// Keyed by the dataset path relative to the group, `/`-separated.
    private(set) var tensors: [String: StoredTensor] = [:]

    init(group: HDF5Group, file: String, skip: (String) -> Bool = { _ in false }) throws {
        self.file = file
        var total = 0
        for path in try group.datasetPaths() where !skip(path) {
            let dataset = try group.dataset(path)
            // Declared sizes are counted against the model's budget before each read.
            total = total.addingReportingOverflow(dataset.count).partialValue
            guard total >= 0, total <= Limits.parameters else {
                throw ModelError(file: file, path: dataset.path, message: "brings the weights to \(total) elements, \(Limits.excess(total, over: Limits.parameters)) (Limits.parameters)")
            }
            guard dataset.elementType.isFloat else {
                throw ModelError(file: file, path: dataset.path,
                                 message: "holds \(dataset.elementType), expected floating-point weights")
            }
            let values = try dataset.readFloats()
            let shape = dataset.shape
            tensors[path] = StoredTensor(path: dataset.path, tensor: Tensor(shape: shape, values: values),
                                         storedType: dataset.elementType.description,
                                         compressed: try !dataset.filters().isEmpty)
        }
    }

    /// The distinct on-disk element types, for `inspect`.
    var storedTypes: [String] {
        Array(Set(tensors.values.map(\.storedType))).sorted()
    }
}
