/// One weight tensor read from a file, with where it came from.
package struct StoredTensor: Sendable {
    /// The dataset's path in the file.
    package var path: String
    package var tensor: Tensor
    /// The on-disk element type (`float16`, `float32 big-endian`, ...).
    package var storedType: String
    package var compressed: Bool
}

/// A tensor of another element type (an integer or bool buffer such as BatchNorm's
/// `num_batches_tracked` or a transformer's `position_ids`): listed, never read as weights.
struct OtherTensor: Sendable {
    /// The dataset's path in the file.
    var path: String
    var shape: [Int]
    /// The on-disk element type (`int64`, `bool`, …).
    var storedType: String
}

/// Every float tensor of a container, read into memory and keyed by name.
struct WeightStore {
    let file: String
    /// Keyed by the tensor's name in the container, `/`-separated.
    private(set) var tensors: [String: StoredTensor] = [:]
    /// Tensors that are not floating-point, by name: not read, so that an integer buffer
    /// beside the weights never stops a model from reading; a module that needs one is
    /// refused when it asks for it.
    private(set) var others: [String: OtherTensor] = [:]

    /// Reads every tensor whose name `skip` does not exclude.
    init(container: TensorContainer, skip: (String) -> Bool = { _ in false }) throws {
        self.file = container.file
        var total = 0
        for name in try container.tensorNames(below: "") where !skip(name) {
            guard let stored = try container.tensor(name) else { continue }
            guard stored.dtype.isFloat else {
                others[name] = OtherTensor(path: stored.location, shape: stored.shape, storedType: stored.dtype.description)
                continue
            }
            // Declared sizes are counted against the model's budget before each read.
            total = total.addingReportingOverflow(stored.count).partialValue
            guard total >= 0, total <= Limits.parameters else {
                throw ModelError(file: file, path: stored.location, message: "brings the weights to \(total) elements, \(Limits.excess(total, over: Limits.parameters)) (Limits.parameters)")
            }
            let values = try stored.readFloats()
            tensors[name] = StoredTensor(path: stored.location, tensor: try Tensor(shape: stored.shape, values: values),
                                         storedType: stored.dtype.description, compressed: stored.compressed)
        }
    }

    /// The distinct on-disk element types of the weights read, for `inspect`.
    var storedTypes: [String] {
        Array(Set(tensors.values.map(\.storedType))).sorted()
    }
}
