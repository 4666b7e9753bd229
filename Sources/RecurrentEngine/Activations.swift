// Activation functions, computed in Float with the C library's correctly rounded-ish
// `expf`/`tanhf`/`erff` so results stay within about 1 ulp of PyTorch's float32 kernels.
// A faster approximation is a separate concern; accuracy comes first.

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
                _softmaxRow(buffer, start: start, count: rowLength)
                start += rowLength
            }
        default:
            for i in buffer.indices { buffer[i] = _elementwise(buffer[i]) }
        }
    }

    /// Applies the function in place to `values`, read as rows of `rowLength` values.
    func apply(to values: inout [Float], rowLength: Int) {
        values.withUnsafeMutableBufferPointer { apply(to: $0, rowLength: rowLength) }
    }

    /// The element-wise function at `x`. Must not be called for `.softmax`.
    @inline(__always)
    func _elementwise(_ x: Float) -> Float {
        switch self {
        case .linear: return x
        case .relu: return x > 0 ? x : (x.isNaN ? x : 0)
        case .tanh: return tanhf(x)
        case .sigmoid: return _sigmoid(x)
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
            return x * _sigmoid(x)
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

/// The logistic function `σ(x) = 1 / (1 + exp(−x))`.
@inline(__always)
func _sigmoid(_ x: Float) -> Float {
    1 / (1 + expf(-x))
}

/// Softmax of `count` values from `start`, in place, shifted by the maximum for stability.
private func _softmaxRow(_ buffer: UnsafeMutableBufferPointer<Float>, start: Int, count: Int) {
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
