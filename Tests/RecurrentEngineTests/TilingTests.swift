// The register tiles for each vector width (AVX-512, AVX2/arm64, SSE) against each other on
// this build: each accumulates every element in the same order, so all three give the same
// bits here, whichever the build selected. (KernelTests checks the build's own tiling against
// float64.)

import XCTest
@testable import RecurrentEngine

final class TilingTests: XCTestCase {
    /// `gemm` with every tiling, bit for bit equal to the build's, over row counts that reach
    /// every row block (8, 6, 4, 2, 1), full and partial panels, the one-row kernels over four,
    /// two and one panels, a reduction longer than one 256-step block, with and without a bias.
    func testEveryTilingGivesTheBuildsBits() {
        var rng = SeededGenerator(seed: 15)
        var checked = 0
        for n in [1, 7, 16, 17, 31, 32, 33, 64, 95, 128, 130, 257] {
            for k in [1, 3, 16, 17, 300] {
                let w = rng.floats(n * k)
                let packed = PackedMatrix(weight: w, out: n, in: k)
                let bias = rng.floats(n)
                for m in [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 17] where k < 300 || [1, 7, 13].contains(m) {
                    let a = rng.floats(m * k)
                    let c0 = rng.floats(m * n)
                    var results: [[Float]] = []
                    for tiling in [Tiling.build] + Tiling.allCases {
                        var c = c0, y = [Float](repeating: .nan, count: m * n)
                        a.withUnsafeBufferPointer { ap in
                            c.withUnsafeMutableBufferPointer { cp in
                                gemm(m: m, a: ap.baseAddress!, lda: k, b: packed, c: cp.baseAddress!, ldc: n, tiling: tiling)
                            }
                            withExtendedLifetime(packed) {
                                y.withUnsafeMutableBufferPointer { yp in
                                    gemm(m: m, a: ap.baseAddress!, lda: k, b: packed.base, k: k, n: n,
                                          panels: 0..<packed.panelCount, c: yp.baseAddress!, ldc: n, initial: bias,
                                          tiling: tiling)
                                }
                            }
                        }
                        results.append(c + y)
                    }
                    for (index, result) in results.enumerated().dropFirst() {
                        XCTAssertEqual(result.map(\.bitPattern), results[0].map(\.bitPattern),
                                       "m \(m) n \(n) k \(k): \(Tiling.allCases[index - 1]) differs from the build's tiling")
                    }
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 400)
    }

    /// The fused one-row LSTM and GRU steps in 32-unit blocks and in 16-unit blocks give the
    /// same bits, over the whole hidden size and over a slice of units (as a thread's share).
    func testFusedStepBlocksGiveTheSameBits() {
        var rng = SeededGenerator(seed: 16)
        for (hidden, k) in [(32, 32), (64, 48), (96, 96)] {
            for units in [0..<hidden, 32..<hidden] where !units.isEmpty {
                // LSTM: u [k, 4H], gates [4H], c [H].
                let u = PackedMatrix(rows: k, columns: 4 * hidden) { _, _ in Float.random(in: -0.5...0.5, using: &rng) }
                let h = rng.floats(k), gates = rng.floats(4 * hidden, scale: 2), c = rng.floats(hidden, scale: 2)
                var lstm: [[Float]] = []
                for tiling in Tiling.allCases {
                    var newC = [Float](repeating: 0, count: hidden), out = [Float](repeating: 0, count: hidden)
                    withExtendedLifetime(u) {
                        lstmStepRow(SigmoidTanhLSTM(), h: h, k: k, u: u.base, hidden: hidden, units: units, gates: gates,
                                     c: c, newC: &newC, out: &out, wait: nil, tiling: tiling)
                    }
                    lstm.append(newC + out)
                }
                XCTAssertEqual(lstm[1].map(\.bitPattern), lstm[0].map(\.bitPattern), "LSTM H \(hidden) units \(units)")
                XCTAssertEqual(lstm[2].map(\.bitPattern), lstm[0].map(\.bitPattern), "LSTM H \(hidden) units \(units)")
                // GRU: u [H, 2H], un [H, H], gates [3H].
                let ug = PackedMatrix(rows: hidden, columns: 2 * hidden) { _, _ in Float.random(in: -0.5...0.5, using: &rng) }
                let un = PackedMatrix(rows: hidden, columns: hidden) { _, _ in Float.random(in: -0.5...0.5, using: &rng) }
                let hg = rng.floats(hidden), gruGates = rng.floats(3 * hidden, scale: 2), newBias = rng.floats(hidden)
                var gru: [[Float]] = []
                for tiling in Tiling.allCases {
                    var out = [Float](repeating: 0, count: hidden)
                    withExtendedLifetime((ug, un)) {
                        gruStepRow(SigmoidFunction(), TanhFunction(), h: hg, u: ug.base, un: un.base, newBias: newBias,
                                    hidden: hidden, units: units, gates: gruGates, out: &out, wait: nil, tiling: tiling)
                    }
                    gru.append(out)
                }
                XCTAssertEqual(gru[1].map(\.bitPattern), gru[0].map(\.bitPattern), "GRU H \(hidden) units \(units)")
                XCTAssertEqual(gru[2].map(\.bitPattern), gru[0].map(\.bitPattern), "GRU H \(hidden) units \(units)")
                // The untouched units stay as they were.
                XCTAssertTrue(gru[0][0..<units.lowerBound].allSatisfy { $0 == 0 })
            }
        }
    }
}
