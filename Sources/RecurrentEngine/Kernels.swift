// Matrix kernels.
//
// Every weight the engine multiplies by is packed once, at load, into column panels of
// `PackedMatrix.panelWidth` (32) output columns: panel `q` holds `[k, 32]` contiguously, so
// the kernel streams panel rows in order along the reduction, and a panel slice stays in the
// L1 cache while every row block of the left operand passes over it.
//
// The register tile is chosen at compile time for the vector registers the build targets
// (`Tiling.build`, from `-target-cpu` through CCPUFeatures.h); the packed layout is the same
// for all:
// - AVX-512 (32 × 512-bit registers): 8 rows × 32 columns, 16 `SIMD16<Float>` accumulators,
//   2 vector loads and 8 broadcasts per 16 multiply-adds;
// - AVX2 (16 × 256-bit) and arm64 (32 × 128-bit, two per `SIMD8`): 6 rows × 16 columns, a
//   panel in two halves, 12 `SIMD8<Float>` accumulators + 2 loads + 1 broadcast = 15 registers
//   on AVX2 (the 8 × 32 tile needs 32 there and spills);
// - baseline x86-64 (16 × 128-bit SSE): 6 rows × 8 columns, a panel in four quarters, 12
//   `SIMD4<Float>` accumulators.
//
// Build settings (see the Makefile and bench/BENCHMARKS.md): a plain `swift build` targets
// baseline x86-64, with SSE only and no FMA. `make release` builds for the machine it runs on:
// `-Xswiftc -target-cpu -Xswiftc native`, plus `-Xswiftc -DRECURRENTKIT_FMA` where the CPU has
// FMA, which turns the multiply-add below into one fused instruction (`vfmadd231ps`). Without
// a CPU that has FMA, the fused form would become a call to `fmaf` per lane, hence the flag.
//
// Determinism: every output element is accumulated as `c = c + a_p · b_p` for `p` ascending
// from its initial value, whatever the tile, the row count, the row block it falls in, the
// column panel or the thread that computes it. A row computed alone and the same row computed
// in a larger batch agree bit for bit (streaming in chunks relies on this), and so do runs with
// different thread counts and the three tilings on one build.

internal import CCPUFeatures
#if canImport(Glibc)
import Glibc
#endif

#if arch(arm64) || RECURRENTKIT_FMA
/// `acc + a · b`, fused (one rounding).
@inline(__always)
func madd(_ acc: SIMD16<Float>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
    acc.addingProduct(a, b)
}
#else
/// `acc + a · b`, two roundings (a CPU without FMA, or a build that did not opt in).
@inline(__always)
func madd(_ acc: SIMD16<Float>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
    acc + a * b
}
#endif

/// The register tiles of `gemm` and of the fused one-row steps (FusedStep.swift). Every
/// tiling computes the same bits on a build; `build` is the one for the build's registers.
enum Tiling: CaseIterable, Sendable {
    /// 8 rows × 32 columns in `SIMD16` accumulators: AVX-512's 32 registers of 16 lanes.
    case wide
    /// 6 rows × 16 columns in `SIMD8`: AVX2's 16 registers of 8 lanes (arm64: pairs of its 32).
    case medium
    /// 6 rows × 8 columns in `SIMD4`: SSE's 16 registers of 4 lanes.
    case narrow

    /// The tiling for the registers the build targets (`-target-cpu`).
    @inline(__always)
    static var build: Tiling {
        #if arch(arm64)
        return .medium
        #else
        let bits = recurrentkit_target_vector_bits()
        return bits >= 512 ? .wide : (bits >= 256 ? .medium : .narrow)
        #endif
    }

    /// Units per block of the fused one-row steps: 32 (four LSTM gates × 2 `SIMD16` = 8 of 32
    /// registers), else 16 (4 `SIMD16` accumulators: 8 of AVX2's 16 registers).
    @inline(__always)
    var stepBlock: Int { self == .wide ? 32 : 16 }
}

/// A float vector the generic tiles run on. Each conformance implements the operations with its
/// concrete type's own operators (generic `SIMD` arithmetic goes lane by lane).
protocol Lanes {
    static var laneCount: Int { get }
    init(broadcast value: Float)
    init(loading p: UnsafePointer<Float>)
    func store(to p: UnsafeMutablePointer<Float>)
    /// `self + a · b`, as `madd`.
    func adding(_ a: Self, times b: Self) -> Self
}

