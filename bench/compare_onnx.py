#!/usr/bin/env python3
"""Time the ONNX graph rnnkit writes against the exporters' graphs of the same models, in ONNX Runtime.

For each workload, one model with random weights, built in its framework:

- PyTorch (the workloads of bench/compare.py, and the classifier around
  `pack_padded_sequence`): the graph of `torch.onnx.export` (TorchScript exporter,
  `dynamo=False`, opset 17, batch and time dynamic);
- tf-keras (the same shapes: 2-layer bidirectional LSTM, 2-layer GRU with `reset_after=True`
  and `False`, the classifier with and without `mask_zero`, the LSTM behind `Masking`): the
  graph of tf2onnx (`from_function` of the model's call, opset 17), which is a `Loop` for a
  masked layer and for `reset_after=False`;

and, for every workload, the graph `rnnkit convert MODEL OUT.onnx --to onnx` writes (the column
says "writer unavailable" when the binary has no `--to onnx`) and rnnkit's own engine
(`rnnkit bench --json`). Before timing, every graph and `rnnkit run` are checked against the
framework's own outputs on a right-padded batch (atol 1e-5, rtol 1e-4; the masked and packed
models with varied lengths); a graph that disagrees is flagged in the table, not hidden.

Timed inputs are full-length sequences (no padding), `--time` steps, at each batch of
`--batches`; ONNX Runtime runs sequentially with `intra_op_num_threads = --threads`, as in
bench/compare.py, and every engine gets the same warm-up and passes, interleaved in rounds.
Medians over every pass.

Not part of CI. Python with onnx, onnxruntime, tf2onnx, torch, tensorflow and tf-keras
(fixtures/requirements-onnx.txt beside fixtures/requirements-frameworks.txt):

    python bench/compare_onnx.py --rnnkit .build/release/rnnkit --threads 2 [--markdown out.md]

(also `python bench/compare.py --exporters ...`, which runs this script with its arguments).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ATOL, RTOL = 1e-5, 1e-4
FEATURES, HIDDEN, VOCAB, CLASSES = 128, 256, 10000, 10
CHECK_BATCH = 3


# --- preparing the models (each framework in its own process) --------------------------------

def check_lengths(steps):
    return [steps, max(1, steps // 2), max(1, (3 * steps) // 4)][:CHECK_BATCH]


def prepare_torch(workdir, steps):
    import numpy as np
    import torch
    from torch import nn
    sys.path.insert(0, HERE)
    from compare import Classifier, workloads, write_model

    class Packed(Classifier):
        """The classifier around pack_padded_sequence (enforce_sorted=False), as the lesson's."""

        def forward(self, tokens, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths, batch_first=True,
                                                       enforce_sorted=False)
            _, (h, _) = self.rnn(packed)
            return self.fc(h[-1])

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cases = [(name, description, factory, tokens, size, False) for name, description, factory, tokens, size in workloads()]
    cases.append(("classifier-packed", "the classifier on lengths (pack_padded_sequence)",
                  lambda: Packed(VOCAB, FEATURES, HIDDEN, CLASSES), True, VOCAB, True))
    entries = []
    for name, description, factory, tokens, size, packed in cases:
        module = factory().eval()
        with torch.no_grad():
            for p in module.parameters():  # non-zero biases, like the fixtures
                p.add_(0.05 * torch.randn_like(p))
        model = os.path.join(workdir, f"torch-{name}.h5")
        write_model(model, module)
        if tokens:
            x = rng.integers(1, size, size=(CHECK_BATCH, steps), dtype=np.int64)
        else:
            x = rng.uniform(-1, 1, size=(CHECK_BATCH, steps, size)).astype(np.float32)
        lengths = np.array(check_lengths(steps), np.int64) if packed else None
        if packed:
            for b, n in enumerate(lengths):
                x[b, n:] = 0  # padding id 0, skipped by the packing
        onnx_path = os.path.join(workdir, f"torch-{name}.onnx")
        args = (torch.from_numpy(x),) + ((torch.from_numpy(lengths),) if packed else ())
        names = ["x", "lengths"] if packed else ["x"]
        axes = {"x": {0: "batch", 1: "time"}, **({"lengths": {0: "batch"}} if packed else {})}
        failure = None
        with torch.no_grad():
            expected = module(*args).numpy()
            try:
                torch.onnx.export(module, args, onnx_path, dynamo=False, opset_version=17, input_names=names,
                                  output_names=["y"], dynamic_axes=axes)
            except Exception as error:  # noqa: BLE001 - an exporter that fails is a result of the benchmark
                failure = f"export fails ({type(error).__name__})"
                print(f"{name}: torch.onnx.export: {' '.join(str(error).split())[:300]}", file=sys.stderr)
                onnx_path = None
        check = os.path.join(workdir, f"torch-{name}-check.npz")
        np.savez(check, x=x, expected=expected, **({"lengths": lengths} if packed else {}))
        entries.append({"name": name, "source": "PyTorch", "description": description, "model": model,
                        "tokens": tokens, "size": size, "exporter": "torch.onnx.export", "exporter_onnx": onnx_path,
                        "exporter_failure": failure, "check": check, "lengths": packed})
    return entries


