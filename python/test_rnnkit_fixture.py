"""Tests of rnnkit_fixture without any framework (numpy and h5py only).

    python -m unittest discover -s python -v

With the environment variable RNNKIT set to an `rnnkit` binary, fixtures written here for
committed model files are also checked with `rnnkit verify` (exit 0; exit 1 once an expected
value is changed); without it, those tests are skipped.
"""

import glob
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import rnnkit_fixture as rf  # noqa: E402
from rnnkit_fixture import Fixture, load_fixture, save_fixture  # noqa: E402

RNG = np.random.default_rng(16)


def features(batch=3, time=5, size=4, dtype=np.float32):
    return RNG.normal(size=(batch, time, size)).astype(dtype)


def string_attribute(f, name):
    """(is variable-length, is UTF-8) of a string attribute, or None when not a string."""
    kind = f.attrs.get_id(name).get_type()
    if not isinstance(kind, h5py.h5t.TypeStringID):
        return None
    return kind.is_variable_str(), kind.get_cset() == h5py.h5t.CSET_UTF8


class Folder(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="rnnkit-fixture-test-")
        self.addCleanup(shutil.rmtree, self.folder)

    def path(self, name="m.fixture.h5"):
        return os.path.join(self.folder, name)

    def listing(self):
        return sorted(os.listdir(self.folder))