extension SIMD8: Lanes where Scalar == Float {
    static var laneCount: Int { 8 }
    @inline(__always) init(broadcast value: Float) { self.init(repeating: value) }
    @inline(__always) init(loading p: UnsafePointer<Float>) { self = UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
    @inline(__always) func store(to p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: self, as: SIMD8<Float>.self) }
    @inline(__always) func adding(_ a: SIMD8<Float>, times b: SIMD8<Float>) -> SIMD8<Float> {
        #if arch(arm64) || RECURRENTKIT_FMA
        addingProduct(a, b)
        #else
        self + a * b
        #endif
    }
}

extension SIMD4: Lanes where Scalar == Float {
    static var laneCount: Int { 4 }
    @inline(__always) init(broadcast value: Float) { self.init(repeating: value) }
    @inline(__always) init(loading p: UnsafePointer<Float>) { self = UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self) }
    @inline(__always) func store(to p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: self, as: SIMD4<Float>.self) }
    @inline(__always) func adding(_ a: SIMD4<Float>, times b: SIMD4<Float>) -> SIMD4<Float> {
        #if arch(arm64) || RECURRENTKIT_FMA
        addingProduct(a, b)
        #else
        self + a * b
        #endif
    }
}

@inline(__always)
func loadLanes(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always)
func storeLanes(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

/// Float storage aligned to 64 bytes (one cache line, one AVX-512 register), so that no
/// vector load of a packed panel straddles two cache lines. (A Swift array's elements start
/// 32 bytes into a 16-byte-aligned allocation: there, every 64-byte load of a panel row is
/// split, which measured about 1.8× slower when the panels stream from the L2 cache.)
///
/// `@unchecked Sendable`: the floats are written only while their owner is built (a
/// `PackedMatrix` packs into its storage in its `init`, before anything can share it) and
/// are read-only afterwards, so threads that share a matrix only ever read it.
final class AlignedFloats: @unchecked Sendable {
    static let alignment = 64
    let base: UnsafeMutablePointer<Float>
    let count: Int

    /// `count` zeros.
    init(zeros count: Int) {
        self.count = count
        base = allocateAligned(count)
        base.initialize(repeating: 0, count: Swift.max(1, count))
    }

    deinit { base.deallocate() }
}

/// Allocates `count` floats (at least one) aligned to 64 bytes; free with `deallocate()`.
func allocateAligned(_ count: Int) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer.allocate(byteCount: Swift.max(1, count) * MemoryLayout<Float>.stride,
                                     alignment: AlignedFloats.alignment)
        .bindMemory(to: Float.self, capacity: Swift.max(1, count))
}

/// Asks the kernel to back the whole 2 MB pages inside `count` floats at `base`, not yet
/// touched, with huge pages: a large output is then faulted in a few hundred times instead of
/// once per 4 KB page. A hint only; nothing changes where the kernel does not take it.
func adviseHugePages(_ base: UnsafeMutablePointer<Float>, count: Int) {
    #if canImport(Glibc)
    let huge = 2 << 20
    guard count * MemoryLayout<Float>.stride >= 2 * huge else { return }
    let start = (Int(bitPattern: base) + huge - 1) / huge * huge
    let end = (Int(bitPattern: base) + count * MemoryLayout<Float>.stride) / huge * huge
    guard end > start, let pointer = UnsafeMutableRawPointer(bitPattern: start) else { return }
    _ = madvise(pointer, end - start, MADV_HUGEPAGE)
    #endif
}

/// A matrix `B` `[k, n]` (the right operand of `C = A · B`) packed into column panels.
///
/// Panel `q` covers columns `32q ..< 32q + 32` and holds `[k, 32]` row-major; columns past
/// `n` in the last panel are zero. The storage is 64-byte aligned (`AlignedFloats`), and so
/// is every panel row.
struct PackedMatrix: Sendable, Equatable {
    static let panelWidth = 32
    /// `panelCount · k · 32` values.
    let storage: AlignedFloats
    /// The reduction size `k` (rows of `B`).
    var rows: Int
    /// The output size `n` (columns of `B`).
    var columns: Int

    var panelCount: Int { (columns + Self.panelWidth - 1) / Self.panelWidth }

    /// The packed values; valid while this matrix (its storage) is alive.
    var base: UnsafePointer<Float> { UnsafePointer(storage.base) }

    /// A copy of the packed values, `panelCount · k · 32` of them.
    var values: [Float] { Array(UnsafeBufferPointer(start: storage.base, count: storage.count)) }

