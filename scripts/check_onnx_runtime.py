#!/usr/bin/env python3
"""Run ONNX models in ONNX Runtime against the committed fixtures (issue 24, "ONNX Runtime in CI").

Two kinds of rows, over every `*.fixture.h5` under the folders given (recursively; default the
five committed fixture folders):

- direct: a fixture whose model is an `.onnx` file (fixtures/onnx, or a folder of
  (model.onnx, model.fixture.h5) pairs that a test wrote) — the file as it is.
- convert: every fixture's model, through `rnnkit convert MODEL OUT.onnx --to onnx` (with the
  fixture's `architecture`, `key` and `weights_matching` as `--architecture`, `--key`,
  `--by-name`). A refusal is rnnkit's one line on standard error with exit status 2 and no
  file written: the row records that line. Anything else (another status, a crash, several
  lines, a file left behind) fails. A written graph must have no Loop, Scan or If.

Each ONNX file is checked with `onnx.checker.check_model(full_check=True)`, loaded in ONNX
Runtime (CPU), fed the fixture's datasets by the graph's input names and run, and every expected
output (`/expected/output`, `/expected/h_n`, `/expected/c_n`) compared as numpy's `allclose`
with the fixture's tolerances (default atol 1e-5, rtol 1e-4), shapes equal.

Feeding (spec/fixture-format.md; spec/onnx-layout.md for the names): the graph input of type
string takes `/texts`; an integer input named `lengths`/`sequence_lens` takes `/lengths`
(every sequence full when the fixture has none); `initial_h`/`h0` (`_K` per layer) and
`initial_c`/`c0` take `/h0` and `/c0` (zeros when the fixture has none); the one input left
takes `/inputs`, batch-first, or time-major where its first dimension is named `time` or its
second `batch`. Outputs: the first graph output is `/expected/output` (a raw `Y [T, D, B, H]`
is compared as `[B, T, D·H]`, a time-major one transposed back), `Y_h`/`h_n` and `Y_c`/`c_n`
(or the second and third outputs) are `/expected/h_n` and `/expected/c_n`.

`--convert auto` (the default) converts only when `rnnkit convert --to onnx` exists in the
binary and otherwise says "writer unavailable" once; `--convert yes` fails without it.
Prints a table; exit status 1 on any failed row (or when nothing was checked), 0 otherwise.

    RNNKIT=.build/release/rnnkit .venv-ci/bin/python scripts/check_onnx_runtime.py \\
        [FOLDER ...] [--pairs FOLDER] [--convert auto|yes|no] [--keep out/ci/onnx] [--json out/ci/onnx.json]

Requirements: scripts/requirements-onnx-ci.txt (numpy, h5py, onnx, onnxruntime).
"""

import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import onnx
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FOLDERS = ["fixtures/pytorch", "fixtures/keras", "fixtures/pytorch-files", "fixtures/seams", "fixtures/onnx"]
CONTROL_FLOW = {"Loop", "Scan", "If"}
RECURRENT = {"LSTM", "GRU", "RNN"}
LENGTHS_NAMES = {"lengths", "sequence_lens", "seq_lens", "sequence_lengths"}
STATE_NAME = re.compile(r"^(initial_h|h0|initial_c|c0)(?:[_.:/]?(\d+))?$")
# Per-layer states named after their layer (`<layer>_initial_h`, as rnnkit writes a stacked
# model's): in the order the graph lists them, which is the layers' order.
LAYER_STATE_NAME = re.compile(r"^.+_(initial_h|initial_c)$")
OUTPUT_STATE_NAME = re.compile(r"^(y_h|h_n|hn|y_c|c_n|cn)(?:[_.:/]?(\d+))?$")
ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16,
             "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


class Failure(Exception):
    """A row that fails, with the one-line reason."""


