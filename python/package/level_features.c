// Compiled once per CPU level, with that level's `-march` and `-DRNNKIT_LEVEL_FEATURES=NAME`:
// the features a build for the level may use, as the compiler's macros say (the same header
// the Swift build reads). The body folds to one constant, so it runs on any CPU.
#include "CCPUFeatures.h"

uint64_t RNNKIT_LEVEL_FEATURES(void) { return recurrentkit_target_features(); }
