#!/usr/bin/env python3
"""Check the reports of `rnnkit verify` (--junit, --json) and its exit status end to end.

    python3 -m venv .venv-ci
    .venv-ci/bin/pip install -r scripts/requirements-reports.txt
    .venv-ci/bin/python scripts/check_reports.py --rnnkit .build/release/rnnkit

It copies the committed fixture folders (fixtures/pytorch, fixtures/keras,
fixtures/pytorch-files; their files, not their subfolders) into a temporary folder and runs
`rnnkit verify DIR1 DIR2 DIR3 --junit R.xml --json R.json --jobs 2` four times:

1. one fixture's /expected/output perturbed (0.5 added to one element): exit status 1; the
   JUnit report validates against scripts/junit-10.xsd (the Jenkins xUnit plugin's schema) and
   junitparser reads exactly one testcase per model/fixture pair, exactly one <failure
   type="mismatch"> naming that fixture with max abs error ~0.5 and the element's index as the
   first mismatch; the JSON report and the printed summary agree.
2. the unperturbed copies: exit status 0, no failures, no errors.
3. one model file deleted: exit status 2, exactly one <error> naming its fixture, every other
   case still reported as passed.
4. both at once: exit status 2 (a case that could not run outranks a mismatch), one failure and
   one error.

Prints one line per check and exits 1 if any fails (2 if the checks could not be set up).
Needs Python 3.11, numpy, h5py, xmlschema and junitparser (scripts/requirements-reports.txt).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from xml.etree import ElementTree

import h5py
import numpy as np
import xmlschema
from junitparser import Error, Failure, JUnitXml, TestCase, TestSuite

REPO = Path(__file__).resolve().parent.parent
SCHEMA = Path(__file__).resolve().parent / "junit-10.xsd"
FOLDERS = ["fixtures/pytorch", "fixtures/keras", "fixtures/pytorch-files", "fixtures/seams"]
MODEL_SUFFIXES = [".h5", ".keras", ".pt", ".pth", ".safetensors"]
# The case perturbed and the case whose model is deleted: each fixture's stem appears in one
# folder only, so a report that names the case by its stem names it unambiguously.
PERTURBED = "fixtures/pytorch/lstm_basic.fixture.h5"
BROKEN = "fixtures/keras/tfk_gru_reset.fixture.h5"
DELTA = 0.5
MIN_PAIRS = 60


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []
        self.section = ""

    def begin(self, title: str) -> None:
        self.section = title
        print(f"\n== {title}")

    def check(self, condition: bool, what: str, detail: str = "") -> bool:
        if condition:
            self.passed += 1
            print(f"  PASS  {what}")
        else:
            self.failed.append(f"{self.section}: {what}")
            print(f"  FAIL  {what}" + (f"\n        {detail}" if detail else ""))
        return condition


def fixture_stem(fixture: Path) -> str:
    return fixture.name[: -len(".fixture.h5")]


def model_of(fixture: Path) -> Path | None:
    """The model a fixture pairs with: its `model` attribute, else NAME.<ext> beside it."""
    with h5py.File(fixture, "r") as f:
        named = f.attrs.get("model")
    if isinstance(named, bytes):
        named = named.decode()
    if named:
        path = fixture.parent / str(named)
        return path if path.is_file() else None
    for suffix in MODEL_SUFFIXES:
        path = fixture.parent / (fixture_stem(fixture) + suffix)
        if path.is_file():
            return path
    return None


def copy_fixtures(root: Path) -> list[Path]:
    """Copies each folder's files (not subfolders) under root; returns the copied folders."""
    folders = []
    for folder in FOLDERS:
        source = REPO / folder
        target = root / folder
        target.mkdir(parents=True)
        for item in source.iterdir():
            if item.is_file():
                shutil.copy2(item, target / item.name)
        folders.append(target)
    return folders


def pairs_in(folders: list[Path]) -> list[tuple[Path, Path]]:
    pairs = []
    for folder in folders:
        for fixture in sorted(folder.glob("*.fixture.h5")):
            model = model_of(fixture)
            if model is not None:
                pairs.append((fixture, model))
    return pairs


def perturb(fixture: Path) -> tuple[tuple[int, ...], float]:
    """Adds DELTA to one element of /expected/output, past the first; returns its index and new value."""
    with h5py.File(fixture, "r+") as f:
        dataset = f["/expected/output"]
        values = dataset[()]
        flat = values.size // 2 + 1 if values.size > 2 else values.size - 1
        index = tuple(int(i) for i in np.unravel_index(flat, values.shape))
        values[index] = values[index] + DELTA
        dataset[...] = values
        return index, float(values[index])