class RoundTrip(Folder):
    def test_float_inputs_with_every_dataset_and_attribute(self):
        x = features(3, 5, 4)
        lengths = [5, 2, 4]
        h0 = RNG.normal(size=(4, 3, 6)).astype(np.float32)
        c0 = RNG.normal(size=(4, 3, 6)).astype(np.float32)
        expected = {"output": RNG.normal(size=(3, 5, 12)), "h_n": RNG.normal(size=(4, 3, 6)),
                    "c_n": RNG.normal(size=(4, 3, 6))}
        path = save_fixture(self.path(), x, expected, lengths=lengths, h0=h0, c0=c0, atol=2e-5,
                            rtol=1e-3, architecture="m.config.json", generator="torch 2.5.1",
                            model="m.pt", key="model_state_dict",
                            exercises=["lstm", "bidirectional", "lengths"])
        self.assertEqual(path, self.path())
        self.assertEqual(self.listing(), ["m.fixture.h5"])
        with h5py.File(path, "r") as f:
            names = []
            f.visititems(lambda name, obj: names.append(name))
            self.assertEqual(sorted(names), ["c0", "expected", "expected/c_n", "expected/h_n",
                                             "expected/output", "h0", "inputs", "lengths"])
            self.assertEqual(f["inputs"].dtype, np.dtype("<f4"))
            np.testing.assert_array_equal(f["inputs"][()], x)
            self.assertEqual(f["lengths"].dtype, np.dtype("<i8"))
            self.assertEqual(f["lengths"][()].tolist(), lengths)
            for name, value in (("h0", h0), ("c0", c0)):
                self.assertEqual(f[name].dtype, np.dtype("<f4"))
                np.testing.assert_array_equal(f[name][()], value)
            for name, value in expected.items():
                self.assertEqual(f[f"expected/{name}"].dtype, np.dtype("<f4"))
                np.testing.assert_array_equal(f[f"expected/{name}"][()], value.astype(np.float32))
            self.assertEqual(set(f.attrs), {"generator", "model", "architecture", "key",
                                            "exercises", "atol", "rtol"})
            for name, value in (("generator", "torch 2.5.1"), ("model", "m.pt"),
                                ("architecture", "m.config.json"), ("key", "model_state_dict")):
                self.assertEqual(f.attrs[name], value)
                self.assertEqual(string_attribute(f, name), (True, True), name)
            self.assertEqual(json.loads(f.attrs["exercises"]), ["lstm", "bidirectional", "lengths"])
            self.assertEqual(string_attribute(f, "exercises"), (True, True))
            for name, value in (("atol", 2e-5), ("rtol", 1e-3)):
                self.assertEqual(f.attrs.get_id(name).dtype, np.dtype("<f8"))
                self.assertEqual(f.attrs[name], value)

    def test_float_types_and_byte_order_are_kept(self):
        for dtype in ("<f2", "<f4", "<f8", ">f4", ">f8"):
            x = features(2, 3, 2).astype(dtype)
            path = save_fixture(self.path(f"{dtype[1:]}{'be' if dtype[0] == '>' else ''}.h5"), x,
                                np.zeros((2, 3)))
            with h5py.File(path, "r") as f:
                self.assertEqual(f["inputs"].dtype, np.dtype(dtype))
                np.testing.assert_array_equal(f["inputs"][()], x)

    def test_token_ids_padding_id_and_greedy(self):
        ids = [[4, 9, 2, 3], [7, 3, 3, 3]]
        path = save_fixture(self.path(), ids, np.ones((2, 3)), lengths=[3, 2], padding_id=3,
                            greedy=[[1, 2], [3, 4]], model="m.h5")
        with h5py.File(path, "r") as f:
            self.assertEqual(f["inputs"].dtype, np.dtype("<i8"))
            self.assertEqual(f["inputs"][()].tolist(), ids)
            self.assertEqual(f.attrs.get_id("padding_id").dtype, np.dtype("<i8"))
            self.assertEqual(f.attrs["padding_id"], 3)
            self.assertEqual(f["greedy"].dtype, np.dtype("<i8"))
            self.assertEqual(f["greedy"][()].tolist(), [[1, 2], [3, 4]])
        # An array keeps its integer type (Keras feeds int32 ids).
        path = save_fixture(self.path("int32.h5"), np.array(ids, np.int32), np.ones((2, 3)))
        with h5py.File(path, "r") as f:
            self.assertEqual(f["inputs"].dtype, np.dtype("<i4"))

    def test_texts(self):
        texts = ["The movie was GREAT!!!", "Café crème \u2014 naïve", "\U0001F600 so good", "",
                 "tabs\tand\nnewlines", "non\u00a0breaking"]
        path = save_fixture(self.path(), None, np.zeros((6, 2)), texts=texts, model="m.keras")
        with h5py.File(path, "r") as f:
            self.assertNotIn("inputs", f)
            self.assertNotIn("lengths", f)
            dataset = f["texts"]
            kind = dataset.id.get_type()
            self.assertTrue(kind.is_variable_str())
            self.assertEqual(kind.get_cset(), h5py.h5t.CSET_UTF8)
            self.assertEqual([t.decode("utf-8") for t in dataset[()]], texts)
        # A Keras [batch, 1] column of strings (object array) is flattened; bytes are kept.
        column = np.array([[t] for t in texts[:3]] + [[b"bytes"]], dtype=object)
        path = save_fixture(self.path("column.h5"), None, np.zeros((4, 2)), texts=column)
        self.assertEqual(load_fixture(path).texts, texts[:3] + ["bytes"])

    def test_expected_array_and_float64_values(self):
        y = RNG.normal(size=(3, 2))  # float64
        path = save_fixture(self.path(), features(), y)
        with h5py.File(path, "r") as f:
            self.assertEqual(list(f["expected"]), ["output"])
            self.assertEqual(f["expected/output"].dtype, np.dtype("<f4"))
            np.testing.assert_array_equal(f["expected/output"][()], y.astype(np.float32))
            self.assertEqual(set(f.attrs), set())

    def test_load_fixture_and_fixture_save(self):
        x = features(2, 4, 3)
        fixture = Fixture(x, {"output": np.ones((2, 4, 5)), "h_n": np.ones((1, 2, 5))},
                          lengths=[4, 1], generator="torch 2.5.1", model="a.pt",
                          exercises=["gru"])
        fixture.save(self.path(), model="b.pt", atol=1e-3)
        again = load_fixture(self.path())
        np.testing.assert_array_equal(again.inputs, x)
        self.assertEqual(again.lengths.tolist(), [4, 1])
        self.assertEqual(sorted(again.expected), ["h_n", "output"])
        self.assertEqual(again.attributes, {"generator": "torch 2.5.1", "model": "b.pt",
                                            "exercises": ["gru"], "atol": 1e-3})
        self.assertEqual(fixture.attributes["model"], "a.pt")  # save() overrides, not changes
        self.assertIn("inputs=[2, 4, 3] float32", repr(again))
        again.save(self.path("copy.fixture.h5"))
        with h5py.File(self.path(), "r") as a, h5py.File(self.path("copy.fixture.h5"), "r") as b:
            self.assertEqual(dict(a.attrs), dict(b.attrs))
        with self.assertRaisesRegex(TypeError, "unknown argument"):
            fixture.save(self.path("x.h5"), modle="m.pt")
        with self.assertRaisesRegex(TypeError, "unknown attribute"):
            Fixture(x, np.ones((2, 1)), lenghts=[1, 1])

    def test_new_file_mode_and_existing_file_mode_kept(self):
        path = save_fixture(self.path(), features(), np.ones((3, 1)))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o644)
        os.chmod(path, 0o600)
        save_fixture(path, features(), np.ones((3, 1)))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_module_imports_no_framework(self):
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import rnnkit_fixture; "
                "loaded = {'torch', 'tensorflow', 'keras', 'tf_keras'} & set(sys.modules); "
                "assert not loaded, loaded")
        subprocess.run([sys.executable, "-c", code, HERE], check=True)


