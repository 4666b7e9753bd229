"""rnnkit: read, convert, run and verify recurrent-network weight files (PyTorch, Keras).

The `rnnkit` command and this package come from one wheel: the command is RecurrentKit's
release binary (one build per x86-64 CPU level, the fastest this CPU runs picked when it
starts), and the functions here call that same binary — the one inside this package, never
an `rnnkit` found on PATH.

- `verify(model, fixture, ...)`: `rnnkit verify`, returning a `VerifyReport`.
- `convert(source, destination, to=...)`: `rnnkit convert`.
- `inspect(model) -> dict`: `rnnkit inspect --json`.
- `rnnkit.fixture`: writes and reads fixtures (`from_torch`, `from_keras`, `save_fixture`,
  `load_fixture`); needs numpy and h5py only.
- `rnnkit.testing.assert_verifies(model, fixture)`: for pytest and unittest.

Every failure of the tool raises `RnnkitError`, whose message is rnnkit's one-line error.

    import rnnkit
    report = rnnkit.verify("models/sentiment.h5", "models/sentiment.fixture.h5")
    assert report.passed, report.describe()
"""

from ._version import __version__
from ._tool import (CaseResult, RnnkitError, TensorResult, VerifyReport, convert, executable,
                    inspect, verify)

__all__ = ["__version__", "RnnkitError", "VerifyReport", "CaseResult", "TensorResult", "verify",
           "convert", "inspect", "executable", "fixture", "testing"]


def __getattr__(name):
    # `rnnkit.fixture` imports numpy and h5py; the `rnnkit` command imports this package
    # first, and should not pay for them. Both submodules load on first use.
    if name in ("fixture", "testing"):
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
