// Activation functions in Float. tanh and the logistic sigmoid, which every LSTM and GRU step
// applies to every gate, use branch-free approximations (`tanhOf`, `sigmoidOf` below) that LLVM
// vectorises over a buffer; measured against float64 over [-40, 40] their relative error is
// at most 1.5e-7 for tanh (glibc's `tanhf`: 1.7e-7) and 0.8e-7 for exp. The rarer functions
// use the C library's `expm1f`, `erff` and friends.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#elseif canImport(ucrt)
import ucrt
#endif

extension Activation {
    /// True when the function is element-wise (every case but `.softmax`).
    var isElementwise: Bool { self != .softmax }

    /// Applies the function in place to `buffer`, read as rows of `rowLength` values.
    ///
    /// Element-wise cases ignore the row structure; `.softmax` normalises each row:
    /// `y_j = exp(x_j − max x) / Σ_k exp(x_k − max x)`.
    func apply(to buffer: UnsafeMutableBufferPointer<Float>, rowLength: Int) {
        switch self {
        case .linear:
            return
        case .softmax:
            guard rowLength > 0 else { return }
            var start = 0
            while start + rowLength <= buffer.count {
                softmaxRow(buffer, start: start, count: rowLength)
                start += rowLength
            }
        default:
            if let base = buffer.baseAddress { applyInPlace(base, count: buffer.count) }
        }
    }

    /// Applies the element-wise function in place to `count` values at `p`.
    ///
    /// One loop per case, so that the common cases vectorise. Must not be called for `.softmax`.
    @inline(__always)
    func applyInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .linear: return
        case .tanh: for i in 0..<count { p[i] = tanhOf(p[i]) }
        case .sigmoid: for i in 0..<count { p[i] = sigmoidOf(p[i]) }
        case .relu: for i in 0..<count { p[i] = Activation.relu.elementwise(p[i]) }
        default: for i in 0..<count { p[i] = elementwise(p[i]) }
        }
    }

    /// Applies the function in place to `values`, read as rows of `rowLength` values.
    func apply(to values: inout [Float], rowLength: Int) {
        values.withUnsafeMutableBufferPointer { apply(to: $0, rowLength: rowLength) }
    }

    /// The element-wise function at `x`. Must not be called for `.softmax`.
    @inline(__always)
    func elementwise(_ x: Float) -> Float {
        switch self {
        case .linear: return x
        case .relu: return x > 0 ? x : (x.isNaN ? x : 0)
        case .tanh: return tanhOf(x)
        case .sigmoid: return sigmoidOf(x)
        case .hardSigmoidKeras2:
            // Keras 2: clip(0.2·x + 0.5, 0, 1).
            return Swift.min(Swift.max(0.2 * x + 0.5, 0), 1)
        case .hardSigmoid:
            // relu6(x + 3) / 6, written as PyTorch's Hardsigmoid computes it.
            return Swift.min(Swift.max(x + 3, 0), 6) / 6
        case .elu:
            // α = 1: x for x > 0, exp(x) − 1 otherwise.
            return x > 0 ? x : expm1f(x)
        case .selu:
            let alpha: Float = 1.6732632423543772848170429916717
            let scale: Float = 1.0507009873554804934193349852946
            return x > 0 ? scale * x : scale * (alpha * expm1f(x))
        case .softplus:
            // log(1 + exp(x)) = max(x, 0) + log1p(exp(−|x|)), which never overflows.
            return Swift.max(x, 0) + log1pf(expf(-Swift.abs(x)))
        case .softsign:
            return x / (1 + Swift.abs(x))
        case .swish:
            return x * sigmoidOf(x)
        case .gelu:
            // 0.5·x·(1 + erf(x/√2)).
            return 0.5 * x * (1 + erff(x * 0.70710678118654752440))
        case .geluTanh:
            // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
            let inner: Float = 0.79788456080286535588 * (x + 0.044715 * x * x * x)
            return 0.5 * x * (1 + tanhf(inner))
        case .softmax:
            preconditionFailure("softmax is not element-wise")
        }
    }
}

/// `a · b + c`: one fused multiply-add in the fast build (see Kernels.swift), else a product
/// and a sum. The activations below use it for their polynomials and reductions, scalar and
/// sixteen-lane alike, so both forms give the same bits in either build.
@inline(__always)
func mulAdd(_ a: Float, _ b: Float, _ c: Float) -> Float {
    #if arch(arm64) || RECURRENTKIT_FMA
    c.addingProduct(a, b)
    #else
    a * b + c
    #endif
}

@inline(__always)
func mulAdd(_ a: SIMD16<Float>, _ b: SIMD16<Float>, _ c: SIMD16<Float>) -> SIMD16<Float> {
    madd(c, a, b)
}

