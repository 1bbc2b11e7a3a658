#!/usr/bin/env python
"""The README's first command, timed: `python runners/search.py lyrics_lstm` (10 trials of up to 20 epochs on
the generated demo set) from an empty results folder, as a new user runs it. Each run is a fresh process; prints
each run's wall time (start-up, data, trials and the closing summary), the trials' own seconds and epochs, then
the median of the runs.

    python bench/first_run.py                          # 3 runs of this checkout
    python bench/first_run.py --against ../old-tree    # and, alternating with them, 3 runs of another tree
                                                       # (git worktree add ../old-tree COMMIT)

A shared machine's speed drifts by more than the changes measured here: with --against the two trees run in
turns, so a drift slows both alike, and the medians are printed side by side with their ratio.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--runs", type=int, default=3)
parser.add_argument("--against", metavar="TREE", help="another source tree of the suite (a git worktree)")
args = parser.parse_args()

trees = {"this": ROOT, **({"against": Path(args.against).resolve()} if args.against else {})}
walls = {side: [] for side in trees}
for run in range(1, args.runs + 1):
    for side, tree in trees.items():
        with tempfile.TemporaryDirectory() as tmp:
            start = time.time()
            subprocess.run([sys.executable, "-m", "lyrics_cifar_search.runners.search", "lyrics_lstm",
                            "--results-dir", tmp], check=True, stdout=subprocess.DEVNULL,
                           env={**os.environ, "PYTHONPATH": str(tree)})  # the tree's own package, not the install
            walls[side].append(time.time() - start)
            trials = pd.read_csv(Path(tmp) / "lyrics_lstm" / "trials.csv")
        print(f"run {run} ({side}: {tree}): {len(trials)} trials: {walls[side][-1]:.1f} s wall, trials "
              f"{trials['duration_s'].sum():.1f} s, epochs {int(trials['epochs_run'].sum())}, pruned "
              f"{int((trials['status'] == 'PRUNED').sum())}, best val_accuracy {trials['val_accuracy'].max():.4f} "
              f"vs baseline {trials['val_accuracy'][0]:.4f}", flush=True)
for side, w in walls.items():
    print(f"{side}: median of {len(w)} runs {statistics.median(w):.1f} s wall ({statistics.median(w) / 60:.2f} min); "
          f"runs {', '.join(f'{x:.1f}' for x in w)}")
if args.against:
    print(f"ratio this / against: {statistics.median(walls['this']) / statistics.median(walls['against']):.3f} "
          f"(run by run: {', '.join(f'{a / b:.3f}' for a, b in zip(walls['this'], walls['against']))})")
