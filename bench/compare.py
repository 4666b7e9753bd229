#!/usr/bin/env python3
"""Time RecurrentKit's engine against PyTorch and ONNX Runtime on the same weights and shapes.

For each workload this script builds the module in PyTorch with random weights, writes it as a
RecurrentKit model file (spec/pytorch-layout.md) with h5py, exports the same module with
torch.onnx.export, and then, interleaved in rounds, runs `rnnkit bench --json` as a subprocess
and times PyTorch and ONNX Runtime in this process: WARMUP seconds of untimed passes (at least
one), then REPEAT forward passes each, all three on the same thread count. It prints the medians over all rounds and the ratio of
RecurrentKit's time to the faster peer's (below 1 means RecurrentKit is faster).

Not part of CI. Requirements: bench/requirements.txt and a release build of rnnkit, e.g.

    swift build -c release --scratch-path .build-bench \\
        -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DRECURRENTKIT_FMA
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python bench/compare.py --rnnkit .build-bench/release/rnnkit --threads 2

(OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, set on some machines, slow numpy and torch down; unset
them for the benchmark command only.)
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import onnxruntime as ort
import torch
from torch import nn


class Bare(nn.Module):
    """A bare nn.LSTM / nn.GRU (batch-first) returning its output sequence."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]

    def config(self):
        return None  # a file holding one recurrent module needs no model_config

    def state(self):
        return self.rnn.state_dict()


class Classifier(nn.Module):
    """Embedding → LSTM → last hidden state → Linear."""

    def __init__(self, vocab, dim, hidden, classes):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, tokens):
        _, (h, _) = self.rnn(self.embed(tokens))
        return self.fc(h[-1])

    def config(self):
        return {
            "format": "recurrentkit.pytorch", "version": 1,
            "modules": [
                {"type": "Embedding", "name": "embed", "num_embeddings": self.embed.num_embeddings,
                 "embedding_dim": self.embed.embedding_dim},
                {"type": "LSTM", "name": "rnn", "input_size": self.rnn.input_size,
                 "hidden_size": self.rnn.hidden_size, "num_layers": 1, "bidirectional": False,
                 "bias": True, "proj_size": 0},
                {"type": "Readout", "mode": "last_hidden"},
                {"type": "Linear", "name": "fc", "in_features": self.fc.in_features,
                 "out_features": self.fc.out_features, "bias": True},
            ],
        }

    def state(self):
        return self.state_dict()


def workloads():
    """(name, description, module factory, takes tokens, features or vocabulary)."""
    return [
        ("lstm-ref", "LSTM 128→256, 2 layers, bidirectional (reference)",
         lambda: Bare(nn.LSTM(128, 256, num_layers=2, bidirectional=True, batch_first=True)), False, 128),
        ("gru", "GRU 128→256, 2 layers, unidirectional",
         lambda: Bare(nn.GRU(128, 256, num_layers=2, batch_first=True)), False, 128),
        ("classifier", "Embedding 10000×128 → LSTM 256 → Linear 10",
         lambda: Classifier(10000, 128, 256, 10), True, 10000),
    ]


def write_model(path, module):
    with h5py.File(path, "w") as f:
        config = module.config()
        if config is not None:
            f.attrs["model_config"] = json.dumps(config)
        for key, value in module.state().items():
            f.create_dataset(key, data=value.detach().numpy().astype(np.float32))


def make_input(tokens, size, batch, steps, rng):
    if tokens:
        return torch.from_numpy(rng.integers(0, size, size=(batch, steps), dtype=np.int64))
    return torch.from_numpy(rng.uniform(-1, 1, size=(batch, steps, size)).astype(np.float32))


def time_calls(call, repeat, warmup):
    """One call, more until `warmup` seconds have passed (idle cores take tens of milliseconds
    to reach full speed), then `repeat` timed calls."""
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