def run_verify(rnnkit: str, folders: list[Path], out: Path, jobs: int) -> tuple[int, str, Path, Path]:
    junit, report = out / "R.xml", out / "R.json"
    for path in (junit, report):
        path.unlink(missing_ok=True)
    command = [rnnkit, "verify", *map(str, folders), "--junit", str(junit), "--json", str(report),
               "--jobs", str(jobs)]
    print("  $ " + " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    output = done.stdout + done.stderr
    tail = output.strip().splitlines()[-3:]
    for line in tail:
        print(f"  | {line}")
    return done.returncode, output, junit, report


# --- reading the reports --------------------------------------------------------------------

def all_cases(xml: JUnitXml | TestSuite) -> list[TestCase]:
    """Every testcase, in suites nested to any depth (the schema allows testsuite in testsuite)."""
    cases: list[TestCase] = []
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    while suites:
        suite = suites.pop(0)
        cases.extend(suite.iterchildren(TestCase))
        suites.extend(suite.iterchildren(TestSuite))
    return cases


def results_of(case: TestCase, kind: type) -> list:
    return [result for result in case.result if isinstance(result, kind)]


def case_text(case: TestCase) -> str:
    parts = [case.name or "", case.classname or ""]
    for result in case.result:
        parts += [result.message or "", result.type or "", result.text or ""]
    return "\n".join(parts)


NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)"


def max_abs_error(text: str) -> float | None:
    match = re.search(r"max(?:imum)?[ _-]?abs(?:olute)?[ _-]?(?:error|err|diff)?\D{0,12}?" + NUMBER, text, re.I)
    return float(match.group(1)) if match else None


def max_rel_error(text: str) -> float | None:
    match = re.search(r"max(?:imum)?[ _-]?rel(?:ative)?[ _-]?(?:error|err|diff)?\D{0,12}?" + NUMBER, text, re.I)
    return float(match.group(1)) if match else None


def first_index(text: str) -> tuple[int, ...] | None:
    match = re.search(r"first[^\[\(\n]{0,40}[\[\(]\s*(\d+(?:\s*,\s*\d+)*)\s*,?\s*[\]\)]", text, re.I)
    return tuple(int(part) for part in match.group(1).split(",")) if match else None


def summary_counts(output: str) -> tuple[int, int, int] | None:
    match = re.search(r"(\d+) passed, (\d+) failed, (\d+) errors?", output)
    return tuple(int(g) for g in match.groups()) if match else None


def walk(value, key=""):
    """Yields (key, value) for every member of a JSON value, depth first."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield key, v
            yield from walk(v, key)


STATUS_KEYS = ("status", "result", "outcome", "verdict")
STATUS_WORDS = {"ok": "passed", "pass": "passed", "passed": "passed", "success": "passed",
                "mismatch": "failed", "fail": "failed", "failed": "failed", "failure": "failed",
                "error": "error", "errored": "error"}


def json_status(case: dict) -> str | None:
    for key in STATUS_KEYS:
        value = case.get(key)
        if isinstance(value, str) and value.lower() in STATUS_WORDS:
            return STATUS_WORDS[value.lower()]
    if isinstance(case.get("passed"), bool):
        return "passed" if case["passed"] else "failed"
    return None


def json_names(case: dict, stem: str) -> bool:
    return any(isinstance(v, str) and re.search(rf"(^|[/\\ :]){re.escape(stem)}(\.|$|[ :])", v)
               for _, v in walk(case))


def json_numbers(case: dict) -> tuple[float | None, tuple[int, ...] | None]:
    """The output tensor's max abs error and first mismatching index in a JSON case."""
    tensors = case.get("tensors")
    if isinstance(tensors, list):
        # One entry per compared tensor: take the output's.
        output = [t for t in tensors if isinstance(t, dict) and t.get("name") in ("output", "/expected/output")]
        if len(output) == 1:
            case = output[0]
    abs_error, index = None, None
    for key, value in walk(case):
        lowered = key.lower()
        if abs_error is None and "abs" in lowered and isinstance(value, (int, float)) and not isinstance(value, bool):
            abs_error = float(value)
        if (index is None and ("first" in lowered or "index" in lowered) and isinstance(value, list)
                and value and all(isinstance(i, int) for i in value)):
            index = tuple(value)
    if abs_error is None or index is None:
        # Reports may keep the numbers as text only.
        text = "\n".join(v for _, v in walk(case) if isinstance(v, str))
        abs_error = abs_error if abs_error is not None else max_abs_error(text)
        index = index if index is not None else first_index(text)
    return abs_error, index


def named(text: str, stem: str) -> bool:
    return re.search(rf"(^|[^A-Za-z0-9_]){re.escape(stem)}([^A-Za-z0-9_]|$)", text) is not None


# --- one run ----------------------------------------------------------------------------------