    /// Packs `B[p, j] = element(j, p)` for `p < k`, `j < n`.
    ///
    /// Reading through a closure lets a caller pack straight from a weight in `[out, in]`
    /// layout with its gate blocks permuted, without an intermediate copy.
    init(rows k: Int, columns n: Int, element: (_ column: Int, _ row: Int) -> Float) {
        let width = Self.panelWidth
        let panels = (n + width - 1) / width
        storage = AlignedFloats(zeros: panels * k * width)
        let out = storage.base
        for q in 0..<panels {
            for l in 0..<Swift.min(width, n - q * width) {
                let j = q * width + l
                for p in 0..<k { out[(q * k + p) * width + l] = element(j, p) }
            }
        }
        self.rows = k
        self.columns = n
    }

    /// Packs a row-major `[out, in]` weight `W` as `B = Wᵀ` (`k = in`, `n = out`).
    init(weight: [Float], out n: Int, in k: Int) {
        self.init(rows: k, columns: n) { j, p in weight[j * k + p] }
    }

    /// `B[p, j]`.
    func element(row p: Int, column j: Int) -> Float {
        let width = Self.panelWidth
        return storage.base[((j / width) * rows + p) * width + j % width]
    }

    static func == (a: PackedMatrix, b: PackedMatrix) -> Bool {
        a.rows == b.rows && a.columns == b.columns
            && (a.storage === b.storage || a.values == b.values)
    }
}

/// Accumulates `C[m, n] += A[m, k] · B[k, n]` over the column panels `panels` of `b`, or, with
/// `initial`, computes `C = initial + A · B` (the row `initial` `[n]` added to every row, as a
/// bias; C is then only written).
///
/// - `a`: `[m, k]` with row stride `lda`;
/// - `b`: the packed `B`, `[k, n]`;
/// - `c`: `[m, n]` with row stride `ldc`; only the columns of `panels` are read and written;
/// - `tiling`: the register tile (the build's; tests compare the others).
///
/// Either way each element is `c₀ + Σ_p a_p · b_p` accumulated for `p` ascending from its
/// initial value `c₀`, so `initial: bias` gives the same bits as copying the bias into C first.
func gemm(m: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, k: Int, n: Int,
           panels: Range<Int>, c: UnsafeMutablePointer<Float>, ldc: Int, initial: UnsafePointer<Float>? = nil,
           tiling: Tiling = .build) {
    guard m > 0, !panels.isEmpty else { return }
    let width = PackedMatrix.panelWidth
    guard k > 0 else {
        // Nothing to accumulate: C = initial, or unchanged.
        if let initial {
            let columns = Swift.min(n, panels.lowerBound * width)..<Swift.min(n, panels.upperBound * width)
            for i in 0..<m { (c + i * ldc + columns.lowerBound).update(from: initial + columns.lowerBound, count: columns.count) }
        }
        return
    }
    // Blocks of the reduction keep a panel slice ([kc, 32], 32 KB) in L1 across row blocks.
    let kc = 256
    var p0 = 0
    while p0 < k {
        let kb = Swift.min(kc, k - p0)
        // The first block starts from `initial` (stride 0: the same row for every row of C),
        // later ones from C.
        let start: UnsafePointer<Float> = p0 == 0 ? (initial ?? UnsafePointer(c)) : UnsafePointer(c)
        let ldStart = p0 == 0 && initial != nil ? 0 : ldc
        var q = panels.lowerBound
        while q < panels.upperBound {
            let fullPanels = (n - q * width) / width  // panels from q on with all 32 columns
            // One row: a matrix-vector product, bound by streaming B; eight independent
            // accumulator chains over as many full panels as they cover.
            if m == 1 {
                let span = tiling == .wide ? 4 : (tiling == .medium ? 2 : 1)
                if fullPanels >= span && q + span <= panels.upperBound {
                    let bRow = b + (q * k + p0) * width
                    switch tiling {
                    case .wide:
                        kernel1x128(a: a + p0, b: bRow, panelStride: k * width, k: kb, cIn: start + q * width, c: c + q * width)
                    case .medium:
                        row8(SIMD8<Float>.self, a: a + p0, b: bRow, panelStride: k * width, k: kb, cIn: start + q * width, c: c + q * width)
                    case .narrow:
                        row8(SIMD4<Float>.self, a: a + p0, b: bRow, panelStride: k * width, k: kb, cIn: start + q * width, c: c + q * width)
                    }
                    q += span
                    continue
                }
            }
            let bPanel = b + (q * k + p0) * width
            let columns = Swift.min(width, n - q * width)
            if columns == width {
                gemmPanel(tiling, m: m, a: a + p0, lda: lda, b: bPanel, k: kb, cIn: start + q * width, ldcIn: ldStart,
                       c: c + q * width, ldc: ldc)
            } else {
                // The last, partial panel: eight rows at a time through a zero-padded tile.
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 8 * width) { tile in
                    let t = tile.baseAddress!
                    var i = 0
                    while i < m {
                        let rows = Swift.min(8, m - i)
                        let inBlock = start + i * ldStart + q * width
                        let cBlock = c + i * ldc + q * width
                        for r in 0..<rows {
                            for l in 0..<width { t[r * width + l] = l < columns ? inBlock[r * ldStart + l] : 0 }
                        }
                        gemmPanel(tiling, m: rows, a: a + i * lda + p0, lda: lda, b: bPanel, k: kb, cIn: t, ldcIn: width,
                               c: t, ldc: width)
                        for r in 0..<rows {
                            for l in 0..<columns { cBlock[r * ldc + l] = t[r * width + l] }
                        }
                        i += rows
                    }
                }
            }
            q += 1
        }
        p0 += kb
    }
}

