"""The bundled `rnnkit` binary, called from Python: verify, convert, inspect.

Each function runs the binary inside this package once, with the options given as the
command line spells them, and reads its JSON output. A run that rnnkit refuses or cannot do
(exit status 2: a file missing, damaged or not convertible exactly) raises `RnnkitError` with
rnnkit's own one-line message; a mismatch in `verify` is a result, not an error.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

PathLike = Union[str, "os.PathLike[str]"]

_ERROR_PREFIX = "rnnkit: error: "


class RnnkitError(Exception):
    """rnnkit refused or could not do what was asked.

    `str(error)` is rnnkit's one-line error (without its `rnnkit: error: ` prefix), which names
    the file, the object path, the layer and the shapes concerned. `returncode` is the tool's
    exit status, `command` the command line that was run, `stderr` everything it wrote there,
    and `report` the parsed JSON report when `verify` wrote one (cases that could not run are
    in it with their error), else None.
    """

    def __init__(self, message: str, *, returncode: int = 2, command: Sequence[str] = (),
                 stderr: str = "", report: Optional["VerifyReport"] = None) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.command = list(command)
        self.stderr = stderr
        self.report = report


def executable() -> str:
    """The path of the `rnnkit` this package carries (its CPU-level launcher).

    Never an `rnnkit` on PATH: the binary and this package come from the same wheel, so they
    are the same version. Raises `RnnkitError` when the package has no binary (a source
    checkout rather than an installed wheel).
    """
    path = Path(__file__).resolve().parent / "_bin" / "rnnkit"
    if not os.access(path, os.X_OK):
        raise RnnkitError(f"this rnnkit package carries no rnnkit binary ({path}); install the wheel "
                          "that `make wheel` builds")
    return str(path)


def _run(arguments: Sequence[str], *, accept: Tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    command = [executable(), *arguments]
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            errors="replace")
    if result.returncode not in accept:
        raise RnnkitError(_error_line(result.stderr, result.returncode), returncode=result.returncode,
                          command=command, stderr=result.stderr)
    return result


def _error_line(stderr: str, returncode: int) -> str:
    """rnnkit's error line (the last one on stderr), without its prefix."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(_ERROR_PREFIX):
            return line[len(_ERROR_PREFIX):]
    if lines:
        return lines[-1]
    return f"rnnkit exited with status {returncode}" if returncode >= 0 else f"rnnkit was killed by signal {-returncode}"


def _model_options(architecture: Optional[PathLike], key: Optional[str], modules: Optional[Sequence[str]],
                   by_name: bool) -> List[str]:
    options: List[str] = []
    if architecture is not None:
        options += ["--architecture", os.fspath(architecture)]
    if key is not None:
        options += ["--key", key]
    if modules is not None:
        options += ["--modules", ",".join(modules)]
    if by_name:
        options.append("--by-name")
    return options


@dataclass(frozen=True)
class TensorResult:
    """One output compared: `output`, `h_n` or `c_n` (the fixture's `/expected/NAME`).

    `max_abs_error` is max |actual − expected| and `max_rel_error` max |actual − expected| /
    |expected| over the tensor; an element mismatches where |actual − expected| > atol +
    rtol·|expected|. `first_mismatch` is the index of the first such element in row-major
    order (None when all match); `shape` is the model's output shape, `expected_shape` the
    fixture's.
    """

    name: str
    shape: Optional[List[int]]
    expected_shape: Optional[List[int]]
    max_abs_error: Optional[float]
    max_rel_error: Optional[float]
    mismatches: int
    first_mismatch: Optional[List[int]]

    @property
    def passed(self) -> bool:
        return self.mismatches == 0 and self.shape == self.expected_shape

    def describe(self) -> str:
        """One line: the tensor, its shape, the max errors, where it first mismatches."""
        shape = self.expected_shape if self.expected_shape is not None else self.shape
        line = f"{self.name} {shape}: max abs error {_number(self.max_abs_error)}, max rel error {_number(self.max_rel_error)}"
        if self.shape != self.expected_shape:
            line += f", shape {self.shape} where the fixture has {self.expected_shape}"
        if self.mismatches:
            line += f", {self.mismatches} outside tolerance, first at {self.first_mismatch}"
        return line


@dataclass(frozen=True)
class CaseResult:
    """One model checked against one fixture: `status` is "passed", "failed" or "error"."""

    name: str
    model: Optional[str]
    fixture: Optional[str]
    status: str
    atol: Optional[float]
    rtol: Optional[float]
    error: Optional[str]
    tensors: List[TensorResult]
    seconds: Optional[float] = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def describe(self) -> str:
        """The case, its tolerance and, for a failure, each mismatching tensor (or the error)."""
        head = f"{self.name}: {self.status} ({self.model} against {self.fixture}"
        if self.atol is not None and self.rtol is not None:
            head += f", atol {self.atol:g}, rtol {self.rtol:g}"
        head += ")"
        if self.error:
            return f"{head}: {self.error}"
        failing = [tensor for tensor in self.tensors if not tensor.passed] or self.tensors
        return "\n".join([head] + [f"  {tensor.describe()}" for tensor in failing])


