// The start-up check's decision on recorded CPU feature lists: the decision takes the sets as
// input, so a build for AVX-512 can be refused on an AVX2 machine's list here whatever CPU
// runs the tests.

import CPUFeatures
import XCTest

final class CPUCheckTests: XCTestCase {
    // /proc/cpuinfo flags, recorded.
    /// AMD EPYC (Zen, family 23) in a KVM guest: AVX2 and FMA, no AVX-512.
    static let epycZen = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid extd_apicid tsc_known_freq pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext ssbd ibpb vmmcall fsgsbase tsc_adjust bmi1 avx2 smep bmi2 rdseed adx smap clflushopt sha_ni xsaveopt xsavec xgetbv1 clzero xsaveerptr virt_ssbd arat"
    /// Intel Xeon, Sapphire Rapids class, in a KVM guest: AVX-512 F/CD/BW/DQ/VL/VNNI/BF16/FP16.
    static let sapphireRapids = """
        fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht \
        syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid tsc_known_freq pni \
        pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c \
        rdrand hypervisor lahf_lm abm 3dnowprefetch cpuid_fault invpcid_single ssbd ibrs ibpb stibp \
        ibrs_enhanced fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid avx512f avx512dq rdseed adx smap \
        avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves avx_vnni \
        avx512_bf16 wbnoinvd arat avx512vbmi umip pku ospke waitpkg avx512_vbmi2 gfni vaes vpclmulqdq \
        avx512_vnni avx512_bitalg tme avx512_vpopcntdq la57 rdpid bus_lock_detect cldemote movdiri movdir64b \
        fsrm md_clear serialize tsxldtrk amx_bf16 avx512_fp16 amx_tile amx_int8 flush_l1d arch_capabilities
        """
    /// Intel Atom C2750 (Silvermont): SSE4.2, no AVX.
    static let atomSilvermont = """
        fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse \
        sse2 ss ht tm pbe syscall nx rdtscp lm constant_tsc arch_perfmon pebs bts rep_good nopl xtopology \
        nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx est tm2 ssse3 cx16 xtpr pdcm \
        sse4_1 sse4_2 movbe popcnt tsc_deadline_timer aes rdrand lahf_lm 3dnowprefetch cpuid_fault epb pti \
        tpr_shadow vnmi flexpriority ept vpid tsc_adjust smep erms dtherm ida arat md_clear
        """

    // What clang defines for each -march (`clang -march=NAME -dM -E`), in /proc/cpuinfo's names.
    static let haswellBuild = CPUFeatureSet(cpuinfoFlags: "pni ssse3 sse4_1 sse4_2 popcnt avx avx2 fma f16c bmi1 bmi2 abm movbe")
    static let skylakeAVX512Build = haswellBuild.union(CPUFeatureSet(cpuinfoFlags: "avx512f avx512cd avx512bw avx512dq avx512vl"))
    static let sapphireRapidsBuild = skylakeAVX512Build.union(CPUFeatureSet(cpuinfoFlags: """
        avx512_vnni avx512_bf16 avx512_fp16 avx512vbmi avx512_vbmi2 avx512ifma avx512_bitalg avx512_vpopcntdq avx_vnni
        """))
    static let baselineBuild = CPUFeatureSet()

    func testAVX512BuildIsRefusedOnAnAVX2CPUInOneLine() {
        let available = CPUFeatureSet(cpuinfoFlags: Self.epycZen)
        XCTAssertEqual(BuildCPU.refusal(required: Self.skylakeAVX512Build, available: available),
                       "this build is for AVX-512 with FMA, and this CPU lacks avx512f, avx512cd, avx512bw, avx512dq, "
                       + "avx512vl; build for it with `make release CPU=haswell` (or `make release` on this machine)")
        let sapphire = BuildCPU.refusal(required: Self.sapphireRapidsBuild, available: available)
        XCTAssertEqual(sapphire, "this build is for AVX-512 with FMA, and this CPU lacks avx512f, avx512cd, avx512bw, "
                       + "avx512dq, avx512vl, avx512vnni, avx512bf16, avx512fp16, avx512vbmi, avx512vbmi2, avx512ifma, "
                       + "avx512bitalg, avx512vpopcntdq, avxvnni; build for it with `make release CPU=haswell` "
                       + "(or `make release` on this machine)")
        XCTAssertFalse(sapphire!.contains("\n"))
    }

