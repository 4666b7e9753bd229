import RecurrentEngine

/// Computes nodes whose inputs are all constants: how an export without constant folding
/// builds each recurrent node's `W`, `R` and `B` from the framework's own tensors (Slice,
/// Concat, Unsqueeze, Reshape, Transpose…). Only the operators the exporters write for that
/// are computed; any other is refused naming the node.
enum ONNXConstantFolding {
    static func evaluate(_ node: Onnx_NodeProto, _ args: [ONNXConstant?], refuse: (String) -> ModelError,
                         file: String) throws -> ONNXConstant {
        func attribute(_ name: String) -> Onnx_AttributeProto? { node.attribute.first { $0.name == name } }
        func input(_ i: Int) throws -> ONNXConstant {
            guard let value = args[safe: i] ?? nil else { throw refuse("lacks its input \(i)") }
            return value
        }
        func ints(_ i: Int) -> [Int]? { (args[safe: i] ?? nil)?.ints?.map { Int(clamping: $0) } }
        switch node.opType {
        case "Constant":
            if let t = attribute("value") { return try ONNXConstant(t.t, file: file, what: ONNXGraph.label(node, 0) + " value") }
            if let f = attribute("value_float") { return ONNXConstant(shape: [], floats: [f.f]) }
            if let f = attribute("value_floats") { return ONNXConstant(shape: [f.floats.count], floats: f.floats) }
            if let i = attribute("value_int") { return ONNXConstant(shape: [], ints: [i.i]) }
            if let i = attribute("value_ints") { return ONNXConstant(shape: [i.ints.count], ints: i.ints) }
            throw refuse("is a Constant of a kind rnnkit does not read (a tensor, float(s) or int(s) only)")
        case "Identity", "Cast":
            var value = try input(0)
            if node.opType == "Cast" {
                let to = attribute("to")?.i ?? 1
                if [1, 10, 11].contains(to), let i = value.ints { value = ONNXConstant(shape: value.shape, floats: i.map { Float($0) }) }
                else if [6, 7].contains(to), let f = value.floats { value = ONNXConstant(shape: value.shape, ints: f.map { Int64($0) }) }
            }
            return value
        case "Unsqueeze", "Squeeze":
            let value = try input(0)
            let axes = attribute("axes")?.ints.map { Int($0) } ?? ints(1) ?? []
            var shape = value.shape
            if node.opType == "Unsqueeze" {
                let rank = shape.count + axes.count
                for a in axes.map({ $0 < 0 ? $0 + rank : $0 }).sorted() {
                    guard a >= 0, a <= shape.count else { throw refuse("unsqueezes axis \(a)") }
                    shape.insert(1, at: a)
                }
            } else {
                let targets = axes.isEmpty ? shape.indices.filter { shape[$0] == 1 } : axes.map { $0 < 0 ? $0 + shape.count : $0 }
                guard targets.allSatisfy({ shape.indices.contains($0) && shape[$0] == 1 }) else { throw refuse("squeezes an axis not of size 1") }
                shape = shape.enumerated().filter { !targets.contains($0.offset) }.map(\.element)
            }
            return reshaped(value, shape)
        case "Reshape":
            let value = try input(0)
            guard var target = ints(1) else { throw refuse("reshapes to a shape that is not constant integers") }
            for i in target.indices where target[i] == 0 && (attribute("allowzero")?.i ?? 0) == 0 {
                guard i < value.shape.count else { throw refuse("copies dimension \(i) of \(value.shape.count)") }
                target[i] = value.shape[i]
            }
            if let infer = target.firstIndex(of: -1) {
                let others = target.enumerated().filter { $0.offset != infer }.map(\.element)
                guard let known = elementCount(others), known > 0, value.count % known == 0 else {
                    throw refuse("reshapes \(shapeText(value.shape)) to \(shapeText(target))")
                }
                target[infer] = value.count / known
            }
            guard elementCount(target) == value.count, ONNXConstant.isBounded(target) else {
                throw refuse("reshapes \(shapeText(value.shape)) to \(shapeText(target))")
            }
            return reshaped(value, target)
        case "Concat":
            let parts = try args.indices.map(input)
            guard let first = parts.first else { throw refuse("concatenates nothing") }
            var axis = Int(attribute("axis")?.i ?? 0)
            if axis < 0 { axis += first.shape.count }
            guard first.shape.indices.contains(axis),
                  parts.allSatisfy({ $0.shape.count == first.shape.count && ($0.floats == nil) == (first.floats == nil)
                      && $0.shape.enumerated().allSatisfy { $0.offset == axis || $0.element == first.shape[$0.offset] } })
            else { throw refuse("concatenates tensors whose shapes or types do not fit") }
            let outer = first.shape[..<axis].reduce(1, *)
            var shape = first.shape
            // Each part's shape is bounded, so the sum fits; the result must be bounded too.
            shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
            guard ONNXConstant.isBounded(shape) else { throw refuse("concatenates to \(shapeText(shape)), past \(Limits.parameters) elements") }
            func joined<T>(_ values: [[T]]) -> [T] {
                var result: [T] = []
                for o in 0..<outer {
                    for v in values {
                        let block = v.count / max(outer, 1)
                        result += v[(o * block)..<((o + 1) * block)]
                    }
                }
                return result
            }
            if first.floats != nil { return ONNXConstant(shape: shape, floats: joined(parts.map { $0.floats! })) }
            return ONNXConstant(shape: shape, ints: joined(parts.map { $0.ints! }))
        case "Slice":
            let value = try input(0)
            guard let starts = ints(1), let ends = ints(2) else { throw refuse("slices with bounds that are not constant integers") }
            let axes = ints(3) ?? Array(0..<starts.count)
            let steps = ints(4) ?? Array(repeating: 1, count: starts.count)
            guard axes.count == starts.count, ends.count == starts.count, steps.allSatisfy({ $0 == 1 }) else {
                throw refuse("slices with steps other than 1")
            }
            var lower = value.shape.map { _ in 0 }, upper = value.shape
            for (k, a0) in axes.enumerated() {
                let a = a0 < 0 ? a0 + value.shape.count : a0
                guard value.shape.indices.contains(a) else { throw refuse("slices axis \(a0) of \(value.shape.count)") }
                let n = value.shape[a]
                func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + n : v, 0), n) }
                lower[a] = clamp(starts[k]); upper[a] = max(clamp(ends[k]), lower[a])
            }
            return gathered(value, lower: lower, upper: upper)
        case "Gather":
            let value = try input(0)
            guard let indices = ints(1), let indexShape = args[1]?.shape else { throw refuse("gathers with indices that are not constant integers") }
            var axis = Int(attribute("axis")?.i ?? 0)
            if axis < 0 { axis += value.shape.count }
            guard value.shape.indices.contains(axis) else { throw refuse("gathers on axis \(axis)") }
            let n = value.shape[axis]
            var pieces: [ONNXConstant] = []
            for i in indices {
                let k = i < 0 ? i + n : i
                guard (0..<n).contains(k) else { throw refuse("gathers index \(i) of \(n)") }
                var lower = value.shape.map { _ in 0 }, upper = value.shape
                lower[axis] = k; upper[axis] = k + 1
                pieces.append(gathered(value, lower: lower, upper: upper))
            }
            var shape = value.shape
            shape.replaceSubrange(axis...axis, with: indexShape)
            let outer = value.shape[..<axis].reduce(1, *)
            func joined<T>(_ values: [[T]]) -> [T] {
                var result: [T] = []
                for o in 0..<outer { for v in values { let block = v.count / max(outer, 1); result += v[(o * block)..<((o + 1) * block)] } }
                return result
            }
            if value.floats != nil { return ONNXConstant(shape: shape, floats: joined(pieces.map { $0.floats! })) }
            return ONNXConstant(shape: shape, ints: joined(pieces.map { $0.ints! }))
        case "Transpose":
            let value = try input(0)
            let rank = value.shape.count
            let perm = attribute("perm")?.ints.map { Int($0) } ?? Array((0..<rank).reversed())
            guard perm.sorted() == Array(0..<rank) else { throw refuse("has perm \(perm)") }
            let shape = perm.map { value.shape[$0] }
            var strides = [Int](repeating: 1, count: rank)
            for a in stride(from: rank - 2, through: 0, by: -1) { strides[a] = strides[a + 1] * value.shape[a + 1] }
            var order: [Int] = []
            order.reserveCapacity(value.count)
            var index = [Int](repeating: 0, count: rank)
            for _ in 0..<value.count {
                order.append(zip(perm, index).reduce(0) { $0 + strides[$1.0] * $1.1 })
                var a = rank - 1
                while a >= 0 { index[a] += 1; if index[a] < shape[a] { break }; index[a] = 0; a -= 1 }
            }
            if let f = value.floats { return ONNXConstant(shape: shape, floats: order.map { f[$0] }, storedType: value.storedType) }
            return ONNXConstant(shape: shape, ints: order.map { value.ints![$0] })
        default:
            throw refuse("computes constants with an operator rnnkit does not compute (it computes Constant, Identity, Cast, Slice, Concat, Gather, Unsqueeze, Squeeze, Reshape and Transpose)")
        }
    }

    private static func reshaped(_ value: ONNXConstant, _ shape: [Int]) -> ONNXConstant {
        var result = value
        result.shape = shape
        return result
    }

    /// The block `lower..<upper` of each axis, row-major.
    private static func gathered(_ value: ONNXConstant, lower: [Int], upper: [Int]) -> ONNXConstant {
        let shape = zip(lower, upper).map { $1 - $0 }
        let rank = value.shape.count
        var strides = [Int](repeating: 1, count: rank)
        for a in stride(from: rank - 2, through: 0, by: -1) { strides[a] = strides[a + 1] * value.shape[a + 1] }
        var offsets: [Int] = []
        let count = elementCount(shape) ?? 0
        offsets.reserveCapacity(count)
        var index = lower
        for _ in 0..<count {
            offsets.append(zip(index, strides).reduce(0) { $0 + $1.0 * $1.1 })
            var a = rank - 1
            while a >= 0 { index[a] += 1; if index[a] < upper[a] { break }; index[a] = lower[a]; a -= 1 }
        }
        if let f = value.floats { return ONNXConstant(shape: shape, floats: offsets.map { f[$0] }, storedType: value.storedType) }
        return ONNXConstant(shape: shape, ints: offsets.map { value.ints![$0] })
    }
}