def prepare_keras(workdir, steps):
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import onnx
    import tensorflow as tf
    import tf2onnx
    import tf_keras as K
    L = K.layers

    def bilstm(masked):
        first = [L.Masking(0.0)] if masked else []
        return K.Sequential([L.Input((steps, FEATURES))] + first + [
            L.Bidirectional(L.LSTM(HIDDEN, return_sequences=True)),
            L.Bidirectional(L.LSTM(HIDDEN, return_sequences=True))])

    def gru(reset_after):
        return K.Sequential([L.Input((steps, FEATURES)), L.GRU(HIDDEN, return_sequences=True, reset_after=reset_after),
                             L.GRU(HIDDEN, return_sequences=True, reset_after=reset_after)])

    def classifier(mask_zero):
        return K.Sequential([L.Input((steps,), dtype="int32"), L.Embedding(VOCAB, FEATURES, mask_zero=mask_zero),
                             L.LSTM(HIDDEN), L.Dense(CLASSES)])

    cases = [
        ("lstm-ref", "Bidirectional(LSTM 256) × 2 on 128 features", lambda: bilstm(False), False, False),
        ("lstm-ref-masked", "Masking → Bidirectional(LSTM 256) × 2", lambda: bilstm(True), False, True),
        ("gru", "GRU 256 × 2, reset_after=True", lambda: gru(True), False, False),
        ("gru-reset-before", "GRU 256 × 2, reset_after=False", lambda: gru(False), False, False),
        ("classifier", "Embedding 10000×128 → LSTM 256 → Dense 10", lambda: classifier(False), True, False),
        ("classifier-masked", "the classifier, Embedding mask_zero=True", lambda: classifier(True), True, True),
    ]
    rng = np.random.default_rng(1)
    entries = []
    for name, description, make, tokens, masked in cases:
        model = make()
        for layer in model.layers:
            for w in layer.weights:
                value = rng.normal(size=tuple(w.shape)) * (0.1 if len(w.shape) > 1 else 0.2)
                w.assign(value.astype(np.float32))
        path = os.path.join(workdir, f"keras-{name}.h5")
        model.save(path)
        if tokens:
            x = rng.integers(1, VOCAB, size=(CHECK_BATCH, steps)).astype(np.int32)
            spec = (tf.TensorSpec((None, steps), tf.int32, name="input"),)
        else:
            x = rng.uniform(-1, 1, size=(CHECK_BATCH, steps, FEATURES)).astype(np.float32)
            spec = (tf.TensorSpec((None, steps, FEATURES), tf.float32, name="input"),)
        if masked:  # right padding the mask sees: zeros for Masking, id 0 for mask_zero
            for b, n in enumerate(check_lengths(steps)):
                x[b, n:] = 0
        expected = model(x, training=False).numpy()
        function = tf.function(lambda t, model=model: model(t, training=False))
        proto, _ = tf2onnx.convert.from_function(function, input_signature=spec, opset=17)
        onnx_path = os.path.join(workdir, f"keras-{name}.onnx")
        onnx.save(proto, onnx_path)
        check = os.path.join(workdir, f"keras-{name}-check.npz")
        np.savez(check, x=x.astype(np.int64) if tokens else x, expected=expected)
        entries.append({"name": name, "source": "tf-keras", "description": description, "model": path,
                        "tokens": tokens, "size": VOCAB if tokens else FEATURES, "exporter": "tf2onnx",
                        "exporter_onnx": onnx_path, "exporter_failure": None, "check": check, "lengths": False})
    return entries


# --- timing ----------------------------------------------------------------------------------

def time_calls(call, repeat, warmup):
    end = time.perf_counter() + warmup
    call()
    while time.perf_counter() < end:
        call()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def graph_ops(path):
    """`LSTM×2`, `Loop×4, …`: the recurrent and control-flow nodes, subgraphs included."""
    import onnx
    counts = {}

    def walk(graph):
        for node in graph.node:
            if node.op_type in ("LSTM", "GRU", "RNN", "Loop", "Scan"):
                counts[node.op_type] = counts.get(node.op_type, 0) + 1
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    walk(attribute.g)
    walk(onnx.load(path).graph)
    return ", ".join(f"{op}×{n}" for op, n in sorted(counts.items())) or "none"


