"""Write RecurrentKit fixtures from Python: inputs and the outputs a framework computed.

A fixture is an HDF5 file beside a model file (spec/fixture-format.md). `rnnkit verify MODEL
FIXTURE` runs the model file on the fixture's inputs and compares its outputs with the ones
recorded, so CI can check a model file (original or converted) without any framework.

This module needs numpy and h5py only; torch, TensorFlow and Keras are imported by the
helpers that use them, when they are called.

- `save_fixture(path, inputs, expected, ...)`: writes arrays you already have.
- `from_torch(module, inputs, lengths=...)`: runs a torch module and returns a `Fixture`.
- `from_keras(model, inputs, ...)`: runs a Keras model (tf-keras or Keras 3) likewise.
- `Fixture.save(path, model=..., ...)`: writes it; `load_fixture(path)` reads one back.

Example, a bidirectional LSTM with right-padded sequences of different lengths (torch packs
them), saved beside its state_dict:

    import numpy as np, torch
    from rnnkit_fixture import from_torch

    lstm = torch.nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True)
    torch.save(lstm.state_dict(), "lstm.pt")
    x = np.random.default_rng(0).normal(size=(3, 7, 4)).astype(np.float32)
    from_torch(lstm, x, lengths=[7, 3, 5]).save("lstm.fixture.h5", model="lstm.pt")

and then, in CI: `rnnkit verify lstm.pt lstm.fixture.h5` (exit 0: every output matches).

Arrays may be numpy arrays, nested lists, or framework tensors (anything with `.numpy()`).
Every argument is checked before anything is written, and the file is written to a
temporary file in the same folder and renamed into place, so a failed call leaves no file
and never a partial one.
"""

import json
import math
import numbers
import os
import tempfile
import warnings

import h5py
import numpy as np

__all__ = ["Fixture", "save_fixture", "load_fixture", "from_torch", "from_keras"]

# Limits rnnkit applies when it reads a fixture (Sources/RecurrentKit/Common/Limits.swift).
MAX_TEXTS = 1 << 16            # Limits.texts: strings in /texts
MAX_TEXT_BYTES = 1 << 20       # Limits.textBytes: UTF-8 bytes of one text
MAX_TEXTS_BYTES = 1 << 26      # Limits.textsBytes: UTF-8 bytes of all texts together
MAX_INPUT_ELEMENTS = 1 << 26   # Limits.runElements: values in one run's input
MAX_NAME_CHARACTERS = 4096     # Limits.nameCharacters: a `key` attribute

EXPECTED_NAMES = ("output", "h_n", "c_n")
ATTRIBUTE_NAMES = ("generator", "model", "architecture", "key", "exercises", "atol", "rtol",
                   "padding_id", "greedy", "weights_matching")
# How a legacy Keras weights-only model pairs with its architecture (Keras's load_weights):
# in order (the default) or by name (by_name=True).
WEIGHTS_MATCHING = ("order", "name")


# ---------------------------------------------------------------------------------------------
# Arrays

