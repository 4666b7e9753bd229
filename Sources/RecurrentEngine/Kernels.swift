// Matrix kernels. Every weight the engine multiplies by is stored transposed (`[in, out]`)
// so that the innermost loop runs over contiguous output columns, which LLVM vectorises.

/// Accumulates a matrix product: `C[m, n] += Σ_k A[m, k] · B[k, n]`.
///
/// - `a`: `[m, k]` with row stride `lda`;
/// - `b`: `[k, n]` with row stride `ldb`;
/// - `c`: `[m, n]` with row stride `ldc`, updated in place.
///
/// Each output element is accumulated over `k` in ascending order whatever `m` is, so a row
/// computed alone and the same row computed in a larger batch agree bit for bit (streaming
/// in chunks relies on this).
@inline(__always)
func _gemmAccumulate(
    m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int
) {
    guard m > 0, n > 0, k > 0 else { return }
    for i in 0..<m {
        let aRow = a + i * lda
        let cRow = c + i * ldc
        for p in 0..<k {
            let av = aRow[p]
            let bRow = b + p * ldb
            // Contiguous over j: the vectorisable loop.
            for j in 0..<n {
                cRow[j] += av * bRow[j]
            }
        }
    }
}

/// Transposes a row-major `[rows, columns]` matrix into `[columns, rows]`.
func _transposed(_ values: [Float], rows: Int, columns: Int) -> [Float] {
    var out = [Float](repeating: 0, count: rows * columns)
    for r in 0..<rows {
        for c in 0..<columns {
            out[c * rows + r] = values[r * columns + c]
        }
    }
    return out
}

/// Computes `Y[m, n] = X[m, k] · Wᵀ + bias` into `y`.
///
/// - `x`: `[m, k]` (may be nil when `m == 0`);
/// - `weightT`: `[k, n]`; `bias`: `[n]` or nil (zero); `y`: `[m, n]`, overwritten.
func _affine(x: UnsafePointer<Float>?, rows m: Int, inputs k: Int,
             weightT: UnsafePointer<Float>, outputs n: Int, bias: UnsafePointer<Float>?,
             into y: UnsafeMutablePointer<Float>) {
    guard m > 0, let x else { return }
    for i in 0..<m {
        if let bias { (y + i * n).update(from: bias, count: n) } else { (y + i * n).update(repeating: 0, count: n) }
    }
    _gemmAccumulate(m: m, n: n, k: k, a: x, lda: k, b: weightT, ldb: n, c: y, ldc: n)
}