/// `C[m, 32] = Cin[m, 32] + A[m, k] · Bpanel[k, 32]` for one full panel, in the tiling's
/// register tiles: row blocks of 8 (then 4, 2, 1) over the whole panel, or column slices of
/// 16 or 8, each with row blocks of 6 (then 4, 2, 1), so that one slice of the panel stays in
/// L1 while the row blocks pass over it.
@inline(__always)
private func gemmPanel(_ tiling: Tiling, m: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, k: Int,
                    cIn: UnsafePointer<Float>, ldcIn: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    switch tiling {
    case .wide:
        var i = 0
        while i < m {
            let rows = m - i >= 8 ? 8 : (m - i >= 4 ? 4 : (m - i >= 2 ? 2 : 1))
            gemmKernel(rows: rows, a: a + i * lda, lda: lda, b: b, k: k, cIn: cIn + i * ldcIn, ldcIn: ldcIn,
                    c: c + i * ldc, ldc: ldc)
            i += rows
        }
    case .medium:
        gemmSlices(SIMD8<Float>.self, m: m, a: a, lda: lda, b: b, k: k, cIn: cIn, ldcIn: ldcIn, c: c, ldc: ldc)
    case .narrow:
        gemmSlices(SIMD4<Float>.self, m: m, a: a, lda: lda, b: b, k: k, cIn: cIn, ldcIn: ldcIn, c: c, ldc: ldc)
    }
}

/// One full panel in column slices of two vectors (`2 · V.laneCount` columns).
private func gemmSlices<V: Lanes>(_: V.Type, m: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, k: Int,
                                cIn: UnsafePointer<Float>, ldcIn: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let slice = 2 * V.laneCount
    var j = 0
    while j < PackedMatrix.panelWidth {
        var i = 0
        while i < m {
            let rows = m - i >= 6 ? 6 : (m - i >= 4 ? 4 : (m - i >= 2 ? 2 : 1))
            let ai = a + i * lda, ci = cIn + i * ldcIn + j, co = c + i * ldc + j
            switch rows {
            case 6: tile6(V.self, a: ai, lda: lda, b: b + j, k: k, cIn: ci, ldcIn: ldcIn, c: co, ldc: ldc)
            case 4: tile4(V.self, a: ai, lda: lda, b: b + j, k: k, cIn: ci, ldcIn: ldcIn, c: co, ldc: ldc)
            case 2: tile2(V.self, a: ai, lda: lda, b: b + j, k: k, cIn: ci, ldcIn: ldcIn, c: co, ldc: ldc)
            default: tile1(V.self, a: ai, b: b + j, k: k, cIn: ci, c: co)
            }
            i += rows
        }
        j += slice
    }
}