def check_run(checks: Checks, schema: xmlschema.XMLSchema, run: tuple[int, str, Path, Path], *,
              pairs: int, want_status: int, failing: dict[str, tuple[tuple[int, ...], float]],
              erroring: set[str]) -> None:
    status, output, junit, report = run
    checks.check(status == want_status, f"exit status {want_status}", f"got {status}; output ends:\n"
                 + "\n".join(output.strip().splitlines()[-15:]))
    want = (pairs - len(failing) - len(erroring), len(failing), len(erroring))
    got = summary_counts(output)
    checks.check(got == want, "summary line '{} passed, {} failed, {} errors'".format(*want), f"got {got}")

    # JUnit
    if not checks.check(junit.is_file(), "--junit file written"):
        return
    errors = list(schema.iter_errors(str(junit)))
    checks.check(not errors, "JUnit report validates against junit-10.xsd",
                 "; ".join(str(e.reason or e) for e in errors[:3]))
    try:
        xml = JUnitXml.fromfile(str(junit))
    except Exception as error:  # noqa: BLE001 - report what the parser said
        checks.check(False, "junitparser reads the JUnit report", repr(error))
        return
    cases = all_cases(xml)
    checks.check(len(cases) == pairs, f"{pairs} testcases, one per pair", f"got {len(cases)}")
    keys = [(case.classname, case.name) for case in cases]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    checks.check(not duplicates, "every testcase has its own (classname, name)", f"repeated: {duplicates[:5]}")
    failed = [case for case in cases if results_of(case, Failure)]
    errored = [case for case in cases if results_of(case, Error)]
    checks.check(len(failed) == len(failing), f"{len(failing)} testcase(s) with <failure>",
                 f"got {len(failed)}: {[c.name for c in failed][:5]}")
    checks.check(len(errored) == len(erroring), f"{len(erroring)} testcase(s) with <error>",
                 f"got {len(errored)}: {[c.name for c in errored][:5]}")
    root = ElementTree.parse(junit).getroot()
    attributes = tuple(root.get(name) for name in ("tests", "failures", "errors"))
    checks.check(attributes == (str(pairs), str(len(failing)), str(len(erroring))),
                 f"<{root.tag}> tests/failures/errors = {pairs}/{len(failing)}/{len(erroring)}",
                 f"got {attributes}")

    for stem, (index, expected_value) in failing.items():
        case = next((c for c in failed if named(case_text(c), stem)), None)
        if not checks.check(case is not None, f"the <failure> names {stem}",
                            f"failing cases: {[(c.classname, c.name) for c in failed][:5]}"):
            continue
        failure = results_of(case, Failure)[0]
        checks.check(failure.type == "mismatch", 'failure type="mismatch"', f"got {failure.type!r}")
        text = f"{failure.message or ''}\n{failure.text or ''}"
        checks.check(named(text, "output"), "the failure names the tensor (output)", text[:300])
        abs_error = max_abs_error(text)
        checks.check(abs_error is not None and math.isclose(abs_error, DELTA, rel_tol=0, abs_tol=1e-3),
                     f"the failure's max abs error is {DELTA} (within 1e-3)", f"got {abs_error} in: {text[:300]}")
        rel_error = max_rel_error(text)
        want_rel = DELTA / abs(expected_value) if expected_value else math.inf
        checks.check(rel_error is not None and math.isclose(rel_error, want_rel, rel_tol=1e-2),
                     f"the failure's max rel error is {DELTA}/|expected| = {want_rel:.3g} (within 1 %)",
                     f"got {rel_error} in: {text[:300]}")
        checks.check(first_index(text) == index, f"the failure's first mismatching index is {list(index)}",
                     f"got {first_index(text)} in: {text[:300]}")
    for stem in erroring:
        case = next((c for c in errored if named(case_text(c), stem)), None)
        if checks.check(case is not None, f"the <error> names {stem}",
                        f"erroring cases: {[(c.classname, c.name) for c in errored][:5]}"):
            error = results_of(case, Error)[0]
            checks.check(bool((error.message or "").strip() or (error.text or "").strip()),
                         "the <error> says why", repr(error.message))

    # JSON
    if not checks.check(report.is_file(), "--json file written"):
        return
    try:
        data = json.loads(report.read_text())
    except ValueError as error:
        checks.check(False, "the JSON report parses", repr(error))
        return
    if not checks.check(isinstance(data, dict) and isinstance(data.get("summary"), dict)
                        and isinstance(data.get("cases"), list), 'JSON has {"summary": {...}, "cases": [...]}'):
        return
    summary, json_cases = data["summary"], data["cases"]
    counts = tuple(summary.get(k) for k in ("passed", "failed", "errors"))
    checks.check(counts == want, "JSON summary passed/failed/errors = {}/{}/{}".format(*want), f"got {summary}")
    checks.check(len(json_cases) == pairs, f"JSON has {pairs} cases", f"got {len(json_cases)}")
    statuses = [json_status(case) if isinstance(case, dict) else None for case in json_cases]
    checks.check(None not in statuses, "every JSON case has a status",
                 f"e.g. {next((c for c, s in zip(json_cases, statuses) if s is None), None)}")
    for stem, (index, _) in failing.items():
        bad = [c for c, s in zip(json_cases, statuses) if s == "failed"]
        case = next((c for c in bad if json_names(c, stem)), None)
        if checks.check(len(bad) == 1 and case is not None, f"JSON: the one mismatching case is {stem}",
                        f"mismatching: {bad[:2]}"):
            abs_error, first = json_numbers(case)
            checks.check(abs_error is not None and math.isclose(abs_error, DELTA, abs_tol=1e-3)
                         and first == index, f"JSON: max abs error {DELTA}, first index {list(index)}",
                         f"got {abs_error}, {first}: {json.dumps(case)[:400]}")
    for stem in erroring:
        bad = [c for c, s in zip(json_cases, statuses) if s == "error"]
        checks.check(len(bad) == 1 and json_names(bad[0], stem), f"JSON: the one error case is {stem}",
                     f"error cases: {bad[:2]}")
    if not failing and not erroring:
        checks.check(all(s == "passed" for s in statuses), "JSON: every case passed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rnnkit", required=True, help="the rnnkit binary (e.g. .build/release/rnnkit)")
    parser.add_argument("--jobs", type=int, default=2, help="verify --jobs (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args()
    rnnkit = shutil.which(args.rnnkit) or args.rnnkit
    if not Path(rnnkit).is_file():
        print(f"check_reports: no rnnkit binary at {args.rnnkit} (build it with `make release`)")
        return 2
    rnnkit = str(Path(rnnkit).resolve())
    schema = xmlschema.XMLSchema(str(SCHEMA))
    checks = Checks()
    work = Path(tempfile.mkdtemp(prefix="rnnkit-reports-"))
    try:
        pristine = work / "pristine"
        folders = copy_fixtures(pristine)
        pairs = pairs_in(folders)
        counts = {f.name: sum(1 for fx, _ in pairs if fx.parent == f) for f in folders}
        print(f"rnnkit: {rnnkit}\nfixture/model pairs: {len(pairs)} "
              + ", ".join(f"{name} {n}" for name, n in counts.items()))
        if len(pairs) < MIN_PAIRS:
            print(f"check_reports: only {len(pairs)} pairs (at least {MIN_PAIRS} expected)")
            return 2
        perturbed_stem, broken_stem = fixture_stem(Path(PERTURBED)), fixture_stem(Path(BROKEN))
        for rel in (PERTURBED, BROKEN):
            if not any(fx == pristine / rel for fx, _ in pairs):
                print(f"check_reports: {rel} is not a fixture/model pair here")
                return 2
        broken_model = dict(pairs)[pristine / BROKEN]

        def variant(name: str, perturbed: bool, broken: bool):
            root = work / name
            shutil.copytree(pristine, root)
            perturbation = perturb(root / PERTURBED) if perturbed else None
            if broken:
                (root / broken_model.relative_to(pristine)).unlink()
            out = root / "reports"
            out.mkdir()
            return [root / folder for folder in FOLDERS], out, perturbation

        checks.begin(f"1. {PERTURBED} perturbed: one mismatch, exit 1")
        folders1, out1, (index, value) = variant("perturbed", True, False)
        print(f"  /expected/output{list(index)} += {DELTA} (now {value:.6g})")
        check_run(checks, schema, run_verify(rnnkit, folders1, out1, args.jobs), pairs=len(pairs),
                  want_status=1, failing={perturbed_stem: (index, value)}, erroring=set())

        checks.begin("2. the unperturbed fixtures: all pass, exit 0")
        folders2, out2, _ = variant("clean", False, False)
        check_run(checks, schema, run_verify(rnnkit, folders2, out2, args.jobs), pairs=len(pairs),
                  want_status=0, failing={}, erroring=set())

        checks.begin(f"3. {broken_model.relative_to(pristine)} deleted: one error, exit 2")
        folders3, out3, _ = variant("broken", False, True)
        check_run(checks, schema, run_verify(rnnkit, folders3, out3, args.jobs), pairs=len(pairs),
                  want_status=2, failing={}, erroring={broken_stem})

        checks.begin("4. both: one mismatch and one error, exit 2")
        folders4, out4, (index4, value4) = variant("both", True, True)
        check_run(checks, schema, run_verify(rnnkit, folders4, out4, args.jobs), pairs=len(pairs),
                  want_status=2, failing={perturbed_stem: (index4, value4)}, erroring={broken_stem})
    finally:
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\ncheck_reports: {checks.passed} checks passed, {len(checks.failed)} failed")
    for failure in checks.failed:
        print(f"  failed: {failure}")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
