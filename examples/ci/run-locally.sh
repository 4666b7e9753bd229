#!/usr/bin/env bash
# Runs the CI example's convert and verify steps (github-actions.yml, gitlab-ci.yml) on this
# folder's committed files, so the example is checked against this repository and cannot rot:
#
#   examples/ci/run-locally.sh .build/release/rnnkit          # the from-source job's rnnkit
#   examples/ci/run-locally.sh dist/rnnkit-0.1.0-*.whl          # the wheel jobs: installs it first
#
# This folder is laid out as a user's repository would be: models/ holds sentiment.h5 (a
# tf-keras model) and encoder.pt (a torch.save state_dict), each with its fixture beside it,
# and rnnkit-verify.yml is the manifest.
# It is copied into a temporary folder, the jobs' commands run there exactly as written in
# the workflows, and the reports are checked. Exits non-zero if any step or check fails.
# KEEP=1 keeps the temporary folder (with out/ and reports/) and prints where it is.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 RNNKIT|WHEEL   (the rnnkit binary, e.g. .build/release/rnnkit, or a wheel from make wheel)" >&2
    exit 2
fi
given=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
case $given in
    *.whl) [ -f "$given" ] || { echo "run-locally: $1 is not a wheel" >&2; exit 2; } ;;
    *) [ -x "$given" ] || { echo "run-locally: $1 is not an executable rnnkit" >&2; exit 2; } ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/rnnkit-ci-example.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
    trap 'echo "kept $work"' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi
cp -R "$here/models" "$here/rnnkit-verify.yml" "$work/"
cd "$work"
case $given in
    *.whl)
        # ---- the wheel jobs' install step, as in github-actions.yml and gitlab-ci.yml ----
        mkdir -p wheelhouse && cp "$given" wheelhouse/
        python3 -m venv .venv-rnnkit
        .venv-rnnkit/bin/pip install --quiet --disable-pip-version-check wheelhouse/rnnkit-*.whl
        # ---- end of the install step ----
        RNNKIT=$work/.venv-rnnkit/bin/rnnkit ;;
    *) RNNKIT=$given ;;
esac
# The workflows put rnnkit on PATH; here it is the one installed or given.
rnnkit() { "$RNNKIT" "$@"; }

# ---- the jobs' steps, as in github-actions.yml and gitlab-ci.yml ----
mkdir -p out reports
rnnkit convert models/sentiment.h5 out/sentiment.pt --to pytorch
rnnkit verify models --manifest rnnkit-verify.yml --jobs 2 --junit reports/rnnkit-verify.xml --json reports/rnnkit-verify.json
# ---- end of the jobs' steps ----

# verify exited 0 (set -e): every case passed. Check that the reports say so, for all three
# cases (the two fixtures in models/ and the converted model from the manifest).
fail=0
check() {
    if [ "$1" = "$2" ]; then echo "run-locally: ok: $3"; else echo "run-locally: FAILED: $3 (got $1, want $2)"; fail=1; fi
}
junit=reports/rnnkit-verify.xml
[ -s "$junit" ] || { echo "run-locally: FAILED: no $junit"; exit 1; }
check "$(grep -o '<testcase[ >]' "$junit" | wc -l | tr -d ' ')" 3 "the JUnit report has 3 testcases"
check "$(grep -c '<failure' "$junit" || true)" 0 "no <failure> in the JUnit report"
check "$(grep -c '<error' "$junit" || true)" 0 "no <error> in the JUnit report"
check "$(grep -c 'sentiment converted to PyTorch' "$junit" || true)" 1 "the converted model's case is in the JUnit report"
nonempty() { if [ -s "$1" ]; then echo yes; else echo no; fi; }
check "$(nonempty out/sentiment.pt)" yes "out/sentiment.pt written"
check "$(nonempty reports/rnnkit-verify.json)" yes "the JSON report written"
exit "$fail"