/// `C[6, 2L] = Cin[6, 2L] + A[6, k] · B[k, 2L]` (`L` lanes, `B` a slice of a packed panel, rows
/// 32 floats apart) with the tile in 12 registers.
private func tile6<V: Lanes>(_: V.Type, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, k: Int,
                               cIn: UnsafePointer<Float>, ldcIn: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let l = V.laneCount
    let a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda, a4 = a + 4 * lda, a5 = a + 5 * lda
    let i0 = cIn, i1 = cIn + ldcIn, i2 = cIn + 2 * ldcIn, i3 = cIn + 3 * ldcIn, i4 = cIn + 4 * ldcIn, i5 = cIn + 5 * ldcIn
    var x00 = V(loading: i0), x01 = V(loading: i0 + l), x10 = V(loading: i1), x11 = V(loading: i1 + l)
    var x20 = V(loading: i2), x21 = V(loading: i2 + l), x30 = V(loading: i3), x31 = V(loading: i3 + l)
    var x40 = V(loading: i4), x41 = V(loading: i4 + l), x50 = V(loading: i5), x51 = V(loading: i5 + l)
    var bp = b
    for p in 0..<k {
        let b0 = V(loading: bp), b1 = V(loading: bp + l)
        bp += PackedMatrix.panelWidth
        var s = V(broadcast: a0[p]); x00 = x00.adding(s, times: b0); x01 = x01.adding(s, times: b1)
        s = V(broadcast: a1[p]); x10 = x10.adding(s, times: b0); x11 = x11.adding(s, times: b1)
        s = V(broadcast: a2[p]); x20 = x20.adding(s, times: b0); x21 = x21.adding(s, times: b1)
        s = V(broadcast: a3[p]); x30 = x30.adding(s, times: b0); x31 = x31.adding(s, times: b1)
        s = V(broadcast: a4[p]); x40 = x40.adding(s, times: b0); x41 = x41.adding(s, times: b1)
        s = V(broadcast: a5[p]); x50 = x50.adding(s, times: b0); x51 = x51.adding(s, times: b1)
    }
    let c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc, c4 = c + 4 * ldc, c5 = c + 5 * ldc
    x00.store(to: c0); x01.store(to: c0 + l); x10.store(to: c1); x11.store(to: c1 + l)
    x20.store(to: c2); x21.store(to: c2 + l); x30.store(to: c3); x31.store(to: c3 + l)
    x40.store(to: c4); x41.store(to: c4 + l); x50.store(to: c5); x51.store(to: c5 + l)
}

/// `C[4, 2L] = Cin[4, 2L] + A[4, k] · B[k, 2L]`.
private func tile4<V: Lanes>(_: V.Type, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, k: Int,
                               cIn: UnsafePointer<Float>, ldcIn: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let l = V.laneCount
    let a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda
    let i0 = cIn, i1 = cIn + ldcIn, i2 = cIn + 2 * ldcIn, i3 = cIn + 3 * ldcIn
    var x00 = V(loading: i0), x01 = V(loading: i0 + l), x10 = V(loading: i1), x11 = V(loading: i1 + l)
    var x20 = V(loading: i2), x21 = V(loading: i2 + l), x30 = V(loading: i3), x31 = V(loading: i3 + l)
    var bp = b
    for p in 0..<k {
        let b0 = V(loading: bp), b1 = V(loading: bp + l)
        bp += PackedMatrix.panelWidth
        var s = V(broadcast: a0[p]); x00 = x00.adding(s, times: b0); x01 = x01.adding(s, times: b1)
        s = V(broadcast: a1[p]); x10 = x10.adding(s, times: b0); x11 = x11.adding(s, times: b1)
        s = V(broadcast: a2[p]); x20 = x20.adding(s, times: b0); x21 = x21.adding(s, times: b1)
        s = V(broadcast: a3[p]); x30 = x30.adding(s, times: b0); x31 = x31.adding(s, times: b1)
    }
    let c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc
    x00.store(to: c0); x01.store(to: c0 + l); x10.store(to: c1); x11.store(to: c1 + l)
    x20.store(to: c2); x21.store(to: c2 + l); x30.store(to: c3); x31.store(to: c3 + l)
}

/// `C[2, 2L] = Cin[2, 2L] + A[2, k] · B[k, 2L]`.
private func tile2<V: Lanes>(_: V.Type, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, k: Int,
                               cIn: UnsafePointer<Float>, ldcIn: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let l = V.laneCount
    let a0 = a, a1 = a + lda
    var x00 = V(loading: cIn), x01 = V(loading: cIn + l), x10 = V(loading: cIn + ldcIn), x11 = V(loading: cIn + ldcIn + l)
    var bp = b
    for p in 0..<k {
        let b0 = V(loading: bp), b1 = V(loading: bp + l)
        bp += PackedMatrix.panelWidth
        var s = V(broadcast: a0[p]); x00 = x00.adding(s, times: b0); x01 = x01.adding(s, times: b1)
        s = V(broadcast: a1[p]); x10 = x10.adding(s, times: b0); x11 = x11.adding(s, times: b1)
    }
    x00.store(to: c); x01.store(to: c + l); x10.store(to: c + ldc); x11.store(to: c + ldc + l)
}