def _to_numpy(value, name):
    """`value` as a numpy array: numpy arrays and lists as they are, torch tensors (detached,
    on the CPU; bfloat16 as float32), TensorFlow / Keras tensors through `.numpy()`."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        tensor = value.detach().cpu()
        if tensor.is_floating_point() and str(tensor.dtype) == "torch.bfloat16":
            tensor = tensor.float()
        return tensor.numpy()
    if hasattr(value, "numpy") and callable(value.numpy):  # TensorFlow, Keras 3
        return np.asarray(value.numpy())
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:
        raise TypeError(f"{name}: cannot be read as an array ({error})") from None


def _shape(array):
    return "[" + ", ".join(str(n) for n in array.shape) + "]"


def _float_array(value, name, ndim=None):
    array = _to_numpy(value, name)
    if array.dtype.kind != "f":
        raise TypeError(f"{name}: holds {array.dtype} values, expected floats")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name}: has shape {_shape(array)}, expected {ndim} dimensions")
    if array.size == 0:
        raise ValueError(f"{name}: has shape {_shape(array)}, which holds no values")
    return array


def _finite32(array, name):
    """The values as float32, the type the project's fixtures hold; refused when one is NaN or
    infinite (as float32): no comparison could ever match it."""
    with np.errstate(over="ignore", invalid="ignore"):
        converted = np.ascontiguousarray(array, dtype=np.float32)
    if not np.all(np.isfinite(converted)):
        bad = np.argwhere(~np.isfinite(converted))[0]
        raise ValueError(f"{name}: holds {float(array[tuple(bad)])} at {tuple(int(i) for i in bad)} "
                         "(as float32), which no output can match")
    return converted


def _integer_array(value, name, ndim, dtype=None):
    array = _to_numpy(value, name)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name}: holds {array.dtype} values, expected integers")
    if array.ndim != ndim:
        raise ValueError(f"{name}: has shape {_shape(array)}, expected {ndim} dimension"
                         f"{'s' if ndim != 1 else ''}")
    return array if dtype is None else array.astype(dtype)


def _inputs_array(value):
    """Float features [batch, time, features] (their own float type, byte order included) or
    token ids [batch, time] (their own integer type; a list becomes int64)."""
    array = _to_numpy(value, "inputs")
    kind = array.dtype.kind
    if kind in "OSU":
        raise TypeError("inputs: holds strings; give texts with texts= (and inputs=None)")
    if kind == "b":
        raise TypeError("inputs: holds booleans, expected floats [batch, time, features] "
                        "or integer token ids [batch, time]")
    if kind == "f":
        if array.dtype.itemsize not in (2, 4, 8):
            raise TypeError(f"inputs: holds {array.dtype}; rnnkit reads float16, float32 "
                            "and float64")
        if array.ndim != 3:
            raise ValueError(f"inputs: float features have shape {_shape(array)}, expected "
                             "[batch, time, features]")
    elif kind in "iu":
        if array.ndim != 2:
            raise ValueError(f"inputs: token ids have shape {_shape(array)}, expected "
                             "[batch, time]")
        if array.size and array.min() < 0:
            raise ValueError(f"inputs: holds the token id {array.min()}; ids are non-negative")
    else:
        raise TypeError(f"inputs: holds {array.dtype} values, expected floats or integers")
    if 0 in array.shape:
        raise ValueError(f"inputs: has shape {_shape(array)}; every dimension must be at "
                         "least 1")
    if array.size > MAX_INPUT_ELEMENTS:
        raise ValueError(f"inputs: has shape {_shape(array)} = {array.size} values, over "
                         f"rnnkit's limit of {MAX_INPUT_ELEMENTS} (Limits.runElements)")
    return array


def _lengths_array(value, inputs):
    """[batch] int64 lengths, each in 1..time of `inputs`."""
    n = _integer_array(value, "lengths", 1, np.int64)
    batch, time = inputs.shape[0], inputs.shape[1]
    if n.shape[0] != batch:
        raise ValueError(f"lengths: has shape {_shape(n)}, but inputs {_shape(inputs)} hold a "
                         f"batch of {batch}")
    bad = np.flatnonzero((n < 1) | (n > time))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"lengths: lengths[{i}] = {n[i]} is outside 1..{time} (the time axis "
                         f"of inputs {_shape(inputs)})")
    return n


def _texts_list(value):
    """[batch] strings (a Keras [batch, 1] column is flattened), each as UTF-8 bytes."""
    if isinstance(value, (str, bytes)):
        raise TypeError("texts: is one string; give a list of strings, one per sequence")
    if isinstance(value, (list, tuple)):
        # Built by hand: numpy cannot hold a list mixing str and non-ASCII bytes.
        array = np.empty(len(value), dtype=object)
        array[:] = [row[0] if isinstance(row, (list, tuple)) and len(row) == 1 else row
                    for row in value]
        if any(isinstance(row, (list, tuple)) for row in array):
            array = _to_numpy(value, "texts")
    else:
        array = _to_numpy(value, "texts")
    if array.ndim == 2 and array.shape[1] == 1:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise ValueError(f"texts: has shape {_shape(array)}, expected [batch] strings")
    if array.size == 0:
        raise ValueError("texts: is empty; a fixture needs at least one text")
    if array.size > MAX_TEXTS:
        raise ValueError(f"texts: holds {array.size} strings, over rnnkit's limit of "
                         f"{MAX_TEXTS} (Limits.texts)")
    encoded = []
    for index, text in enumerate(array.tolist()):
        if isinstance(text, bytes):
            try:
                text.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"texts[{index}]: is not valid UTF-8 ({error})") from None
            data = text
        elif isinstance(text, str):
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ValueError(f"texts[{index}]: cannot be encoded as UTF-8 ({error})") from None
        else:
            raise TypeError(f"texts[{index}]: is {type(text).__name__}, expected a string")
        if b"\0" in data:
            raise ValueError(f"texts[{index}]: holds a NUL character, which an HDF5 string "
                             "cannot keep")
        if len(data) > MAX_TEXT_BYTES:
            raise ValueError(f"texts[{index}]: is {len(data)} UTF-8 bytes, over rnnkit's limit "
                             f"of {MAX_TEXT_BYTES} (Limits.textBytes)")
        encoded.append(data)
    total = sum(len(data) for data in encoded)
    if total > MAX_TEXTS_BYTES:
        raise ValueError(f"texts: are {total} UTF-8 bytes together, over rnnkit's limit of "
                         f"{MAX_TEXTS_BYTES} (Limits.textsBytes)")
    return encoded


# ---------------------------------------------------------------------------------------------
# Attributes

def _text_attribute(value, name):
    if not isinstance(value, str):
        raise TypeError(f"{name}: is {type(value).__name__}, expected a string")
    if not value:
        raise ValueError(f"{name}: is empty")
    if "\0" in value:
        raise ValueError(f"{name}: holds a NUL character")
    return value


def _file_name(value, name, folder, fixture_path):
    """A file named relative to the fixture's folder, inside it: rnnkit refuses anything else."""
    value = os.fspath(value) if isinstance(value, os.PathLike) else value
    _text_attribute(value, name)
    if value.startswith("/") or os.path.isabs(value):
        raise ValueError(f"{name}: {value!r} is an absolute path; give the file's name relative "
                         "to the fixture's folder (rnnkit refuses absolute paths)")
    parts = value.replace(os.sep, "/").split("/")
    if ".." in parts:
        raise ValueError(f"{name}: {value!r} leaves the fixture's folder ('..'); the file must "
                         "be inside it (rnnkit refuses it)")
    if value.endswith("/") or parts[-1] in ("", "."):
        raise ValueError(f"{name}: {value!r} names a folder, not a file")
    if os.path.realpath(os.path.join(folder, value)) == os.path.realpath(fixture_path):
        raise ValueError(f"{name}: {value!r} is the fixture file itself")
    return value


def _tolerance(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: is {type(value).__name__}, expected a number")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: is {value}; a tolerance is a finite non-negative number")
    return np.float64(value)


def _exercises(value):
    if isinstance(value, (str, bytes)):
        raise TypeError("exercises: is one string; give a list of tags, e.g. "
                        "['lstm', 'lengths']")
    try:
        tags = list(value)
    except TypeError:
        raise TypeError(f"exercises: is {type(value).__name__}, expected a list of tags") from None
    for index, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag:
            raise TypeError(f"exercises[{index}]: is {tag!r}, expected a non-empty string")
    return json.dumps(tags)


def _padding_id(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"padding_id: is {type(value).__name__}, expected an integer")
    if value < 0:
        raise ValueError(f"padding_id: is {value}; token ids are non-negative")
    return np.int64(value)


# ---------------------------------------------------------------------------------------------
# Checking everything before writing

