// What this build of the code was compiled for, and the check that the CPU running it has it.
//
// The CPU level comes from the build settings: `-Xswiftc -target-cpu -Xswiftc NAME` decides
// the instructions LLVM may emit (read back through the compiler's predefined macros, in
// CCPUFeatures.h), and `-Xswiftc -DRECURRENTKIT_FMA` makes the engine fuse its
// multiply-adds. `make release CPU=NAME` passes both.

import CCPUFeatures

/// A set of the x86-64 features a build can depend on (`enum recurrentkit_cpu_feature`).
public struct CPUFeatureSet: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Every feature known to the check, in order.
    public static let all = CPUFeatureSet(rawValue: (1 << UInt64(RECURRENTKIT_CPU_FEATURE_COUNT.rawValue)) - 1)

    /// The features named in a /proc/cpuinfo `flags` line (as recorded from a machine):
    /// Linux's names, separated by spaces; names the check does not know are ignored.
    public init(cpuinfoFlags: String) {
        let present = Set(cpuinfoFlags.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
        var bits: UInt64 = 0
        for feature in 0..<Int32(RECURRENTKIT_CPU_FEATURE_COUNT.rawValue) {
            if let flag = recurrentkit_cpu_feature_flag(feature), present.contains(String(cString: flag)) {
                bits |= 1 << UInt64(feature)
            }
        }
        self.init(rawValue: bits)
    }

    /// LLVM's names of the features in the set ("avx2", "fma", "avx512f"), in order.
    public var names: [String] {
        (0..<Int32(RECURRENTKIT_CPU_FEATURE_COUNT.rawValue)).compactMap { feature in
            rawValue & (1 << UInt64(feature)) == 0 ? nil : recurrentkit_cpu_feature_name(feature).map { String(cString: $0) }
        }
    }

    public static let fma = CPUFeatureSet(rawValue: 1 << UInt64(RECURRENTKIT_CPU_FMA.rawValue))
    public static let avx2 = CPUFeatureSet(rawValue: 1 << UInt64(RECURRENTKIT_CPU_AVX2.rawValue))
    public static let avx512f = CPUFeatureSet(rawValue: 1 << UInt64(RECURRENTKIT_CPU_AVX512F.rawValue))
}

/// The build's CPU level: what it needs, and what it says it is.
public enum BuildCPU {
    /// The features this build may execute: its target's (`-target-cpu`), plus FMA when the
    /// engine was built to fuse multiply-adds (`RECURRENTKIT_FMA`) on x86-64.
    public static var requiredFeatures: CPUFeatureSet {
        var features = CPUFeatureSet(rawValue: recurrentkit_target_features())
        #if RECURRENTKIT_FMA && (arch(x86_64) || arch(i386))
        features.insert(.fma)
        #endif
        return features
    }

    /// Whether the engine's multiply-adds are fused (one rounding): arm64 always, x86-64 when
    /// built with `RECURRENTKIT_FMA`.
    public static var fusedMultiplyAdd: Bool {
        #if arch(arm64) || RECURRENTKIT_FMA
        return true
        #else
        return false
        #endif
    }

    /// The width of the vector registers the engine's kernels are blocked for: 512, 256 or 128.
    public static var vectorBits: Int { Int(recurrentkit_target_vector_bits()) }

    /// The CPU level by name: "AVX-512", "AVX2", "AVX", "x86-64 baseline" or "arm64 NEON".
    public static var level: String {
        #if arch(arm64)
        return "arm64 NEON"
        #else
        let features = requiredFeatures
        if features.contains(.avx512f) { return "AVX-512" }
        if features.contains(.avx2) { return "AVX2" }
        if features.rawValue & (1 << UInt64(RECURRENTKIT_CPU_AVX.rawValue)) != 0 { return "AVX" }
        return "x86-64 baseline"
        #endif
    }

    /// One phrase for `--version` and benchmark reports, such as "AVX2, FMA" or
    /// "x86-64 baseline, no FMA".
    public static var summary: String {
        "\(level), \(fusedMultiplyAdd ? "FMA" : "no FMA")"
    }

    /// The features this CPU (and its operating system) supports, of those the check knows.
    public static var availableFeatures: CPUFeatureSet {
        CPUFeatureSet(rawValue: recurrentkit_cpu_features())
    }

    /// The one-line reason a build needing `required` cannot run on a CPU with `available`
    /// (the level, the missing features, the `make release CPU=…` to use), or nil.
    public static func refusal(required: CPUFeatureSet, available: CPUFeatureSet) -> String? {
        var line = [CChar](repeating: 0, count: 1024)
        let length = recurrentkit_cpu_refusal(required.rawValue, available.rawValue, &line, line.count)
        return length == 0 ? nil : String(decoding: line.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Exits with status 2 and one line on standard error (`PROGRAM: error: …`) when this CPU
    /// lacks a feature this build needs. Call it first thing in `main`: the check itself is
    /// compiled for the baseline, so it runs on any CPU of the architecture.
    public static func requireSupport(program: StaticString) {
        recurrentkit_require_cpu_features(requiredFeatures.rawValue,
                                          UnsafeRawPointer(program.utf8Start).assumingMemoryBound(to: CChar.self))
    }
}
