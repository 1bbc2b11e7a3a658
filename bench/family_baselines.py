#!/usr/bin/env python
"""For each lyrics family on the same data: wall time of its baseline trial and its parameter count.

    python bench/family_baselines.py [--data FILE] [--epochs 2] [--families lyrics_lstm,lyrics_cnn]

Each family runs a one-trial search (the baseline) through the real runner,
in a throwaway results folder; the figures come from its trials.csv and
best/meta.json. Default data: the real 900-row Kaggle subset in ../shared if
present, else the generated demo set.
"""

import argparse
import json
import tempfile
from pathlib import Path

from lyrics_cifar_search.runners.search import cli  # before pandas: how memory is allocated (runners/__init__.py)

import pandas as pd

from lyrics_cifar_search import search_spaces

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lyrics" / "mll-train-subset-en-900.tsv"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REAL) if REAL.exists() else None)
    ap.add_argument("--epochs", default="2")
    ap.add_argument("--families", help="comma-separated (default: every lyrics family)")
    args = ap.parse_args()
    names = args.families.split(",") if args.families else search_spaces.list_families(task="lyrics")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            data = ["--data", args.data] if args.data else []
            code = cli([name, "--max-trials", "1", "--epochs", args.epochs, "--results-dir", tmp, *data])
            if code != 0:
                rows.append({"family": name, "error": f"exit {code}"})
                continue
            trial = pd.read_csv(Path(tmp) / name / "trials.csv").iloc[0]
            meta = json.loads((Path(tmp) / name / "best" / "meta.json").read_text())
            rows.append({"family": name, "engine": meta["engine"], "baseline_s": trial["duration_s"],
                         "epochs": trial["epochs_run"], "parameters": meta.get("parameter_count"),
                         "val_accuracy": round(trial["val_accuracy"], 4)})
    table = pd.DataFrame(rows)
    print(f"\ndata: {args.data or 'generated demo set'}; max epochs per Keras baseline: {args.epochs}")
    print(table.to_string(index=False))


if __name__ == "__main__":
    from lyrics_cifar_search.suite_common.process import tune_this_process
    tune_this_process()  # allocator and TensorFlow settings, before any framework starts
    main()