def check_agreement(rnnkit, model_path, module, x, workdir):
    """`rnnkit run` on x must match PyTorch (atol 1e-5, rtol 1e-4): a benchmark of a wrong engine
    means nothing."""
    inputs = os.path.join(workdir, "check-in.h5")
    outputs = os.path.join(workdir, "check-out.h5")
    with h5py.File(inputs, "w") as f:
        f.create_dataset("inputs", data=x.numpy())
    subprocess.run([rnnkit, "run", model_path, "--input", inputs, "--output", outputs],
                   check=True, capture_output=True)
    with h5py.File(outputs, "r") as f:
        ours = f["output"][()]
    with torch.inference_mode():
        theirs = module(x).numpy()
    if not np.allclose(ours, theirs, atol=1e-5, rtol=1e-4):
        sys.exit(f"rnnkit's output differs from PyTorch's for {model_path}: "
                 f"max abs error {np.abs(ours - theirs).max():.3g}")
    return float(np.abs(ours - theirs).max())


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rnnkit", default=".build-bench/release/rnnkit", help="the rnnkit executable")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time", type=int, default=256, help="steps per sequence")
    parser.add_argument("--batches", default="1,64", help="comma-separated batch sizes")
    parser.add_argument("--repeat", type=int, default=10, help="timed passes per engine and round")
    parser.add_argument("--warmup", type=float, default=0.2,
                        help="seconds of untimed passes before each engine's timed ones, every round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--only", help="comma-separated workload names")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if name in os.environ:
            print(f"warning: {name} is set; it can slow numpy and torch down (unset it for this command)",
                  file=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    batches = [int(b) for b in args.batches.split(",")]
    only = set(args.only.split(",")) if args.only else None

    print(f"cpu: {cpu_model()}, {os.cpu_count()} logical cpus; threads {args.threads} each; "
          f"torch {torch.__version__}, onnxruntime {ort.__version__}")
    print(f"{args.rounds} interleaved rounds × {args.repeat} passes; times are medians over all passes\n")
    header = f"{'workload':<11} {'batch':>5} {'rnnkit ms':>10} {'torch ms':>10} {'ort ms':>10} " \
             f"{'ratio':>6} {'GFLOP/s rnnkit':>15} {'torch':>7} {'ort':>7}"
    print(header)
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, description, factory, tokens, size in workloads():
            if only and name not in only:
                continue
            module = factory().eval()
            model_path = os.path.join(workdir, f"{name}.h5")
            write_model(model_path, module)
            for batch in batches:
                x = make_input(tokens, size, batch, args.time, rng)
                error = check_agreement(args.rnnkit, model_path, module, x[:1], workdir)
                onnx_path = os.path.join(workdir, f"{name}-{batch}.onnx")
                with torch.inference_mode():
                    torch.onnx.export(module, (x,), onnx_path, dynamo=False,
                                      input_names=["x"], output_names=["y"])
                options = ort.SessionOptions()
                options.intra_op_num_threads = args.threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
                feed = {"x": x.numpy()}

                ours, torch_times, ort_times, flops = [], [], [], None
                for _ in range(args.rounds):
                    run = subprocess.run(
                        [args.rnnkit, "bench", model_path, "--batch", str(batch), "--time", str(args.time),
                         "--repeat", str(args.repeat), "--threads", str(args.threads),
                         "--warmup", str(args.warmup), "--json"],
                        check=True, capture_output=True, text=True)
                    report = json.loads(run.stdout)
                    ours += report["seconds"]
                    flops = report["flops"]
                    with torch.inference_mode():
                        torch_times += time_calls(lambda: module(x), args.repeat, args.warmup)
                    ort_times += time_calls(lambda: session.run(None, feed), args.repeat, args.warmup)

                mine, theirs, onnx = (statistics.median(s) for s in (ours, torch_times, ort_times))
                best = min(theirs, onnx)
                row = {"workload": name, "description": description, "batch": batch, "time": args.time,
                       "threads": args.threads, "flops": flops, "rnnkit_seconds": mine,
                       "torch_seconds": theirs, "ort_seconds": onnx, "ratio_to_best_peer": mine / best,
                       "rnnkit_gflops": flops / mine / 1e9, "torch_gflops": flops / theirs / 1e9,
                       "ort_gflops": flops / onnx / 1e9, "max_abs_error_vs_torch": error}
                results.append(row)
                print(f"{name:<11} {batch:>5} {mine * 1e3:>10.2f} {theirs * 1e3:>10.2f} {onnx * 1e3:>10.2f} "
                      f"{mine / best:>6.2f} {row['rnnkit_gflops']:>15.1f} {row['torch_gflops']:>7.1f} "
                      f"{row['ort_gflops']:>7.1f}", flush=True)
    print("\nratio = rnnkit median / faster peer's median (targets: ≤ 1.0 at batch 64, ≤ 0.5 at batch 1)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_model(), "cpus": os.cpu_count(), "torch": torch.__version__,
                       "onnxruntime": ort.__version__, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