/// The logistic function `σ(x) = 1 / (1 + exp(−x))`, with `expOf`.
///
/// Relative error at most about 1.5e-7 where `σ(x)` is a normal float (`x > −87`); below
/// that it returns about 1e-38 instead of a subnormal or zero.
@inline(__always)
func sigmoidOf(_ x: Float) -> Float {
    1 / (1 + expOf(-x))
}

/// `tanh x` as `numerator / denominator`: for `|x| < 0.625` the odd polynomial
/// `x + x³·P(x²)` over 1, else `sign(x)·(1 − e)` over `1 + e` with `e = exp(−2|x|)` (no
/// cancellation there, as `e < 0.29`). Coefficients from Cephes `tanhf`. Both branches are
/// computed and one is selected, so a loop over a buffer vectorises. NaN propagates.
@inline(__always)
func tanhFraction(_ x: Float) -> (numerator: Float, denominator: Float) {
    let a = Swift.abs(x)
    let z = x * x
    var p: Float = -5.70498872745e-3
    p = mulAdd(p, z, 2.06390887954e-2)
    p = mulAdd(p, z, -5.37397155531e-2)
    p = mulAdd(p, z, 1.33314422036e-1)
    p = mulAdd(p, z, -3.33332819422e-1)
    let small = mulAdd(p * z, x, x)
    let e = expOf(-2 * a)
    return a < 0.625 ? (small, 1) : (Float(signOf: x, magnitudeOf: 1 - e), 1 + e)
}

/// `tanh x`, relative error at most about 1.5e-7 (`tanhFraction`).
@inline(__always)
func tanhOf(_ x: Float) -> Float {
    let (numerator, denominator) = tanhFraction(x)
    return numerator / denominator
}

