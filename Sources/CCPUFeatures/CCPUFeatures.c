#include "CCPUFeatures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[RECURRENTKIT_CPU_FEATURE_COUNT] = {
    "sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi", "bmi2",
    "lzcnt", "movbe", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512vnni",
    "avx512bf16", "avx512fp16", "avx512vbmi", "avx512vbmi2", "avx512ifma", "avx512bitalg",
    "avx512vpopcntdq", "avxvnni",
};

static const char *const flags[RECURRENTKIT_CPU_FEATURE_COUNT] = {
    "pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi1", "bmi2",
    "abm", "movbe", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "avx512vbmi", "avx512_vbmi2", "avx512ifma", "avx512_bitalg",
    "avx512_vpopcntdq", "avx_vnni",
};

const char *recurrentkit_cpu_feature_name(int feature) {
    return feature >= 0 && feature < RECURRENTKIT_CPU_FEATURE_COUNT ? names[feature] : NULL;
}

const char *recurrentkit_cpu_feature_flag(int feature) {
    return feature >= 0 && feature < RECURRENTKIT_CPU_FEATURE_COUNT ? flags[feature] : NULL;
}

uint64_t recurrentkit_cpu_features(void) {
#if defined(__x86_64__) || defined(__i386__)
    // The builtin takes a literal name, hence one line per feature.
    __builtin_cpu_init();
    uint64_t f = 0;
#define HAS(bit, name) if (__builtin_cpu_supports(name)) f |= RECURRENTKIT_BIT(bit)
    HAS(RECURRENTKIT_CPU_SSE3, "sse3");
    HAS(RECURRENTKIT_CPU_SSSE3, "ssse3");
    HAS(RECURRENTKIT_CPU_SSE4_1, "sse4.1");
    HAS(RECURRENTKIT_CPU_SSE4_2, "sse4.2");
    HAS(RECURRENTKIT_CPU_POPCNT, "popcnt");
    HAS(RECURRENTKIT_CPU_AVX, "avx");
    HAS(RECURRENTKIT_CPU_AVX2, "avx2");
    HAS(RECURRENTKIT_CPU_FMA, "fma");
    HAS(RECURRENTKIT_CPU_F16C, "f16c");
    HAS(RECURRENTKIT_CPU_BMI, "bmi");
    HAS(RECURRENTKIT_CPU_BMI2, "bmi2");
    HAS(RECURRENTKIT_CPU_LZCNT, "lzcnt");
    HAS(RECURRENTKIT_CPU_MOVBE, "movbe");
    HAS(RECURRENTKIT_CPU_AVX512F, "avx512f");
    HAS(RECURRENTKIT_CPU_AVX512CD, "avx512cd");
    HAS(RECURRENTKIT_CPU_AVX512BW, "avx512bw");
    HAS(RECURRENTKIT_CPU_AVX512DQ, "avx512dq");
    HAS(RECURRENTKIT_CPU_AVX512VL, "avx512vl");
    HAS(RECURRENTKIT_CPU_AVX512VNNI, "avx512vnni");
    HAS(RECURRENTKIT_CPU_AVX512BF16, "avx512bf16");
    HAS(RECURRENTKIT_CPU_AVX512FP16, "avx512fp16");
    HAS(RECURRENTKIT_CPU_AVX512VBMI, "avx512vbmi");
    HAS(RECURRENTKIT_CPU_AVX512VBMI2, "avx512vbmi2");
    HAS(RECURRENTKIT_CPU_AVX512IFMA, "avx512ifma");
    HAS(RECURRENTKIT_CPU_AVX512BITALG, "avx512bitalg");
    HAS(RECURRENTKIT_CPU_AVX512VPOPCNTDQ, "avx512vpopcntdq");
    HAS(RECURRENTKIT_CPU_AVXVNNI, "avxvnni");
#undef HAS
    return f;
#else
    return ~UINT64_C(0);
#endif
}

/// The features of `make release CPU=haswell` (AVX2 with FMA), as clang defines them.
static const uint64_t haswell =
    RECURRENTKIT_BIT(RECURRENTKIT_CPU_SSE3) | RECURRENTKIT_BIT(RECURRENTKIT_CPU_SSSE3)
    | RECURRENTKIT_BIT(RECURRENTKIT_CPU_SSE4_1) | RECURRENTKIT_BIT(RECURRENTKIT_CPU_SSE4_2)
    | RECURRENTKIT_BIT(RECURRENTKIT_CPU_POPCNT) | RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX)
    | RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX2) | RECURRENTKIT_BIT(RECURRENTKIT_CPU_FMA)
    | RECURRENTKIT_BIT(RECURRENTKIT_CPU_F16C) | RECURRENTKIT_BIT(RECURRENTKIT_CPU_BMI)
    | RECURRENTKIT_BIT(RECURRENTKIT_CPU_BMI2) | RECURRENTKIT_BIT(RECURRENTKIT_CPU_LZCNT)
    | RECURRENTKIT_BIT(RECURRENTKIT_CPU_MOVBE);

/// "AVX-512", "AVX2", "AVX" or "x86-64 baseline", then " with FMA" where it applies.
static const char *level(uint64_t features) {
    int fma = (features & RECURRENTKIT_BIT(RECURRENTKIT_CPU_FMA)) != 0;
    if (features & RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX512F)) return fma ? "AVX-512 with FMA" : "AVX-512";
    if (features & RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX2)) return fma ? "AVX2 with FMA" : "AVX2";
    if (features & RECURRENTKIT_BIT(RECURRENTKIT_CPU_AVX)) return fma ? "AVX with FMA" : "AVX";
    return fma ? "x86-64 with FMA" : "x86-64 baseline";
}

size_t recurrentkit_cpu_refusal(uint64_t required, uint64_t available, char *line, size_t size) {
    uint64_t missing = required & ~available;
    if (size > 0) line[0] = 0;
    if (missing == 0) return 0;
    char list[512] = "";
    size_t used = 0;
    for (int i = 0; i < RECURRENTKIT_CPU_FEATURE_COUNT; i++) {
        if (!(missing & RECURRENTKIT_BIT(i))) continue;
        int n = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", names[i]);
        if (n < 0 || (size_t)n >= sizeof list - used) break;
        used += (size_t)n;
    }
    // A CPU with everything `haswell` uses runs that build; any x86-64 CPU runs the baseline.
    const char *command = (haswell & ~available) == 0 ? "make release CPU=haswell" : "make release CPU=x86-64";
    int n = snprintf(line, size,
                     "this build is for %s, and this CPU lacks %s; build for it with `%s` "
                     "(or `make release` on this machine)",
                     level(required), list, command);
    return n < 0 ? 1 : (size_t)n;
}

void recurrentkit_require_cpu_features(uint64_t required, const char *program) {
    char line[1024];
    if (recurrentkit_cpu_refusal(required, recurrentkit_cpu_features(), line, sizeof line) == 0) return;
    fprintf(stderr, "%s: error: %s\n", program ? program : "error", line);
    exit(2);
}