class Skip(Exception):
    """A row ONNX Runtime cannot run for a reason outside the file (direct rows only)."""


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def read_fixture(path):
    """The fixture's datasets and attributes as numpy arrays and strings."""
    data, attrs = {}, {}
    with h5py.File(path, "r") as f:
        for name in ("inputs", "lengths", "h0", "c0", "texts"):
            if name in f:
                if not isinstance(f[name], h5py.Dataset):
                    raise Failure(f"/{name} is a group (fixtures keep the bare-module form)")
                data[name] = f[name][()]
        for name in ("output", "h_n", "c_n"):
            key = f"expected/{name}"
            if key in f:
                data[f"expected/{name}"] = f[key][()]
        for key, value in f.attrs.items():
            attrs[key] = value.item() if isinstance(value, np.generic) else value
    if "texts" in data:
        data["texts"] = np.array([text(t) for t in data["texts"]], dtype=object)
    for key in ("model", "architecture", "key", "weights_matching"):
        if key in attrs:
            attrs[key] = text(attrs[key])
    if "expected/output" not in data:
        raise Failure("the fixture has no /expected/output")
    return data, attrs


def fixture_model(fixture, attrs):
    """The model file a fixture names (its `model` attribute, else CASE.onnx beside it)."""
    folder = os.path.dirname(fixture)
    if "model" in attrs:
        return os.path.join(folder, attrs["model"])
    return fixture[: -len(".fixture.h5")] + ".onnx"


def find_fixtures(folders):
    found = []
    for folder in folders:
        if os.path.isfile(folder) and folder.endswith(".fixture.h5"):
            found.append(folder)
            continue
        if not os.path.isdir(folder):
            raise SystemExit(f"check_onnx_runtime: {folder}: not a folder")
        for parent, dirs, files in os.walk(folder):
            dirs.sort()
            found += [os.path.join(parent, name) for name in sorted(files) if name.endswith(".fixture.h5")]
    return found


# --- feeding ---------------------------------------------------------------------------------

def dims(value_info):
    """A graph input's dimensions: ints, dim_param names, or None when unknown."""
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value_info.type.tensor_type.shape.dim]


def cast(array, ort_type, what):
    dtype = ORT_TYPES.get(ort_type)
    if dtype is None:
        raise Failure(f"graph input {what} has type {ort_type}, which no fixture dataset has")
    if np.issubdtype(dtype, np.integer) and np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise Failure(f"{what}: the fixture's values do not fit {ort_type}")
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(array.dtype, np.integer):
        raise Failure(f"graph input {what} takes {ort_type}, and the fixture's dataset is {array.dtype}")
    return np.ascontiguousarray(array.astype(dtype))


def time_major(shape):
    """Whether a data input's declared dims say [time, batch, …]."""
    names = [d.lower() if isinstance(d, str) else "" for d in shape]
    if names and "time" in names[0]:
        return True
    return len(names) > 1 and "batch" in names[1]


def state_feed(array, infos, batch, what):
    """/h0 or /c0 `[L·D, B, H]` split over per-layer graph inputs ([D, B, H], or [B, D, H] when
    the input's first dimension is named batch)."""
    infos = sorted(infos, key=lambda item: item[1])
    feeds = {}
    if array is None:
        rows = [None] * len(infos)
    else:
        total = array.shape[0]
        if total % len(infos):
            raise Failure(f"{what}: {total} rows do not split over {len(infos)} graph inputs")
        step = total // len(infos)
        rows = [array[k * step:(k + 1) * step] for k in range(len(infos))]
    for (meta, _, shape), part in zip(infos, rows):
        batch_first = bool(shape) and isinstance(shape[0], str) and "batch" in shape[0].lower()
        if part is None:
            # Absent in the fixture means zeros (spec/fixture-format.md).
            d, h = (shape[1], shape[2]) if batch_first else (shape[0], shape[2])
            if not isinstance(d, int) or not isinstance(h, int):
                raise Failure(f"graph input {meta.name}: the fixture has no {what} and the input's size is not fixed")
            part = np.zeros((batch, d, h) if batch_first else (d, batch, h), np.float32)
        elif batch_first:
            part = part.transpose(1, 0, 2)
        feeds[meta.name] = cast(part, meta.type, meta.name)
    return feeds