/// `e^x` for `x` in about [−87.3, 88.4] (clamped outside), relative error below 1e-7.
///
/// Cephes `expf`: `x = n·ln 2 + r` with `n` rounded to nearest (by adding and subtracting
/// 1.5·2²³) and `ln 2` split in two for an exact reduction, `e^r ≈ 1 + r + r²·P(r)` with a
/// degree-5 `P`, and `2ⁿ` built from its exponent bits. No branches and no float-to-integer
/// conversion (which traps on NaN in Swift), so it vectorises; NaN propagates.
@inline(__always)
func expOf(_ x: Float) -> Float {
    var v = x < -87.33 ? -87.33 : x
    v = v > 88.37 ? 88.37 : v
    let t = mulAdd(v, 1.44269504088896341, 12582912.0)
    let n = t - 12582912.0
    var r = mulAdd(n, -0.693359375, v)
    r = mulAdd(n, 2.12194440e-4, r)
    let z = r * r
    var p: Float = 1.9875691500e-4
    p = mulAdd(p, r, 1.3981999507e-3)
    p = mulAdd(p, r, 8.3334519073e-3)
    p = mulAdd(p, r, 4.1665795894e-2)
    p = mulAdd(p, r, 1.6666665459e-1)
    p = mulAdd(p, r, 5.0000001201e-1)
    let y = mulAdd(p, z, r) + 1
    // t's low mantissa bits hold n (|n| ≤ 127); 2ⁿ has biased exponent n + 127.
    let scale = Float(bitPattern: (t.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
    return y * scale
}

/// Softmax of `count` values from `start`, in place, shifted by the maximum for stability.
private func softmaxRow(_ buffer: UnsafeMutableBufferPointer<Float>, start: Int, count: Int) {
    var maximum = -Float.infinity
    for i in start..<(start + count) { maximum = Swift.max(maximum, buffer[i]) }
    var sum: Float = 0
    for i in start..<(start + count) {
        let e = expf(buffer[i] - maximum)
        buffer[i] = e
        sum += e
    }
    for i in start..<(start + count) { buffer[i] /= sum }
}

// Sixteen lanes at once: the same operations in the same order as the scalar functions above,
// so every lane equals the scalar result bit for bit (the tests check it), whichever of the two
// a value goes through.

@inline(__always)
func expOf(_ x: SIMD16<Float>) -> SIMD16<Float> {
    var v = x.replacing(with: -87.33, where: x .< -87.33)
    v = v.replacing(with: 88.37, where: v .> 88.37)
    let t = mulAdd(v, SIMD16(repeating: 1.44269504088896341), SIMD16(repeating: 12582912.0))
    let n = t - 12582912.0
    var r = mulAdd(n, SIMD16(repeating: -0.693359375), v)
    r = mulAdd(n, SIMD16(repeating: 2.12194440e-4), r)
    let z = r * r
    var p = SIMD16<Float>(repeating: 1.9875691500e-4)
    p = mulAdd(p, r, SIMD16(repeating: 1.3981999507e-3))
    p = mulAdd(p, r, SIMD16(repeating: 8.3334519073e-3))
    p = mulAdd(p, r, SIMD16(repeating: 4.1665795894e-2))
    p = mulAdd(p, r, SIMD16(repeating: 1.6666665459e-1))
    p = mulAdd(p, r, SIMD16(repeating: 5.0000001201e-1))
    let y = mulAdd(p, z, r) + 1
    let bits = unsafeBitCast(t, to: SIMD16<UInt32>.self)
    let scale = unsafeBitCast((bits &- 0x4B40_0000 &+ 127) &<< 23, to: SIMD16<Float>.self)
    return y * scale
}

@inline(__always)
func sigmoidOf(_ x: SIMD16<Float>) -> SIMD16<Float> {
    1 / (1 + expOf(-x))
}

@_transparent
func tanhFraction(_ x: SIMD16<Float>) -> (numerator: SIMD16<Float>, denominator: SIMD16<Float>) {
    let xBits = unsafeBitCast(x, to: SIMD16<UInt32>.self)
    let a = unsafeBitCast(xBits & 0x7FFF_FFFF, to: SIMD16<Float>.self)
    let z = x * x
    var p = SIMD16<Float>(repeating: -5.70498872745e-3)
    p = mulAdd(p, z, SIMD16(repeating: 2.06390887954e-2))
    p = mulAdd(p, z, SIMD16(repeating: -5.37397155531e-2))
    p = mulAdd(p, z, SIMD16(repeating: 1.33314422036e-1))
    p = mulAdd(p, z, SIMD16(repeating: -3.33332819422e-1))
    let small = mulAdd(p * z, x, x)
    let e = expOf(-2 * a)
    let oneMinus = unsafeBitCast(1 - e, to: SIMD16<UInt32>.self)
    let large = unsafeBitCast((oneMinus & 0x7FFF_FFFF) | (xBits & 0x8000_0000), to: SIMD16<Float>.self)
    return (large.replacing(with: small, where: a .< 0.625),
            (1 + e).replacing(with: SIMD16(repeating: 1), where: a .< 0.625))
}

@_transparent
func tanhOf(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let (numerator, denominator) = tanhFraction(x)
    return numerator / denominator
}

// Products with σ, each with one division: the LSTM cell needs `σ(f)·c`, `σ(i)·tanh(g)` and
// `σ(o)·tanh(c')`, five divisions if σ and tanh are taken apart and three this way. With
// tanh as `num / den` (`tanhFraction`, `den = 1` on the polynomial branch),
// `σ(a)·tanh(b) = num / ((1 + e^−a)·den)`; `den ≤ 2`, so the denominator overflows only where
// σ(a) underflows anyway, giving 0. Relative error at most about 2.5e-7 (tested); NaN
// propagates.

/// `x · σ(a) = x / (1 + e^−a)`.
@inline(__always)
func timesSigmoid(_ x: Float, _ a: Float) -> Float {
    x / (1 + expOf(-a))
}

/// `σ(a) · tanh(b)` with one division.
@inline(__always)
func sigmoidTimesTanh(_ a: Float, _ b: Float) -> Float {
    let (numerator, denominator) = tanhFraction(b)
    return numerator / ((1 + expOf(-a)) * denominator)
}

@_transparent
func timesSigmoid(_ x: SIMD16<Float>, _ a: SIMD16<Float>) -> SIMD16<Float> {
    x / (1 + expOf(-a))
}

@_transparent
func sigmoidTimesTanh(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
    let (numerator, denominator) = tanhFraction(b)
    return numerator / ((1 + expOf(-a)) * denominator)
}

/// The LSTM cell arithmetic on one value and on sixteen lanes, as a type, so that the state
/// updates are specialised (no dispatch inside their loops):
/// `cell = σ(f) ⊙ c + σ(i) ⊙ φ(g)` and `output = σ(o) ⊙ φ(cell)`.
protocol LSTMArithmetic {
    func cell(forget f: Float, state c: Float, input i: Float, candidate g: Float) -> Float
    func output(_ o: Float, cell: Float) -> Float
    func cell(forget f: SIMD16<Float>, state c: SIMD16<Float>, input i: SIMD16<Float>,
              candidate g: SIMD16<Float>) -> SIMD16<Float>
    func output(_ o: SIMD16<Float>, cell: SIMD16<Float>) -> SIMD16<Float>
}

/// σ = the logistic function and φ = tanh, with three divisions per unit.
struct SigmoidTanhLSTM: LSTMArithmetic {
    @inline(__always)
    func cell(forget f: Float, state c: Float, input i: Float, candidate g: Float) -> Float {
        timesSigmoid(c, f) + sigmoidTimesTanh(i, g)
    }
    @inline(__always)
    func output(_ o: Float, cell: Float) -> Float { sigmoidTimesTanh(o, cell) }
    @inline(__always)
    func cell(forget f: SIMD16<Float>, state c: SIMD16<Float>, input i: SIMD16<Float>,
              candidate g: SIMD16<Float>) -> SIMD16<Float> {
        timesSigmoid(c, f) + sigmoidTimesTanh(i, g)
    }
    @inline(__always)
    func output(_ o: SIMD16<Float>, cell: SIMD16<Float>) -> SIMD16<Float> { sigmoidTimesTanh(o, cell) }
}

/// Any element-wise σ and φ, applied apart.
struct GeneralLSTM<S: LaneFunction, P: LaneFunction>: LSTMArithmetic {
    var sigma: S
    var phi: P
    @inline(__always)
    func cell(forget f: Float, state c: Float, input i: Float, candidate g: Float) -> Float {
        sigma(f) * c + sigma(i) * phi(g)
    }
    @inline(__always)
    func output(_ o: Float, cell: Float) -> Float { sigma(o) * phi(cell) }
    @inline(__always)
    func cell(forget f: SIMD16<Float>, state c: SIMD16<Float>, input i: SIMD16<Float>,
              candidate g: SIMD16<Float>) -> SIMD16<Float> {
        sigma(f) * c + sigma(i) * phi(g)
    }
    @inline(__always)
    func output(_ o: SIMD16<Float>, cell: SIMD16<Float>) -> SIMD16<Float> { sigma(o) * phi(cell) }
}

/// An element-wise function on one value and on sixteen lanes, as a type, so that the state
/// updates are specialised for the common activations (no dispatch inside their loops).
protocol LaneFunction {
    func callAsFunction(_ x: Float) -> Float
    func callAsFunction(_ x: SIMD16<Float>) -> SIMD16<Float>
}

struct SigmoidFunction: LaneFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { sigmoidOf(x) }
    @inline(__always) func callAsFunction(_ x: SIMD16<Float>) -> SIMD16<Float> { sigmoidOf(x) }
}

struct TanhFunction: LaneFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { tanhOf(x) }
    @inline(__always) func callAsFunction(_ x: SIMD16<Float>) -> SIMD16<Float> { tanhOf(x) }
}

