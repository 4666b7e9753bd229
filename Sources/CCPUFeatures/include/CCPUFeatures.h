// What a build may execute, and what the CPU running it has.
//
// The first half is evaluated wherever this header is imported: Swift's clang importer sees
// the same target as the Swift code (`-Xswiftc -target-cpu -Xswiftc NAME`), so the macros
// below describe the instructions LLVM may emit in that module. The functions declared in
// the second half are compiled for the baseline of the architecture (C targets get no
// `-Xswiftc` flags), so they run on any CPU, before any code built for more.

#ifndef RECURRENTKIT_CCPUFEATURES_H
#define RECURRENTKIT_CCPUFEATURES_H

#include <stddef.h>
#include <stdint.h>

/// The x86-64 features a build can depend on, one bit each (bit = 1 << value). These are the
/// extensions LLVM emits on its own for a `-target-cpu`; the names are LLVM's and GCC's.
enum recurrentkit_cpu_feature {
    RECURRENTKIT_CPU_SSE3 = 0,
    RECURRENTKIT_CPU_SSSE3,
    RECURRENTKIT_CPU_SSE4_1,
    RECURRENTKIT_CPU_SSE4_2,
    RECURRENTKIT_CPU_POPCNT,
    RECURRENTKIT_CPU_AVX,
    RECURRENTKIT_CPU_AVX2,
    RECURRENTKIT_CPU_FMA,
    RECURRENTKIT_CPU_F16C,
    RECURRENTKIT_CPU_BMI,
    RECURRENTKIT_CPU_BMI2,
    RECURRENTKIT_CPU_LZCNT,
    RECURRENTKIT_CPU_MOVBE,
    RECURRENTKIT_CPU_AVX512F,
    RECURRENTKIT_CPU_AVX512CD,
    RECURRENTKIT_CPU_AVX512BW,
    RECURRENTKIT_CPU_AVX512DQ,
    RECURRENTKIT_CPU_AVX512VL,
    RECURRENTKIT_CPU_AVX512VNNI,
    RECURRENTKIT_CPU_AVX512BF16,
    RECURRENTKIT_CPU_AVX512FP16,
    RECURRENTKIT_CPU_AVX512VBMI,
    RECURRENTKIT_CPU_AVX512VBMI2,
    RECURRENTKIT_CPU_AVX512IFMA,
    RECURRENTKIT_CPU_AVX512BITALG,
    RECURRENTKIT_CPU_AVX512VPOPCNTDQ,
    RECURRENTKIT_CPU_AVXVNNI,
    RECURRENTKIT_CPU_FEATURE_COUNT
};

#define RECURRENTKIT_BIT(feature) (UINT64_C(1) << (feature))

/// The features the including module was compiled for (the compiler's predefined macros).
static inline uint64_t recurrentkit_target_features(void) {
    uint64_t f = 0;
#if defined(__SSE3__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_SSE3);
#endif
#if defined(__SSSE3__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_SSSE3);
#endif
#if defined(__SSE4_1__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_SSE4_1);
#endif
#if defined(__SSE4_2__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_SSE4_2);
#endif
#if defined(__POPCNT__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_POPCNT);
#endif
#if defined(__AVX__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX);
#endif
#if defined(__AVX2__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX2);
#endif
#if defined(__FMA__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_FMA);
#endif
#if defined(__F16C__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_F16C);
#endif
#if defined(__BMI__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_BMI);
#endif
#if defined(__BMI2__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_BMI2);
#endif
#if defined(__LZCNT__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_LZCNT);
#endif
#if defined(__MOVBE__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_MOVBE);
#endif
#if defined(__AVX512F__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512F);
#endif
#if defined(__AVX512CD__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512CD);
#endif
#if defined(__AVX512BW__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512BW);
#endif
#if defined(__AVX512DQ__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512DQ);
#endif
#if defined(__AVX512VL__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512VL);
#endif
#if defined(__AVX512VNNI__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512VNNI);
#endif
#if defined(__AVX512BF16__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512BF16);
#endif
#if defined(__AVX512FP16__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512FP16);
#endif
#if defined(__AVX512VBMI__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512VBMI);
#endif
#if defined(__AVX512VBMI2__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512VBMI2);
#endif
#if defined(__AVX512IFMA__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512IFMA);
#endif
#if defined(__AVX512BITALG__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512BITALG);
#endif
#if defined(__AVX512VPOPCNTDQ__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512VPOPCNTDQ);
#endif
#if defined(__AVXVNNI__)
    f |= RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVXVNNI);
#endif
    return f;
}

/// The width in bits of the widest float vector registers of the including module's target:
/// 512 (AVX-512: 32 registers), 256 (AVX/AVX2: 16 registers) or 128 (x86-64's SSE and
/// arm64's NEON). The engine picks its register tiles by it.
static inline int recurrentkit_target_vector_bits(void) {
#if defined(__AVX512F__)
    return 512;
#elif defined(__AVX__)
    return 256;
#else
    return 128;
#endif
}

/// The features of `enum recurrentkit_cpu_feature` that this CPU and its operating system
/// support (`__builtin_cpu_supports`, which checks the OS saves the wider registers too).
/// On other architectures, every bit: a build there depends on none of them.
uint64_t recurrentkit_cpu_features(void);

/// LLVM's and GCC's name of a feature ("avx512f", "fma", "sse4.1"), or NULL.
const char *recurrentkit_cpu_feature_name(int feature);

/// Linux's name of a feature in /proc/cpuinfo's flags ("pni" for sse3, "abm" for lzcnt), or
/// NULL; recorded feature lists are written that way.
const char *recurrentkit_cpu_feature_flag(int feature);

/// The one-line reason a build that needs `required` cannot run on a CPU with `available`,
/// written into `line` (at most `size` bytes, NUL-terminated): the level it was built for,
/// the missing features and the build command to use instead. Returns 0 (and writes an
/// empty line) when nothing is missing, else the length of the full line.
size_t recurrentkit_cpu_refusal(uint64_t required, uint64_t available, char *line, size_t size);

/// When this CPU lacks a feature in `required`, prints `PROGRAM: error: ` and the refusal to
/// standard error and exits with status 2; otherwise returns.
void recurrentkit_require_cpu_features(uint64_t required, const char *program);

#endif