def _prepare(path, inputs, expected, *, lengths, texts, h0, c0, atol, rtol, architecture,
             generator, model, key, exercises, padding_id, greedy, weights_matching=None):
    """Every dataset and attribute, checked and converted, in the order they are written."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path: is {type(path).__name__}, expected a file path")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"path: {path!r} is a folder")
    if not os.path.isdir(folder):
        raise ValueError(f"path: the folder {folder!r} does not exist")

    datasets = {}
    if texts is not None:
        if inputs is not None:
            raise ValueError("texts: given with inputs; a text model's fixture holds /texts "
                             "alone (the texts make the steps and the mask)")
        if lengths is not None:
            raise ValueError("texts: given with lengths; a text model's fixture holds /texts "
                             "alone (the texts make the steps and the mask)")
        if padding_id is not None:
            raise ValueError("padding_id: given with texts; it is for token-id inputs")
        datasets["texts"] = _texts_list(texts)
        batch, time = len(datasets["texts"]), None
    else:
        if inputs is None:
            raise ValueError("inputs: missing; give inputs ([batch, time, features] floats "
                             "or [batch, time] token ids) or texts=")
        x = _inputs_array(inputs)
        if padding_id is not None and x.dtype.kind == "f":
            raise ValueError("padding_id: given with float inputs; it is for token-id inputs")
        datasets["inputs"] = x
        batch, time = x.shape[0], x.shape[1]
        if lengths is not None:
            datasets["lengths"] = _lengths_array(lengths, x)

    states = {}
    for name, value in (("h0", h0), ("c0", c0)):
        if value is None:
            continue
        state = _float_array(value, name, 3)
        if state.shape[1] != batch:
            raise ValueError(f"{name}: has shape {_shape(state)}, expected [layers × directions, "
                             f"{batch}, hidden]: the batch of the inputs is {batch}")
        states[name] = _finite32(state, name)
    if "h0" in states and "c0" in states and states["h0"].shape[0] != states["c0"].shape[0]:
        raise ValueError(f"c0: has shape {_shape(states['c0'])}, but h0 has "
                         f"{_shape(states['h0'])}: both have one row per layer and direction")
    datasets.update(states)

    if expected is None:
        raise ValueError("expected: missing; give the output array or a dict with 'output'")
    if isinstance(expected, dict):
        unknown = sorted(set(expected) - set(EXPECTED_NAMES))
        if unknown:
            raise ValueError(f"expected: has {unknown}; a fixture's expected values are "
                             f"{list(EXPECTED_NAMES)}")
        if expected.get("output") is None:
            raise ValueError("expected: has no 'output'")
        items = {name: expected[name] for name in EXPECTED_NAMES if expected.get(name) is not None}
    else:
        items = {"output": expected}
    values = {}
    for name, value in items.items():
        label = f"expected['{name}']"
        array = _float_array(value, label)
        if name == "output":
            if array.ndim < 1 or array.shape[0] != batch:
                raise ValueError(f"{label}: has shape {_shape(array)}, expected [{batch}, …]: "
                                 f"the batch of the {'texts' if texts is not None else 'inputs'}"
                                 f" is {batch}")
        else:
            if array.ndim != 3 or array.shape[1] != batch:
                raise ValueError(f"{label}: has shape {_shape(array)}, expected [layers × "
                                 f"directions, {batch}, hidden]")
        values[name] = _finite32(array, label)
    if "c_n" in values and "h_n" in values and values["c_n"].shape[0] != values["h_n"].shape[0]:
        raise ValueError(f"expected['c_n']: has shape {_shape(values['c_n'])}, but h_n has "
                         f"{_shape(values['h_n'])}: both have one row per layer and direction")
    for state, final in (("h0", "h_n"), ("c0", "c_n")):
        if state in states and final in values and states[state].shape != values[final].shape:
            raise ValueError(f"{state}: has shape {_shape(states[state])}, but expected['{final}'] "
                             f"has {_shape(values[final])}; they are the same layers' states")
    for name, array in values.items():
        datasets[f"expected/{name}"] = array

    if greedy is not None:
        ids = _integer_array(greedy, "greedy", 2, np.int64)
        if ids.shape[0] != batch or ids.shape[1] == 0:
            raise ValueError(f"greedy: has shape {_shape(ids)}, expected [{batch}, steps]")
        if ids.min() < 0:
            raise ValueError(f"greedy: holds the token id {ids.min()}; ids are non-negative")
        datasets["greedy"] = ids

    attributes = {}
    if generator is not None:
        attributes["generator"] = _text_attribute(generator, "generator")
    if model is not None:
        attributes["model"] = _file_name(model, "model", folder, path)
    if architecture is not None:
        attributes["architecture"] = _file_name(architecture, "architecture", folder, path)
    if key is not None:
        attributes["key"] = _text_attribute(key, "key")
        if len(key) > MAX_NAME_CHARACTERS:
            raise ValueError(f"key: is {len(key)} characters, over rnnkit's limit of "
                             f"{MAX_NAME_CHARACTERS} (Limits.nameCharacters)")
    if exercises is not None:
        attributes["exercises"] = _exercises(exercises)
    if padding_id is not None:
        attributes["padding_id"] = _padding_id(padding_id)
    if weights_matching is not None:
        if weights_matching not in WEIGHTS_MATCHING:
            raise ValueError(f"weights_matching: is {weights_matching!r}, expected one of {', '.join(WEIGHTS_MATCHING)}")
        attributes["weights_matching"] = weights_matching
    if atol is not None:
        attributes["atol"] = _tolerance(atol, "atol")
    if rtol is not None:
        attributes["rtol"] = _tolerance(rtol, "rtol")
    return path, datasets, attributes


def _write(path, datasets, attributes):
    """Writes a temporary file beside `path` and renames it into place; on any error the
    temporary file is removed and `path` is left as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                             dir=folder)
    os.close(descriptor)
    try:
        with h5py.File(temporary, "w") as f:
            for name, value in attributes.items():
                f.attrs[name] = value
            for name, value in datasets.items():
                if name == "texts":
                    f.create_dataset(name, data=value, dtype=h5py.string_dtype("utf-8"))
                else:
                    f.create_dataset(name, data=value)
        mode = 0o644
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            pass
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return path


