#!/usr/bin/env bash
# Builds the libFuzzer targets (Tests/Fuzz) with the address sanitizer and runs them.
#
#   scripts/fuzz.sh TARGET|all SECONDS [libFuzzer options...]
#   scripts/fuzz.sh --ci          every target briefly on its seed corpus (what `make test` runs)
#   scripts/fuzz.sh --build       build only
#
# Targets: FuzzHDF5Model FuzzKerasConfig FuzzKerasArchive FuzzPyTorchModelConfig FuzzFixture
# FuzzTorchFile FuzzSafetensors FuzzManifest FuzzONNX.
#
# For each target: the committed regressions (fixtures/fuzz/regressions/TARGET) are run first
# and must all pass; then the target fuzzes for SECONDS, starting from the merged corpus kept
# in the work folder and the seeds written from the committed fixtures (scripts/fuzz_seeds.py).
# Limits are the issue's bounds: 1 GiB of memory (-rss_limit_mb, -malloc_limit_mb: a single
# allocation over 1 GiB is a finding) and 10 s per input (-timeout).
#
# libhdf5 is not instrumented and can fault on a hostile file; in-process fuzzing would stop
# at the first such fault. So the campaign runs in libFuzzer's fork mode with crashes,
# timeouts and out-of-memory ignored (each one is still written to the artifacts folder), and
# every artifact is then replayed on its own and classified by its stack: a fault, timeout or
# allocation whose top frames (below the sanitizer's, libc's and the allocator's) are in
# libhdf5 is recorded as libhdf5's; anything else (a Swift trap, a sanitizer report in our
# code, an allocation over the budget, a leak, a timeout in our code) is ours to fix, and
# makes the script exit 1. Findings are listed in WORK/logs/TARGET.findings. A fixed finding is minimised (-minimize_crash=1) and committed to
# fixtures/fuzz/regressions/TARGET/, which FuzzRegressionTests also replays.
#
# Environment: FUZZ_SCRATCH (build folder, default .build-fuzz), FUZZ_WORK (work folder,
# default .build-fuzz-work: corpora/, seeds/, artifacts/, logs/), FUZZ_JOBS (fork-mode
# processes, default 1), SWIFT.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(FuzzHDF5Model FuzzKerasConfig FuzzKerasArchive FuzzPyTorchModelConfig FuzzFixture FuzzTorchFile FuzzSafetensors FuzzManifest FuzzONNX)
SWIFT=${SWIFT:-swift}
SCRATCH=${FUZZ_SCRATCH:-.build-fuzz}
WORK=${FUZZ_WORK:-.build-fuzz-work}
JOBS=${FUZZ_JOBS:-1}
FLAGS=(-Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
LIMITS=(-rss_limit_mb=1024 -malloc_limit_mb=1024 -timeout=10)
# The targets' temporary files (a `.keras` or fixture written per input, libFuzzer's fork
# folders) go to a private folder, removed at the end, also of what a crashed input left.
mkdir -p "$WORK/tmp"
TMPDIR=$(cd "$WORK/tmp" && pwd)
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
# Leak checking stays on, less the leaks that are not ours (scripts/fuzz-lsan.supp).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:handle_abort=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/fuzz-lsan.supp:print_suppressions=0}

max_len() {
    case $1 in
        FuzzHDF5Model|FuzzKerasArchive|FuzzTorchFile|FuzzSafetensors|FuzzONNX) echo 131072 ;;
        FuzzFixture) echo 65536 ;;
        *) echo 65536 ;;
    esac
}

build() {
    local target
    mkdir -p "$WORK/logs"
    for target in "$@"; do
        if ! RECURRENTKIT_FUZZ=1 "$SWIFT" build --scratch-path "$SCRATCH" -c debug --product "$target" "${FLAGS[@]}" \
            >"$WORK/logs/build.log" 2>&1; then
            grep -E "error:" "$WORK/logs/build.log" | sort -u | head -20 >&2
            echo "fuzz: $target did not build (log: $WORK/logs/build.log)" >&2
            exit 2
        fi
    done
}

seeds() {
    rm -rf "$WORK/seeds"
    python3 scripts/fuzz_seeds.py fixtures "$WORK/seeds"
}