class Graph:
    """An ONNX file in an ONNX Runtime session, fed as scripts/check_onnx_runtime.py feeds fixtures."""

    def __init__(self, path, threads):
        import onnx
        import onnxruntime as ort
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        import check_onnx_runtime as harness
        self.harness = harness
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.model = onnx.load(path)
        self.ops = graph_ops(path)

    def feeds(self, x, lengths=None):
        data = {"inputs": x, **({"lengths": lengths} if lengths is not None else {})}
        return self.harness.make_feeds(self.session, self.model, data)

    def check(self, x, lengths, expected):
        """None when the graph agrees with the framework, else the reason."""
        try:
            feeds, major = self.feeds(x, lengths)
            got = self.session.run(None, feeds)
            self.harness.compare({"output": got[0]}, {"expected/output": expected}, {}, major)
        except self.harness.Failure as failure:
            return str(failure)
        return None


def rnnkit_run_check(rnnkit, model, x, lengths, expected, workdir):
    import h5py
    import numpy as np
    inputs, outputs = os.path.join(workdir, "run-in.h5"), os.path.join(workdir, "run-out.h5")
    with h5py.File(inputs, "w") as f:
        f.create_dataset("inputs", data=x)
        if lengths is not None:
            f.create_dataset("lengths", data=lengths)
    run = subprocess.run([rnnkit, "run", model, "--input", inputs, "--output", outputs], capture_output=True, text=True)
    if run.returncode != 0:
        return f"rnnkit run: {run.stderr.strip()}"
    with h5py.File(outputs, "r") as f:
        ours = f["output"][()]
    if ours.shape != expected.shape or not np.allclose(ours, expected, atol=ATOL, rtol=RTOL):
        return f"rnnkit run differs (max abs error {np.abs(ours - expected).max():.3g})"
    return None