/// `C[1, 2L] = Cin[1, 2L] + A[1, k] · B[k, 2L]`.
private func tile1<V: Lanes>(_: V.Type, a: UnsafePointer<Float>, b: UnsafePointer<Float>, k: Int,
                               cIn: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
    let l = V.laneCount
    var x0 = V(loading: cIn), x1 = V(loading: cIn + l)
    var bp = b
    for p in 0..<k {
        let s = V(broadcast: a[p])
        x0 = x0.adding(s, times: V(loading: bp)); x1 = x1.adding(s, times: V(loading: bp + l))
        bp += PackedMatrix.panelWidth
    }
    x0.store(to: c); x1.store(to: c + l)
}

/// `C[1, 8L] = Cin[1, 8L] + A[1, k] · B[k, 8L]`: eight accumulators over `8L / 32` consecutive
/// full panels `panelStride` apart (two for `SIMD8`, one for `SIMD4`).
private func row8<V: Lanes>(_: V.Type, a: UnsafePointer<Float>, b: UnsafePointer<Float>, panelStride: Int, k: Int,
                              cIn: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
    let l = V.laneCount, width = PackedMatrix.panelWidth
    // Accumulator t covers columns t·L ..< (t + 1)·L: panel t·L / 32, offset t·L % 32.
    @inline(__always) func at(_ t: Int) -> Int { (t * l / width) * panelStride + t * l % width }
    var x0 = V(loading: cIn), x1 = V(loading: cIn + l), x2 = V(loading: cIn + 2 * l), x3 = V(loading: cIn + 3 * l)
    var x4 = V(loading: cIn + 4 * l), x5 = V(loading: cIn + 5 * l), x6 = V(loading: cIn + 6 * l), x7 = V(loading: cIn + 7 * l)
    let o0 = at(0), o1 = at(1), o2 = at(2), o3 = at(3), o4 = at(4), o5 = at(5), o6 = at(6), o7 = at(7)
    var bp = b
    for p in 0..<k {
        let s = V(broadcast: a[p])
        x0 = x0.adding(s, times: V(loading: bp + o0)); x1 = x1.adding(s, times: V(loading: bp + o1))
        x2 = x2.adding(s, times: V(loading: bp + o2)); x3 = x3.adding(s, times: V(loading: bp + o3))
        x4 = x4.adding(s, times: V(loading: bp + o4)); x5 = x5.adding(s, times: V(loading: bp + o5))
        x6 = x6.adding(s, times: V(loading: bp + o6)); x7 = x7.adding(s, times: V(loading: bp + o7))
        bp += width
    }
    x0.store(to: c); x1.store(to: c + l); x2.store(to: c + 2 * l); x3.store(to: c + 3 * l)
    x4.store(to: c + 4 * l); x5.store(to: c + 5 * l); x6.store(to: c + 6 * l); x7.store(to: c + 7 * l)
}

@inline(__always)
private func gemmKernel(rows: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, k: Int,
                     cIn: UnsafePointer<Float>, ldcIn: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    switch rows {
    case 8: kernel8x32(a: a, lda: lda, b: b, k: k, cIn: cIn, ldcIn: ldcIn, c: c, ldc: ldc)
    case 4: kernel4x32(a: a, lda: lda, b: b, k: k, cIn: cIn, ldcIn: ldcIn, c: c, ldc: ldc)
    case 2: kernel2x32(a: a, lda: lda, b: b, k: k, cIn: cIn, ldcIn: ldcIn, c: c, ldc: ldc)
    default: kernel1x32(a: a, b: b, k: k, cIn: cIn, c: c)
    }
}

