#!/usr/bin/env python
"""Keras Tuner's random search against the Optuna-backed oracle (the default tuner), with and without pruning, on the
same family, data, seed and trial budget: wall time, epochs trained, best validation score, and the best
model's test accuracy with its 95 % interval (the search's own summary line). One run prints them side by side.

    python bench/pruning.py --data ../shared/data/lyrics/mll-train-subset-en-900.tsv --trials 12 --epochs 20
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--family", default="lyrics_lstm")
ap.add_argument("--data", help="the lyrics table (default: the demo set)")
ap.add_argument("--trials", type=int, default=12)
ap.add_argument("--epochs", type=int, default=20)
args = ap.parse_args()

RUNS = {"Keras Tuner random": ["--tuner", "random"], "tpe, no pruning": ["--pruner", "none"],
        "tpe + median pruner (default)": ["--pruner", "median"]}
rows = []
for label, flags in RUNS.items():
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "lyrics_cifar_search.runners.search",
               args.family, "--results-dir", tmp, "--max-trials",
               str(args.trials), "--epochs", str(args.epochs), *flags, *(["--data", args.data] if args.data else [])]
        start = time.time()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        wall = time.time() - start
        t = pd.read_csv(Path(tmp) / args.family / "trials.csv")
    test = re.search(r"accuracy ([0-9.]+) \(95 % interval ([0-9.]+)-([0-9.]+)", out)
    rows.append({"search": label, "wall_s": round(wall, 1), "epochs": int(t["epochs_run"].sum()),
                 "pruned": int((t["status"] == "PRUNED").sum()),
                 "best_val": t.loc[t["status"] == "COMPLETE", "val_accuracy"].max(),
                 "test (95 % CI)": f"{test[1]} ({test[2]}-{test[3]})" if test else "?"})
print(f"{args.family}, {args.trials} trials of up to {args.epochs} epochs, {args.data or 'demo set'}:")
print(pd.DataFrame(rows).to_string(index=False))
