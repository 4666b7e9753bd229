// The fast paths against plain references: the blocked matrix kernel on odd sizes, the
// vectorised activations against float64, threaded runs against one thread, and the FLOP count.

import Foundation
import Synchronization
import XCTest
@testable import RecurrentEngine

final class KernelTests: XCTestCase {
    /// `C += A·B` through the packed kernel against a float64 sum, over every m, n in 1...17
    /// and k up to 17 (every row block size 8, 4, 2, 1, full and partial 32-column panels) plus
    /// wider n that reach the four-panel row kernel, and a reduction longer than one 256-step
    /// block (k = 300, for the m whose row blocks differ: 1, 2, 3, 4, 7, 8, 9, 15, 17); and
    /// each row alone equals the same row in the batch.
    func testBlockedProductMatchesNaiveReference() {
        var rng = SeededGenerator(seed: 5)
        var checked = 0
        for n in Array(1...17) + [32, 33, 95, 128, 130, 257] {
            for k in [1, 2, 3, 5, 8, 13, 16, 17, 300] {
                let w = rng.floats(n * k)  // [n, k] as the model stores it
                let packed = PackedMatrix(weight: w, out: n, in: k)
                for m in 1...17 where (n <= 17 || m <= 9) && (k <= 17 || [1, 2, 3, 4, 7, 8, 9, 15, 17].contains(m)) {
                    let a = rng.floats(m * k)
                    let c0 = rng.floats(m * n)
                    var c = c0
                    a.withUnsafeBufferPointer { ap in
                        c.withUnsafeMutableBufferPointer { cp in
                            gemm(m: m, a: ap.baseAddress!, lda: k, b: packed, c: cp.baseAddress!, ldc: n)
                        }
                    }
                    for i in 0..<m {
                        for j in 0..<n {
                            var sum = Double(c0[i * n + j])
                            var magnitude = abs(sum)
                            for p in 0..<k {
                                sum += Double(a[i * k + p]) * Double(w[j * k + p])
                                magnitude += abs(Double(a[i * k + p]) * Double(w[j * k + p]))
                            }
                            let error = abs(Double(c[i * n + j]) - sum)
                            XCTAssertLessThanOrEqual(error, 1e-6 * magnitude + 1e-7, "m \(m) n \(n) k \(k) at [\(i), \(j)]")
                        }
                    }
                    // Row i alone, bit for bit.
                    let i = m - 1
                    var row = Array(c0[(i * n)..<((i + 1) * n)])
                    a.withUnsafeBufferPointer { ap in
                        row.withUnsafeMutableBufferPointer { rp in
                            gemm(m: 1, a: ap.baseAddress! + i * k, lda: k, b: packed, c: rp.baseAddress!, ldc: n)
                        }
                    }
                    XCTAssertEqual(row, Array(c[(i * n)..<((i + 1) * n)]), "m \(m) n \(n) k \(k): row alone")
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 1000)
    }

    /// A column panel range computes exactly those columns and leaves the others alone.
    func testPanelRangesPartitionTheColumns() {
        var rng = SeededGenerator(seed: 6)
        let (m, n, k) = (3, 100, 7)
        let w = rng.floats(n * k), a = rng.floats(m * k)
        let packed = PackedMatrix(weight: w, out: n, in: k)
        var whole = [Float](repeating: 0, count: m * n)
        var parts = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { ap in
            withExtendedLifetime(packed) {
                let bp = UnsafeBufferPointer(start: packed.base, count: packed.panelCount * k * 32)
                whole.withUnsafeMutableBufferPointer { cp in
                    gemm(m: m, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, k: k, n: n,
                          panels: 0..<packed.panelCount, c: cp.baseAddress!, ldc: n)
                }
                parts.withUnsafeMutableBufferPointer { cp in
                    gemm(m: m, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, k: k, n: n,
                          panels: 0..<1, c: cp.baseAddress!, ldc: n)
                    XCTAssertTrue(cp[32..<n].allSatisfy { $0 == 0 })
                    gemm(m: m, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, k: k, n: n,
                          panels: 1..<packed.panelCount, c: cp.baseAddress!, ldc: n)
                }
            }
        }
        XCTAssertEqual(parts, whole)
    }

    /// `initial:` (a bias row) gives the same bits as copying the row into C and accumulating,
    /// for every kernel (8/4/2/1 rows, the four-panel row kernel, partial panels) and for a
    /// reduction longer than one block (k > 256).
    func testInitialRowMatchesCopyingItFirst() {
        var rng = SeededGenerator(seed: 10)
        for (n, k) in [(1, 3), (33, 7), (128, 5), (130, 300), (257, 17), (64, 513)] {
            let w = rng.floats(n * k)
            let packed = PackedMatrix(weight: w, out: n, in: k)
            let bias = rng.floats(n)
            for m in [1, 2, 3, 9, 17] {
                let a = rng.floats(m * k)
                var copied = (0..<m).flatMap { _ in bias }
                var direct = [Float](repeating: .nan, count: m * n)  // only written
                a.withUnsafeBufferPointer { ap in
                    copied.withUnsafeMutableBufferPointer { cp in
                        gemm(m: m, a: ap.baseAddress!, lda: k, b: packed, c: cp.baseAddress!, ldc: n)
                    }
                    bias.withUnsafeBufferPointer { bp in
                        direct.withUnsafeMutableBufferPointer { dp in
                            gemm(m: m, a: ap.baseAddress!, lda: k, b: packed.base, k: k, n: n,
                                  panels: 0..<packed.panelCount, c: dp.baseAddress!, ldc: n, initial: bp.baseAddress!)
                        }
                    }
                }
                XCTAssertEqual(direct, copied, "m \(m) n \(n) k \(k)")
            }
        }
    }

    /// Packed weights and scratch buffers start on a 64-byte boundary, so that no vector load
    /// of a panel row straddles two cache lines.
    func testPackedStorageIsAligned() {
        for (n, k) in [(1, 1), (3, 5), (100, 7), (1024, 256)] {
            let packed = PackedMatrix(weight: [Float](repeating: 1, count: n * k), out: n, in: k)
            XCTAssertEqual(Int(bitPattern: packed.base) % 64, 0)
            XCTAssertEqual(packed.values.count, packed.panelCount * k * 32)
            XCTAssertEqual(packed.element(row: k - 1, column: n - 1), 1)
            let scratch = allocateAligned(n * k)
            XCTAssertEqual(Int(bitPattern: scratch) % 64, 0)
            scratch.deallocate()
        }
        let a = PackedMatrix(weight: [1, 2, 3, 4, 5, 6], out: 2, in: 3)
        XCTAssertEqual(a, PackedMatrix(weight: [1, 2, 3, 4, 5, 6], out: 2, in: 3))
        XCTAssertNotEqual(a, PackedMatrix(weight: [1, 2, 3, 4, 5, 7], out: 2, in: 3))
    }

    /// The sixteen-lane tanh, σ and exp equal the scalar functions bit for bit (the state
    /// updates use the vector form for whole groups of sixteen units and the scalar form for
    /// the rest), including at the branch and clamp boundaries, infinities and NaN.
    func testVectorisedActivationsMatchScalarBitForBit() {
        var rng = SeededGenerator(seed: 11)
        var values: [Float] = [0, -0, .infinity, -.infinity, .nan, 0.625, -0.625, Float(0.625).nextDown, Float(-0.625).nextUp,
                               -87.33, 88.37, -87.34, 88.38, -43.7, 44.2, 1e-30, -1e-30, .leastNonzeroMagnitude,
                               .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 9, -9, 20, -20]
        values += (0..<20_000).map { _ in Float.random(in: -12...12, using: &rng) }
        values += (0..<4_000).map { _ in Float.random(in: -120...120, using: &rng) }
        values += (0..<3).map { _ in Float.random(in: -1...1, using: &rng) }  // a scalar tail
        func bits(_ v: [Float]) -> [UInt32] { v.map { $0.isNaN ? 0x7FC0_0000 : $0.bitPattern } }
        for (name, vector, scalar) in [("tanh", tanhOf as (SIMD16<Float>) -> SIMD16<Float>, tanhOf as (Float) -> Float),
                                       ("sigmoid", sigmoidOf, sigmoidOf), ("exp", expOf, expOf)] {
            var lanes = values
            applyVectorised(vector, scalar, &lanes)
            XCTAssertEqual(bits(lanes), bits(values.map(scalar)), name)
        }
        // The one-division products of the LSTM cell, pairing each value with a shuffled one.
        let partners = values.shuffled(using: &rng)
        for (name, vector, scalar) in [("σ·tanh", sigmoidTimesTanh as (SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>,
                                        sigmoidTimesTanh as (Float, Float) -> Float),
                                       ("x·σ", timesSigmoid, timesSigmoid)] {
            var lanes: [Float] = []
            var i = 0
            while i + 16 <= values.count {
                let a = SIMD16<Float>(values[i..<(i + 16)]), b = SIMD16<Float>(partners[i..<(i + 16)])
                let y = vector(a, b)
                lanes += (0..<16).map { y[$0] }
                i += 16
            }
            let expected = (0..<lanes.count).map { scalar(values[$0], partners[$0]) }
            XCTAssertEqual(bits(lanes), bits(expected), name)
        }
        // The lane-by-lane form for other activations agrees with the element-wise one.
        let x = SIMD16<Float>((0..<16).map { Float($0) / 3 - 2.5 })
        for activation in [Activation.relu, .hardSigmoid, .softsign, .elu] {
            let y = ActivationFunction(activation)(x)
            for i in 0..<16 { XCTAssertEqual(y[i], activation.elementwise(x[i]), "\(activation)") }
        }
    }

    /// tanh, σ and exp against float64 over [-40, 40] (about 3 million points), relative error.
    func testActivationsAreAccurate() {
        var worst: (tanh: Double, sigmoid: Double, exp: Double) = (0, 0, 0)
        var x: Float = -40
        while x < 40 {
            let d = Double(x)
            let tanhError = abs(Double(tanhOf(x)) - Foundation.tanh(d)) / max(abs(Foundation.tanh(d)), 1e-300)
            let sigmoid = 1 / (1 + Foundation.exp(-d))
            let sigmoidError = abs(Double(sigmoidOf(x)) - sigmoid) / sigmoid
            let expError = abs(Double(expOf(x)) - Foundation.exp(d)) / Foundation.exp(d)
            worst = (max(worst.tanh, x == 0 ? 0 : tanhError), max(worst.sigmoid, sigmoidError), max(worst.exp, expError))
            x = x.nextUp + max(abs(x) * 2e-5, 1e-8)
        }
        XCTAssertLessThan(worst.tanh, 2e-7)
        // σ(a)·tanh(b) and x·σ(a), against float64 on a grid of pairs.
        var worstProduct = 0.0, worstScaled = 0.0
        var a: Float = -30
        while a < 30 {
            var b: Float = -12
            while b < 12 {
                let exact = Foundation.tanh(Double(b)) / (1 + Foundation.exp(-Double(a)))
                if exact != 0 && abs(exact) > 1e-30 {
                    worstProduct = max(worstProduct, abs(Double(sigmoidTimesTanh(a, b)) - exact) / abs(exact))
                }
                let scaled = Double(b) / (1 + Foundation.exp(-Double(a)))
                if abs(scaled) > 1e-30 {
                    worstScaled = max(worstScaled, abs(Double(timesSigmoid(b, a)) - scaled) / abs(scaled))
                }
                b += 0.00731
            }
            a += 0.0377
        }
        print("σ·tanh worst relative error \(worstProduct), x·σ \(worstScaled)")
        XCTAssertLessThan(worstProduct, 3e-7)
        XCTAssertLessThan(worstScaled, 2e-7)
        XCTAssertLessThan(sigmoidTimesTanh(-100, 5), 1e-37)
        XCTAssertEqual(sigmoidTimesTanh(100, 100), 1)
        XCTAssertEqual(sigmoidTimesTanh(100, -100), -1)
        XCTAssertTrue(sigmoidTimesTanh(.nan, 1).isNaN)
        XCTAssertTrue(sigmoidTimesTanh(1, .nan).isNaN)
        XCTAssertLessThan(worst.sigmoid, 2e-7)
        XCTAssertLessThan(worst.exp, 2e-7)
        XCTAssertEqual(tanhOf(0), 0)
        XCTAssertEqual(tanhOf(100), 1)
        XCTAssertEqual(tanhOf(-100), -1)
        XCTAssertEqual(sigmoidOf(100), 1)
        XCTAssertLessThan(sigmoidOf(-100), 1e-37)
        XCTAssertTrue(tanhOf(.nan).isNaN)
        XCTAssertTrue(sigmoidOf(.nan).isNaN)
        // The buffer form (vectorised) agrees with the scalar form.
        var values = (0..<1000).map { Float($0 - 500) / 37 }
        let expected = values.map(tanhOf)
        Activation.tanh.apply(to: &values, rowLength: 1000)
        XCTAssertEqual(values, expected)
    }

    /// How work is split for each kind of layer and batch.
    func testPlans() {
        typealias Plan = RecurrentLayerPlan
        // Two directions on two threads: one each, the whole batch.
        var plan = Plan(threads: 2, directions: 2, batch: 1, columnSplittable: true)
        XCTAssertEqual(plan.groups.map(\.members), [1, 1])
        XCTAssertEqual(plan.work.count, 2)
        // One thread runs both directions in turn.
        plan = Plan(threads: 1, directions: 2, batch: 64, columnSplittable: true)
        XCTAssertEqual(plan.work.map(\.count), [2])
        // One direction, a large batch: row blocks in multiples of 8.
        plan = Plan(threads: 2, directions: 1, batch: 64, columnSplittable: true)
        XCTAssertEqual(plan.groups.map(\.rows), [0..<32, 32..<64])
        plan = Plan(threads: 2, directions: 1, batch: 17, columnSplittable: true)
        XCTAssertEqual(plan.groups.map(\.rows), [0..<16, 16..<17])
        // One direction, a small batch: the columns of every step.
        plan = Plan(threads: 2, directions: 1, batch: 3, columnSplittable: true)
        XCTAssertEqual(plan.groups.map(\.members), [2])
        XCTAssertEqual(plan.work.count, 2)
        // ... unless the update needs every unit (projected LSTM, GRU reset before the product).
        plan = Plan(threads: 2, directions: 1, batch: 3, columnSplittable: false)
        XCTAssertEqual(plan.groups.map(\.members), [1])
        XCTAssertEqual(shareOf(100, members: 2, member: 0, granule: 16), 0..<48)
        XCTAssertEqual(shareOf(100, members: 2, member: 1, granule: 16), 48..<100)
        XCTAssertEqual(shareOf(1, members: 3, member: 2), 0..<1)
        XCTAssertEqual(shareOf(1, members: 3, member: 0), 0..<0)
        // Units on whole panels, and each member's panels in every gate block.
        XCTAssertEqual(shareOf(256, members: 2, member: 1, granule: 32), 128..<256)
        XCTAssertEqual(shareOf(64, members: 3, member: 0, granule: 32), 0..<0)
        XCTAssertEqual(unitPanels(128..<256, hidden: 256, gates: 4, whole: false), [4..<8, 12..<16, 20..<24, 28..<32])
        XCTAssertEqual(unitPanels(0..<40, hidden: 40, gates: 3, whole: true), [0..<4])
    }

    /// Two and three threads give the single-threaded result bit for bit, for every cell variant,
    /// one or two directions, small and large batches (row and unit splits, the latter with a
    /// member that owns no unit at three threads), masks included; and a run without a mask equals
    /// one whose mask keeps every step. (More threads than the machine's two cores would only
    /// make the members spin for each other: every split the plan makes is reached by 2 or 3.)
    func testThreadedRunsMatchOneThreadExactly() throws {
        var rng = SeededGenerator(seed: 8)
        for variant in CellVariant.allCases {
            for directions in 1...2 {
                // 64: a multiple of the panel width, so small batches split each step's units
                // (two panels: one each on two threads, none for the third of three); 5: not
                // one, so only rows and directions are split.
                for hidden in [5, 64] {
                    let first = randomLayer(variant, inputSize: 7, hiddenSize: hidden, directions: directions, using: &rng)
                    let second = randomLayer(variant, inputSize: first.mergedOutputSize, hiddenSize: 9,
                                             directions: directions, maskedOutput: .carry, using: &rng)
                    let engine = try Engine(model: Model(layers: [.recurrent(first), .recurrent(second)]))
                    // 1: fused steps; 3: batched steps, units split; 17: rows split (16 + 1).
                    for batch in [1, 3, 17] {
                        let x = rng.tensor([batch, 3, 7], scale: 1.5)
                        let lengths = (0..<batch).map { ($0 * 3) % 4 }  // 0...3: empty to full
                        let one = try engine.run(.features(x), lengths: lengths, threads: 1)
                        // Two directions take one thread each; a third would only idle.
                        let counts = directions == 1 ? [2, 3] : [2]
                        for threads in counts {
                            let many = try engine.run(.features(x), lengths: lengths, threads: threads)
                            XCTAssertEqual(many.output, one.output, "\(variant) D\(directions) H\(hidden) B\(batch) threads \(threads)")
                            XCTAssertEqual(many.finalStates, one.finalStates, "\(variant) D\(directions) B\(batch) threads \(threads)")
                        }
                        // Without a mask the update writes h and c in place (no staging copies): the
                        // same bits as a mask that keeps every step, on any thread count.
                        let full = try engine.run(.features(x), lengths: Array(repeating: 3, count: batch), threads: 1)
                        for threads in [1] + counts {
                            let bare = try engine.run(.features(x), threads: threads)
                            XCTAssertEqual(bare.output, full.output, "\(variant) D\(directions) H\(hidden) B\(batch) unmasked, threads \(threads)")
                            XCTAssertEqual(bare.finalStates, full.finalStates, "\(variant) D\(directions) B\(batch) unmasked, threads \(threads)")
                        }
                    }
                }
            }
        }
    }

    /// Which stacks run as a pipeline (`pipelineLength`): consecutive one-direction layers,
    /// each after one that returns sequences, all but the first forward, as many as there are
    /// threads, at batches too small to split by rows.
    func testPipelineLength() throws {
        var rng = SeededGenerator(seed: 20)
        func prepared(_ layers: [RecurrentLayer]) throws -> [PreparedRecurrent] {
            try Engine(model: Model(layers: layers.map { .recurrent($0) })).layers.compactMap {
                if case .recurrent(let layer) = $0 { return layer }
                return nil
            }
        }
        let a = randomLayer(.lstm, inputSize: 3, hiddenSize: 4, using: &rng)
        let b = randomLayer(.gruAfter, inputSize: 4, hiddenSize: 5, using: &rng)
        let c = randomLayer(.rnnTanh, inputSize: 5, hiddenSize: 6, using: &rng)
        let abc = try prepared([a, b, c])
        XCTAssertEqual(pipelineLength(abc[...], threads: 1, batch: 1), 1)
        XCTAssertEqual(pipelineLength(abc[...], threads: 2, batch: 1), 2)
        XCTAssertEqual(pipelineLength(abc[...], threads: 3, batch: 1), 3)
        XCTAssertEqual(pipelineLength(abc[...], threads: 8, batch: 63), 3)
        XCTAssertEqual(pipelineLength(abc[...], threads: 8, batch: 64), 1)  // rows split instead
        XCTAssertEqual(pipelineLength(abc[2...], threads: 2, batch: 1), 1)
        var backward = b
        backward.goBackwards = true
        XCTAssertEqual(pipelineLength(try prepared([a, backward])[...], threads: 2, batch: 1), 1)
        var backwardFirst = a
        backwardFirst.goBackwards = true
        XCTAssertEqual(pipelineLength(try prepared([backwardFirst, b])[...], threads: 2, batch: 1), 2)
        let bidirectional = randomLayer(.lstm, inputSize: 3, hiddenSize: 2, directions: 2, using: &rng)
        XCTAssertEqual(pipelineLength(try prepared([bidirectional, b])[...], threads: 2, batch: 1), 1)
        var lastOnly = abc
        lastOnly[0].returnSequences = false
        XCTAssertEqual(pipelineLength(lastOnly[...], threads: 2, batch: 1), 1)
    }

    /// A pipelined stack (each layer on threads of its own, its steps reading the layer before's
    /// outputs as they are written) gives a layer-by-layer run's results bit for bit: every cell
    /// variant, 2 and 3 layers, a `goBackwards` first layer, masks with `.carry` and `.zero`
    /// outputs, a layer split over two threads (two layers on three threads), sequences of
    /// several projection chunks, and an embedding looked up per token.
    func testPipelinedStacksMatchLayerByLayerExactly() throws {
        var rng = SeededGenerator(seed: 21)
        let time = 18  // several projection chunks (16 and 8 steps at batch 1 and 2)
        for variant in CellVariant.allCases {
            for layerCount in [2, 3] {
                for backwardFirst in [false, true] {
                    var layers: [Layer] = []
                    var features = 5
                    for l in 0..<layerCount {
                        // 64 splits by units between two threads; 9 does not.
                        let layer = randomLayer(variant, inputSize: features, hiddenSize: [64, 9, 9][l],
                                                maskedOutput: l == 0 ? .carry : .zero,
                                                goBackwards: l == 0 && backwardFirst, using: &rng)
                        layers.append(.recurrent(layer))
                        features = layer.mergedOutputSize
                    }
                    let engine = try Engine(model: Model(layers: layers))
                    for batch in [1, 2] {
                        let x = rng.tensor([batch, time, 5], scale: 1.5)
                        let lengths = (0..<batch).map { time - ($0 * 13) % time }
                        for masked in [false, true] {
                            let one = try engine.run(.features(x), lengths: masked ? lengths : nil, threads: 1)
                            for threads in batch == 1 ? [2, 3] : [2] {
                                let many = try engine.run(.features(x), lengths: masked ? lengths : nil, threads: threads)
                                let label = "\(variant) \(layerCount) layers backward \(backwardFirst) B\(batch) masked \(masked) threads \(threads)"
                                XCTAssertEqual(many.output, one.output, label)
                                XCTAssertEqual(many.finalStates, one.finalStates, label)
                            }
                        }
                    }
                }
            }
        }
        for variant in [CellVariant.lstm, .gruAfter] {
            let vocabulary = 13
            let first = randomLayer(variant, inputSize: 6, hiddenSize: 32, using: &rng)
            let second = randomLayer(variant, inputSize: 32, hiddenSize: 32, returnSequences: false, using: &rng)
            let engine = try Engine(model: Model(layers: [
                .embedding(Embedding(table: rng.tensor([vocabulary, 6]), maskZero: true)),
                .recurrent(first), .recurrent(second),
            ]))
            let ids = (0..<(2 * time)).map { ($0 * 5 + 1) % vocabulary }
            for batch in [1, 2] {
                let one = try engine.run(.tokens(ids: Array(ids.prefix(batch * time)), batch: batch, time: time), threads: 1)
                let two = try engine.run(.tokens(ids: Array(ids.prefix(batch * time)), batch: batch, time: time), threads: 2)
                XCTAssertEqual(two.output, one.output, "embedding \(variant) B\(batch)")
                XCTAssertEqual(two.finalStates, one.finalStates, "embedding \(variant) B\(batch)")
            }
        }
    }

    /// A single row runs each step fused (product and cell arithmetic per block of 32 units,
    /// FusedStep.swift); inside a batch it runs the product and the update apart. Both give the
    /// same bits, for LSTM and GRU, σ/tanh and other activations, one or two directions, masked
    /// or not, on one and two threads (the latter splitting each step's units).
    func testFusedSingleRowStepMatchesBatchedExactly() throws {
        var rng = SeededGenerator(seed: 12)
        for variant in [CellVariant.lstm, .gruAfter] {
            for (activation, recurrentActivation) in [(Activation.tanh, Activation.sigmoid), (.softsign, .hardSigmoid)] {
                for directions in 1...2 {
                    // 64 splits each step's units between two threads; with two directions the
                    // threads take one direction each, where 32 reaches the same paths.
                    for hidden in directions == 1 ? [32, 64] : [32] {
                        var layer = randomLayer(variant, inputSize: 5, hiddenSize: hidden, directions: directions, using: &rng)
                        layer.activation = activation
                        layer.recurrentActivation = recurrentActivation
                        let engine = try Engine(model: Model(layers: [.recurrent(layer)]))
                        let batch = 3, time = 7
                        // Saturating inputs now and then, as in real models.
                        let x = rng.tensor([batch, time, 5], scale: 3)
                        let lengths = [7, 4, 1]
                        for threads in [1, 2] {
                            for masked in [false, true] {
                                let all = try engine.run(.features(x), lengths: masked ? lengths : nil, threads: threads)
                                for b in 0..<batch {
                                    let row = try Tensor(shape: [1, time, 5], values: Array(x.values[(b * time * 5)..<((b + 1) * time * 5)]))
                                    let alone = try engine.run(.features(row), lengths: masked ? [lengths[b]] : nil, threads: threads)
                                    let width = alone.output.shape[2]
                                    XCTAssertEqual(alone.output.values, Array(all.output.values[(b * time * width)..<((b + 1) * time * width)]),
                                                   "\(variant) \(activation) D\(directions) H\(hidden) row \(b) threads \(threads) masked \(masked)")
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// A recurrent layer right after an embedding looks up its input projection per token
    /// (`foldEmbedding`); the values equal the gathered-and-multiplied ones bit for bit, for
    /// every cell kind, one or two directions, masks from lengths and `maskZero`, row and unit
    /// splits over threads. An identity layer in between turns the lookup off.
    func testEmbeddingFoldedIntoInputProjectionMatchesExactly() throws {
        var rng = SeededGenerator(seed: 13)
        for variant in [CellVariant.lstm, .gruAfter, .gruBefore, .rnnTanh, .lstmProjected] {
            for directions in 1...2 {
                let vocabulary = 11, dimension = 6
                let embedding = Embedding(table: rng.tensor([vocabulary, dimension]), maskZero: directions == 2)
                let layer = randomLayer(variant, inputSize: dimension, hiddenSize: 32, directions: directions, using: &rng)
                let folded = try Engine(model: Model(layers: [.embedding(embedding), .recurrent(layer)]))
                let plain = try Engine(model: Model(layers: [.embedding(embedding), .activation(.linear), .recurrent(layer)]))
                guard case .recurrent(let prepared) = folded.layers[1] else { return XCTFail("layer 1 is not recurrent") }
                XCTAssertEqual(prepared.directions.map { $0.tokenProjection?.count }, Array(repeating: vocabulary * layer.kind.gateCount * 32, count: directions))
                for batch in [1, 3, 17] {
                    let ids = (0..<(batch * 6)).map { ($0 * 7 + batch) % vocabulary }
                    let lengths = (0..<batch).map { 6 - ($0 * 4) % 6 }
                    for threads in [1, 2] {
                        let a = try folded.run(.tokens(ids: ids, batch: batch, time: 6), lengths: lengths, threads: threads)
                        let b = try plain.run(.tokens(ids: ids, batch: batch, time: 6), lengths: lengths, threads: threads)
                        XCTAssertEqual(a.output, b.output, "\(variant) D\(directions) B\(batch) threads \(threads)")
                        XCTAssertEqual(a.finalStates, b.finalStates, "\(variant) D\(directions) B\(batch) threads \(threads)")
                    }
                }
                // Beyond the size limit the layer keeps the product.
                var layers = folded.layers
                if case .recurrent(var unfolded) = layers[1] {
                    for d in unfolded.directions.indices { unfolded.directions[d].tokenProjection = nil }
                    layers[1] = .recurrent(unfolded)
                }
                foldEmbedding(&layers, limit: vocabulary * layer.kind.gateCount * 32 * directions - 1)
                guard case .recurrent(let limited) = layers[1] else { return XCTFail("layer 1 is not recurrent") }
                XCTAssertTrue(limited.directions.allSatisfy { $0.tokenProjection == nil })
            }
        }
    }

    /// Runs from several threads at once share the worker pool (one holds it, the others start
    /// threads of their own) and each gets the single-threaded result, bit for bit.
    func testConcurrentRunsShareWorkersSafely() throws {
        var rng = SeededGenerator(seed: 14)
        let layer = randomLayer(.lstm, inputSize: 6, hiddenSize: 64, directions: 2, using: &rng)
        let gru = randomLayer(.gruAfter, inputSize: layer.mergedOutputSize, hiddenSize: 32, using: &rng)
        let engine = try Engine(model: Model(layers: [.recurrent(layer), .recurrent(gru)]))
        let inputs = (0..<4).map { batch in rng.tensor([batch + 1, 7, 6], scale: 2) }
        let expected = try inputs.map { try engine.run(.features($0), threads: 1).output }
        let results = Mutex<[Int: [Tensor]]>([:])
        DispatchQueue.concurrentPerform(iterations: 8) { caller in
            var outputs: [Tensor] = []
            for round in 0..<3 {
                let input = inputs[(caller + round) % inputs.count]
                outputs.append((try? engine.run(.features(input), threads: 1 + (caller + round) % 3).output) ?? Tensor(uncheckedZeros: [0]))
            }
            results.withLock { $0[caller] = outputs }
        }
        let all = results.withLock { $0 }
        XCTAssertEqual(all.count, 8)
        for (caller, outputs) in all {
            for (round, output) in outputs.enumerated() {
                XCTAssertEqual(output, expected[(caller + round) % inputs.count], "caller \(caller) round \(round)")
            }
        }
    }

    func testForwardFLOPs() throws {
        var rng = SeededGenerator(seed: 9)
        // The reference workload: 2-layer bidirectional LSTM 128 → 256, 256 steps (zero weights:
        // the count reads only the sizes).
        func lstm(_ input: Int, _ hidden: Int) throws -> RecurrentLayer {
            let direction = DirectionWeights(gateOrder: CellKind.lstm.internalGateOrder,
                                             inputWeight: try Tensor(zeros: [4 * hidden, input]),
                                             recurrentWeight: try Tensor(zeros: [4 * hidden, hidden]))
            return RecurrentLayer(kind: .lstm, inputSize: input, hiddenSize: hidden, directions: [direction, direction])
        }
        let first = try lstm(128, 256)
        let second = try lstm(512, 256)
        let reference = Model(layers: [.recurrent(first), .recurrent(second)])
        // Per step and row: 2 directions × (2·128·1024 + 2·256·1024 + 2·512·1024 + 2·256·1024).
        XCTAssertEqual(reference.forwardFLOPs(batch: 1, time: 256), 1_207_959_552)
        XCTAssertEqual(reference.forwardFLOPs(batch: 64, time: 256), 64 * 1_207_959_552)

        // GRU 3 → 4 with a projection-free dense on the sequence, then a readout and a dense.
        let gru = randomLayer(.gruAfter, inputSize: 3, hiddenSize: 4, using: &rng)
        let model = Model(layers: [
            .recurrent(gru),
            .dense(Dense(weight: rng.tensor([5, 4]))),
            .readout(.meanOverValidSteps),
            .dense(Dense(weight: rng.tensor([2, 5]))),
        ])
        let recurrentPerRow: Double = 2 * 3 * 12 + 2 * 4 * 12
        let densePerRow: Double = 2 * 4 * 5
        let sequenceRows: Double = 20
        let lastDense: Double = 2 * 5 * 2 * 2
        XCTAssertEqual(model.forwardFLOPs(batch: 2, time: 10), (recurrentPerRow + densePerRow) * sequenceRows + lastDense)

        // A projected LSTM counts its projection.
        let projected = randomLayer(.lstmProjected, inputSize: 2, hiddenSize: 6, using: &rng)
        let projectedFLOPs: Double = 2 * 2 * 24 + 2 * 5 * 24 + 2 * 6 * 5
        XCTAssertEqual(Model(layers: [.recurrent(projected)]).forwardFLOPs(batch: 1, time: 1), projectedFLOPs)
    }
}