@dataclass(frozen=True)
class VerifyReport:
    """What `rnnkit verify` found: every case, the summary counts and its text output.

    `passed` is True when every case passed. `json` is the report as rnnkit wrote it
    (spec/fixture-format.md, "The JSON report").
    """

    cases: List[CaseResult]
    summary: Dict[str, Any]
    text: str
    json: Dict[str, Any] = field(repr=False)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(case.passed for case in self.cases)

    @property
    def failures(self) -> List[CaseResult]:
        return [case for case in self.cases if not case.passed]

    def describe(self) -> str:
        """The failing cases (every case when all passed), one block each."""
        return "\n".join(case.describe() for case in (self.failures or self.cases))

    @classmethod
    def from_json(cls, document: Dict[str, Any], text: str = "") -> "VerifyReport":
        cases = []
        for case in document.get("cases", []):
            tensors = [TensorResult(name=t.get("name", "?"), shape=t.get("shape"),
                                    expected_shape=t.get("expected_shape"),
                                    max_abs_error=t.get("max_abs_error"), max_rel_error=t.get("max_rel_error"),
                                    mismatches=int(t.get("mismatches") or 0), first_mismatch=t.get("first_mismatch"))
                       for t in case.get("tensors", [])]
            cases.append(CaseResult(name=case.get("name", "?"), model=case.get("model"), fixture=case.get("fixture"),
                                    status=case.get("status", "error"), atol=case.get("atol"), rtol=case.get("rtol"),
                                    error=case.get("error"), tensors=tensors, seconds=case.get("seconds")))
        return cls(cases=cases, summary=dict(document.get("summary", {})), text=text, json=document)


def _number(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def verify(*paths: PathLike, manifest: Optional[PathLike] = None, atol: Optional[float] = None,
           rtol: Optional[float] = None, architecture: Optional[PathLike] = None, key: Optional[str] = None,
           modules: Optional[Sequence[str]] = None, by_name: bool = False, jobs: Optional[int] = None,
           threads: Optional[int] = None, timeout: Optional[float] = None,
           junit: Optional[PathLike] = None) -> VerifyReport:
    """Runs models on their fixtures' inputs and compares the outputs (`rnnkit verify`).

    `paths` is a model and its fixture (`verify("m.pt", "m.fixture.h5")`), or folders and
    fixtures, each fixture paired with its model as the command does; `manifest` adds cases
    from a JSON or YAML list. `atol` and `rtol` apply where a fixture or manifest entry gives
    none (default 1e-5 and 1e-4): an element passes when |actual − expected| ≤ atol +
    rtol·|expected|.

    Returns the report whether the outputs match or not (`report.passed`); raises
    `RnnkitError` when a case could not run (a file missing or refused), with rnnkit's
    error line and the report in `error.report`. `junit` also writes the JUnit XML report.
    """
    arguments = ["verify", *[os.fspath(path) for path in paths]]
    if manifest is not None:
        arguments += ["--manifest", os.fspath(manifest)]
    for flag, value in (("--atol", atol), ("--rtol", rtol), ("--jobs", jobs), ("--threads", threads),
                        ("--timeout", timeout)):
        if value is not None:
            arguments += [flag, repr(value) if isinstance(value, float) else str(value)]
    arguments += _model_options(architecture, key, modules, by_name)
    if junit is not None:
        arguments += ["--junit", os.fspath(junit)]
    with tempfile.TemporaryDirectory(prefix="rnnkit-verify-") as folder:
        report_path = os.path.join(folder, "report.json")
        command = [executable(), *arguments, "--json", report_path]
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
        report = None
        if os.path.exists(report_path):
            with open(report_path, encoding="utf-8") as file:
                report = VerifyReport.from_json(json.load(file), result.stdout)
    if result.returncode in (0, 1) and report is not None:
        return report
    raise RnnkitError(_error_line(result.stderr, result.returncode), returncode=result.returncode,
                      command=command, stderr=result.stderr, report=report)


def convert(source: PathLike, destination: PathLike, *, to: str, force: bool = False,
            architecture: Optional[PathLike] = None, key: Optional[str] = None,
            modules: Optional[Sequence[str]] = None, by_name: bool = False,
            emit_python: Optional[PathLike] = None, padding_id: Union[int, str, None] = None) -> Path:
    """Converts a model file to another framework's layout, exactly or not at all (`rnnkit convert`).

    `to` is the target layout as the command names it: "pytorch" (.pt, .pth, .safetensors,
    .h5), "keras" (tf-keras .h5) or "keras3" (.keras). An existing `destination` is replaced
    only with `force=True`. `emit_python` (with to="pytorch") also writes a Python module
    defining the equivalent torch.nn.Module; `padding_id` (an id or "none") is the padding of
    a PyTorch model on token ids converted to Keras.

    Returns `destination` as a Path; raises `RnnkitError` when the conversion is refused
    (the message says which layer and why).
    """
    arguments = ["convert", os.fspath(source), os.fspath(destination), "--to", to]
    if force:
        arguments.append("--force")
    if emit_python is not None:
        arguments += ["--emit-python", os.fspath(emit_python)]
    if padding_id is not None:
        arguments += ["--padding-id", str(padding_id)]
    arguments += _model_options(architecture, key, modules, by_name)
    _run(arguments)
    return Path(destination)


def inspect(model: PathLike, *, architecture: Optional[PathLike] = None, key: Optional[str] = None,
            modules: Optional[Sequence[str]] = None, by_name: bool = False) -> Dict[str, Any]:
    """What a model file holds (`rnnkit inspect --json`): its container, framework, layers
    with their sizes and parameter counts, inputs and outputs, as a dict.

    Raises `RnnkitError` when the file cannot be read as a model.
    """
    result = _run(["inspect", os.fspath(model), "--json", *_model_options(architecture, key, modules, by_name)])
    return json.loads(result.stdout)