def save_fixture(path, inputs, expected, *, lengths=None, texts=None, h0=None, c0=None,
                 atol=None, rtol=None, architecture=None, generator=None, model=None, key=None,
                 exercises=None, padding_id=None, greedy=None, weights_matching=None):
    """Writes a fixture file (spec/fixture-format.md) and returns its path.

    - `inputs`: float features `[batch, time, features]` (stored in their own float type,
      float16/32/64, byte order kept) or integer token ids `[batch, time]` (stored in their
      own integer type; a Python list becomes int64), right-padded. `None` with `texts`.
    - `expected`: the model's output array, or a dict with `"output"` and, for a bare
      recurrent module, `"h_n"` and `"c_n"` (`[layers × directions, batch, hidden]`).
      Stored as float32, the type rnnkit computes in; every value must be finite.
    - `lengths`: `[batch]` integers, each in `1..time`; absent means every step is valid.
    - `texts`: `[batch]` strings (or a Keras `[batch, 1]` column), for a model with a
      `TextVectorization`; alone: no `inputs`, `lengths` or `padding_id` beside them.
    - `h0`, `c0`: a bare module's initial states `[layers × directions, batch, hidden]`.
    - `greedy`: `[batch, steps]` ids a greedy decoding continues the inputs with.
    - Attributes: `generator` (framework and version, e.g. `"torch 2.5.1"`), `model` and
      `architecture` (file names relative to the fixture's folder, inside it), `key` (the
      checkpoint entry holding the state_dict, e.g. `"model_state_dict"`), `exercises`
      (a list of tags), `atol`, `rtol` (finite, non-negative; rnnkit's defaults are 1e-5
      and 1e-4), `padding_id` (token-id inputs: the id padded steps hold, when not 0),
      `weights_matching` (`"order"` or `"name"`: how a legacy Keras weights-only model pairs
      with its architecture, as `load_weights` / `load_weights(by_name=True)`).

    Everything is checked first (`TypeError` / `ValueError` naming the argument and the
    shapes); then the file is written to a temporary file in the same folder and renamed
    over `path`, so an error never leaves a partial or temporary file.

    Example:

        import numpy as np
        from rnnkit_fixture import save_fixture

        x = np.zeros((2, 5, 3), np.float32)            # from your data
        y = my_model_outputs(x, [5, 2])                 # [2, ...] from your framework
        save_fixture("m.fixture.h5", x, y, lengths=[5, 2], model="m.h5",
                     generator="mylib 1.0", exercises=["lstm", "lengths"])
    """
    path, datasets, attributes = _prepare(
        path, inputs, expected, lengths=lengths, texts=texts, h0=h0, c0=c0, atol=atol,
        rtol=rtol, architecture=architecture, generator=generator, model=model, key=key,
        exercises=exercises, padding_id=padding_id, greedy=greedy, weights_matching=weights_matching)
    return _write(path, datasets, attributes)


# ---------------------------------------------------------------------------------------------
# Fixture objects