class NothingOutsideTheFile(Folder):
    """load_fixture reads the fixture only, as rnnkit does: external links (directly or
    through a soft link), EXTERNAL and VIRTUAL storage and soft-link chains past 16 are
    refused before anything outside the file is opened or read."""

    def setUp(self):
        super().setUp()
        self.x = features(2, 4, 3)
        save_fixture(self.path(), self.x, np.ones((2, 4, 5), np.float32), lengths=[4, 2])
        # Another file holding an /inputs of the same shape: what a careless reader returns.
        self.other = self.path("other.h5")
        with h5py.File(self.other, "w") as f:
            f.create_dataset("inputs", data=np.full((2, 4, 3), 7, np.float32))
            f.create_dataset("output", data=np.full((2, 4, 5), 7, np.float32))
        self.raw = self.path("raw.bin")
        with open(self.raw, "wb") as f:
            f.write(np.full((2, 4, 3), 7, np.float32).tobytes())

    def edit(self, change):
        with h5py.File(self.path(), "r+") as f:
            change(f)

    def refused(self, pattern):
        with self.assertRaisesRegex(ValueError, pattern):
            load_fixture(self.path())

    def test_external_link(self):
        def change(f):
            del f["inputs"]
            f["inputs"] = h5py.ExternalLink("other.h5", "/inputs")
        self.edit(change)
        self.refused(r"/inputs: is an external link \(to 'other.h5', '/inputs'\)")

    def test_external_link_reached_through_a_soft_link(self):
        def change(f):
            del f["expected/output"]
            f["elsewhere"] = h5py.ExternalLink("other.h5", "/")
            f["expected/output"] = h5py.SoftLink("/elsewhere/output")
        self.edit(change)
        self.refused(r"/elsewhere: is an external link")

    def test_external_storage(self):
        def change(f):
            del f["inputs"]
            f.create_dataset("inputs", shape=(2, 4, 3), dtype="<f4", external=[("raw.bin", 0, 96)])
        self.edit(change)
        self.refused(r"/inputs: has EXTERNAL storage \(its bytes are in .*raw.bin")

    def test_virtual_dataset(self):
        def change(f):
            del f["inputs"]
            layout = h5py.VirtualLayout(shape=(2, 4, 3), dtype="<f4")
            layout[:] = h5py.VirtualSource("other.h5", "/inputs", shape=(2, 4, 3))
            f.create_virtual_dataset("inputs", layout)
        self.edit(change)
        self.refused(r"/inputs: is a VIRTUAL dataset")

    def test_soft_links_inside_the_file_are_followed_within_the_bound(self):
        def change(f):
            f.move("inputs", "stored")
            for index in range(20):
                f[f"chain{index}"] = h5py.SoftLink(f"chain{index + 1}" if index < 19 else "/stored")
            f["inputs"] = h5py.SoftLink("/chain5")  # 16 soft links in all: read
        self.edit(change)
        np.testing.assert_array_equal(load_fixture(self.path()).inputs, self.x)

        def longer(f):
            del f["inputs"]
            f["inputs"] = h5py.SoftLink("/chain4")  # 17
        self.edit(longer)
        self.refused(r"more than 16 soft links")


class CommittedFixtures(Folder):
    """Every committed fixture, read and written again, has the same datasets (types, shapes,
    values) and attributes (types, values): the writer makes what the generators made."""

    def test_resaving_every_committed_fixture_changes_nothing(self):
        paths = [p for folder in ("pytorch", "pytorch-files", "keras")
                 for p in sorted(glob.glob(os.path.join(ROOT, "fixtures", folder, "*.fixture.h5")))]
        self.assertGreater(len(paths), 80)
        for path in paths:
            with self.subTest(os.path.relpath(path, ROOT)):
                copy = self.path(os.path.basename(path))
                load_fixture(path).save(copy)
                self.assertEqual(describe(copy), describe(path))


def describe(path):
    """Datasets as (dtype, shape, bytes or strings) and attributes as (type, value)."""
    with h5py.File(path, "r") as f:
        datasets = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                value = obj[()]
                content = value.tolist() if value.dtype.kind == "O" else value.tobytes()
                kind = obj.id.get_type()
                form = (kind.is_variable_str(), kind.get_cset()) if isinstance(kind, h5py.h5t.TypeStringID) else None
                datasets[name] = (obj.dtype.str, obj.shape, form, content)
        f.visititems(visit)
        attributes = {}
        for name in f.attrs:
            kind = f.attrs.get_id(name).get_type()
            if isinstance(kind, h5py.h5t.TypeStringID):
                form = ("string", kind.is_variable_str(), kind.get_cset())
            else:
                form = (f.attrs.get_id(name).dtype.str, f.attrs.get_id(name).shape)
            attributes[name] = (form, f.attrs[name])
        return datasets, attributes