# Replays the committed regressions; each must return without a finding.
regressions() {
    local target=$1 folder=fixtures/fuzz/regressions/$1
    compgen -G "$folder/*" >/dev/null || return 0
    if ! "$SCRATCH/debug/$target" "${LIMITS[@]}" "$folder"/* >"$WORK/logs/$target.regressions.log" 2>&1; then
        echo "fuzz: $target: a committed regression fails again (log: $WORK/logs/$target.regressions.log)" >&2
        return 1
    fi
}

# Replays one artifact and prints "libhdf5" or "ours", with the top frames.
classify() {
    local target=$1 artifact=$2 report
    # libFuzzer's own "Running: PATH" and "Executed PATH" lines are left out: the artifact's
    # name (timeout-…, oom-…) would otherwise read as the finding it names.
    report=$("$SCRATCH/debug/$target" "${LIMITS[@]}" "$artifact" 2>&1 | grep -vE '^(Running: |Executed )' || true)
    # The first frames after the sanitizer's and libc's own (the allocator, abort, signal
    # trampolines), that is, where the fault happened.
    local top
    top=$(printf '%s\n' "$report" | grep -E '^ *#[0-9]+ ' \
        | grep -vE 'libclang_rt|compiler-rt|sanitizer_common|asan_|libc\.so|libc-|__sanitizer|__asan|malloc|calloc|realloc|operator new|swift_slowAlloc|abort|raise|__GI_' \
        | head -3 | sed -E 's/^ *#[0-9]+ 0x[0-9a-f]+ in //')
    # The first frame with a symbol name, for reading (libhdf5's static functions have none).
    local named
    named=$(printf '%s\n' "$top" | grep -m1 -oE '^[A-Za-z_$][^ ]*' || true)
    if printf '%s\n' "$top" | head -1 | grep -q 'libhdf5'; then
        echo "libhdf5 | ${named:-?} | $(printf '%s' "$top" | head -1 | grep -oE '\(/[^)]*\)' | head -1)"
    elif printf '%s\n' "$report" | grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|==ERROR|Fatal error|timeout|out-of-memory'; then
        echo "ours | $(printf '%s\n' "$report" | grep -m1 -E 'ERROR|Fatal error|out-of-memory|timeout' | sed -E 's/^==[0-9]+==//') | $(printf '%s' "$top" | tr '\n' ';')"
    else
        echo "gone | no finding on replay"
    fi
}

fuzz() {
    local target=$1 seconds=$2; shift 2
    local corpus=$WORK/corpora/$target artifacts=$WORK/artifacts/$target log=$WORK/logs/$target.log
    mkdir -p "$corpus" "$artifacts" "$WORK/logs"
    regressions "$target" || return 1
    local before dictionary=()
    before=$(ls "$artifacts" | wc -l)
    # The target's dictionary of field values (Tests/Fuzz/TARGET/*.dict), when it has one.
    for file in Tests/Fuzz/"$target"/*.dict; do [ -f "$file" ] && dictionary=(-dict="$file"); done
    "$SCRATCH/debug/$target" "${LIMITS[@]}" "${dictionary[@]}" -max_len="$(max_len "$target")" -max_total_time="$seconds" \
        -fork="$JOBS" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 "$@" \
        "$corpus" "$WORK/seeds/$target" >"$log" 2>&1 || true
    local last ours=0 library=0 gone=0 artifact verdict
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 | sed 's/^#//' || true)
    for artifact in $(ls -t "$artifacts" | head -n $(( $(ls "$artifacts" | wc -l) - before ))); do
        verdict=$(classify "$target" "$artifacts/$artifact")
        echo "$artifact | $verdict" >>"$WORK/logs/$target.findings"
        case $verdict in
            libhdf5*) library=$((library + 1)) ;;
            gone*) gone=$((gone + 1)) ;;
            ours*) ours=$((ours + 1)); echo "fuzz: $target: $artifacts/$artifact: ${verdict#ours | }" >&2 ;;
        esac
    done
    # "#1234: cov: 5678 ft: 9012 corp: 34 exec/s: 56 oom/timeout/crash: 0/0/0 time: 60s job: 7 dft_time: 0"
    local executions=${last%%:*}
    echo "$target: ${seconds}s, executions ${executions:-0} ($(( ${executions:-0} / seconds ))/s), $(sed -E 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [0-9]+).*(oom\/timeout\/crash: [0-9\/]+).*/\1 \2/' <<<"$last"), new findings: ${ours} ours, ${library} in libhdf5, ${gone} not reproduced alone (findings: $WORK/logs/$target.findings)"
    [ "$ours" = 0 ]
}

if [ "$(uname -s)" != Linux ]; then
    # -sanitize=fuzzer needs the libFuzzer runtime of a Linux Swift toolchain.
    echo "fuzz: skipped (libFuzzer targets build on Linux only)" >&2
    [ "${1:-}" = --ci ] && exit 0 || exit 2
fi

case ${1:-} in
    --build)
        build "${TARGETS[@]}" ;;
    --ci)
        # About a minute in all after the build: regressions, then each target 8 s from its seeds.
        build "${TARGETS[@]}"
        seeds
        status=0
        for target in "${TARGETS[@]}"; do
            rm -rf "$WORK/corpora/$target"
            fuzz "$target" 8 -seed=1 || status=1
        done
        exit $status ;;
    ""|-h|--help)
        sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    *)
        target=$1 seconds=${2:?SECONDS}; shift 2
        if [ "$target" = all ]; then selected=("${TARGETS[@]}"); else selected=("$target"); fi
        build "${selected[@]}"
        seeds
        status=0
        for target in "${selected[@]}"; do fuzz "$target" "$seconds" "$@" || status=1; done
        exit $status ;;
esac
