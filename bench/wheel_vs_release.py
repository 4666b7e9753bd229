"""`rnnkit bench` from the installed wheel against the host-tuned `make release` build.

    python3 bench/wheel_vs_release.py --wheel VENV/bin/rnnkit --release .build/release/rnnkit

Runs both on the same model and shapes, alternating (wheel, release, wheel, ...) so that a
change in the machine's load falls on both, ROUNDS times each, and prints each one's median
of the per-run medians, its best median and the wheel's time relative to the release build's
(the issue's bound: within 10 %). Defaults: the demo model at batch 64 and batch 1, time 256,
10 timed passes per run, 2 threads (BENCH_ARGS of the Makefile).
"""

import argparse
import json
import statistics
import subprocess


def bench(rnnkit, model, batch, time, repeat, threads):
    out = subprocess.run([rnnkit, "bench", model, "--batch", str(batch), "--time", str(time), "--repeat", str(repeat),
                          "--threads", str(threads), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", required=True, help="the wheel's rnnkit (a venv's bin/rnnkit)")
    parser.add_argument("--release", required=True, help="the make release build")
    parser.add_argument("--model", default="fixtures/keras/tfk_text_bilstm.h5")
    parser.add_argument("--batch", type=int, action="append", help="repeatable (default 64 and 1)")
    parser.add_argument("--time", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for batch in args.batch or [64, 1]:
        runs = {"wheel": [], "release": []}
        levels = {}
        for _ in range(args.rounds):
            for name in ("wheel", "release"):
                report = bench(getattr(args, name), args.model, batch, args.time, args.repeat, args.threads)
                runs[name].append(report["median_seconds"])
                levels[name] = f"{report['cpu_level']}, {'FMA' if report['fma'] else 'no FMA'}"
        wheel, release = statistics.median(runs["wheel"]), statistics.median(runs["release"])
        print(f"batch {batch}, time {args.time}, threads {args.threads}, {args.rounds} rounds of {args.repeat} passes:")
        for name, value in (("wheel", wheel), ("release", release)):
            print(f"  {name:8} ({levels[name]}): median {value * 1e3:.2f} ms, best {min(runs[name]) * 1e3:.2f} ms")
        print(f"  wheel / release: {wheel / release:.3f} (median), {min(runs['wheel']) / min(runs['release']):.3f} (best)")


if __name__ == "__main__":
    main()
