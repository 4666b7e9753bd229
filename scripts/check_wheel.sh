#!/usr/bin/env bash
# Checks an rnnkit wheel as a user gets it (`make test` runs it on the wheel it builds):
#
#   scripts/check_wheel.sh WHEEL LEVEL
#
# LEVEL is the level the launcher must pick on this machine (skylake-avx512, haswell or x86-64).
# The wheel is installed into a fresh virtual environment (out/wheel-check/venv), then, from
# another folder and with an empty environment (`env -i`: no Swift toolchain, no
# LD_LIBRARY_PATH; PATH only /usr/local/bin:/usr/bin:/bin, so no `rnnkit` but the venv's):
#   - `ldd` of every bundled binary resolves each library, none from a Swift toolchain;
#   - `rnnkit --version` names LEVEL and the bundled libhdf5; RNNKIT_CPU_LEVEL=x86-64 runs the
#     baseline build instead (the fallback, for real), and an unknown level is refused;
#   - `rnnkit verify fixtures/pytorch fixtures/keras` passes (and the keras folder again with
#     the baseline forced);
#   - the Python API's tests (python/package/tests), which also run the fixture module's own
#     tests (python/test_rnnkit_fixture.py) against the wheel's rnnkit.fixture;
#   - the CI example's wheel job (examples/ci/run-locally.sh WHEEL): its pip install of the
#     wheel into a venv, then its convert and verify steps.
# Prints the wheel's size and the install time. Exits non-zero if anything fails.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 WHEEL LEVEL" >&2
    exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
wheel=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
level=$2
PYTHON=${PYTHON:-python3}
case $level in
    skylake-avx512) summary="AVX-512, FMA" ;;
    haswell) summary="AVX2, FMA" ;;
    x86-64) summary="x86-64 baseline, no FMA" ;;
    *) echo "check_wheel: unknown level $level" >&2; exit 2 ;;
esac

work=$repo/out/wheel-check
rm -rf "$work"
mkdir -p "$work/elsewhere" "$work/home"
venv=$work/venv
"$PYTHON" -m venv "$venv"
# Installed as a user would, with pip's cache in an empty HOME (numpy and h5py downloaded).
start=$EPOCHREALTIME
env -i HOME="$work/home" PATH=/usr/local/bin:/usr/bin:/bin "$venv/bin/python" -m pip install -q \
    --disable-pip-version-check --progress-bar off "$wheel"
end=$EPOCHREALTIME
echo "check_wheel: $(basename "$wheel"): $(du -k "$wheel" | cut -f1) KiB, installed in $(awk "BEGIN { printf \"%.1f\", $end - $start }") s"

# Everything below runs from another folder with an empty environment.
cd "$work/elsewhere"
clean() { env -i HOME="$work/home" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 TMPDIR="$work/home" "$@"; }
fail() { echo "check_wheel: FAILED: $*" >&2; exit 1; }
ok() { echo "check_wheel: ok: $*"; }

package=$(clean "$venv/bin/python" -c 'import os, rnnkit; print(os.path.dirname(rnnkit.__file__))')
case $package in "$venv"/*) ;; *) fail "rnnkit imported from $package, not the venv" ;; esac
for binary in "$package"/_bin/*; do
    libraries=$(clean ldd "$binary" 2>&1) || true
    # The Swift runtime's libraries (linked statically here), by name, wherever they would be found.
    if grep -qE 'lib(swift[A-Za-z_]*|_?Foundation[A-Za-z]*|dispatch|BlocksRuntime|XCTest)\.so' <<<"$libraries"; then
        fail "$(basename "$binary") links a Swift toolchain library: $libraries"
    fi
    if grep -q 'not found' <<<"$libraries"; then fail "$(basename "$binary") has an unresolved library: $libraries"; fi
done
grep -q 'libhdf5.*rnnkit.libs' <<<"$(clean ldd "$package/_bin/rnnkit-x86-64")" \
    || fail "the baseline build does not take libhdf5 from the wheel's rnnkit.libs"
ok "ldd: every library resolves, libhdf5 from rnnkit.libs, nothing from a Swift toolchain"

rnnkit=$venv/bin/rnnkit
version=$(clean "$rnnkit" --version)
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+\ \(built\ for\ $summary\;\ libhdf5\ [0-9]+\.[0-9]+\.[0-9]+\)$ ]] \
    || fail "rnnkit --version: '$version', wanted the version, built for $summary, and libhdf5's"
ok "rnnkit --version: $version"
baseline=$(clean RNNKIT_CPU_LEVEL=x86-64 "$rnnkit" --version)
[[ $baseline == *"(built for x86-64 baseline, no FMA;"* ]] || fail "RNNKIT_CPU_LEVEL=x86-64: '$baseline'"
ok "RNNKIT_CPU_LEVEL=x86-64 rnnkit --version: $baseline"
status=0
refusal=$(clean RNNKIT_CPU_LEVEL=pentium "$rnnkit" --version 2>&1) || status=$?
[ "$status" = 2 ] && [ "$(printf '%s\n' "$refusal" | wc -l)" = 1 ] \
    && [[ $refusal == "rnnkit: error: RNNKIT_CPU_LEVEL names no level this package carries"* ]] \
    || fail "RNNKIT_CPU_LEVEL=pentium: status $status, '$refusal'"
ok "RNNKIT_CPU_LEVEL=pentium: $refusal"

clean "$rnnkit" verify "$repo/fixtures/pytorch" "$repo/fixtures/keras" --jobs 2 | tail -1
ok "rnnkit verify fixtures/pytorch fixtures/keras"
clean RNNKIT_CPU_LEVEL=x86-64 "$rnnkit" verify "$repo/fixtures/keras" --jobs 2 | tail -1
ok "RNNKIT_CPU_LEVEL=x86-64 rnnkit verify fixtures/keras"

clean RNNKIT_REPO="$repo" "$venv/bin/python" -m unittest discover -s "$repo/python/package/tests" -t "$repo/python/package/tests"
ok "the Python API's tests"

clean "$repo/examples/ci/run-locally.sh" "$wheel"
ok "the CI example's wheel job: its install step, then its convert and verify steps"
