"""Tests of the installed rnnkit package (the wheel), run by scripts/check_wheel.sh:

    RNNKIT_REPO=<checkout> VENV/bin/python -m unittest discover -s python/package/tests

from a folder outside the checkout, with the wheel installed in VENV. RNNKIT_REPO is where the
committed fixtures are; the numbers they hold were computed by the frameworks.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np

import rnnkit
import rnnkit.testing
from rnnkit.fixture import load_fixture, save_fixture

REPO = os.environ.get("RNNKIT_REPO") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FIXTURES = os.path.join(REPO, "fixtures")
KERAS_MODEL = os.path.join(FIXTURES, "keras", "tfk_text_bilstm.h5")
KERAS_FIXTURE = os.path.join(FIXTURES, "keras", "tfk_text_bilstm.fixture.h5")
TORCH_MODEL = os.path.join(FIXTURES, "pytorch", "lstm_bidir_2layer_lengths.h5")
TORCH_FIXTURE = os.path.join(FIXTURES, "pytorch", "lstm_bidir_2layer_lengths.fixture.h5")
PACKAGE = os.path.dirname(os.path.abspath(rnnkit.__file__))


class Folder(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="rnnkit-package-test-")
        self.addCleanup(shutil.rmtree, self.folder)

    def copy(self, *paths):
        copies = []
        for path in paths:
            shutil.copy(path, self.folder)
            copies.append(os.path.join(self.folder, os.path.basename(path)))
        return copies


class PackageTests(unittest.TestCase):
    def test_the_binary_is_the_packages_own(self):
        path = rnnkit.executable()
        self.assertEqual(os.path.dirname(os.path.dirname(path)), PACKAGE)
        self.assertTrue(os.access(path, os.X_OK))
        # An `rnnkit` earlier on PATH is not used: the package names its binary by path.
        fake = tempfile.mkdtemp(prefix="rnnkit-fake-path-")
        self.addCleanup(shutil.rmtree, fake)
        with open(os.path.join(fake, "rnnkit"), "w") as script:
            script.write("#!/bin/sh\necho fake; exit 3\n")
        os.chmod(os.path.join(fake, "rnnkit"), 0o755)
        saved = os.environ["PATH"]
        os.environ["PATH"] = fake + os.pathsep + saved
        try:
            self.assertEqual(rnnkit.inspect(KERAS_MODEL)["framework"], "keras")
        finally:
            os.environ["PATH"] = saved

    def test_one_version_everywhere(self):
        line = subprocess.run([rnnkit.executable(), "--version"], capture_output=True, text=True, check=True).stdout
        self.assertEqual(line.split()[0], rnnkit.__version__)
        self.assertRegex(line.strip(), r"\(built for .+, (no )?FMA; libhdf5 \d+\.\d+\.\d+\)$")
        from importlib import metadata
        self.assertEqual(metadata.version("rnnkit"), rnnkit.__version__)
        self.assertEqual(set(metadata.requires("rnnkit") and [r.split(";")[0].split(">")[0].split("=")[0].strip()
                                                                  for r in metadata.requires("rnnkit") if "extra ==" not in r]),
                         {"numpy", "h5py"})

    def test_python_dash_m_and_the_console_script_run_the_same_binary(self):
        direct = subprocess.run([rnnkit.executable(), "--version"], capture_output=True, text=True).stdout
        module = subprocess.run([sys.executable, "-m", "rnnkit", "--version"], capture_output=True, text=True).stdout
        script = subprocess.run([os.path.join(os.path.dirname(sys.executable), "rnnkit"), "--version"],
                                capture_output=True, text=True).stdout
        self.assertEqual(direct, module)
        self.assertEqual(direct, script)
        # Exit status passes through: a usage error is 2, in one line.
        bad = subprocess.run([sys.executable, "-m", "rnnkit", "verify", "--jobs", "0", KERAS_MODEL, KERAS_FIXTURE],
                             capture_output=True, text=True)
        self.assertEqual(bad.returncode, 2)
        self.assertEqual(len(bad.stderr.strip().splitlines()), 1, bad.stderr)

    def test_each_level_runs_or_refuses_in_one_line(self):
        levels = sorted(name[len("rnnkit-"):] for name in os.listdir(os.path.join(PACKAGE, "_bin")) if name.startswith("rnnkit-"))
        self.assertIn("x86-64", levels)
        summaries = {"x86-64": "x86-64 baseline, no FMA", "haswell": "AVX2, FMA", "skylake-avx512": "AVX-512, FMA"}
        for level in levels:
            result = subprocess.run([rnnkit.executable(), "--version"], capture_output=True, text=True,
                                    env=dict(os.environ, RNNKIT_CPU_LEVEL=level))
            if result.returncode == 0:
                self.assertIn(f"(built for {summaries[level]};", result.stdout, level)
            else:
                # A build this CPU cannot run says so itself (the CPU check every build has).
                self.assertEqual(result.returncode, 2, level)
                self.assertRegex(result.stderr, r"^rnnkit: error: this build is for .+, and this CPU lacks [a-z0-9., ]+;.*\n$")


class VerifyTests(Folder):
    def test_verify_a_model_and_its_fixture(self):
        report = rnnkit.verify(TORCH_MODEL, TORCH_FIXTURE)
        self.assertTrue(report.passed, report.describe())
        [case] = report.cases
        self.assertEqual(case.status, "passed")
        tensors = {t.name: t for t in case.tensors}
        self.assertEqual(sorted(tensors), ["c_n", "h_n", "output"])
        with h5py.File(TORCH_FIXTURE, "r") as f:
            self.assertEqual(tensors["output"].expected_shape, list(f["expected/output"].shape))
        self.assertLessEqual(tensors["output"].max_abs_error, 1e-5)
        self.assertEqual(report.summary["passed"], 1)

    def test_verify_folders(self):
        report = rnnkit.verify(os.path.join(FIXTURES, "keras"), jobs=2)
        count = len([name for name in os.listdir(os.path.join(FIXTURES, "keras")) if name.endswith(".fixture.h5")])
        self.assertEqual(len(report.cases), count)
        self.assertTrue(report.passed, report.describe())

    def perturbed(self):
        model, fixture = self.copy(KERAS_MODEL, KERAS_FIXTURE)
        with h5py.File(fixture, "r+") as f:
            expected = f["expected/output"][...]
            original = float(expected[1, 0])
            expected[1, 0] += 0.01
            f["expected/output"][...] = expected
        return model, fixture, original

    def test_a_mismatch_is_a_report_not_an_error(self):
        model, fixture, _ = self.perturbed()
        report = rnnkit.verify(model, fixture)
        self.assertFalse(report.passed)
        [case] = report.failures
        self.assertEqual(case.status, "failed")
        self.assertEqual(case.tensors[0].mismatches, 1)
        self.assertEqual(case.tensors[0].first_mismatch, [1, 0])

    def test_assert_verifies_passes_and_fails_with_the_numbers(self):
        report = rnnkit.testing.assert_verifies(KERAS_MODEL, KERAS_FIXTURE, atol=1e-5, rtol=1e-4)
        self.assertTrue(report.passed)
        model, fixture, original = self.perturbed()
        with self.assertRaises(AssertionError) as raised:
            rnnkit.testing.assert_verifies(model, fixture, atol=1e-5, rtol=1e-4)
        message = str(raised.exception)
        self.assertIn(f"{model} does not reproduce {fixture} (atol 1e-05, rtol 0.0001)", message)
        self.assertIn("output [3, 2]: max abs error 0.01, max rel error ", message)
        self.assertIn("1 outside tolerance, first at [1, 0]", message)
        # The relative error is the 0.01 added over the recorded value (now original + 0.01).
        rel = float(re.search(r"max rel error ([0-9.e+-]+)", message).group(1))
        self.assertAlmostEqual(rel, 0.01 / abs(original + 0.01), delta=0.01 * rel)
        # A looser tolerance that covers the change passes.
        rnnkit.testing.assert_verifies(model, fixture, atol=0.02, rtol=0)

    def test_a_case_that_cannot_run_raises_rnnkit_error(self):
        missing = os.path.join(self.folder, "missing.h5")
        with self.assertRaises(rnnkit.RnnkitError) as raised:
            rnnkit.verify(missing, KERAS_FIXTURE)
        self.assertEqual(str(raised.exception), f"{missing}: no such file")
        self.assertEqual(raised.exception.returncode, 2)
        self.assertEqual(raised.exception.report.cases[0].status, "error")
        # assert_verifies lets it through: an error in the test, not a failed comparison.
        with self.assertRaises(rnnkit.RnnkitError):
            rnnkit.testing.assert_verifies(missing, KERAS_FIXTURE)


class ConvertAndInspectTests(Folder):
    def test_convert_then_verify_against_the_original_fixture(self):
        out = os.path.join(self.folder, "text_bilstm.pt")
        self.assertEqual(str(rnnkit.convert(KERAS_MODEL, out, to="pytorch")), out)
        self.assertTrue(rnnkit.verify(out, KERAS_FIXTURE).passed)
        info = rnnkit.inspect(out)
        self.assertEqual(info["framework"], "pytorch")
        # An existing output is replaced only with force=True.
        with self.assertRaises(rnnkit.RnnkitError) as raised:
            rnnkit.convert(KERAS_MODEL, out, to="pytorch")
        self.assertNotIn("\n", str(raised.exception))
        self.assertNotIn("rnnkit: error:", str(raised.exception))
        self.assertIn(out, str(raised.exception))
        rnnkit.convert(KERAS_MODEL, out, to="pytorch", force=True)

    def test_inspect_is_the_json_of_the_command(self):
        info = rnnkit.inspect(KERAS_MODEL)
        command = subprocess.run([rnnkit.executable(), "inspect", KERAS_MODEL, "--json"], capture_output=True, text=True, check=True)
        import json
        self.assertEqual(info, json.loads(command.stdout))
        self.assertEqual(info["container"], "hdf5")
        self.assertIn("Bidirectional(LSTM)", [layer["type"] for layer in info["layers"]])

    def test_a_file_that_is_not_a_model_raises_one_line(self):
        text = os.path.join(self.folder, "notes.h5")
        with open(text, "w") as f:
            f.write("not HDF5\n")
        with self.assertRaises(rnnkit.RnnkitError) as raised:
            rnnkit.inspect(text)
        self.assertIn(text, str(raised.exception))
        self.assertNotIn("\n", str(raised.exception))


class FixtureModuleTests(Folder):
    def test_the_fixture_module_is_python_rnnkit_fixture(self):
        # One source: the package carries python/rnnkit_fixture.py as it is.
        source = os.path.join(REPO, "python", "rnnkit_fixture.py")
        with open(source, encoding="utf-8") as a, open(rnnkit.fixture.__file__, encoding="utf-8") as b:
            self.assertEqual(a.read(), b.read())
        for name in ("save_fixture", "load_fixture", "from_torch", "from_keras", "Fixture"):
            self.assertTrue(callable(getattr(rnnkit.fixture, name)), name)

    def test_a_fixture_written_here_verifies(self):
        # The committed fixture's arrays, written again through rnnkit.fixture.
        model, = self.copy(TORCH_MODEL)
        loaded = load_fixture(TORCH_FIXTURE)
        path = os.path.join(self.folder, "again.fixture.h5")
        save_fixture(path, loaded.inputs, loaded.expected, lengths=loaded.lengths, model=os.path.basename(model))
        rnnkit.testing.assert_verifies(model, path)
        expected = dict(loaded.expected)
        expected["output"] = np.array(expected["output"]) * 1.5
        changed = os.path.join(self.folder, "changed.fixture.h5")
        save_fixture(changed, loaded.inputs, expected, lengths=loaded.lengths, model=os.path.basename(model))
        with self.assertRaises(AssertionError):
            rnnkit.testing.assert_verifies(model, changed)


if __name__ == "__main__":
    unittest.main()
