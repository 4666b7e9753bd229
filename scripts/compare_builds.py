#!/usr/bin/env python3
"""Runs two rnnkit builds on every committed fixture and compares their outputs bit for bit.

Usage: scripts/compare_builds.py REFERENCE_RNNKIT CANDIDATE_RNNKIT [--threads 1 2 3] [--fixtures DIR ...]

For each `X.fixture.h5` under fixtures/pytorch and fixtures/keras, both binaries run
`rnnkit run MODEL --input FIXTURE --output OUT --threads K` (MODEL is the fixture's `model`
attribute; a weights-only model gets `--architecture` from its `architecture` attribute), and
every dataset the two outputs hold is compared with `np.array_equal` on the raw arrays (same
shape, dtype and values; NaN compared by bit pattern). Meant for engine changes that must not
change a single bit. Needs h5py and numpy (the project's .venv). Exits 1 on any difference.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fixtures(folders):
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            if name.endswith(".fixture.h5"):
                yield os.path.join(folder, name)


def command(rnnkit, fixture, output, threads):
    folder = os.path.dirname(fixture)
    with h5py.File(fixture, "r") as f:
        model = f.attrs.get("model")
        architecture = f.attrs.get("architecture")
    if model is None:
        raise SystemExit(f"{fixture}: no 'model' attribute")
    args = [rnnkit, "run", os.path.join(folder, model), "--input", fixture, "--output", output,
            "--threads", str(threads)]
    if architecture is not None:
        args += ["--architecture", os.path.join(folder, architecture)]
    return args


def datasets(path):
    found = {}
    with h5py.File(path, "r") as f:
        def visit(name, item):
            if isinstance(item, h5py.Dataset):
                found[name] = item[()]
        f.visititems(visit)
    return found


def same_bits(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return np.array_equal(a.view(np.dtype(f"u{a.dtype.itemsize}")), b.view(np.dtype(f"u{b.dtype.itemsize}")))
    return np.array_equal(a, b)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("reference")
    parser.add_argument("candidate")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--fixtures", nargs="+",
                        default=[os.path.join(ROOT, "fixtures", "pytorch"), os.path.join(ROOT, "fixtures", "keras")])
    options = parser.parse_args()

    pairs = runs = identical = 0
    failures = []
    with tempfile.TemporaryDirectory() as scratch:
        for fixture in fixtures(options.fixtures):
            pairs += 1
            label = os.path.relpath(fixture, ROOT)
            for threads in options.threads:
                runs += 1
                outputs = []
                for which, rnnkit in (("reference", options.reference), ("candidate", options.candidate)):
                    out = os.path.join(scratch, f"{which}.h5")
                    result = subprocess.run(command(rnnkit, fixture, out, threads), capture_output=True, text=True)
                    if result.returncode != 0:
                        failures.append(f"{label} threads {threads}: {which} failed: {result.stderr.strip()}")
                        break
                    outputs.append(datasets(out))
                if len(outputs) != 2:
                    continue
                reference, candidate = outputs
                if reference.keys() != candidate.keys():
                    failures.append(f"{label} threads {threads}: datasets {sorted(reference)} vs {sorted(candidate)}")
                    continue
                differing = [name for name in reference if not same_bits(reference[name], candidate[name])]
                if differing:
                    failures.append(f"{label} threads {threads}: {', '.join(differing)} differ")
                    continue
                identical += 1
                print(f"same  {label} threads {threads}: {', '.join(sorted(reference))}", flush=True)
    for failure in failures:
        print("DIFF  " + failure)
    print(f"{pairs} model/fixture pairs × {len(options.threads)} thread counts = {runs} runs; "
          f"{identical} identical, {len(failures)} different or failed")
    sys.exit(0 if not failures and identical == runs else 1)


if __name__ == "__main__":
    main()