/// `C[8, 32] = Cin[8, 32] + A[8, k] · Bpanel[k, 32]` with the tile in 16 registers (`Cin` may
/// be `C`, or a bias row with `ldcIn = 0`).
private func kernel8x32(a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, k: Int,
                         cIn: UnsafePointer<Float>, ldcIn: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda
    let a4 = a + 4 * lda, a5 = a + 5 * lda, a6 = a + 6 * lda, a7 = a + 7 * lda
    let i0 = cIn, i1 = cIn + ldcIn, i2 = cIn + 2 * ldcIn, i3 = cIn + 3 * ldcIn
    let i4 = cIn + 4 * ldcIn, i5 = cIn + 5 * ldcIn, i6 = cIn + 6 * ldcIn, i7 = cIn + 7 * ldcIn
    var x00 = loadLanes(i0), x01 = loadLanes(i0 + 16), x10 = loadLanes(i1), x11 = loadLanes(i1 + 16)
    var x20 = loadLanes(i2), x21 = loadLanes(i2 + 16), x30 = loadLanes(i3), x31 = loadLanes(i3 + 16)
    var x40 = loadLanes(i4), x41 = loadLanes(i4 + 16), x50 = loadLanes(i5), x51 = loadLanes(i5 + 16)
    var x60 = loadLanes(i6), x61 = loadLanes(i6 + 16), x70 = loadLanes(i7), x71 = loadLanes(i7 + 16)
    var bp = b
    for p in 0..<k {
        let b0 = loadLanes(bp), b1 = loadLanes(bp + 16)
        bp += 32
        var s = SIMD16<Float>(repeating: a0[p]); x00 = madd(x00, s, b0); x01 = madd(x01, s, b1)
        s = SIMD16<Float>(repeating: a1[p]); x10 = madd(x10, s, b0); x11 = madd(x11, s, b1)
        s = SIMD16<Float>(repeating: a2[p]); x20 = madd(x20, s, b0); x21 = madd(x21, s, b1)
        s = SIMD16<Float>(repeating: a3[p]); x30 = madd(x30, s, b0); x31 = madd(x31, s, b1)
        s = SIMD16<Float>(repeating: a4[p]); x40 = madd(x40, s, b0); x41 = madd(x41, s, b1)
        s = SIMD16<Float>(repeating: a5[p]); x50 = madd(x50, s, b0); x51 = madd(x51, s, b1)
        s = SIMD16<Float>(repeating: a6[p]); x60 = madd(x60, s, b0); x61 = madd(x61, s, b1)
        s = SIMD16<Float>(repeating: a7[p]); x70 = madd(x70, s, b0); x71 = madd(x71, s, b1)
    }
    let c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc
    let c4 = c + 4 * ldc, c5 = c + 5 * ldc, c6 = c + 6 * ldc, c7 = c + 7 * ldc
    storeLanes(x00, c0); storeLanes(x01, c0 + 16); storeLanes(x10, c1); storeLanes(x11, c1 + 16)
    storeLanes(x20, c2); storeLanes(x21, c2 + 16); storeLanes(x30, c3); storeLanes(x31, c3 + 16)
    storeLanes(x40, c4); storeLanes(x41, c4 + 16); storeLanes(x50, c5); storeLanes(x51, c5 + 16)
    storeLanes(x60, c6); storeLanes(x61, c6 + 16); storeLanes(x70, c7); storeLanes(x71, c7 + 16)
}

/// `C[4, 32] = Cin[4, 32] + A[4, k] · Bpanel[k, 32]`.
private func kernel4x32(a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, k: Int,
                         cIn: UnsafePointer<Float>, ldcIn: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda
    let i0 = cIn, i1 = cIn + ldcIn, i2 = cIn + 2 * ldcIn, i3 = cIn + 3 * ldcIn
    var x00 = loadLanes(i0), x01 = loadLanes(i0 + 16), x10 = loadLanes(i1), x11 = loadLanes(i1 + 16)
    var x20 = loadLanes(i2), x21 = loadLanes(i2 + 16), x30 = loadLanes(i3), x31 = loadLanes(i3 + 16)
    var bp = b
    for p in 0..<k {
        let b0 = loadLanes(bp), b1 = loadLanes(bp + 16)
        bp += 32
        var s = SIMD16<Float>(repeating: a0[p]); x00 = madd(x00, s, b0); x01 = madd(x01, s, b1)
        s = SIMD16<Float>(repeating: a1[p]); x10 = madd(x10, s, b0); x11 = madd(x11, s, b1)
        s = SIMD16<Float>(repeating: a2[p]); x20 = madd(x20, s, b0); x21 = madd(x21, s, b1)
        s = SIMD16<Float>(repeating: a3[p]); x30 = madd(x30, s, b0); x31 = madd(x31, s, b1)
    }
    let c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc
    storeLanes(x00, c0); storeLanes(x01, c0 + 16); storeLanes(x10, c1); storeLanes(x11, c1 + 16)
    storeLanes(x20, c2); storeLanes(x21, c2 + 16); storeLanes(x30, c3); storeLanes(x31, c3 + 16)
}