class Fixture:
    """Inputs and expected outputs, ready to save; what `from_torch` and `from_keras` return.

    `inputs`, `texts`, `lengths`, `h0`, `c0` are numpy arrays (or None; `texts` a list of
    strings), `expected` a dict of float arrays (`"output"`, and `"h_n"`, `"c_n"` for a bare
    recurrent module), and `attributes` the keyword arguments of `save_fixture` given so far
    (`generator`, `model`, `architecture`, `key`, `exercises`, `atol`, `rtol`, `padding_id`,
    `greedy`). All are plain attributes that may be changed before saving.

    Example:

        from rnnkit_fixture import from_torch
        fixture = from_torch(gru, x, h0=h0)           # runs gru, keeps inputs and outputs
        fixture.expected["output"].shape              # (batch, time, hidden)
        fixture.save("gru.fixture.h5", model="gru.pt", exercises=["gru", "initial-state"])
    """

    def __init__(self, inputs=None, expected=None, *, lengths=None, texts=None, h0=None,
                 c0=None, **attributes):
        unknown = sorted(set(attributes) - set(ATTRIBUTE_NAMES))
        if unknown:
            raise TypeError(f"Fixture: unknown attribute{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(unknown)}; known: {', '.join(ATTRIBUTE_NAMES)}")
        self.inputs = _to_numpy(inputs, "inputs")
        self.texts = texts
        self.lengths = _to_numpy(lengths, "lengths")
        self.h0 = _to_numpy(h0, "h0")
        self.c0 = _to_numpy(c0, "c0")
        if expected is not None and not isinstance(expected, dict):
            expected = {"output": expected}
        self.expected = {name: _to_numpy(value, f"expected['{name}']")
                         for name, value in (expected or {}).items() if value is not None}
        self.attributes = {name: value for name, value in attributes.items() if value is not None}

    def save(self, path, **attributes):
        """Writes the fixture to `path` (`save_fixture`); keyword arguments (`model`,
        `architecture`, `key`, `exercises`, `atol`, `rtol`, `padding_id`, `generator`,
        `greedy`) add to or override those given before. Returns `path`."""
        unknown = sorted(set(attributes) - set(ATTRIBUTE_NAMES))
        if unknown:
            raise TypeError(f"save: unknown argument{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(unknown)}; known: {', '.join(ATTRIBUTE_NAMES)}")
        merged = dict(self.attributes)
        merged.update(attributes)
        return save_fixture(path, self.inputs, self.expected or None, lengths=self.lengths,
                            texts=self.texts, h0=self.h0, c0=self.c0, **merged)

    def __repr__(self):
        parts = []
        for name in ("inputs", "lengths", "h0", "c0"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={_shape(value)} {value.dtype}")
        if self.texts is not None:
            parts.append(f"texts=[{len(self.texts)}]")
        parts += [f"expected['{n}']={_shape(v)}" for n, v in self.expected.items()]
        parts += [f"{n}={v!r}" for n, v in self.attributes.items() if n != "greedy"]
        return f"Fixture({', '.join(parts)})"


# Soft links followed on one path, as rnnkit follows them (HDF5Library.softLinkLimit).
SOFT_LINK_LIMIT = 16


def _inside(f, path, name):
    """The object at `name` in the open fixture `f`, or None when there is none, reached one
    link at a time so that nothing outside the file is opened or read, as rnnkit reads it: an
    external link anywhere on the way is refused before HDF5 would follow it (opening the other
    file), soft links are followed at most SOFT_LINK_LIMIT deep, and a dataset whose storage is
    EXTERNAL (raw bytes in another file) or VIRTUAL (mapped from other datasets) is refused
    before it is read."""
    pending = [part for part in name.split("/") if part not in ("", ".")]
    group, walked, hops = f, [], 0
    while pending:
        part = pending.pop(0)
        where = "/" + "/".join(walked + [part])
        link = group.get(part, getlink=True)
        if link is None:
            return None
        if isinstance(link, h5py.ExternalLink):
            raise ValueError(f"{path}: {where}: is an external link (to {link.filename!r}, "
                             f"{link.path!r}); a fixture holds its own data, refused without opening it")
        if isinstance(link, h5py.SoftLink):
            hops += 1
            if hops > SOFT_LINK_LIMIT:
                raise ValueError(f"{path}: {name}: more than {SOFT_LINK_LIMIT} soft links on the way; refused")
            if link.path.startswith("/"):
                group, walked = f, []
            pending = [part for part in link.path.split("/") if part not in ("", ".")] + pending
            continue
        if not isinstance(link, h5py.HardLink):
            raise ValueError(f"{path}: {where}: is a {type(link).__name__}, not an object of the file; refused")
        target = group[part]
        walked.append(part)
        if pending:
            if not isinstance(target, h5py.Group):
                return None
            group = target
            continue
        if isinstance(target, h5py.Dataset):
            if target.external:
                raise ValueError(f"{path}: {where}: has EXTERNAL storage (its bytes are in "
                                 f"{target.external[0][0]!r}); refused before reading it")
            if target.is_virtual:
                raise ValueError(f"{path}: {where}: is a VIRTUAL dataset (mapped from other "
                                 "datasets, maybe in other files); refused before reading it")
        return target
    return group


def load_fixture(path):
    """Reads a fixture file back into a `Fixture` (every dataset and attribute this module
    writes). Example: `load_fixture("m.fixture.h5").expected["output"]`.

    Only the file itself is read, as rnnkit reads it: an external link, a dataset with
    EXTERNAL or VIRTUAL storage, or more than SOFT_LINK_LIMIT soft links on one path raise
    ValueError before anything outside the file is opened."""
    with h5py.File(path, "r") as f:
        def dataset(name):
            found = _inside(f, path, name)
            if found is not None and not isinstance(found, h5py.Dataset):
                raise ValueError(f"{path}: /{name}: is a group, not a dataset")
            return found

        def get(name):
            found = dataset(name)
            return None if found is None else found[()]
        texts = None
        stored = dataset("texts")
        if stored is not None:
            texts = [t.decode("utf-8") if isinstance(t, bytes) else t for t in stored[()]]
        expected = {}
        for name in EXPECTED_NAMES:
            value = get(f"expected/{name}")
            if value is not None:
                expected[name] = value
        attributes = {}
        for name in ATTRIBUTE_NAMES:
            if name in f.attrs:
                value = f.attrs[name]
                if name == "exercises":
                    value = json.loads(value)
                elif isinstance(value, np.generic):
                    value = value.item()
                attributes[name] = value
        greedy = get("greedy")
        if greedy is not None:
            attributes["greedy"] = greedy
        return Fixture(get("inputs"), expected, lengths=get("lengths"), texts=texts,
                       h0=get("h0"), c0=get("c0"), **attributes)


# ---------------------------------------------------------------------------------------------
# PyTorch

def from_torch(module, inputs, /, lengths=None, *, h0=None, c0=None, path=None, **attributes):
    """Runs a torch module on `inputs` and returns a `Fixture` of what it computed.

    `inputs`: numpy array, list or tensor; float features `[batch, time, features]` or token
    ids `[batch, time]`, batch first, right-padded. Float inputs are kept as given in the
    fixture and run in the module's parameter type (a float16 array runs in float32 through a
    float32 module); ids run as int64. `lengths` (`[batch]`, each `1..time`) is recorded as
    `/lengths`.

    - A bare `nn.LSTM`, `nn.GRU` or `nn.RNN` (it must be `batch_first=True`): with `lengths`,
      the inputs are packed (`pack_padded_sequence(..., enforce_sorted=False)`) and the output
      unpacked to the full time (`pad_packed_sequence(total_length=time)`), so padded outputs
      are zero and `h_n`/`c_n` come from each sequence's last valid step. `h0`, `c0`
      (`[layers × directions, batch, hidden]`) start it and are recorded. Expected: `output`,
      `h_n` and, for an LSTM, `c_n`.
    - Any other module: its own forward decides, `module(x, lengths)` with lengths (an int64
      CPU tensor) and `module(x)` without. A tuple or list result counts by its first
      element (e.g. `(logits, state)` records `logits`). Expected: `output`.

    The module runs in eval mode under `torch.no_grad()`; every submodule's training flag is
    restored afterwards. The fixture's `generator` is `"torch <version>"`. Other keyword
    arguments (`model`, `architecture`, `key`, `exercises`, `atol`, `rtol`, `padding_id`,
    `greedy`) are the fixture's attributes (`save_fixture`); with `path`, the fixture is also
    saved there.

    Example, a classifier whose forward takes `(tokens, lengths)`:

        import torch
        from rnnkit_fixture import from_torch

        ids = torch.tensor([[4, 9, 2, 0], [7, 3, 0, 0]])  # right-padded with 0
        from_torch(classifier, ids, lengths=[3, 2]).save(
            "clf.fixture.h5", model="clf.pt", architecture="clf.config.json")
    """
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    if not isinstance(module, nn.Module):
        raise TypeError(f"module: is {type(module).__name__}, expected a torch.nn.Module")
    bare = isinstance(module, nn.RNNBase)
    if bare and not module.batch_first:
        raise ValueError(f"module: this {type(module).__name__} has batch_first=False; fixtures "
                         "are batch-first: build it with batch_first=True (the weights are the "
                         "same) and give inputs [batch, time, features]")
    if not bare and (h0 is not None or c0 is not None):
        raise ValueError("h0, c0: initial states are for a bare nn.LSTM/GRU/RNN; a whole "
                         "model's fixture has none")
    if c0 is not None and not isinstance(module, nn.LSTM):
        raise ValueError(f"c0: a {type(module).__name__} has no cell state")

    stored = _inputs_array(inputs)  # the fixture's /inputs, checked before running anything
    parameters = list(module.parameters())
    float_type = next((p.dtype for p in parameters if p.is_floating_point()), torch.float32)
    device = parameters[0].device if parameters else torch.device("cpu")

    def tensor(array, dtype):
        native = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
        return torch.from_numpy(native).to(device=device, dtype=dtype)

    if torch.is_tensor(inputs):
        x = inputs.detach().to(device)
        x = x.to(float_type) if x.is_floating_point() else x.to(torch.int64)
    else:
        x = tensor(stored, float_type if stored.dtype.kind == "f" else torch.int64)
    n = None
    if lengths is not None:
        n = torch.from_numpy(_lengths_array(lengths, stored))
    states = {}
    for name, value in (("h0", h0), ("c0", c0)):
        if value is not None:
            states[name] = tensor(_float_array(value, name, 3), float_type)

    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            if bare:
                hx = states.get("h0")
                if isinstance(module, nn.LSTM) and states:
                    batch = x.shape[0]
                    rows = module.num_layers * (2 if module.bidirectional else 1)
                    hidden_out = module.proj_size or module.hidden_size
                    h = states.get("h0")
                    c = states.get("c0")
                    if h is None:
                        h = torch.zeros(rows, batch, hidden_out, dtype=float_type, device=device)
                    if c is None:
                        c = torch.zeros(rows, batch, module.hidden_size, dtype=float_type,
                                        device=device)
                    hx = (h, c)
                if n is None:
                    output, state = module(x, hx)
                else:
                    packed = pack_padded_sequence(x, n, batch_first=True, enforce_sorted=False)
                    packed_output, state = module(packed, hx)
                    output = pad_packed_sequence(packed_output, batch_first=True,
                                                 total_length=x.shape[1])[0]
                expected = {"output": output}
                if isinstance(module, nn.LSTM):
                    expected["h_n"], expected["c_n"] = state
                else:
                    expected["h_n"] = state
            else:
                result = module(x, n) if n is not None else module(x)
                if isinstance(result, (tuple, list)):
                    if not result:
                        raise TypeError("module: its forward returned an empty "
                                        f"{type(result).__name__}")
                    result = result[0]
                if not torch.is_tensor(result):
                    raise TypeError(f"module: its forward returned {type(result).__name__} "
                                    "(first element of a tuple), expected a tensor")
                expected = {"output": result}
    finally:
        for m, training in flags:
            m.training = training
    expected = {name: value.detach().cpu().float().numpy() for name, value in expected.items()}
    attributes.setdefault("generator", f"torch {torch.__version__}")
    fixture = Fixture(stored, expected, lengths=None if n is None else n.numpy(),
                      h0=None if h0 is None else _to_numpy(h0, "h0"),
                      c0=None if c0 is None else _to_numpy(c0, "c0"), **attributes)
    if path is not None:
        fixture.save(path)
    return fixture


# ---------------------------------------------------------------------------------------------
# Keras

def _keras_generator(model):
    """`"tf-keras <version>"` or `"keras <version>"`, from the package the model's class
    comes from (the first Keras class of its hierarchy, for a user's subclass)."""
    import importlib
    for cls in type(model).__mro__:
        package = (cls.__module__ or "").split(".")[0]
        if package in ("tf_keras", "keras"):
            version = importlib.import_module(package).__version__
            return f"{'tf-keras' if package == 'tf_keras' else 'keras'} {version}"
        if package == "tensorflow" and ".keras" in cls.__module__:
            import tensorflow as tf
            return f"keras {tf.keras.__version__}"
    raise TypeError(f"model: is {type(model).__name__}, not a Keras (tf-keras or Keras 3) model")


def _reset_stateful(model):
    for layer in getattr(model, "layers", []):
        if getattr(layer, "stateful", False):
            reset = getattr(layer, "reset_states", None) or getattr(layer, "reset_state", None)
            if reset is not None:
                reset()


def _lengths_from_mask(mask, batch, time):
    mask = _to_numpy(mask, "mask")
    if mask.dtype.kind not in "biu":
        raise TypeError(f"mask: holds {mask.dtype}, expected booleans [batch, time]")
    mask = mask.astype(bool)
    if mask.shape != (batch, time):
        raise ValueError(f"mask: has shape {_shape(mask)}, expected [{batch}, {time}] like the "
                         "inputs")
    lengths = mask.sum(axis=1).astype(np.int64)
    suffix = np.arange(time)[None, :] < lengths[:, None]
    if not np.array_equal(mask, suffix):
        row = int(np.flatnonzero((mask != suffix).any(axis=1))[0])
        raise ValueError(f"mask: row {row} is not right padding (valid steps first, then "
                         "masked ones); a fixture records a mask as /lengths")
    return lengths


def from_keras(keras_model, inputs, /, *, lengths=None, mask=None, path=None, **attributes):
    """Runs a Keras model (tf-keras or Keras 3) on `inputs` and returns a `Fixture`.

    The model runs as `keras_model(inputs, training=False)`; a list or tuple result counts by
    its first element. Stateful layers are reset before and after the call (a fixture starts
    from zero states). The fixture's `generator` is `"tf-keras <version>"` or
    `"keras <version>"`, from the package the model comes from.

    `inputs`: float features `[batch, time, features]`, integer token ids `[batch, time]`,
    or strings (`[batch]` or `[batch, 1]`, for a model with a `TextVectorization`; they
    become `/texts`, and go to the model as a string tensor shaped as given).

    Masks are the model's business: a model with `Embedding(mask_zero=True)` is fed token
    ids right-padded with 0, and one with `Masking(mask_value)` features whose padded steps
    equal `mask_value`. `lengths` (`[batch]`, each `1..time`) records those valid steps as
    `/lengths` (they are not passed to the model). `mask` (`[batch, time]` booleans, right
    padding) is instead passed to the call (`mask=`) and recorded as `/lengths`; given both,
    they must agree. rnnkit applies `/lengths` to a Keras model as Keras applies `mask=`
    (spec/fixture-format.md, "What /lengths means"): an Embedding or a Masking layer
    replaces it with its own mask, so lengths that disagree with the model's own mask are
    not applied there either, and `rnnkit verify` says so in a note.

    Other keyword arguments (`model`, `architecture`, `exercises`, `atol`, `rtol`,
    `padding_id`) are the fixture's attributes (`save_fixture`); with `path`, the fixture is
    also saved there.

    Example, a masked classifier saved as a Keras 3 archive:

        import keras, numpy as np
        from rnnkit_fixture import from_keras

        m = keras.Sequential([keras.Input((6,), dtype="int32"),
                              keras.layers.Embedding(12, 4, mask_zero=True),
                              keras.layers.LSTM(3), keras.layers.Dense(2)])
        m.save("clf.keras")
        ids = np.array([[3, 5, 7, 0, 0, 0], [2, 9, 4, 8, 1, 6]], np.int32)  # 0 pads
        from_keras(m, ids, lengths=[3, 6]).save("clf.fixture.h5", model="clf.keras")
    """
    generator = _keras_generator(keras_model)
    array = _to_numpy(inputs, "inputs")
    texts = None
    if array.dtype.kind in "OSU":
        texts = _texts_list(array)  # checked before running anything
        if lengths is not None or mask is not None:
            raise ValueError("lengths, mask: a text model's fixture holds /texts alone (the "
                             "texts make the steps and the mask)")
        import tensorflow as tf
        call_inputs = tf.constant(array.tolist(), dtype=tf.string)
        texts = [t.decode("utf-8") for t in texts]
    else:
        array = _inputs_array(array)
        call_inputs = inputs if not isinstance(inputs, (list, tuple)) else array
    n = None
    if lengths is not None:
        n = _lengths_array(lengths, array)
    if mask is not None:
        from_mask = _lengths_from_mask(mask, array.shape[0], array.shape[1])
        if n is not None and not np.array_equal(n, from_mask):
            raise ValueError(f"lengths: {n.tolist()} disagree with mask, whose valid steps are "
                             f"{from_mask.tolist()}")
        n = _lengths_array(from_mask, array)  # a row with no valid step is refused
    kwargs = {"training": False}
    if mask is not None:
        kwargs["mask"] = _to_numpy(mask, "mask").astype(bool)
    _reset_stateful(keras_model)
    try:
        with warnings.catch_warnings():
            # Keras 3 says a model given mask= "will destroy the mask information": of its
            # output (which has none to pass on); its layers are masked.
            warnings.filterwarnings("ignore", message=".*does not support masking.*")
            result = keras_model(call_inputs, **kwargs)
    finally:
        _reset_stateful(keras_model)
    if isinstance(result, (list, tuple)):
        result = result[0]
    output = _to_numpy(result, "output")
    attributes.setdefault("generator", generator)
    if texts is not None:
        fixture = Fixture(None, {"output": output}, texts=texts, **attributes)
    else:
        fixture = Fixture(array, {"output": output}, lengths=n, **attributes)
    if path is not None:
        fixture.save(path)
    return fixture


def _takes_time_major(graph, name):
    """True when graph input `name` reaches a recurrent node's `X` (input 0) with `layout = 0`
    through Cast and Identity nodes only (no Transpose)."""
    for _ in range(8):
        consumers = [n for n in graph.node if name in n.input]
        if len(consumers) != 1:
            return False
        node = consumers[0]
        if node.op_type in ("LSTM", "GRU", "RNN"):
            layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
            return node.input[0] == name and layout == 0
        if node.op_type not in ("Cast", "Identity"):
            return False
        name = node.output[0]
    return False


def _batch_first_output(output, session, output_name, feeds, data_name, shape):
    """The output of a graph run on time-major input, batch-first: a recurrent node's `Y`
    `[time, directions, batch, hidden]` → `[batch, time, directions·hidden]`; a 3-D output
    whose first two axes are `[time, batch]` transposed (told apart from `[batch, time]` by a
    run on the first sequence alone when time equals batch); others as given."""
    batch, time = shape[0], shape[1]
    if output.ndim == 4 and output.shape[0] == time and output.shape[2] == batch:
        return np.ascontiguousarray(output.transpose(2, 0, 1, 3).reshape(batch, time, -1))
    if output.ndim == 3 and output.shape[:2] == (time, batch):
        if time == batch and time > 1:
            one = dict(feeds)
            one[data_name] = feeds[data_name][:, :1]
            for name, value in feeds.items():
                if name != data_name and value.ndim >= 1 and value.shape[0] == batch and value.ndim == 1:
                    one[name] = value[:1]
                elif name != data_name and value.ndim == 3 and value.shape[1] == batch:
                    one[name] = value[:, :1]
            probe = session.run([output_name], one)[0]
            if probe.shape[:2] != (time, 1):
                return output
        return np.ascontiguousarray(output.transpose(1, 0, 2))
    return output


def from_onnx(model_path, inputs, /, lengths=None, *, h0=None, c0=None, path=None, **attributes):
    """Runs an ONNX model in ONNX Runtime on `inputs` and returns a `Fixture`.

    `model_path`: the `.onnx` file (recorded as the fixture's `model` unless given).
    `inputs`: float features `[batch, time, features]` or token ids `[batch, time]`, batch
    first, right-padded; they go to the graph's first input that is neither the lengths nor
    an initial state, cast to its element type. A graph whose data input goes straight to a
    recurrent node's `X` with `layout = 0` (through Cast or Identity: an ONNX node test,
    `torch.onnx.export` of `batch_first=False`) takes it time-major: the inputs are given to
    it transposed to `[time, batch, …]`, and its output is recorded batch-first as rnnkit
    gives it — a time-major output transposed back, a recurrent node's `Y`
    (`[time, directions, batch, hidden]`) as `[batch, time, directions·hidden]`. `lengths` (`[batch]`) go to the graph's
    lengths input — the one that reaches the recurrent nodes' `sequence_lens`: `lengths` in
    the graphs `rnnkit convert --to onnx` writes, any name in others — cast to its type, and
    are recorded as `/lengths`. A graph whose lengths input is not given `lengths` is run on
    every step (each sequence's length is `time`) and records no `/lengths`. `h0`, `c0`
    (`[directions, batch, hidden]`) go to inputs named `initial_h`/`h0` and
    `initial_c`/`c0` and are recorded. Expected: `output`, the graph's first output.

    The fixture's `generator` is `"onnxruntime <version>"`. Other keyword arguments are the
    fixture's attributes (`save_fixture`); with `path`, the fixture is also saved there.

    Example, the packed classifier exported by `rnnkit convert clf.pt clf.onnx --to onnx`:

        from rnnkit_fixture import from_onnx
        from_onnx("clf.onnx", ids, lengths=[3, 2]).save("clf.onnx.fixture.h5")
    """
    import onnx
    import onnxruntime as ort

    stored = _inputs_array(inputs)
    model = onnx.load(os.fspath(model_path))
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    graph_inputs = [i for i in graph.input if i.name not in initializers]
    # The graph inputs that reach sequence_lens (directly, or through Cast, Identity, and a
    # packed export's TopK and Gather that sort them).
    producers = {o: n for n in graph.node for o in n.output}

    def source(name):
        for _ in range(8):
            node = producers.get(name)
            if node is None or node.op_type not in ("Cast", "Identity", "TopK", "Gather") or not node.input:
                return name
            name = node.input[0]
        return name

    lengths_names = {source(n.input[4]) for n in graph.node
                     if n.op_type in ("LSTM", "GRU", "RNN") and len(n.input) > 4 and n.input[4]}
    state_names = {"initial_h": "h", "h0": "h", "initial_c": "c", "c0": "c"}
    # rnnkit's written graphs take each layer's states as optional inputs (zero initializers):
    # `initial_h`, or `<layer>_initial_h` for a model of several recurrent layers.
    optional_states = [i for i in graph.input if i.name in initializers
                       and (i.name in state_names or i.name.endswith(("_initial_h", "_initial_c")))]
    data_input = next((i for i in graph_inputs
                       if i.name not in lengths_names and i.name not in state_names), None)
    if data_input is None:
        raise ValueError(f"{model_path}: the graph has no data input")
    onnx_types = {1: np.float32, 6: np.int32, 7: np.int64, 10: np.float16, 11: np.float64}

    def element_type(info):
        return onnx_types.get(info.type.tensor_type.elem_type, np.float32)

    time_major = _takes_time_major(graph, data_input.name)
    given_inputs = np.swapaxes(stored, 0, 1) if time_major else stored
    feeds = {data_input.name: given_inputs.astype(element_type(data_input))}
    n = None
    if lengths is not None:
        n = _lengths_array(lengths, stored)
    for info in graph_inputs:
        if info.name in lengths_names:
            given = n if n is not None else np.full(stored.shape[0], stored.shape[1])
            feeds[info.name] = np.asarray(given).astype(element_type(info))
    if n is not None and not any(i.name in lengths_names for i in graph_inputs):
        raise ValueError(f"lengths: {model_path}'s graph takes no lengths (no sequence_lens input)")
    dims = {t.name: list(t.dims) for t in graph.initializer}
    for given, kind in ((h0, "h"), (c0, "c")):
        if given is None:
            continue
        names = [i for i in graph_inputs if state_names.get(i.name) == kind]
        written = [i for i in optional_states if i.name.endswith("initial_" + kind)]
        if names:
            feeds[names[0].name] = _to_numpy(given, kind + "0").astype(element_type(names[0]))
        elif written:
            # One input per layer: PyTorch's stacked [layers·directions, batch, hidden] split.
            stacked = _to_numpy(given, kind + "0").astype(np.float32)
            row = 0
            for info in written:
                directions = dims[info.name][0]
                feeds[info.name] = np.ascontiguousarray(stacked[row:row + directions])
                row += directions
            if row != stacked.shape[0]:
                raise ValueError(f"{kind}0: has {stacked.shape[0]} rows; {model_path}'s graph takes {row} "
                                 "(each layer's directions, stacked as PyTorch's h0)")
        else:
            raise ValueError(f"{'h0' if kind == 'h' else 'c0'}: {model_path}'s graph has no initial state input")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # optional inputs (initializers) are reported as warnings
    session = ort.InferenceSession(os.fspath(model_path), options, providers=["CPUExecutionProvider"])
    output = session.run([graph.output[0].name], feeds)[0]
    if time_major:
        output = _batch_first_output(output, session, graph.output[0].name, feeds, data_input.name, stored.shape)
    attributes.setdefault("generator", f"onnxruntime {ort.__version__}")
    attributes.setdefault("model", os.path.basename(os.fspath(model_path)))
    fixture = Fixture(stored, {"output": output}, lengths=n, h0=h0, c0=c0, **attributes)
    if path is not None:
        fixture.save(path)
    return fixture
