#!/usr/bin/env python
"""Epochs Hyperband needs to match random search's best (within one accuracy point), as a ratio.

    python bench/hyperband_budget.py [--data DIR] [--images-per-class 200] [--epochs 6]
                                     [--random-trials 10] [--hyperband-trials 40]

Both searches run cifar_cnn through runners/search.py on the same CIFAR-10
subset, split and seed. Random search runs --random-trials trials of up to
--epochs epochs; Hyperband (max_epochs = --epochs, factor 3) runs up to
--hyperband-trials trials. Epochs are counted from trials.csv (epochs_run of
every trial, early-stopped ones included; Hyperband trains each trial from
scratch for its budget). The ratio is Hyperband's epochs until its best
validation accuracy first reaches random search's best minus 0.01, over
random search's total epochs.

--data: an image-folder tree of CIFAR-10 (default: unpacked from
../shared/data/cifar10-jpg.tar.gz into a temporary folder).
"""

import argparse
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from lyrics_cifar_search.runners.search import cli

import pandas as pd

TARBALL = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"


def search(data, out, tuner, trials, args):
    code = cli(["cifar_cnn", "--data", str(data), "--images-per-class", str(args.images_per_class),
                "--epochs", str(args.epochs), "--tuner", tuner, "--max-trials", str(trials),
                "--results-dir", str(out), "--seed", str(args.seed)])
    if code != 0:
        raise SystemExit(f"the {tuner} search failed (exit {code})")
    t = pd.read_csv(Path(out) / "cifar_cnn" / "trials.csv")
    t = t[t["status"] == "COMPLETE"].sort_values("trial_id")
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data")
    ap.add_argument("--images-per-class", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--random-trials", type=int, default=10)
    ap.add_argument("--hyperband-trials", type=int, default=40)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            if not TARBALL.exists():
                raise SystemExit(f"pass --data DIR (a CIFAR-10 image-folder tree); {TARBALL} is absent")
            data = Path(tmp) / "cifar10"
            with tarfile.open(TARBALL) as tar:  # only the images the subset can use
                tar.extractall(data, members=[m for m in tar if m.isfile() and m.name.endswith(".jpg")
                                              and int(Path(m.name).stem) < args.images_per_class],
                               filter="data")
        rnd = search(data, Path(tmp) / "random", "random", args.random_trials, args)
        hb = search(data, Path(tmp) / "hyperband", "hyperband", args.hyperband_trials, args)
    target = rnd["val_accuracy"].max() - 0.01
    random_epochs = int(rnd["epochs_run"].sum())
    hb = hb.assign(epochs_so_far=hb["epochs_run"].cumsum(), best_so_far=hb["val_accuracy"].cummax())
    reached = hb[hb["best_so_far"] >= target]
    print(f"cifar_cnn, {args.images_per_class} images per class, max {args.epochs} epochs per trial, seed {args.seed}")
    print(f"random search: {len(rnd)} trials, {random_epochs} epochs, best val accuracy {rnd['val_accuracy'].max():.4f}")
    print(f"hyperband: {len(hb)} trials, {int(hb['epochs_run'].sum())} epochs, best {hb['val_accuracy'].max():.4f}")
    if reached.empty:
        print(f"hyperband did not reach {target:.4f} within {len(hb)} trials: ratio > "
              f"{hb['epochs_run'].sum() / random_epochs:.2f}")
    else:
        first = reached.iloc[0]
        print(f"hyperband reached {target:.4f} (random's best - 0.01) at trial {int(first['trial_id'])} after "
              f"{int(first['epochs_so_far'])} epochs")
        print(f"budget ratio (hyperband epochs to match / random epochs): {first['epochs_so_far'] / random_epochs:.2f}")


if __name__ == "__main__":
    from lyrics_cifar_search.suite_common.process import tune_this_process
    tune_this_process()  # allocator and TensorFlow settings, before any framework starts
    main()
