/// A dense row-major float tensor whose shape and values always agree.
///
/// A tensor of shape `[d₀, d₁, …, dₙ₋₁]` holds `d₀·d₁·…·dₙ₋₁` values, the last axis varying
/// fastest: element `[i, j, k]` of a `[I, J, K]` tensor is `values[(i·J + j)·K + k]`. The
/// shape is checked once, when the tensor is made, and neither field can change after that.
public struct Tensor: Sendable, Equatable {
    /// The size of each axis, outermost first (`[batch, time, features]`).
    public let shape: [Int]
    /// The elements in row-major order; `values.count` is the product of `shape`.
    public let values: [Float]

    /// Makes a tensor from row-major values.
    ///
    /// Throws ``ModelError`` (``ModelError/Kind/invalidInput``) when a dimension is negative,
    /// when the product of the dimensions overflows, or when it differs from `values.count`.
    public init(shape: [Int], values: [Float]) throws {
        guard let count = elementCount(shape) else {
            throw ModelError(.invalidInput, file: nil,
                             message: "tensor shape \(shapeString(shape)) has a negative dimension or more elements than Int.max")
        }
        guard count == values.count else {
            throw ModelError(.invalidInput, file: nil,
                             message: "tensor shape \(shapeString(shape)) holds \(count) values, \(values.count) given")
        }
        self.shape = shape
        self.values = values
    }

    /// A tensor of zeros. Throws ``ModelError`` as ``init(shape:values:)`` does.
    public init(zeros shape: [Int]) throws {
        guard let count = elementCount(shape) else {
            throw ModelError(.invalidInput, file: nil,
                             message: "tensor shape \(shapeString(shape)) has a negative dimension or more elements than Int.max")
        }
        self.shape = shape
        self.values = [Float](repeating: 0, count: count)
    }

    /// A tensor whose shape the caller computed together with its values, inside the
    /// package: a mismatch there is a programming error and stops the program.
    package init(unchecked shape: [Int], values: [Float]) {
        precondition(elementCount(shape) == values.count, "Tensor: \(values.count) values for shape \(shape)")
        self.shape = shape
        self.values = values
    }

    /// Zeros of a shape the package computed itself (see ``init(unchecked:values:)``).
    package init(uncheckedZeros shape: [Int]) {
        self.init(unchecked: shape, values: [Float](repeating: 0, count: elementCount(shape) ?? -1))
    }

    /// The number of elements.
    public var count: Int { values.count }
}
