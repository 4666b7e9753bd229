"""Tests of scripts/check_onnx_runtime.py: that it passes what matches, fails what does not, and
accepts from `rnnkit convert` only a written file or rnnkit's one-line refusal (exit 2).

`rnnkit convert --to onnx` is played by a small fake (below), so these tests need no build:

    .venv-ci/bin/python -m unittest discover -s scripts -p 'test_check_onnx_runtime.py' -v
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

import h5py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCRIPT = os.path.join(HERE, "check_onnx_runtime.py")
ONNX = os.path.join(ROOT, "fixtures", "onnx")

# The fake: an .onnx model is "converted" by copying it; a model whose name says so misbehaves
# as named; any other is refused in one line with exit 2. FAKE_NO_WRITER=1 plays a binary
# without the writer (the argument parser's refusal of `--to onnx`).
FAKE = textwrap.dedent(f"""\
    #!{sys.executable}
    import os, shutil, sys
    args = sys.argv[1:]
    if os.environ.get("FAKE_NO_WRITER"):
        sys.stderr.write("rnnkit: error: The value 'onnx' is invalid for '--to <to>'. Please provide one of "
                         "'pytorch', 'keras' or 'keras3'. (see 'rnnkit --help')\\n")
        sys.exit(2)
    model, out = args[1], args[2]
    name = os.path.basename(model)
    if "crash" in name:
        os.abort()
    if "multiline" in name:
        sys.stderr.write("rnnkit: error: first line\\nsecond line\\n")
        sys.exit(2)
    if "status1" in name:
        sys.stderr.write("rnnkit: error: exit 1\\n")
        sys.exit(1)
    if "leaves" in name:
        open(out, "wb").write(b"partial")
        sys.stderr.write("rnnkit: error: refused after writing\\n")
        sys.exit(2)
    if "loop" in name:
        shutil.copy({os.path.join(ONNX, "refused", "loop.onnx")!r}, out)
        sys.exit(0)
    if name.endswith(".onnx"):
        shutil.copy(model, out)
        print("wrote " + out)
        sys.exit(0)
    sys.stderr.write("rnnkit: error: " + model + ": refused for the test\\n")
    sys.exit(2)