/// Any element-wise activation, lane by lane.
struct ActivationFunction: LaneFunction {
    var activation: Activation
    init(_ activation: Activation) { self.activation = activation }
    @inline(__always) func callAsFunction(_ x: Float) -> Float { activation.elementwise(x) }
    func callAsFunction(_ x: SIMD16<Float>) -> SIMD16<Float> {
        var y = x
        for i in 0..<16 { y[i] = activation.elementwise(x[i]) }
        return y
    }
}

/// A test hook: `tanhOf`, `sigmoidOf` and `expOf` over a buffer, sixteen at a time, the tail
/// through the scalar functions.
func applyVectorised(_ function: (SIMD16<Float>) -> SIMD16<Float>, _ scalar: (Float) -> Float,
                      _ values: inout [Float]) {
    var i = 0
    values.withUnsafeMutableBufferPointer { p in
        while i + 16 <= p.count {
            storeLanes(function(loadLanes(p.baseAddress! + i)), p.baseAddress! + i)
            i += 16
        }
        while i < p.count { p[i] = scalar(p[i]); i += 1 }
    }
}

extension CellActivation {
    /// The function at `x`, as ONNX Runtime computes its recurrent activations (for
    /// `.standard`, the engine's own element-wise function). `.standard(.softmax)` is refused
    /// by validation before a run.
    @inline(__always)
    func callAsFunction(_ x: Float) -> Float {
        switch self {
        case .standard(let activation): return activation.elementwise(x)
        case let .affine(alpha, beta): return alpha * x + beta
        case let .leakyRelu(alpha): return x >= 0 ? x : alpha * x
        case let .thresholdedRelu(alpha): return x > alpha ? x : 0
        case let .scaledTanh(alpha, beta): return alpha * tanhOf(beta * x)
        case let .hardSigmoid(alpha, beta): return Swift.min(1, Swift.max(0, alpha * x + beta))
        case let .elu(alpha): return x >= 0 ? x : alpha * expm1f(x)
        }
    }

    /// False only for `.standard(.softmax)`, which is not element-wise.
    var isElementwise: Bool {
        if case .standard(let activation) = self { return activation.isElementwise }
        return true
    }
}
