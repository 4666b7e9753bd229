"""Assertions for test suites (pytest, unittest): a model file still computes its fixture.

    import rnnkit.testing

    def test_sentiment_model():
        rnnkit.testing.assert_verifies("models/sentiment.h5", "models/sentiment.fixture.h5")

A failure is an `AssertionError` naming each mismatching tensor with its shape, its max
absolute and relative errors, how many elements are outside the tolerance and the first
index; a model or fixture that cannot be read raises `rnnkit.RnnkitError` instead (an error
in the test, not a failed comparison).
"""

from __future__ import annotations

from typing import Optional, Sequence

from ._tool import PathLike, VerifyReport, verify

__all__ = ["assert_verifies"]


def assert_verifies(model: PathLike, fixture: PathLike, *, atol: Optional[float] = None,
                    rtol: Optional[float] = None, architecture: Optional[PathLike] = None,
                    key: Optional[str] = None, modules: Optional[Sequence[str]] = None,
                    by_name: bool = False, threads: Optional[int] = None) -> VerifyReport:
    """Asserts that `model` reproduces `fixture`'s expected outputs (`rnnkit verify`).

    An element passes when |actual − expected| ≤ atol + rtol·|expected|; `atol` and `rtol`
    default to the fixture's own, else 1e-5 and 1e-4. Returns the report when every tensor
    passes; raises `AssertionError` otherwise, its message like

        rnnkit verify: m.pt does not reproduce m.fixture.h5 (atol 1e-05, rtol 0.0001)
          output [3, 2]: max abs error 0.01, max rel error 0.0299, 1 outside tolerance, first at [1, 0]
    """
    __tracebackhide__ = True  # pytest shows the assertion, not this frame
    report = verify(model, fixture, atol=atol, rtol=rtol, architecture=architecture, key=key,
                    modules=modules, by_name=by_name, threads=threads)
    if report.passed:
        return report
    lines = []
    for case in report.failures:
        tolerance = f" (atol {case.atol:g}, rtol {case.rtol:g})" if case.atol is not None and case.rtol is not None else ""
        lines.append(f"rnnkit verify: {case.model} does not reproduce {case.fixture}{tolerance}")
        failing = [tensor for tensor in case.tensors if not tensor.passed]
        lines += [f"  {tensor.describe()}" for tensor in failing]
        if case.error:
            lines.append(f"  {case.error}")
    raise AssertionError("\n".join(lines) if lines else "rnnkit verify: no case was checked")
