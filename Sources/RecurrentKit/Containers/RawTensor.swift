/// Elements of a tensor kept as raw bytes in memory (a `torch.save` storage, a safetensors
/// data section), decoded to `Float` on request: one decoder for every flat container.
///
/// A view is `shape` and `strides` (in elements) from `offset` (in elements) into `bytes`;
/// every element the view reaches is checked to lie inside `bytes` before any is read.
struct RawTensor {
    /// The storage, shared by every view of it (copy-on-write: never copied).
    var bytes: [UInt8]
    var dtype: TensorDType
    var shape: [Int]
    /// Element strides per axis; nil: contiguous row-major.
    var strides: [Int]?
    /// The first element, in elements from the start of `bytes`.
    var offset: Int = 0

    /// `dtype` as a decodable element, or nil (ints, bool, complex, anything else).
    static func elementSize(_ dtype: TensorDType) -> Int? {
        switch (dtype.kind, dtype.bits) {
        case (.float, 16), (.float, 32), (.float, 64), (.bfloat, 16): return dtype.bits / 8
        default: return nil
        }
    }

    /// The number of elements, or nil when the shape has a negative axis or overflows.
    static func count(_ shape: [Int]) -> Int? {
        var total = 1
        for size in shape {
            guard size >= 0 else { return nil }
            let (product, overflow) = total.multipliedReportingOverflow(by: size)
            guard !overflow else { return nil }
            total = product
        }
        return total
    }

    /// The row-major strides of `shape`. A step past `Int.max` (a shape whose `count` is
    /// nil, or holds a 0) is kept at `Int.max`: such strides are never used to read.
    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var step = 1
        for axis in shape.indices.reversed() {
            strides[axis] = step
            let (next, overflow) = step.multipliedReportingOverflow(by: max(shape[axis], 1))
            step = overflow ? .max : next
        }
        return strides
    }

    /// Why the view cannot be read (a sentence fragment), or nil when every element it
    /// reaches lies inside the storage (`viewProblem`).
    func problem() -> String? {
        guard let size = Self.elementSize(dtype) else { return "holds \(dtype), not float16, bfloat16, float32 or float64" }
        return Self.viewProblem(shape: shape, strides: strides ?? Self.contiguousStrides(shape), offset: offset,
                                capacity: bytes.count / size)
    }

    /// Why a view of a storage of `capacity` elements cannot be read, or nil when every
    /// element it reaches lies inside it: `offset + Σ (shape[i] − 1)·stride[i] < capacity`
    /// and no stride is negative, in overflow-checked arithmetic. Any element type (an
    /// integer buffer's view is checked the same way).
    ///
    /// A view with no elements reaches nothing, whatever its offset and strides (torch loads
    /// such a view). An axis of size 1 never moves, so its stride is never used: torch writes
    /// any stride there (`as_strided((4, 1), (1, 2**63 - 1))`), and `floats()` never adds it.
    static func viewProblem(shape: [Int], strides: [Int], offset: Int, capacity: Int) -> String? {
        guard let count = count(shape) else { return "has an invalid shape \(shapeText(shape))" }
        guard strides.count == shape.count else { return "has \(strides.count) strides for \(shape.count) axes" }
        guard offset >= 0 else { return "starts at a negative offset \(offset)" }
        if let negative = strides.first(where: { $0 < 0 }) { return "has a negative stride \(negative)" }
        if count == 0 { return nil }
        var last = offset
        for (axis, size) in shape.enumerated() where size > 1 {
            let (step, overflow1) = (size - 1).multipliedReportingOverflow(by: strides[axis])
            let (sum, overflow2) = last.addingReportingOverflow(step)
            guard !overflow1, !overflow2 else { return "has strides that overflow" }
            last = sum
        }
        return last < capacity ? nil : "reaches element \(last) of a storage of \(capacity) elements"
    }

    /// The elements as `Float`, row-major. Call only after `problem()` returned nil.
    func floats() -> [Float] {
        let count = Self.count(shape) ?? 0
        guard count > 0, let size = Self.elementSize(dtype) else { return [] }
        let strides = self.strides ?? Self.contiguousStrides(shape)
        let big = dtype.byteOrder == .big
        let bf16 = dtype.kind == .bfloat
        var values = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            func element(_ index: Int) -> Float {
                let base = index * size
                var bits: UInt64 = 0
                for byte in 0..<size {
                    let value = UInt64(raw[base + (big ? byte : size - 1 - byte)])
                    bits = (bits << 8) | value
                }
                switch size {
                case 2: return bf16 ? Float(bitPattern: UInt32(bits) << 16) : Self.half(UInt16(bits))
                case 4: return Float(bitPattern: UInt32(bits))
                default: return Float(Double(bitPattern: bits))
                }
            }
            // Walk the view in row-major order with an index per axis. Every position is
            // one the view reaches (offset plus index·stride per axis), so none passes the
            // last element `viewProblem` checked: a step is taken only within an axis, and
            // an axis of size 1 (whose stride may be anything) is never stepped.
            var index = [Int](repeating: 0, count: shape.count)
            var position = offset
            for n in 0..<count {
                values[n] = element(position)
                var axis = shape.count - 1
                while axis >= 0 {
                    if index[axis] + 1 < shape[axis] {
                        index[axis] += 1
                        position += strides[axis]
                        break
                    }
                    position -= strides[axis] * index[axis]
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
        return values
    }

    /// IEEE half precision to `Float`, exactly.
    static func half(_ bits: UInt16) -> Float {
        let sign = UInt32(bits >> 15) << 31
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = UInt32(bits & 0x3FF)
        switch exponent {
        case 0:
            // Zero or subnormal: mantissa · 2^-24.
            let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -magnitude : magnitude
        case 31:
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        default:
            return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
        }
    }

    /// Little-endian float32 bytes of `values`, as the writers store them.
    static func littleEndianBytes(_ values: [Float]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count * 4)
        for (n, value) in values.enumerated() {
            let bits = value.bitPattern.littleEndian
            withUnsafeBytes(of: bits) { word in
                for k in 0..<4 { bytes[n * 4 + k] = word[k] }
            }
        }
        return bytes
    }

    /// This view as a container's tensor named `name` (check `problem()` first).
    func named(_ name: String, location: String) -> NamedTensor {
        let view = self
        return NamedTensor(name: name, location: location, shape: shape, count: Self.count(shape) ?? 0, dtype: dtype,
                           compressed: false,
                           readFloats: { view.floats() },
                           readColumns: { range in
                               let all = view.floats()
                               guard view.shape.count == 2 else { return all }
                               let columns = view.shape[1]
                               var out: [Float] = []
                               out.reserveCapacity(view.shape[0] * range.count)
                               for row in 0..<view.shape[0] { out += all[(row * columns + range.lowerBound)..<(row * columns + range.upperBound)] }
                               return out
                           })
    }
}

extension TensorDType {
    static let bfloat16 = TensorDType(kind: .bfloat, bits: 16, byteOrder: .little)
    static let float16 = TensorDType(kind: .float, bits: 16, byteOrder: .little)
    static let float32 = TensorDType(kind: .float, bits: 32, byteOrder: .little)
    static let float64 = TensorDType(kind: .float, bits: 64, byteOrder: .little)
}