def make_feeds(session, model, data):
    """The feed dict, and whether the data went in time-major."""
    graph_inputs = {vi.name: vi for vi in model.graph.input}
    initializers = {t.name for t in model.graph.initializer}
    lengths, states, texts, rest = [], {"h": [], "c": []}, [], []
    # Graph inputs with an initializer (optional, e.g. initial states) are listed apart.
    listed = list(session.get_inputs()) + list(session.get_overridable_initializers())
    for position, meta in enumerate(listed):
        name = meta.name
        shape = dims(graph_inputs[name]) if name in graph_inputs else list(meta.shape)
        match = STATE_NAME.match(name.lower())
        layer_match = None if match else LAYER_STATE_NAME.match(name.lower())
        if meta.type == "tensor(string)":
            texts.append(meta)
        elif name.lower() in LENGTHS_NAMES and meta.type.startswith("tensor(int"):
            lengths.append(meta)
        elif match:
            kind = "c" if match.group(1) in ("initial_c", "c0") else "h"
            states[kind].append((meta, int(match.group(2) or 0), shape))
        elif layer_match:
            kind = "c" if layer_match.group(1) == "initial_c" else "h"
            states[kind].append((meta, position, shape))
        else:
            rest.append((meta, shape))
    # An input that has an initializer is optional: leave it to its default.
    rest = [(meta, shape) for meta, shape in rest if meta.name not in initializers]
    feeds, major = {}, False
    if "texts" in data:
        if len(texts) != 1 or rest:
            raise Failure("the fixture has /texts and the graph does not take one string input alone")
        feeds[texts[0].name] = data["texts"]
        batch = len(data["texts"])
    else:
        if len(rest) != 1:
            raise Failure(f"cannot tell which graph input takes /inputs: {[m.name for m, _ in rest] or 'none'}")
        meta, shape = rest[0]
        x = data["inputs"]
        batch, steps = x.shape[0], x.shape[1]
        major = time_major(shape)
        feeds[meta.name] = cast(x.transpose(1, 0, *range(2, x.ndim)) if major else x, meta.type, meta.name)
        if lengths:
            given = data.get("lengths")
            value = given if given is not None else np.full(batch, steps, np.int64)
            for item in lengths:
                feeds[item.name] = cast(np.asarray(value), item.type, item.name)
    if texts and "texts" not in data:
        raise Failure(f"graph input {texts[0].name} takes strings and the fixture has no /texts")
    for kind, what in (("h", "/h0"), ("c", "/c0")):
        given = data.get(f"{kind}0")
        if given is None:  # an optional state input (one with an initializer) keeps its default
            states[kind] = [item for item in states[kind] if item[0].name not in initializers]
        if states[kind]:
            feeds.update(state_feed(given, states[kind], batch, what))
        elif given is not None:
            raise Failure(f"the fixture has {what} and the graph takes no initial states")
    return feeds, major


# --- outputs ---------------------------------------------------------------------------------

def candidates(array, major):
    """Ways a graph output can stand for a batch-first fixture output, most likely first."""
    if array.ndim == 4:  # a raw Y: [T, D, B, H] (layout 0) or [B, T, D, H] (layout 1)
        t, d, b, h = array.shape
        yield array.transpose(2, 0, 1, 3).reshape(b, t, d * h)
        yield array.reshape(array.shape[0], array.shape[1], -1)
        return
    if major and array.ndim >= 2:
        yield array.swapaxes(0, 1)
    yield array
    if not major and array.ndim >= 2:
        yield array.swapaxes(0, 1)


