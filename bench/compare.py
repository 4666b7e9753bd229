#!/usr/bin/env python3
"""Time RecurrentKit's engine against PyTorch and ONNX Runtime on the same weights and shapes.

For each workload this script builds the module in PyTorch with random weights, writes it as a
RecurrentKit model file (spec/pytorch-layout.md) with h5py, exports the same module with
torch.onnx.export, and then, interleaved in rounds, runs `rnnkit bench --json` as a subprocess
and times PyTorch and ONNX Runtime in this process: WARMUP seconds of untimed passes (at least
one), then REPEAT forward passes each, all on the same thread count. It prints the medians over
all rounds and the ratio of RecurrentKit's time to each peer's (below 1 means RecurrentKit is
faster).

With --cpu-level, one run compares builds for several CPU levels side by side (`native`, the
machine's own; `haswell`, AVX2 with FMA; `x86-64`, the baseline; any LLVM CPU name): each is
built with `make release CPU=LEVEL SCRATCH=.build-cpu-LEVEL` (or taken from --rnnkit
LEVEL=PATH), and PyTorch is timed a second time, in a worker process restricted to the
instruction set of each build (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS;
ONNX Runtime has no such switch). bench/peak.c, compiled with clang, gives the machine's peak
for each instruction set, so each build's GFLOP/s is also a share of its own peak.

Not part of CI. Requirements: bench/requirements.txt, and clang and make for --cpu-level:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python bench/compare.py --cpu-level native,haswell,x86-64 --threads 2

    # or one binary, e.g. the README's build:
    make release && python bench/compare.py --rnnkit .build/release/rnnkit

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


# What PyTorch may use to match a build's instruction set: ATen's kernels, oneDNN and MKL.
RESTRICTIONS = {
    "AVX-512": {},
    "AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "AVX": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX", "MKL_ENABLE_INSTRUCTIONS": "AVX"},
    "x86-64 baseline": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}
# The peak (bench/peak.c) each level runs at: AVX-512 FMA, AVX2 FMA, or SSE multiply then add.
PEAK_ISA = {"AVX-512": "avx512", "AVX2": "avx2", "AVX": "sse", "x86-64 baseline": "sse"}


def build_level(level, root):
    """`make release CPU=LEVEL` in its own build folder; returns the binary's path."""
    scratch = f".build-cpu-{level}"
    print(f"building rnnkit for CPU={level} in {scratch}", flush=True)
    subprocess.run(["make", "-s", "release", f"CPU={level}", f"SCRATCH={scratch}"], cwd=root, check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(root, scratch, "release", "rnnkit")


def measure_peaks(root, threads, workdir):
    """GFLOP/s per instruction set on `threads` threads, from bench/peak.c; {} without clang."""
    binary = os.path.join(workdir, "peak")
    try:
        subprocess.run(["clang", "-O2", "-pthread", os.path.join(root, "bench", "peak.c"), "-o", binary],
                       check=True, capture_output=True)
        out = subprocess.run([binary, str(threads)], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"warning: no peak measured ({error})", file=sys.stderr)
        return {}
    return {name: float(value) for name, value in (line.split() for line in out.splitlines())}


class TorchWorker:
    """A PyTorch process with its instruction set restricted by `env` (the variables are read
    once, when torch starts), timing modules saved with torch.save on request."""

    def __init__(self, env, threads):
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--torch-worker", "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **env})
        self.capability = self.ask({"capability": True})["capability"]

    def ask(self, request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def time(self, module_path, input_path, repeat, warmup):
        return self.ask({"module": module_path, "input": input_path, "repeat": repeat, "warmup": warmup})["seconds"]

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def torch_worker(threads):
    torch.set_num_threads(threads)
    modules = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("capability"):
            reply = {"capability": torch.backends.cpu.get_cpu_capability()}
        else:
            if request["module"] not in modules:
                modules[request["module"]] = torch.load(request["module"], weights_only=False).eval()
            module = modules[request["module"]]
            x = torch.load(request["input"])
            with torch.inference_mode():
                reply = {"seconds": time_calls(lambda: module(x), request["repeat"], request["warmup"])}
        print(json.dumps(reply), flush=True)


def build_info(rnnkit):
    """What a binary was built for: (level, "FMA" or "no FMA"), from `rnnkit --version`."""
    out = subprocess.run([rnnkit, "--version"], check=True, capture_output=True, text=True).stdout.strip()
    # "0.1.0 (built for AVX2, FMA; libhdf5 1.10.8)"
    inside = out.split("(built for ", 1)[1].rstrip(")").split(";")[0] if "(built for " in out else "unknown, unknown"
    level, fma = inside.rsplit(", ", 1)
    return level, fma


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rnnkit", action="append", default=[],
                        help="the rnnkit executable, or LEVEL=PATH for a level of --cpu-level (repeatable); "
                             "default .build/release/rnnkit")
    parser.add_argument("--cpu-level", help="comma-separated CPU levels to build and compare in one run, "
                                            "e.g. native,haswell,x86-64")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time", type=int, default=256, help="steps per sequence")
    parser.add_argument("--batches", default="1,64", help="comma-separated batch sizes")
    parser.add_argument("--repeat", type=int, default=10, help="timed passes per engine and round")
    parser.add_argument("--warmup", type=float, default=0.2,
                        help="seconds of untimed passes before each engine's timed ones, every round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--only", help="comma-separated workload names")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--exporters", action="store_true",
                        help="instead, time the ONNX graphs rnnkit and the exporters (torch.onnx.export, tf2onnx) "
                             "write, in ONNX Runtime: runs bench/compare_onnx.py with the other arguments")
    if "--exporters" in sys.argv[1:]:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare_onnx.py")
        os.execv(sys.executable, [sys.executable, script] + [a for a in sys.argv[1:] if a != "--exporters"])
    args = parser.parse_args()
    if args.torch_worker:
        return torch_worker(args.threads)

    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if name in os.environ:
            print(f"warning: {name} is set; it can slow numpy and torch down (unset it for this command)",
                  file=sys.stderr)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    given = dict(item.split("=", 1) for item in args.rnnkit if "=" in item)
    plain = [item for item in args.rnnkit if "=" not in item]
    if args.cpu_level:
        levels = args.cpu_level.split(",")
        binaries = {level: given.get(level) or build_level(level, root) for level in levels}
    else:
        binaries = {"given": plain[0] if plain else os.path.join(root, ".build", "release", "rnnkit")}
    builds = {name: build_info(path) for name, path in binaries.items()}

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    batches = [int(b) for b in args.batches.split(",")]
    only = set(args.only.split(",")) if args.only else None

    results = []
    with tempfile.TemporaryDirectory() as workdir:
        peaks = measure_peaks(root, args.threads, workdir)
        # One restricted PyTorch per instruction set below the machine's own.
        own = torch.backends.cpu.get_cpu_capability()
        workers = {}
        for name, (level, _) in builds.items():
            env = RESTRICTIONS.get(level, {})
            if env and level not in workers:
                workers[level] = TorchWorker(env, args.threads)

        print(f"cpu: {cpu_model()}, {os.cpu_count()} logical cpus; threads {args.threads} each; "
              f"torch {torch.__version__} ({own}), onnxruntime {ort.__version__}; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("peak GFLOP/s (bench/peak.c, " + f"{args.threads} threads): "
              + (", ".join(f"{k} {v:.1f}" for k, v in peaks.items()) or "not measured"))
        for name, (level, fma) in builds.items():
            worker = workers.get(level)
            print(f"rnnkit[{name}]: {binaries[name]}, built for {level}, {fma}"
                  + (f"; its PyTorch peer restricted to {worker.capability} "
                     f"({' '.join(f'{k}={v}' for k, v in RESTRICTIONS[level].items())})" if worker else ""))
        print(f"{args.rounds} interleaved rounds × {args.repeat} passes; times are medians over all passes\n")
        header = (f"{'build':<9} {'workload':<11} {'batch':>5} {'rnnkit ms':>10} {'torch ms':>9} {'torch-isa':>9} "
                  f"{'ort ms':>9} {'×ort':>5} {'×torch':>6} {'×t-isa':>6} {'GFLOP/s':>8} {'%peak':>6}")
        print(header)
        for workload, description, factory, tokens, size in workloads():
            if only and workload not in only:
                continue
            module = factory().eval()
            model_path = os.path.join(workdir, f"{workload}.h5")
            write_model(model_path, module)
            module_path = os.path.join(workdir, f"{workload}.pt")
            torch.save(module, module_path)
            for batch in batches:
                x = make_input(tokens, size, batch, args.time, rng)
                input_path = os.path.join(workdir, f"{workload}-{batch}-input.pt")
                torch.save(x, input_path)
                errors = {name: check_agreement(path, model_path, module, x[:1], workdir)
                          for name, path in binaries.items()}
                onnx_path = os.path.join(workdir, f"{workload}-{batch}.onnx")
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

                ours = {name: [] for name in binaries}
                restricted = {level: [] for level in workers}
                torch_times, ort_times, flops = [], [], None
                for _ in range(args.rounds):
                    for name, path in binaries.items():
                        run = subprocess.run(
                            [path, "bench", model_path, "--batch", str(batch), "--time", str(args.time),
                             "--repeat", str(args.repeat), "--threads", str(args.threads),
                             "--warmup", str(args.warmup), "--json"],
                            check=True, capture_output=True, text=True)
                        report = json.loads(run.stdout)
                        ours[name] += report["seconds"]
                        flops = report["flops"]
                    with torch.inference_mode():
                        torch_times += time_calls(lambda: module(x), args.repeat, args.warmup)
                    for level, worker in workers.items():
                        restricted[level] += worker.time(module_path, input_path, args.repeat, args.warmup)
                    ort_times += time_calls(lambda: session.run(None, feed), args.repeat, args.warmup)

                theirs, onnx = statistics.median(torch_times), statistics.median(ort_times)
                for name, (level, fma) in builds.items():
                    mine = statistics.median(ours[name])
                    peer = statistics.median(restricted[level]) if level in restricted else theirs
                    peak = peaks.get(PEAK_ISA.get(level, ""), 0)
                    row = {"build": name, "cpu_level": level, "fma": fma, "workload": workload,
                           "description": description, "batch": batch, "time": args.time, "threads": args.threads,
                           "flops": flops, "rnnkit_seconds": mine, "torch_seconds": theirs,
                           "torch_isa_seconds": peer, "torch_isa": workers[level].capability if level in workers else own,
                           "ort_seconds": onnx, "ratio_to_ort": mine / onnx, "ratio_to_torch": mine / theirs,
                           "ratio_to_torch_isa": mine / peer, "rnnkit_gflops": flops / mine / 1e9,
                           "peak_gflops": peak or None, "share_of_peak": flops / mine / 1e9 / peak if peak else None,
                           "torch_gflops": flops / theirs / 1e9, "ort_gflops": flops / onnx / 1e9,
                           "max_abs_error_vs_torch": errors[name]}
                    results.append(row)
                    share = f"{100 * row['share_of_peak']:>5.0f}%" if peak else f"{'-':>6}"
                    print(f"{name:<9} {workload:<11} {batch:>5} {mine * 1e3:>10.2f} {theirs * 1e3:>9.2f} "
                          f"{peer * 1e3:>9.2f} {onnx * 1e3:>9.2f} {mine / onnx:>5.2f} {mine / theirs:>6.2f} "
                          f"{mine / peer:>6.2f} {row['rnnkit_gflops']:>8.1f} {share}", flush=True)
        for worker in workers.values():
            worker.close()
    print("\n×ort, ×torch: rnnkit's median over the peer's (below 1: rnnkit is faster); torch-isa and ×t-isa: "
          "PyTorch restricted to the build's instruction set; %peak: of bench/peak.c's figure for it.")
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_model(), "cpus": os.cpu_count(), "torch": torch.__version__,
                       "onnxruntime": ort.__version__, "peaks": peaks, "load_average": os.getloadavg(),
                       "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