    func testAVX2BuildIsRefusedWithoutAVXAndPointsToTheBaseline() {
        let available = CPUFeatureSet(cpuinfoFlags: Self.atomSilvermont)
        XCTAssertEqual(BuildCPU.refusal(required: Self.haswellBuild, available: available),
                       "this build is for AVX2 with FMA, and this CPU lacks avx, avx2, fma, f16c, bmi, bmi2, lzcnt; "
                       + "build for it with `make release CPU=x86-64` (or `make release` on this machine)")
        // FMA alone (a baseline build with RECURRENTKIT_FMA) is named too.
        XCTAssertEqual(BuildCPU.refusal(required: Self.baselineBuild.union(.fma), available: available),
                       "this build is for x86-64 with FMA, and this CPU lacks fma; "
                       + "build for it with `make release CPU=x86-64` (or `make release` on this machine)")
    }

    func testBuildsRunWhereTheCPUHasEverything() {
        let epyc = CPUFeatureSet(cpuinfoFlags: Self.epycZen)
        let sapphire = CPUFeatureSet(cpuinfoFlags: Self.sapphireRapids)
        let atom = CPUFeatureSet(cpuinfoFlags: Self.atomSilvermont)
        XCTAssertNil(BuildCPU.refusal(required: Self.haswellBuild, available: epyc))
        XCTAssertNil(BuildCPU.refusal(required: Self.haswellBuild, available: sapphire))
        XCTAssertNil(BuildCPU.refusal(required: Self.sapphireRapidsBuild, available: sapphire))
        XCTAssertNil(BuildCPU.refusal(required: Self.skylakeAVX512Build, available: sapphire))
        for cpu in [epyc, sapphire, atom, CPUFeatureSet()] {
            XCTAssertNil(BuildCPU.refusal(required: Self.baselineBuild, available: cpu))
        }
    }

    /// /proc/cpuinfo's names map to the check's: sse3 is "pni", lzcnt "abm", bmi "bmi1".
    func testRecordedListsAreRead() {
        XCTAssertEqual(Self.haswellBuild.names,
                       ["sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi", "bmi2",
                        "lzcnt", "movbe"])
        XCTAssertEqual(CPUFeatureSet(cpuinfoFlags: Self.sapphireRapids), CPUFeatureSet.all)
        XCTAssertEqual(CPUFeatureSet(cpuinfoFlags: Self.atomSilvermont).names,
                       ["sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "movbe"])
    }

    /// The build under test describes itself consistently, and the CPU running it has what it
    /// needs (else this process would not have got here).
    func testThisBuildDescribesItself() {
        let required = BuildCPU.requiredFeatures
        XCTAssertNil(BuildCPU.refusal(required: required, available: BuildCPU.availableFeatures))
        XCTAssertEqual(required.contains(.fma), BuildCPU.fusedMultiplyAdd || required.contains(.fma))
        switch BuildCPU.vectorBits {
        case 512: XCTAssertEqual(BuildCPU.level, "AVX-512")
        case 256: XCTAssertTrue(["AVX2", "AVX"].contains(BuildCPU.level))
        default: XCTAssertTrue(["x86-64 baseline", "arm64 NEON"].contains(BuildCPU.level))
        }
        XCTAssertTrue(BuildCPU.summary.hasPrefix(BuildCPU.level + ", "))
        XCTAssertTrue(BuildCPU.summary.hasSuffix(BuildCPU.fusedMultiplyAdd ? ", FMA" : ", no FMA"))
    }
}