def pick_outputs(session, results):
    """{expected name: array} from the graph's outputs."""
    names = [meta.name for meta in session.get_outputs()]
    by_name = dict(zip(names, results))
    picked, states = {}, {"h_n": [], "c_n": []}
    for name in names:
        match = OUTPUT_STATE_NAME.match(name.lower())
        if match:
            kind = "c_n" if match.group(1) in ("y_c", "c_n", "cn") else "h_n"
            states[kind].append((int(match.group(2) or 0), name))
    picked["output"] = results[0]
    named = states["h_n"] or states["c_n"]
    for kind, position in (("h_n", 1), ("c_n", 2)):
        if states[kind]:
            parts = [by_name[name] for _, name in sorted(states[kind])]
            picked[kind] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        elif not named and len(results) > position:
            picked[kind] = results[position]  # unnamed states: the second and third outputs
    return picked


def compare(picked, data, attrs, major):
    atol = float(attrs.get("atol", 1e-5))
    rtol = float(attrs.get("rtol", 1e-4))
    worst = 0.0
    for kind in ("output", "h_n", "c_n"):
        expected = data.get(f"expected/{kind}")
        if expected is None:
            continue
        if kind not in picked:
            raise Failure(f"the fixture has /expected/{kind} and the graph has no output for it")
        got = picked[kind]
        shaped = None
        for candidate in (candidates(got, major) if kind == "output" else [got]):
            if candidate.shape == expected.shape:
                shaped = candidate
                break
        if shaped is None and kind != "output" and got.ndim == 3 and got.shape[1::-1] + got.shape[2:] == expected.shape:
            shaped = got.transpose(1, 0, 2)  # layout 1's states [B, D, H]
        if shaped is None:
            raise Failure(f"/expected/{kind}: shape {list(expected.shape)}, the graph gives {list(got.shape)}")
        shaped = shaped.astype(np.float64)
        expected = expected.astype(np.float64)
        error = np.abs(shaped - expected)
        worst = max(worst, float(np.nanmax(error)) if error.size else 0.0)
        if not np.allclose(shaped, expected, atol=atol, rtol=rtol):
            bad = int(np.sum(~np.isclose(shaped, expected, atol=atol, rtol=rtol)))
            raise Failure(f"/expected/{kind}: {bad} of {expected.size} values differ "
                          f"(max abs error {float(np.nanmax(error)):.3g}; atol {atol:g}, rtol {rtol:g})")
    return worst


# --- one ONNX file against one fixture ------------------------------------------------------