class Validation(Folder):
    """Each bad argument is refused by name before anything is written: no fixture, no
    temporary file, and an existing fixture left as it was."""

    def setUp(self):
        super().setUp()
        self.existing = self.path("existing.fixture.h5")
        save_fixture(self.existing, features(), np.ones((3, 2)), model="m.h5")
        with open(self.existing, "rb") as f:
            self.existing_bytes = f.read()

    def refused(self, error, pattern, *args, **kwargs):
        for target in (self.path(), self.existing):
            with self.subTest(target=os.path.basename(target)):
                with self.assertRaisesRegex(error, pattern):
                    save_fixture(target, *args, **kwargs)
                self.assertEqual(self.listing(), ["existing.fixture.h5"])
                with open(self.existing, "rb") as f:
                    self.assertEqual(f.read(), self.existing_bytes)

    def test_inputs(self):
        y = np.ones((3, 2))
        self.refused(ValueError, r"inputs: float features have shape \[3, 5\], expected \[batch, time, features\]",
                     np.ones((3, 5)), y)
        self.refused(ValueError, r"inputs: float features have shape \[3, 5, 1, 1\]",
                     np.ones((3, 5, 1, 1)), y)
        self.refused(ValueError, r"inputs: token ids have shape \[3\], expected \[batch, time\]",
                     np.ones(3, np.int64), y)
        self.refused(TypeError, "inputs: holds booleans", np.ones((3, 5), bool), y)
        self.refused(TypeError, "inputs: holds strings; give texts with texts=",
                     np.array([["a"]] * 3), y)
        self.refused(TypeError, "inputs: holds complex128", np.ones((3, 5, 2), complex), y)
        self.refused(ValueError, r"inputs: has shape \[3, 0, 2\]", np.ones((3, 0, 2)), y)
        self.refused(ValueError, "inputs: holds the token id -1", [[1, -1]] * 3, y)
        self.refused(ValueError, "inputs: missing", None, y)
        if np.dtype(np.longdouble).itemsize > 8:
            self.refused(TypeError, "inputs: holds float128", np.ones((3, 2, 2), np.longdouble), y)
        with mock.patch.object(rf, "MAX_INPUT_ELEMENTS", 20):
            self.refused(ValueError, r"inputs: has shape \[3, 5, 2\] = 30 values, over rnnkit's limit of 20",
                         np.ones((3, 5, 2)), y)

    def test_lengths(self):
        x, y = features(3, 5), np.ones((3, 2))
        self.refused(ValueError, r"lengths: has shape \[2\], but inputs \[3, 5, 4\] hold a batch of 3",
                     x, y, lengths=[5, 5])
        self.refused(ValueError, r"lengths: lengths\[1\] = 0 is outside 1..5", x, y, lengths=[5, 0, 1])
        self.refused(ValueError, r"lengths: lengths\[2\] = 6 is outside 1..5", x, y, lengths=[5, 1, 6])
        self.refused(TypeError, "lengths: holds float64 values, expected integers", x, y,
                     lengths=[5.0, 1.0, 2.0])
        self.refused(ValueError, r"lengths: has shape \[3, 1\], expected 1 dimension", x, y,
                     lengths=[[5], [1], [2]])

    def test_texts(self):
        y = np.ones((2, 1))
        self.refused(ValueError, "texts: given with inputs", features(2), y, texts=["a", "b"])
        self.refused(ValueError, "texts: given with lengths", None, y, texts=["a", "b"],
                     lengths=[1, 1])
        self.refused(ValueError, "padding_id: given with texts", None, y, texts=["a", "b"],
                     padding_id=0)
        self.refused(TypeError, "texts: is one string", None, y, texts="ab")
        self.refused(ValueError, r"texts\[1\]: holds a NUL character", None, y, texts=["a", "b\0"])
        self.refused(ValueError, r"texts\[0\]: is not valid UTF-8", None, y, texts=[b"\xff", "b"])
        self.refused(TypeError, r"texts\[1\]: is int, expected a string", None, y,
                     texts=np.array(["a", 3], dtype=object))
        self.refused(ValueError, r"texts: has shape \[2, 2\], expected \[batch\] strings", None, y,
                     texts=[["a", "b"], ["c", "d"]])
        self.refused(ValueError, "texts: is empty", None, np.ones((0, 1)), texts=[])
        self.refused(ValueError, r"texts\[0\]: is 1048577 UTF-8 bytes, over rnnkit's limit of 1048576",
                     None, y, texts=["é" * (1 << 19) + "a", "b"])
        with mock.patch.object(rf, "MAX_TEXTS", 1):
            self.refused(ValueError, "texts: holds 2 strings, over rnnkit's limit of 1", None, y,
                         texts=["a", "b"])
        with mock.patch.object(rf, "MAX_TEXTS_BYTES", 3):
            self.refused(ValueError, "texts: are 4 UTF-8 bytes together, over rnnkit's limit of 3",
                         None, y, texts=["ab", "cd"])
        self.refused(ValueError, r"expected\['output'\]: has shape \[3, 1\], expected \[2, …\]: the batch of the texts is 2",
                     None, np.ones((3, 1)), texts=["a", "b"])

    def test_expected(self):
        x = features(3, 5)
        self.refused(ValueError, "expected: missing", x, None)
        self.refused(ValueError, "expected: has no 'output'", x, {"h_n": np.ones((1, 3, 2))})
        self.refused(ValueError, r"expected: has \['logits'\]", x, {"output": np.ones((3, 1)),
                                                                     "logits": np.ones((3, 1))})
        self.refused(TypeError, r"expected\['output'\]: holds int64 values, expected floats", x,
                     np.ones((3, 2), np.int64))
        self.refused(ValueError, r"expected\['output'\]: has shape \[2, 2\], expected \[3, …\]: the batch of the inputs is 3",
                     x, np.ones((2, 2)))
        self.refused(ValueError, r"expected\['output'\]: has shape \[\], expected \[3, …\]", x, np.float32(1))
        nan = np.ones((3, 2))
        nan[1, 1] = np.nan
        self.refused(ValueError, r"expected\['output'\]: holds nan at \(1, 1\)", x, nan)
        self.refused(ValueError, r"expected\['output'\]: holds 1e\+39 at \(0, 0\) \(as float32\)", x,
                     np.full((3, 2), 1e39))
        self.refused(ValueError, r"expected\['h_n'\]: has shape \[3, 2\], expected \[layers × directions, 3, hidden\]",
                     x, {"output": np.ones((3, 2)), "h_n": np.ones((3, 2))})
        self.refused(ValueError, r"expected\['c_n'\]: has shape \[1, 3, 2\], but h_n has \[2, 3, 2\]",
                     x, {"output": np.ones((3, 2)), "h_n": np.ones((2, 3, 2)), "c_n": np.ones((1, 3, 2))})

    def test_states(self):
        x, y = features(3, 5), np.ones((3, 2))
        self.refused(ValueError, r"h0: has shape \[1, 2, 4\], expected \[layers × directions, 3, hidden\]",
                     x, y, h0=np.ones((1, 2, 4)))
        self.refused(TypeError, "c0: holds int64 values, expected floats", x, y,
                     c0=np.ones((1, 3, 4), np.int64))
        self.refused(ValueError, r"h0: has shape \[1, 3\], expected 3 dimensions", x, y,
                     h0=np.ones((1, 3)))
        self.refused(ValueError, r"c0: has shape \[2, 3, 4\], but h0 has \[1, 3, 4\]", x, y,
                     h0=np.ones((1, 3, 4)), c0=np.ones((2, 3, 4)))
        self.refused(ValueError, r"h0: has shape \[1, 3, 4\], but expected\['h_n'\] has \[1, 3, 5\]",
                     x, {"output": y, "h_n": np.ones((1, 3, 5))}, h0=np.ones((1, 3, 4)))
        self.refused(ValueError, r"h0: holds inf", x, y, h0=np.full((1, 3, 4), np.inf))

    def test_tolerances(self):
        x, y = features(3, 5), np.ones((3, 2))
        for name in ("atol", "rtol"):
            self.refused(ValueError, f"{name}: is -1.0; a tolerance is a finite non-negative number",
                         x, y, **{name: -1})
            self.refused(ValueError, f"{name}: is nan", x, y, **{name: float("nan")})
            self.refused(ValueError, f"{name}: is inf", x, y, **{name: float("inf")})
            self.refused(TypeError, f"{name}: is str, expected a number", x, y, **{name: "1e-5"})
            self.refused(TypeError, f"{name}: is bool, expected a number", x, y, **{name: True})

    def test_file_names(self):
        x, y = features(3, 5), np.ones((3, 2))
        for name in ("model", "architecture"):
            self.refused(ValueError, f"{name}: '/tmp/m.h5' is an absolute path", x, y,
                         **{name: "/tmp/m.h5"})
            self.refused(ValueError, f"{name}: '../m.h5' leaves the fixture's folder", x, y,
                         **{name: "../m.h5"})
            self.refused(ValueError, f"{name}: 'a/../../m.h5' leaves", x, y, **{name: "a/../../m.h5"})
            self.refused(ValueError, f"{name}: 'a/../m.h5' leaves", x, y, **{name: "a/../m.h5"})
            self.refused(ValueError, f"{name}: is empty", x, y, **{name: ""})
            self.refused(ValueError, f"{name}: 'models/' names a folder", x, y, **{name: "models/"})
            self.refused(TypeError, f"{name}: is int, expected a string", x, y, **{name: 3})
            self.refused(ValueError, f"{name}: holds a NUL", x, y, **{name: "m\0.h5"})
        with self.assertRaisesRegex(ValueError, "model: 'existing.fixture.h5' is the fixture file itself"):
            save_fixture(self.existing, x, y, model="existing.fixture.h5")
        # A name in a subfolder is fine.
        save_fixture(self.path(), x, y, model="models/m.h5")
        os.remove(self.path())

    def test_other_attributes(self):
        x, y = features(3, 5), np.ones((3, 2))
        self.refused(ValueError, "key: is empty", x, y, key="")
        self.refused(TypeError, "key: is int, expected a string", x, y, key=1)
        self.refused(ValueError, "key: is 4097 characters, over rnnkit's limit of 4096", x, y,
                     key="k" * 4097)
        self.refused(TypeError, "exercises: is one string", x, y, exercises="lstm")
        self.refused(TypeError, r"exercises\[1\]: is 3, expected a non-empty string", x, y,
                     exercises=["lstm", 3])
        self.refused(TypeError, r"exercises\[0\]: is '', expected", x, y, exercises=[""])
        self.refused(TypeError, "exercises: is int, expected a list of tags", x, y, exercises=3)
        self.refused(ValueError, "padding_id: given with float inputs", x, y, padding_id=0)
        ids = np.ones((3, 5), np.int64)
        self.refused(ValueError, "padding_id: is -1; token ids are non-negative", ids, y, padding_id=-1)
        self.refused(TypeError, "padding_id: is float, expected an integer", ids, y, padding_id=1.0)
        self.refused(TypeError, "padding_id: is bool, expected an integer", ids, y, padding_id=True)
        self.refused(ValueError, "generator: is empty", x, y, generator="")
        self.refused(TypeError, "generator: is bytes, expected a string", x, y, generator=b"torch")
        self.refused(ValueError, r"greedy: has shape \[2, 4\], expected \[3, steps\]", ids, y,
                     greedy=np.ones((2, 4), np.int64))
        self.refused(TypeError, "greedy: holds float64 values, expected integers", ids, y,
                     greedy=np.ones((3, 4)))

    def test_path(self):
        x, y = features(3, 5), np.ones((3, 2))
        with self.assertRaisesRegex(ValueError, "path: the folder .* does not exist"):
            save_fixture(os.path.join(self.folder, "missing", "m.fixture.h5"), x, y)
        with self.assertRaisesRegex(ValueError, "path: .* is a folder"):
            save_fixture(self.folder, x, y)
        with self.assertRaisesRegex(TypeError, "path: is int"):
            save_fixture(3, x, y)
        self.assertEqual(self.listing(), ["existing.fixture.h5"])