def rnnkit_graph(rnnkit, model, workdir):
    """(path, None) when `rnnkit convert --to onnx` wrote the graph, else (None, why)."""
    out = model[: -len(".h5")] + ".rnnkit.onnx"
    run = subprocess.run([rnnkit, "convert", model, out, "--to", "onnx", "--force"], capture_output=True, text=True)
    if run.returncode == 0:
        return out, None
    if "'onnx' is invalid for '--to" in run.stderr:
        return None, "writer unavailable"
    return None, "refused: " + " ".join(run.stderr.split())


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rnnkit", default=os.path.join(ROOT, ".build", "release", "rnnkit"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time", type=int, default=256, help="steps per sequence")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per engine and round")
    parser.add_argument("--warmup", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="comma-separated SOURCE:WORKLOAD or WORKLOAD names (e.g. tf-keras:gru)")
    parser.add_argument("--sources", default="pytorch,keras", help="pytorch, keras or both")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--markdown", help="also write the table, as Markdown, to this file")
    parser.add_argument("--prepare", choices=("pytorch", "keras"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:  # a worker: build, save and export the models, print their list
        entries = (prepare_torch if args.prepare == "pytorch" else prepare_keras)(args.workdir, args.time)
        print("ENTRIES " + json.dumps(entries), flush=True)
        return 0

    import numpy as np
    import onnxruntime as ort
    rnnkit = os.path.abspath(args.rnnkit)
    version = subprocess.run([rnnkit, "--version"], check=True, capture_output=True, text=True).stdout.strip()
    batches = [int(b) for b in args.batches.split(",")]
    only = set(args.only.split(",")) if args.only else None
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        entries = []
        for source in args.sources.split(","):
            print(f"preparing the {source} models (export included)", flush=True)
            run = subprocess.run([sys.executable, os.path.abspath(__file__), "--prepare", source, "--workdir", workdir,
                                  "--time", str(args.time)], capture_output=True, text=True)
            line = next((l for l in run.stdout.splitlines() if l.startswith("ENTRIES ")), None)
            if run.returncode != 0 or line is None:
                sys.exit(f"preparing the {source} models failed:\n{run.stderr[-4000:]}")
            entries += json.loads(line[len("ENTRIES "):])
        print(f"cpu: {cpu_model()}, {os.cpu_count()} logical cpus; threads {args.threads}; rnnkit {version}; "
              f"onnxruntime {ort.__version__}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{args.rounds} interleaved rounds × {args.repeat} passes, {args.time} steps; medians\n")
        header = (f"{'source':<8} {'workload':<18} {'batch':>5} {'engine ms':>9} {'rnnkit graph ms':>15} "
                  f"{'exporter ms':>11} {'×exp':>5}  exporter graph / rnnkit graph")
        print(header, flush=True)
        for entry in entries:
            name = entry["name"]
            if only and name not in only and f"{entry['source'].lower()}:{name}" not in only:
                continue
            check = np.load(entry["check"])
            lengths = check["lengths"] if "lengths" in check else None
            exporter = Graph(entry["exporter_onnx"], args.threads) if entry["exporter_onnx"] else None
            exporter_error = exporter.check(check["x"], lengths, check["expected"]) if exporter else None
            engine_error = rnnkit_run_check(rnnkit, entry["model"], check["x"], lengths, check["expected"], workdir)
            ours_path, ours_absent = rnnkit_graph(rnnkit, entry["model"], workdir)
            ours = Graph(ours_path, args.threads) if ours_path else None
            ours_error = ours.check(check["x"], lengths, check["expected"]) if ours else None
            rng = np.random.default_rng(2)
            for batch in batches:
                if entry["tokens"]:
                    x = rng.integers(1, entry["size"], size=(batch, args.time), dtype=np.int64)
                else:
                    x = rng.uniform(-1, 1, size=(batch, args.time, entry["size"])).astype(np.float32)
                full = np.full(batch, args.time, np.int64) if entry["lengths"] else None
                exporter_feeds = exporter.feeds(x, full)[0] if exporter else None
                ours_feeds = ours.feeds(x, full)[0] if ours else None
                times = {"engine": [], "ours": [], "exporter": []}
                for _ in range(args.rounds):
                    report = subprocess.run(
                        [rnnkit, "bench", entry["model"], "--batch", str(batch), "--time", str(args.time),
                         "--repeat", str(args.repeat), "--threads", str(args.threads), "--warmup", str(args.warmup),
                         "--json"], check=True, capture_output=True, text=True)
                    times["engine"] += json.loads(report.stdout)["seconds"]
                    if exporter:
                        times["exporter"] += time_calls(lambda: exporter.session.run(None, exporter_feeds),
                                                        args.repeat, args.warmup)
                    if ours:
                        times["ours"] += time_calls(lambda: ours.session.run(None, ours_feeds), args.repeat, args.warmup)
                medians = {k: statistics.median(v) if v else None for k, v in times.items()}
                row = {"source": entry["source"], "workload": name, "description": entry["description"],
                       "batch": batch, "time": args.time, "threads": args.threads,
                       "engine_seconds": medians["engine"], "rnnkit_graph_seconds": medians["ours"],
                       "exporter": entry["exporter"], "exporter_seconds": medians["exporter"],
                       "exporter_ops": exporter.ops if exporter else entry["exporter_failure"], "rnnkit_graph_ops": ours.ops if ours else None,
                       "rnnkit_graph_unavailable": ours_absent, "exporter_mismatch": exporter_error,
                       "engine_mismatch": engine_error, "rnnkit_graph_mismatch": ours_error}
                results.append(row)
                ratio = f"{medians['ours'] / medians['exporter']:>5.2f}" if ours and exporter else f"{'-':>5}"
                mine = f"{medians['ours'] * 1e3:>15.2f}" if ours else f"{ours_absent[:15]:>15}"
                theirs = f"{medians['exporter'] * 1e3:>11.2f}" if exporter else f"{'fails':>11}"
                flags = "".join(f" [{what} ≠ framework: {why}]" for what, why in
                                (("exporter", exporter_error), ("engine", engine_error), ("rnnkit graph", ours_error))
                                if why)
                print(f"{entry['source']:<8} {name:<18} {batch:>5} {medians['engine'] * 1e3:>9.2f} {mine} "
                      f"{theirs} {ratio}  {row['exporter_ops']} / "
                      f"{ours.ops if ours else '-'}{flags}", flush=True)
    print("\n×exp: the rnnkit-written graph's median over the exporter graph's, both in ONNX Runtime (below 1: "
          "rnnkit's graph is faster); engine: rnnkit's own engine (rnnkit bench).")
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_model(), "cpus": os.cpu_count(), "rnnkit": version,
                       "onnxruntime": ort.__version__, "load_average": os.getloadavg(), "results": results}, f, indent=2)
    return 0


def markdown(results):
    def ms(value, mismatch=None):
        if value is None:
            return "-"
        return f"{value * 1e3:.2f}" + (" (≠ framework)" if mismatch else "")

    lines = ["| source | workload | batch | exporter graph | exporter ms | rnnkit graph | rnnkit graph ms "
             "| ×exporter | rnnkit engine ms |",
             "| --- | --- | ---: | --- | ---: | --- | ---: | ---: | ---: |"]
    for r in results:
        ours = r["rnnkit_graph_seconds"]
        ratio = f"{ours / r['exporter_seconds']:.2f}" if ours is not None and r["exporter_seconds"] else "-"
        lines.append(f"| {r['source']} | {r['workload']} | {r['batch']} | {r['exporter']}: {r['exporter_ops']} | "
                     f"{ms(r['exporter_seconds'], r['exporter_mismatch'])} | "
                     f"{r['rnnkit_graph_ops'] or r['rnnkit_graph_unavailable']} | "
                     f"{ms(ours, r['rnnkit_graph_mismatch'])} | {ratio} | "
                     f"{ms(r['engine_seconds'], r['engine_mismatch'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
