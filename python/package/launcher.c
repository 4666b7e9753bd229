// The `rnnkit` a wheel installs runs this launcher first: it picks, from the builds the wheel
// carries beside it (`rnnkit-LEVEL`, one per CPU level), the fastest one this CPU can run, and
// executes it in its place (same arguments, same process id, so exit codes and signals are
// the tool's own).
//
// It is compiled for the x86-64 baseline, so it runs on any x86-64 CPU. The levels and what
// each needs come from the build (scripts/build_wheel.sh): RNNKIT_LEVELS lists them, fastest
// first, and each level's `rnnkit_level_N_features()` is compiled with that level's `-march`,
// returning CCPUFeatures.h's `recurrentkit_target_features()` — the same compiler macros the
// Swift build of that level reads to record what it needs. The CPU's features come from
// CCPUFeatures.c (`__builtin_cpu_supports`, which also checks the OS saves the registers).
//
// RNNKIT_CPU_LEVEL=NAME (a level the wheel carries) runs that build whatever the CPU: one the
// CPU cannot run refuses in its own one line (exit 2), as every rnnkit build does.

#include "CCPUFeatures.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef RNNKIT_LEVELS
#error "RNNKIT_LEVELS: the levels, fastest first, as a comma-separated list of strings"
#endif

#define RNNKIT_LEVEL_COUNT (sizeof levels / sizeof levels[0])

static const char *const levels[] = {RNNKIT_LEVELS};

// One per level, in the same order (level_features.c); weak, as a wheel may carry fewer than four.
typedef uint64_t (*features_fn)(void);
__attribute__((weak)) uint64_t rnnkit_level_0_features(void);
__attribute__((weak)) uint64_t rnnkit_level_1_features(void);
__attribute__((weak)) uint64_t rnnkit_level_2_features(void);
__attribute__((weak)) uint64_t rnnkit_level_3_features(void);
static const features_fn level_features[] = {
    rnnkit_level_0_features, rnnkit_level_1_features, rnnkit_level_2_features, rnnkit_level_3_features,
};

static void fail(const char *message, const char *detail) {
    fprintf(stderr, "rnnkit: error: %s%s\n", message, detail ? detail : "");
    exit(2);
}

int main(int argc, char **argv) {
    (void)argc;
    _Static_assert(RNNKIT_LEVEL_COUNT <= sizeof level_features / sizeof level_features[0], "at most 4 levels");
    // This executable's folder holds the builds.
    char self[PATH_MAX];
    ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
    if (length <= 0) fail("cannot find the rnnkit launcher's own path (/proc/self/exe)", NULL);
    self[length] = 0;
    char *slash = strrchr(self, '/');
    if (!slash) fail("cannot find the rnnkit launcher's folder", NULL);
    *slash = 0;

    char path[PATH_MAX];
    const char *forced = getenv("RNNKIT_CPU_LEVEL");
    if (forced && *forced) {
        for (size_t i = 0; i < RNNKIT_LEVEL_COUNT; i++) {
            if (strcmp(forced, levels[i]) != 0) continue;
            snprintf(path, sizeof path, "%s/rnnkit-%s", self, levels[i]);
            execv(path, argv);
            fail("cannot run the bundled rnnkit build: ", strerror(errno));
        }
        char known[256] = "";
        for (size_t i = 0; i < RNNKIT_LEVEL_COUNT; i++) {
            strncat(known, i ? ", " : " (", sizeof known - strlen(known) - 1);
            strncat(known, levels[i], sizeof known - strlen(known) - 1);
        }
        strncat(known, ")", sizeof known - strlen(known) - 1);
        fprintf(stderr, "rnnkit: error: RNNKIT_CPU_LEVEL names no level this package carries%s\n", known);
        return 2;
    }

    uint64_t available = recurrentkit_cpu_features();
    for (size_t i = 0; i < RNNKIT_LEVEL_COUNT; i++) {
        if (!level_features[i]) fail("this rnnkit launcher was built without the features of level ", levels[i]);
        if ((level_features[i]() & ~available) != 0) continue;
        snprintf(path, sizeof path, "%s/rnnkit-%s", self, levels[i]);
        execv(path, argv);
        fail("cannot run the bundled rnnkit build: ", strerror(errno));
    }
    // The last level is the baseline, which every x86-64 CPU has: not reached there.
    fail("this CPU runs none of the rnnkit builds this package carries", NULL);
    return 2;
}