""")


class HarnessTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.fake = os.path.join(self.dir, "rnnkit")
        with open(self.fake, "w") as f:
            f.write(FAKE)
        os.chmod(self.fake, 0o755)
        self.cases = os.path.join(self.dir, "cases")
        os.mkdir(self.cases)

    def add(self, case, source="node_lstm_bi_lengths_states", model_name=None, edit=None):
        """A (model, fixture) pair in the cases folder, copied from fixtures/onnx."""
        model_name = model_name or case + ".onnx"
        shutil.copy(os.path.join(ONNX, source + ".onnx"), os.path.join(self.cases, model_name))
        fixture = os.path.join(self.cases, case + ".fixture.h5")
        shutil.copy(os.path.join(ONNX, source + ".fixture.h5"), fixture)
        with h5py.File(fixture, "r+") as f:
            f.attrs["model"] = model_name
            if edit:
                edit(f)
        return fixture

    def run_harness(self, *arguments, env=None):
        report = os.path.join(self.dir, "report.json")
        run = subprocess.run([sys.executable, SCRIPT, self.cases, "--rnnkit", self.fake, "--json", report,
                              *arguments], capture_output=True, text=True, env={**os.environ, **(env or {})})
        with open(report) as f:
            rows = {(r["mode"], os.path.basename(r["fixture"])[: -len(".fixture.h5")]): r
                    for r in json.load(f)["rows"]}
        return run, rows

    def test_direct_rows_pass_and_fail(self):
        self.add("good")
        self.add("good_torch", source="torch_packed_lstm_bi_linear_fold")
        self.add("good_tf2onnx", source="tf2onnx_tfkeras_embed_lstm")

        def nudge(f):
            data = f["expected/h_n"][()]
            data[0, 0, 0] += 1e-3
            f["expected/h_n"][...] = data
        self.add("wrong_h_n", edit=nudge)

        def drop_lengths(f):
            del f["lengths"]
        self.add("no_lengths", edit=drop_lengths)  # full lengths fed: ONNX Runtime's numbers differ

        def other_h0(f):
            f["h0"][...] = f["h0"][()] + 0.5
        self.add("wrong_h0", edit=other_h0)
        fixture = self.add("model_missing")
        os.remove(fixture[: -len(".fixture.h5")] + ".onnx")
        run, rows = self.run_harness("--convert", "no")
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        status = {case: row["status"] for (mode, case), row in rows.items()}
        self.assertEqual(status, {"good": "ok", "good_torch": "ok", "good_tf2onnx": "ok", "wrong_h_n": "FAIL",
                                  "no_lengths": "FAIL", "wrong_h0": "FAIL", "model_missing": "FAIL"})
        self.assertIn("/expected/h_n: 1 of", rows[("direct", "wrong_h_n")]["note"])
        self.assertIn("missing", rows[("direct", "model_missing")]["note"])
        self.assertIn("4 failed", run.stdout)

    def test_names_the_writer_may_use(self):
        """`lengths`, per-layer `h0_0`/`c0_0` inputs and `output`/`h_n`/`c_n` outputs, batch-first
        data: the same node behind renamed inputs and Transposes."""
        import onnx
        from onnx import helper
        self.add("renamed")
        path = os.path.join(self.cases, "renamed.onnx")
        model = onnx.load(path)
        graph = model.graph
        rename = {"X": "x_time_major", "sequence_lens": "seq32", "initial_h": "h0_0", "initial_c": "c0_0",
                  "Y": "Y_raw", "Y_h": "h_n", "Y_c": "c_n"}
        for node in graph.node:
            node.input[:] = [rename.get(n, n) for n in node.input]
            node.output[:] = [rename.get(n, n) for n in node.output]
        for value in list(graph.input) + list(graph.output):
            value.name = rename.get(value.name, value.name)
        x = next(v for v in graph.input if v.name == "x_time_major")
        x.name = "features"
        dims = x.type.tensor_type.shape.dim
        dims[0].dim_param, dims[1].dim_param = "batch", "time"
        lengths = next(v for v in graph.input if v.name == "seq32")
        lengths.name = "lengths"
        lengths.type.tensor_type.elem_type = onnx.TensorProto.INT64
        graph.node.insert(0, helper.make_node("Transpose", ["features"], ["x_time_major"], perm=[1, 0, 2]))
        graph.node.insert(1, helper.make_node("Cast", ["lengths"], ["seq32"], to=onnx.TensorProto.INT32))
        graph.node.append(helper.make_node("Transpose", ["Y_raw"], ["Y_t"], perm=[2, 0, 1, 3]))
        graph.node.append(helper.make_node("Constant", [], ["keep_keep_merge"], value=helper.make_tensor(
            "keep_keep_merge", onnx.TensorProto.INT64, [3], [0, 0, -1])))
        graph.node.append(helper.make_node("Reshape", ["Y_t", "keep_keep_merge"], ["output"]))
        graph.output.insert(0, helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, ["batch", "time", 8]))
        del graph.output[1]  # Y_raw is internal now
        onnx.save(model, path)
        run, rows = self.run_harness("--convert", "no")
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertEqual(rows[("direct", "renamed")]["status"], "ok")

    def test_all_good_exits_zero(self):
        self.add("good")
        run, rows = self.run_harness("--convert", "no")
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertEqual(rows[("direct", "good")]["status"], "ok")

    def test_nothing_checked_fails(self):
        run, rows = self.run_harness("--convert", "no")
        self.assertEqual(run.returncode, 1)
        self.assertEqual(rows, {})

    def test_convert_outcomes(self):
        self.add("written")  # an .onnx model: the fake copies it
        self.add("refused", model_name="refused.h5")
        self.add("crash", model_name="crash.h5")
        self.add("multiline", model_name="multiline.h5")
        self.add("status1", model_name="status1.h5")
        self.add("leaves", model_name="leaves.h5")
        self.add("loop", model_name="loop.h5")
        run, rows = self.run_harness("--convert", "yes", "--keep", os.path.join(self.dir, "kept"))
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        status = {case: row["status"] for (mode, case), row in rows.items() if mode == "convert"}
        self.assertEqual(status, {"written": "ok", "refused": "refused", "crash": "FAIL", "multiline": "FAIL",
                                  "status1": "FAIL", "leaves": "FAIL", "loop": "FAIL"})
        self.assertTrue(rows[("convert", "refused")]["note"].startswith("rnnkit: error: "))
        self.assertIn("killed by signal", rows[("convert", "crash")]["note"])
        self.assertIn("2 line(s)", rows[("convert", "multiline")]["note"])
        self.assertIn("exit status 1", rows[("convert", "status1")]["note"])
        self.assertIn("left the output file", rows[("convert", "leaves")]["note"])
        self.assertIn("Loop", rows[("convert", "loop")]["note"])
        self.assertTrue(os.path.isfile(rows[("convert", "written")]["onnx"]))
        self.assertEqual(rows[("direct", "written")]["status"], "ok")

    def test_writer_unavailable(self):
        self.add("good")
        run, rows = self.run_harness("--convert", "auto", env={"FAKE_NO_WRITER": "1"})
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("convert: writer unavailable (rnnkit: error: The value 'onnx' is invalid", run.stdout)
        self.assertEqual(set(rows), {("direct", "good")})
        run, rows = self.run_harness("--convert", "yes", env={"FAKE_NO_WRITER": "1"})
        self.assertEqual(run.returncode, 1)


if __name__ == "__main__":
    unittest.main()