class Atomicity(Folder):
    def test_a_failure_while_writing_leaves_no_file_and_the_old_one_unchanged(self):
        path = save_fixture(self.path(), features(), np.ones((3, 2)), model="old.h5")
        with open(path, "rb") as f:
            before = f.read()
        original = h5py.Group.create_dataset
        seen = []

        def failing(group, name, *args, **kwargs):
            seen.append(name)
            if name.startswith("expected"):
                raise OSError("disk full (simulated)")
            return original(group, name, *args, **kwargs)

        for target in (path, self.path("new.fixture.h5")):
            with mock.patch.object(h5py.Group, "create_dataset", failing):
                with self.assertRaisesRegex(OSError, "simulated"):
                    save_fixture(target, features(), np.ones((3, 2)), model="new.h5")
            self.assertEqual(self.listing(), ["m.fixture.h5"])
        self.assertIn("inputs", seen)  # it failed midway, after writing /inputs
        with open(path, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_a_failed_rename_removes_the_temporary_file(self):
        with mock.patch.object(rf.os, "replace", side_effect=OSError("rename failed (simulated)")):
            with self.assertRaisesRegex(OSError, "simulated"):
                save_fixture(self.path(), features(), np.ones((3, 2)))
        self.assertEqual(self.listing(), [])

    def test_the_temporary_file_is_in_the_same_folder_and_renamed(self):
        calls = []
        real = os.replace

        def spy(source, target):
            calls.append((source, target))
            with h5py.File(source, "r") as f:  # complete before it is renamed
                self.assertIn("expected/output", f)
            return real(source, target)

        with mock.patch.object(rf.os, "replace", spy):
            save_fixture(self.path(), features(), np.ones((3, 2)))
        [(source, target)] = calls
        self.assertEqual(os.path.dirname(source), self.folder)
        self.assertTrue(os.path.basename(source).startswith(".m.fixture.h5."))
        self.assertEqual(target, self.path())
        self.assertEqual(self.listing(), ["m.fixture.h5"])


def importable(name):
    """Whether `name` imports; always True under RNNKIT_REQUIRE_FRAMEWORKS=1 (`make test` runs
    these tests with the frameworks that way), so that a missing framework fails the tests
    that need it instead of skipping them."""
    if os.environ.get("RNNKIT_REQUIRE_FRAMEWORKS") == "1":
        return True
    try:
        __import__(name)
        return True
    except ImportError:
        return False


@unittest.skipUnless(importable("torch"), "torch is not installed (python/check_helpers.py torch "
                     "checks from_torch with rnnkit)")
class FromTorch(Folder):
    """from_torch's own rules (run with an environment that has torch)."""

    def test_bare_module_on_lengths_is_packed_and_the_training_flag_restored(self):
        import torch
        from torch import nn
        torch.manual_seed(16)
        lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
        lstm.train()
        x = features(3, 5, 3)
        fixture = rf.from_torch(lstm, x, [5, 2, 3], model="lstm.pt")
        self.assertTrue(lstm.training)
        self.assertEqual(fixture.attributes["generator"], f"torch {torch.__version__}")
        self.assertEqual(sorted(fixture.expected), ["c_n", "h_n", "output"])
        self.assertEqual(fixture.expected["output"].shape, (3, 5, 8))
        self.assertTrue(np.all(fixture.expected["output"][1, 2:] == 0))
        with torch.no_grad():
            packed = nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x[1:2, :2]), [2],
                                                       batch_first=True)
            _, (h_n, _) = lstm.eval()(packed)
        np.testing.assert_allclose(fixture.expected["h_n"][:, 1], h_n[:, 0].numpy(), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_array_equal(fixture.lengths, [5, 2, 3])
        fixture.save(self.path())
        self.assertEqual(load_fixture(self.path()).attributes["model"], "lstm.pt")

    def test_initial_states_and_input_types(self):
        from torch import nn
        gru = nn.GRU(2, 3, batch_first=True)
        h0 = np.ones((1, 2, 3), np.float32)
        x = features(2, 4, 2).astype(">f4")
        fixture = rf.from_torch(gru, x, h0=h0, path=self.path())
        with h5py.File(self.path(), "r") as f:
            self.assertEqual(f["inputs"].dtype, np.dtype(">f4"))  # kept as given
            np.testing.assert_array_equal(f["h0"][()], h0)
        self.assertEqual(sorted(fixture.expected), ["h_n", "output"])
        with self.assertRaisesRegex(ValueError, "c0: a GRU has no cell state"):
            rf.from_torch(gru, x, c0=h0)

    def test_refusals(self):
        import torch
        from torch import nn
        with self.assertRaisesRegex(ValueError, "batch_first=False"):
            rf.from_torch(nn.LSTM(2, 3), features(2, 4, 2))
        with self.assertRaisesRegex(ValueError, "initial states are for a bare"):
            rf.from_torch(nn.Linear(2, 3), features(2, 4, 2), h0=np.ones((1, 2, 3)))
        with self.assertRaisesRegex(ValueError, r"lengths\[1\] = 0 is outside 1..4"):
            rf.from_torch(nn.GRU(2, 3, batch_first=True), features(2, 4, 2), [4, 0])
        with self.assertRaisesRegex(TypeError, "expected a torch.nn.Module"):
            rf.from_torch(lambda x: x, features(2, 4, 2))

    def test_any_module_runs_its_own_forward_and_a_tuple_counts_by_its_first_element(self):
        import torch
        from torch import nn

        class Classifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(10, 3)
                self.rnn = nn.GRU(3, 4, batch_first=True)
                self.drop = nn.Dropout(0.5)

            def forward(self, tokens, lengths=None):
                output, h_n = self.rnn(self.drop(self.embed(tokens)))
                self.seen = lengths
                return h_n[-1], output

        model = Classifier().train()
        ids = torch.tensor([[1, 2, 3], [4, 5, 0]])
        fixture = rf.from_torch(model, ids, [3, 2])
        self.assertTrue(model.training and model.drop.training)
        self.assertEqual(model.seen.tolist(), [3, 2])
        self.assertEqual(model.seen.dtype, torch.int64)
        self.assertEqual(list(fixture.expected), ["output"])
        self.assertEqual(fixture.expected["output"].shape, (2, 4))
        self.assertEqual(fixture.inputs.dtype, np.int64)
        again = rf.from_torch(model, ids, [3, 2])  # eval mode: dropout off, same result
        np.testing.assert_array_equal(again.expected["output"], fixture.expected["output"])
        rf.from_torch(model, ids)
        self.assertIsNone(model.seen)


@unittest.skipUnless(importable("tensorflow"), "TensorFlow is not installed "
                     "(python/check_helpers.py keras checks from_keras with rnnkit)")
class FromKeras(Folder):
    """from_keras's own rules (run with an environment that has TensorFlow and Keras)."""

    def model(self, keras):
        L = keras.layers
        return keras.Sequential([keras.Input((4, 2)), L.Masking(0.0), L.LSTM(3), L.Dense(2)])

    def test_generators_and_masks(self):
        import keras
        import tf_keras
        x = features(2, 4, 2)
        x[1, 2:] = 0.0
        for module, generator in ((tf_keras, f"tf-keras {tf_keras.__version__}"),
                                  (keras, f"keras {keras.__version__}")):
            model = self.model(module)
            fixture = rf.from_keras(model, x, lengths=[4, 2])
            self.assertEqual(fixture.attributes["generator"], generator)
            self.assertEqual(fixture.expected["output"].shape, (2, 2))
            masked = rf.from_keras(model, x, mask=np.arange(4)[None, :] < np.array([[4], [2]]))
            self.assertEqual(masked.lengths.tolist(), [4, 2])
            np.testing.assert_allclose(masked.expected["output"], fixture.expected["output"],
                                       rtol=1e-6)
        with self.assertRaisesRegex(ValueError, "mask: row 1 is not right padding"):
            rf.from_keras(model, x, mask=[[1, 1, 1, 1], [1, 0, 1, 0]])
        with self.assertRaisesRegex(ValueError, r"lengths: \[4, 3\] disagree with mask"):
            rf.from_keras(model, x, lengths=[4, 3], mask=[[1, 1, 1, 1], [1, 1, 0, 0]])
        with self.assertRaisesRegex(TypeError, "not a Keras"):
            rf.from_keras(object(), x)

    def test_texts(self):
        import keras
        L = keras.layers
        model = keras.Sequential([keras.Input((1,), dtype="string"),
                                  L.TextVectorization(vocabulary=["a", "b"]),
                                  L.Embedding(4, 2, mask_zero=True), L.SimpleRNN(2)])
        texts = ["a b", "Café \U0001F600", ""]
        fixture = rf.from_keras(model, np.array([[t] for t in texts], dtype=object))
        self.assertEqual(fixture.texts, texts)
        self.assertIsNone(fixture.inputs)
        fixture.save(self.path())
        self.assertEqual(load_fixture(self.path()).texts, texts)


RNNKIT = os.environ.get("RNNKIT")


class FromONNX(Folder):
    """from_onnx runs a committed ONNX graph in ONNX Runtime: the same numbers as the fixture
    fixtures/onnx/generate_models.py made of it (ONNX Runtime and torch agreeing at 1e-5)."""

    def setUp(self):
        super().setUp()
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            self.skipTest("onnx and onnxruntime are not installed")

    def test_lengths_reach_sequence_lens(self):
        model = os.path.join(ROOT, "fixtures", "onnx", "torch_packed_lstm_bi_linear_fold.onnx")
        committed = load_fixture(os.path.join(ROOT, "fixtures", "onnx", "torch_packed_lstm_bi_linear_fold.fixture.h5"))
        made = rf.from_onnx(model, committed.inputs, lengths=committed.lengths)
        np.testing.assert_allclose(made.expected["output"], committed.expected["output"], atol=1e-5, rtol=1e-4)
        np.testing.assert_array_equal(made.lengths, committed.lengths)
        self.assertTrue(made.attributes["generator"].startswith("onnxruntime "))
        path = os.path.join(self.folder, "made.fixture.h5")
        made.save(path)
        self.assertEqual(load_fixture(path).attributes["model"], "torch_packed_lstm_bi_linear_fold.onnx")

    def test_time_major_graph_input(self):
        # ONNX node-test graphs take X time-major and give Y [time, directions, batch, hidden];
        # the committed fixtures are batch-first, as rnnkit gives them.
        for name, kwargs in (("node_lstm_bias", {}), ("node_gru_lbr1_bi_lengths", {"lengths": True}),
                             ("node_lstm_bi_lengths_states", {"lengths": True, "states": True})):
            committed = load_fixture(os.path.join(ROOT, "fixtures", "onnx", name + ".fixture.h5"))
            extra = {}
            if kwargs.get("lengths"):
                extra["lengths"] = committed.lengths
            if kwargs.get("states"):
                extra["h0"], extra["c0"] = committed.h0, committed.c0
            made = rf.from_onnx(os.path.join(ROOT, "fixtures", "onnx", name + ".onnx"), committed.inputs, **extra)
            np.testing.assert_allclose(made.expected["output"], committed.expected["output"], atol=1e-5, rtol=1e-4,
                                       err_msg=name)

    def test_lengths_for_a_graph_without_them_are_refused(self):
        model = os.path.join(ROOT, "fixtures", "onnx", "node_lstm_bias.onnx")
        committed = load_fixture(os.path.join(ROOT, "fixtures", "onnx", "node_lstm_bias.fixture.h5"))
        with self.assertRaisesRegex(ValueError, "takes no lengths"):
            rf.from_onnx(model, committed.inputs, lengths=[1] * committed.inputs.shape[0])


@unittest.skipUnless(RNNKIT, "set RNNKIT to an rnnkit binary to check fixtures with `rnnkit verify`")
class SwiftReaderAgrees(Folder):
    """Fixtures written here for committed model files pass `rnnkit verify`; changing an
    expected value beyond the tolerance makes it fail (exit 1)."""

    def verify(self, model, fixture):
        result = subprocess.run([RNNKIT, "verify", model, fixture], capture_output=True, text=True)
        return result.returncode, result.stdout + result.stderr

    def resave(self, folder, case, model_files, change=None, **attributes):
        """Copies the model files and re-saves the committed fixture's content in a temporary
        folder; `change(fixture)` alters it first."""
        for name in model_files:
            shutil.copy(os.path.join(ROOT, "fixtures", folder, name), self.folder)
        fixture = load_fixture(os.path.join(ROOT, "fixtures", folder, f"{case}.fixture.h5"))
        if change:
            change(fixture)
        path = self.path(f"{case}.fixture.h5")
        fixture.save(path, **attributes)
        return os.path.join(self.folder, model_files[0]), path

    def check(self, folder, case, model_files, **attributes):
        model, path = self.resave(folder, case, model_files, **attributes)
        status, output = self.verify(model, path)
        self.assertEqual(status, 0, output)

        def perturb(fixture):
            fixture.expected["output"] = fixture.expected["output"] + np.float32(0.01)

        model, path = self.resave(folder, case, model_files, change=perturb, **attributes)
        status, output = self.verify(model, path)
        self.assertEqual(status, 1, output)
        # Within a tolerance given in the fixture, the same change passes.
        model, path = self.resave(folder, case, model_files, change=perturb, atol=0.02, **attributes)
        status, output = self.verify(model, path)
        self.assertEqual(status, 0, output)

    def test_bare_bidirectional_lstm_with_lengths(self):
        self.check("pytorch", "lstm_bidir_2layer_lengths", ["lstm_bidir_2layer_lengths.h5"])

    def test_initial_states(self):
        self.check("pytorch", "lstm_initial_state_lengths", ["lstm_initial_state_lengths.h5"])

    def test_token_ids_with_a_padding_id(self):
        self.check("pytorch", "lesson_lstm_pack_pad3", ["lesson_lstm_pack_pad3.h5"])

    def test_architecture_file(self):
        self.check("pytorch-files", "clf_embed_lstm_last_hidden",
                   ["clf_embed_lstm_last_hidden.pt", "clf_embed_lstm_last_hidden.config.json"])
        self.check("keras", "tfk_stacked_bilstm.weights",
                   ["tfk_stacked_bilstm.weights.h5", "tfk_stacked_bilstm.h5"])

    def test_int32_token_ids_keras(self):
        self.check("keras", "k3_text_bilstm", ["k3_text_bilstm.keras"])

    def test_texts(self):
        self.check("keras", "k3_text_vocab", ["k3_text_vocab.keras"])
        self.check("keras", "tfk_text_lesson", ["tfk_text_lesson.h5"])

    def test_checkpoint_key(self):
        committed = os.path.join(ROOT, "fixtures", "pytorch-files", "lstm_checkpoint.fixture.h5")
        with h5py.File(committed, "r") as f:
            if "key" not in f.attrs:
                self.skipTest("the committed checkpoint fixture has no `key` attribute yet")
        self.check("pytorch-files", "lstm_checkpoint", ["lstm_checkpoint.pt"])

    def test_a_changed_state_fails(self):
        def perturb(fixture):
            fixture.expected["c_n"] = fixture.expected["c_n"] * np.float32(1.01)

        model, path = self.resave("pytorch", "lstm_bidir_2layer_lengths",
                                  ["lstm_bidir_2layer_lengths.h5"], change=perturb)
        status, output = self.verify(model, path)
        self.assertEqual(status, 1, output)
        self.assertIn("c_n", output)


if __name__ == "__main__":
    unittest.main()