/// `C[2, 32] = Cin[2, 32] + A[2, k] · Bpanel[k, 32]`.
private func kernel2x32(a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, k: Int,
                         cIn: UnsafePointer<Float>, ldcIn: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let a0 = a, a1 = a + lda
    var x00 = loadLanes(cIn), x01 = loadLanes(cIn + 16), x10 = loadLanes(cIn + ldcIn), x11 = loadLanes(cIn + ldcIn + 16)
    var bp = b
    for p in 0..<k {
        let b0 = loadLanes(bp), b1 = loadLanes(bp + 16)
        bp += 32
        var s = SIMD16<Float>(repeating: a0[p]); x00 = madd(x00, s, b0); x01 = madd(x01, s, b1)
        s = SIMD16<Float>(repeating: a1[p]); x10 = madd(x10, s, b0); x11 = madd(x11, s, b1)
    }
    storeLanes(x00, c); storeLanes(x01, c + 16); storeLanes(x10, c + ldc); storeLanes(x11, c + ldc + 16)
}

/// `C[1, 32] = Cin[1, 32] + A[1, k] · Bpanel[k, 32]`.
private func kernel1x32(a: UnsafePointer<Float>, b: UnsafePointer<Float>, k: Int, cIn: UnsafePointer<Float>,
                         c: UnsafeMutablePointer<Float>) {
    var x0 = loadLanes(cIn), x1 = loadLanes(cIn + 16)
    var bp = b
    for p in 0..<k {
        let s = SIMD16<Float>(repeating: a[p])
        x0 = madd(x0, s, loadLanes(bp)); x1 = madd(x1, s, loadLanes(bp + 16))
        bp += 32
    }
    storeLanes(x0, c); storeLanes(x1, c + 16)
}

/// `C[1, 128] = Cin[1, 128] + A[1, k] · B[k, 128]` over four consecutive full panels
/// `panelStride` apart.
private func kernel1x128(a: UnsafePointer<Float>, b: UnsafePointer<Float>, panelStride: Int, k: Int,
                          cIn: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
    var x0 = loadLanes(cIn), x1 = loadLanes(cIn + 16), x2 = loadLanes(cIn + 32), x3 = loadLanes(cIn + 48)
    var x4 = loadLanes(cIn + 64), x5 = loadLanes(cIn + 80), x6 = loadLanes(cIn + 96), x7 = loadLanes(cIn + 112)
    var p0 = b, p1 = b + panelStride, p2 = b + 2 * panelStride, p3 = b + 3 * panelStride
    for p in 0..<k {
        let s = SIMD16<Float>(repeating: a[p])
        x0 = madd(x0, s, loadLanes(p0)); x1 = madd(x1, s, loadLanes(p0 + 16))
        x2 = madd(x2, s, loadLanes(p1)); x3 = madd(x3, s, loadLanes(p1 + 16))
        x4 = madd(x4, s, loadLanes(p2)); x5 = madd(x5, s, loadLanes(p2 + 16))
        x6 = madd(x6, s, loadLanes(p3)); x7 = madd(x7, s, loadLanes(p3 + 16))
        p0 += 32; p1 += 32; p2 += 32; p3 += 32
    }
    storeLanes(x0, c); storeLanes(x1, c + 16); storeLanes(x2, c + 32); storeLanes(x3, c + 48)
    storeLanes(x4, c + 64); storeLanes(x5, c + 80); storeLanes(x6, c + 96); storeLanes(x7, c + 112)
}

/// Accumulates `C[m, n] += A[m, k] · B[k, n]` with `B` packed, over all its columns.
func gemm(m: Int, a: UnsafePointer<Float>, lda: Int, b: PackedMatrix, c: UnsafeMutablePointer<Float>, ldc: Int,
           tiling: Tiling = .build) {
    withExtendedLifetime(b) {
        gemm(m: m, a: a, lda: lda, b: b.base, k: b.rows, n: b.columns,
              panels: 0..<b.panelCount, c: c, ldc: ldc, tiling: tiling)
    }
}

/// Computes `Y[m, n] = X[m, k] · B + bias` into `y` (row stride `n`), `B` packed `[k, n]`.
///
/// - `x`: `[m, k]` (may be nil when `m == 0`); `bias`: `[n]` or nil (zero); `y` is overwritten.
func affine(x: UnsafePointer<Float>?, rows m: Int, weight: PackedMatrix, bias: UnsafePointer<Float>?,
             into y: UnsafeMutablePointer<Float>) {
    guard m > 0, let x else { return }
    let n = weight.columns
    if bias == nil { y.update(repeating: 0, count: m * n) }
    withExtendedLifetime(weight) {
        gemm(m: m, a: x, lda: weight.rows, b: weight.base, k: weight.rows, n: n,
              panels: 0..<weight.panelCount, c: y, ldc: n, initial: bias)
    }
}
