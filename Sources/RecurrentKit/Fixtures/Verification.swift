/// The comparison of one computed tensor with the expected one, by numpy's `allclose`
/// rule: `|actual − expected| ≤ atol + rtol·|expected|` element-wise.
public struct Comparison: Sendable {
    public var name: String
    public var expectedShape: [Int]
    public var actualShape: [Int]
    /// Largest `|actual − expected|`.
    public var maxAbsoluteError: Double
    /// Largest `|actual − expected| / |expected|` over elements with `expected ≠ 0`.
    public var maxRelativeError: Double
    /// Row-major multi-index of the first element outside the tolerance, if any.
    public var firstMismatch: [Int]?
    public var mismatchCount: Int

    public var shapesMatch: Bool { expectedShape == actualShape }
    public var passed: Bool { shapesMatch && mismatchCount == 0 }

    public init(name: String, actual: Tensor, expected: Tensor, atol: Double, rtol: Double) {
        self.name = name
        expectedShape = expected.shape
        actualShape = actual.shape
        maxAbsoluteError = 0
        maxRelativeError = 0
        mismatchCount = 0
        guard actual.shape == expected.shape else { return }
        for i in 0..<expected.count {
            let a = Double(actual.values[i]), e = Double(expected.values[i])
            let difference = abs(a - e)
            // NaN never compares close (numpy's default equal_nan=False).
            let close = difference <= atol + rtol * abs(e)
            if difference.isNaN || !close {
                mismatchCount += 1
                if firstMismatch == nil { firstMismatch = Self.multiIndex(i, shape: expected.shape) }
            }
            if difference.isNaN { maxAbsoluteError = .nan; continue }
            maxAbsoluteError = max(maxAbsoluteError, difference)
            if e != 0 { maxRelativeError = max(maxRelativeError, difference / abs(e)) }
        }
    }

    static func multiIndex(_ flat: Int, shape: [Int]) -> [Int] {
        var index = [Int](repeating: 0, count: shape.count)
        var rest = flat
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            index[axis] = rest % max(shape[axis], 1)
            rest /= max(shape[axis], 1)
        }
        return index
    }
}

/// The result of checking a model against a fixture.
public struct Verification: Sendable {
    public var atol: Double
    public var rtol: Double
    public var comparisons: [Comparison]
    /// What the user should know about the run, one line each: lengths that the model's own
    /// framework would not apply (``LoadedModel/lengthsNote(input:lengths:)``).
    public var notes: [String] = []
    public var passed: Bool { comparisons.allSatisfy(\.passed) }

    public static let defaultAbsoluteTolerance = 1e-5
    public static let defaultRelativeTolerance = 1e-4

    /// Runs `model` on the fixture's inputs (with its `h0` and `c0`, for a bare module) and
    /// compares every `/expected/*` tensor: `output`, and `h_n`, `c_n` for a bare module.
    ///
    /// Tolerances: the caller's, else the fixture's attributes, else 1e-5 and 1e-4; each
    /// must be a finite non-negative number. `threads`:
    /// how many threads the run may use (the outputs do not depend on it).
    ///
    /// - Throws: `ModelError` when the run fails, a tolerance is not a finite non-negative
    ///   number, or the fixture expects a tensor the model does not produce. A mismatch is a
    ///   result (``passed`` false), not an error.
    public init(model: LoadedModel, fixture: Fixture, atol: Double? = nil, rtol: Double? = nil,
                threads: Int = 1) throws {
        let atol = atol ?? fixture.atol ?? Self.defaultAbsoluteTolerance
        let rtol = rtol ?? fixture.rtol ?? Self.defaultRelativeTolerance
        // A negative or NaN tolerance would make every comparison a mismatch: an error, not a result.
        for (name, value) in [("atol", atol), ("rtol", rtol)] where !(value.isFinite && value >= 0) {
            throw ModelError(.invalidInput, file: fixture.file, path: name,
                             message: "is \(value); a tolerance is a finite non-negative number")
        }
        self.atol = atol
        self.rtol = rtol
        let states = try model.initialStates(h0: fixture.h0, c0: fixture.c0, batch: fixture.input.batch)
        let result = try model.run(fixture.input, lengths: fixture.lengths, initialStates: states, threads: threads)
        if let note = model.lengthsNote(input: fixture.input, lengths: fixture.lengths) { notes.append(note) }
        comparisons = try fixture.expected.map { name, expected in
            let actual: Tensor?
            switch name {
            case "output": actual = result.output
            case "h_n": actual = model.isBareRecurrentModule ? result.hN : nil
            case "c_n": actual = model.isBareRecurrentModule ? result.cN : nil
            default: actual = nil
            }
            guard let actual else {
                throw ModelError(file: fixture.file, path: "/expected/\(name)",
                                 message: "the model produces no '\(name)' (\(model.isBareRecurrentModule ? "not an output of this module" : "only bare recurrent modules give h_n and c_n"))")
            }
            return Comparison(name: name, actual: actual, expected: expected, atol: atol, rtol: rtol)
        }
    }
}