def session_options(threads):
    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def check_onnx(path, data, attrs, threads, written):
    """(max abs error, note) for one ONNX file; raises Failure or Skip."""
    try:
        model = onnx.load(path)
    except Exception as error:  # noqa: BLE001 - any load error is the row's failure
        raise Failure(f"onnx.load: {one_line(error)}")
    ops = [node.op_type for node in model.graph.node]
    if written:
        loops = sorted(CONTROL_FLOW.intersection(ops))
        if loops:
            raise Failure(f"the written graph has {', '.join(loops)}")
        for node in model.graph.node:
            if node.op_type in RECURRENT:
                layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
                if layout != 0:
                    raise Failure(f"node {node.name or node.op_type}: layout={layout} (ONNX Runtime refuses it)")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:  # noqa: BLE001
        raise Failure(f"onnx.checker (full_check): {one_line(error)}")
    try:
        session = ort.InferenceSession(path, session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001
        layouts = [a.i for n in model.graph.node if n.op_type in RECURRENT for a in n.attribute if a.name == "layout"]
        if not written and any(layouts):
            raise Skip("ONNX Runtime refuses layout=1 (the reader checks this file against the reference evaluator)")
        raise Failure(f"ONNX Runtime cannot load it: {one_line(error)}")
    feeds, major = make_feeds(session, model, data)
    try:
        results = session.run(None, feeds)
    except Exception as error:  # noqa: BLE001
        raise Failure(f"ONNX Runtime: {one_line(error)}")
    unfed = "lengths" in data and not any(k.lower() in LENGTHS_NAMES for k in feeds)
    try:
        worst = compare(pick_outputs(session, results), data, attrs, major)
    except Failure as failure:
        raise Failure(f"{failure}{'; /lengths not fed: the graph has no lengths input' if unfed else ''}")
    recurrent = sum(op in RECURRENT for op in ops)
    note = f"{recurrent} recurrent op{'s' if recurrent != 1 else ''}, {len(ops)} nodes"
    if unfed:
        note += "; /lengths not fed (no lengths input: the graph's own mask)"
    return worst, note


def one_line(error):
    return " ".join(str(error).split())[:300]


# --- rnnkit convert --to onnx ---------------------------------------------------------------

def writer_available(rnnkit, probe_dir):
    """Whether this binary has `convert --to onnx` (the argument parser rejects the value
    otherwise), and the line that says why not."""
    probe = os.path.join(ROOT, "fixtures", "pytorch", "lstm_basic.h5")
    out = os.path.join(probe_dir, "probe.onnx")
    run = subprocess.run([rnnkit, "convert", probe, out, "--to", "onnx", "--force"],
                         capture_output=True, text=True)
    if run.returncode != 0 and re.search(r"'onnx' is invalid for '--to", run.stderr):
        return False, run.stderr.strip().splitlines()[0]
    return True, ""


def convert(rnnkit, model, attrs, fixture, out):
    """Run `rnnkit convert`; returns None when written, the refusal line when refused; raises
    Failure when the outcome is neither."""
    folder = os.path.dirname(fixture)
    command = [rnnkit, "convert", model, out, "--to", "onnx", "--force"]
    if "architecture" in attrs:
        command += ["--architecture", os.path.join(folder, attrs["architecture"])]
    if "key" in attrs:
        command += ["--key", attrs["key"]]
    if attrs.get("weights_matching") == "name":
        command.append("--by-name")
    if os.path.exists(out):
        os.remove(out)
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise Failure("rnnkit convert ran past 300 s")
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    if run.returncode == 0:
        if not os.path.isfile(out):
            raise Failure("rnnkit convert exited 0 and wrote no file")
        return None
    if run.returncode == 2 and len(lines) == 1 and lines[0].startswith("rnnkit: error: ") and not os.path.exists(out):
        return lines[0]
    what = f"exit status {run.returncode}" if run.returncode >= 0 else f"killed by signal {-run.returncode}"
    left = "; it left the output file" if os.path.exists(out) else ""
    raise Failure(f"rnnkit convert: {what}{left}, {len(lines)} line(s) on standard error: "
                  f"{one_line(run.stderr) or '(none)'}")


# --- rows ------------------------------------------------------------------------------------

def row_for(mode, fixture, rnnkit, keep, threads):
    rel = os.path.relpath(fixture, ROOT) if fixture.startswith(ROOT) else fixture
    row = {"mode": mode, "fixture": rel, "status": "ok", "max_abs_error": None, "note": ""}
    started = time.perf_counter()
    try:
        data, attrs = read_fixture(fixture)
        model = fixture_model(fixture, attrs)
        row["model"] = os.path.relpath(model, ROOT) if model.startswith(ROOT) else model
        if not os.path.isfile(model):
            raise Failure(f"the fixture's model {row['model']} is missing")
        if mode == "direct":
            path = model
        else:
            case = os.path.basename(fixture)[: -len(".fixture.h5")]
            sub = os.path.dirname(rel).replace(os.sep, "__").replace("..", "_")
            os.makedirs(os.path.join(keep, sub), exist_ok=True)
            path = os.path.join(keep, sub, case + ".onnx")
            refusal = convert(rnnkit, model, attrs, fixture, path)
            if refusal is not None:
                row["status"], row["note"] = "refused", refusal
                return row
            row["onnx"] = path
        row["max_abs_error"], row["note"] = check_onnx(path, data, attrs, threads, written=(mode == "convert"))
    except Failure as failure:
        row["status"], row["note"] = "FAIL", str(failure)
    except Skip as skip:
        row["status"], row["note"] = "skip", str(skip)
    except Exception as error:  # noqa: BLE001 - a harness error is a failed row, never a pass
        row["status"], row["note"] = "FAIL", f"{type(error).__name__}: {one_line(error)}"
    finally:
        row["seconds"] = round(time.perf_counter() - started, 3)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", help="fixture folders (recursive) or fixture files; "
                                                   "default: " + " ".join(DEFAULT_FOLDERS))
    parser.add_argument("--pairs", action="append", default=[], metavar="FOLDER",
                        help="also this folder of (MODEL.onnx, MODEL.fixture.h5) pairs, e.g. the ONNX files a test "
                             "suite wrote (repeatable; added to the folders given or the default ones)")
    parser.add_argument("--rnnkit", default=os.environ.get("RNNKIT") or os.path.join(ROOT, ".build", "release", "rnnkit"),
                        help="the rnnkit binary (default $RNNKIT, else .build/release/rnnkit)")
    parser.add_argument("--convert", choices=("auto", "yes", "no"), default="auto",
                        help="convert every fixture's model with `rnnkit convert --to onnx`: auto when the "
                             "binary has it, yes (fail without it) or no")
    parser.add_argument("--no-direct", action="store_true", help="leave out the .onnx models run as they are")
    parser.add_argument("--keep", help="write the converted files here (default: a temporary folder)")
    parser.add_argument("--json", help="write the rows and counts to this file")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads per session")
    args = parser.parse_args()

    ort.set_default_logger_severity(4)  # a refused session raises; its error log line would only repeat it
    folders = (args.folders or [os.path.join(ROOT, f) for f in DEFAULT_FOLDERS]) + args.pairs
    fixtures = find_fixtures(folders)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        keep = os.path.abspath(args.keep) if args.keep else scratch
        os.makedirs(keep, exist_ok=True)
        writer, why = False, ""
        if args.convert != "no":
            if not os.access(args.rnnkit, os.X_OK):
                raise SystemExit(f"check_onnx_runtime: {args.rnnkit}: no rnnkit binary there (--rnnkit or RNNKIT)")
            writer, why = writer_available(args.rnnkit, scratch)
        jobs = []
        for fixture in fixtures:
            try:
                with h5py.File(fixture, "r") as f:
                    named = text(f.attrs.get("model", os.path.basename(fixture)[: -len(".fixture.h5")] + ".onnx"))
            except Exception:  # noqa: BLE001 - read_fixture reports it in its row
                named = ""
            if named.endswith(".onnx") and not args.no_direct:
                jobs.append(("direct", fixture))
            if writer:
                jobs.append(("convert", fixture))
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            rows = list(pool.map(lambda job: row_for(job[0], job[1], args.rnnkit, keep, args.threads), jobs))
    elapsed = time.perf_counter() - started

    width = max([len(r["fixture"]) for r in rows] + [7])
    print(f"{'status':<7} {'mode':<7} {'fixture':<{width}} {'max err':>9}  note")
    for r in rows:
        error = f"{r['max_abs_error']:.2e}" if r["max_abs_error"] is not None else "-"
        print(f"{r['status']:<7} {r['mode']:<7} {r['fixture']:<{width}} {error:>9}  {r['note']}")
    counts = {}
    for r in rows:
        counts.setdefault(r["mode"], {}).setdefault(r["status"], 0)
        counts[r["mode"]][r["status"]] += 1
    failed = sum(r["status"] == "FAIL" for r in rows)
    print()
    for mode in ("direct", "convert"):
        if mode in counts:
            print(f"{mode}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts[mode].items())))
    if args.convert == "no":
        print("convert: not asked (--convert no)")
    elif not writer:
        print(f"convert: writer unavailable ({why})")
        if args.convert == "yes":
            failed += 1
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}; {len(rows)} rows from {len(fixtures)} fixtures "
          f"in {elapsed:.1f} s; {failed} failed")
    if not rows:
        print("check_onnx_runtime: nothing was checked", file=sys.stderr)
        failed += 1
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"onnxruntime": ort.__version__, "onnx": onnx.__version__,
                       "writer": writer, "writer_unavailable": why or None, "counts": counts,
                       "failed": failed, "seconds": round(elapsed, 1), "rows": rows}, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
