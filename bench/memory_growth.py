#!/usr/bin/env python
"""Resident memory after 20 trials vs after 2, for one family per engine.

    python bench/memory_growth.py [--trials 20] [--families lyrics_lstm,lyrics_tfidf_logreg]
    python bench/memory_growth.py --families lyrics_lstm --allocators 0,1,0,1   # oneDNN pool vs not, and time
    KERAS_BACKEND=jax python bench/memory_growth.py --families cifar_cnn

Each family searches in a process of its own, through the same code as
`runners/search.py` (demo data, 1 epoch per Keras trial). The resident set
size (VmRSS) is read after every finished trial; the ratio printed is RSS
after the last trial / RSS after trial 2 (target <= 1.2).

TensorFlow's oneDNN kernels on CPU allocate from a pool that does not shrink,
so a search's RSS would step up to its largest trial so far; the engine sets
TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1 (suite_common/process.py) to avoid it. See
the pool with TF_ONEDNN_USE_SYSTEM_ALLOCATOR=0 python bench/memory_growth.py.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def one_family(family, trials):
    """Run in a child process: search, recording RSS after each trial; print the series as JSON."""
    from lyrics_cifar_search.runners import search_progress
    from lyrics_cifar_search.runners.search import cli
    series = []
    trial_done = search_progress.Progress.trial_done

    def recording(self, *args, **kwargs):
        trial_done(self, *args, **kwargs)
        series.append(round(rss_mb(), 1))

    search_progress.Progress.trial_done = recording
    with tempfile.TemporaryDirectory() as tmp:
        argv = [family, "--max-trials", str(trials), "--results-dir", tmp]
        if family.startswith("cifar"):
            argv += ["--data", "demo", "--epochs", "1"]
        elif not family.endswith(("tfidf_logreg", "decision_tree")):
            argv += ["--epochs", "1"]
        code = cli(argv)
    print("SERIES " + json.dumps({"family": family, "code": code, "rss_mb": series}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--families", default="lyrics_lstm,lyrics_tfidf_logreg")
    ap.add_argument("--allocators", default="suite",
                    help="comma-separated TF_ONEDNN_USE_SYSTEM_ALLOCATOR values to run side by side, e.g. 0,1 "
                         "(suite: leave it to the engine)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one_family(args.one, args.trials)
    for family in args.families.split(","):
        for allocator in args.allocators.split(","):
            env = dict(os.environ)
            if allocator != "suite":
                env["TF_ONEDNN_USE_SYSTEM_ALLOCATOR"] = allocator
            start = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--one", family, "--trials", str(args.trials)],
                                 capture_output=True, text=True, env=env)
            seconds = time.perf_counter() - start
            label = family if allocator == "suite" else f"{family} (TF_ONEDNN_USE_SYSTEM_ALLOCATOR={allocator})"
            line = next((l for l in out.stdout.splitlines() if l.startswith("SERIES ")), None)
            if line is None:
                print(f"{label}: failed\n{out.stderr[-2000:]}")
                continue
            series = json.loads(line[len("SERIES "):])["rss_mb"]
            print(f"{label}: RSS after trial 2 {series[1]:.0f} MB, after trial {len(series)} {series[-1]:.0f} MB, "
                  f"ratio {series[-1] / series[1]:.3f}, {seconds:.1f} s  "
                  f"(every trial: {' '.join(f'{v:.0f}' for v in series)})")


if __name__ == "__main__":
    from lyrics_cifar_search.suite_common.process import tune_this_process
    tune_this_process()  # allocator and TensorFlow settings, before any framework starts
    main()
