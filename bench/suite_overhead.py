#!/usr/bin/env python
"""The suite's overhead: a search of N trials vs bare model.fit calls of the same configurations.

    python bench/suite_overhead.py [--trials 3] [--epochs 2] [--images 2000] [--repeats 1]
    KERAS_BACKEND=jax python bench/suite_overhead.py

The search runs cifar_cnn through the real Keras Tuner engine (oracle, state
files, per-epoch histories, validation metrics, best-model saving,
trials.csv) on random CIFAR-shaped data. Then each trial's configuration is
built and fitted bare (same epochs, batch size and validation data, no
callbacks of the suite). Each side runs in a fresh process of its own, so
neither inherits the other's warm caches (compiled kernels, autotuning).
Prints both times, where the search's time went, and the ratio
(search / sum of bare fits; target <= 1.10).

--repeats N runs N pairs, alternating which side goes first, and prints every
pair's ratio and their median. Beside wall-clock time it prints the CPU time
each side's process used (all its threads), which shows the suite's extra
work with less of a shared machine's noise (bench/README.md).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def data(images):
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.random((images, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 5, images)
    return x, y, x[: images // 5], y[: images // 5]


def run_search(args, out):
    import dataclasses

    import pandas as pd

    from lyrics_cifar_search.runners import engines
    from lyrics_cifar_search.runners import keras_search as keras_engine
    from lyrics_cifar_search.runners.prepare import Prepared
    from lyrics_cifar_search.search_spaces import get_family
    x, y, xv, yv = data(args.images)
    prepared = Prepared(x, y, xv, yv, [str(i) for i in range(5)], {"n_classes": 5}, {"family": "cifar_cnn"}, {})
    # no early stopping: both sides train exactly --epochs
    cifar_cnn = dataclasses.replace(get_family("cifar_cnn"), patience=args.epochs + 1)
    spent = time_spent_in(keras_engine)
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu_start = time.perf_counter(), time.process_time()
        rows = engines.run(cifar_cnn, prepared, tmp, engines.SearchConfig(max_trials=args.trials, epochs=args.epochs,
                                                                          tuner="random", seed=0))
        total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        trials = pd.read_csv(Path(tmp) / "trials.csv")
    configs = [{k[3:]: v for k, v in r.items() if k.startswith("hp_") and v is not None} for r in rows]
    Path(out).write_text(json.dumps({"total": total, "cpu": cpu, "in_trials": float(trials["duration_s"].sum()),
                                     "configs": configs, "spent": spent}))


def time_spent_in(keras_engine):
    """Wrap the suite's steps outside training with timers (the breakdown printed)."""
    import keras

    from lyrics_cifar_search.runners import best_store, trials_table
    from lyrics_cifar_search.runners.keras_search import tuner
    spent = {}

    def timed(owner, name, label):
        original = getattr(owner, name)

        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - start
        setattr(owner, name, wrapper)

    timed(keras_engine, "_make_tuner", "tuner set-up (Keras Tuner builds the model once to list the space)")
    timed(keras.backend, "clear_session", "clear_session between trials")
    timed(tuner.SuiteTuner, "_save_model", "saving best models (.keras)")
    timed(best_store, "promote", "promoting best/")
    timed(trials_table, "write_trials_csv", "writing trials.csv")
    timed(tuner.kt.Tuner, "on_trial_end", "Keras Tuner's trial end (oracle + state files)")
    return spent


def run_bare(args, configs_file, out):
    import keras
    import keras_tuner as kt

    from lyrics_cifar_search.search_spaces import get_family
    x, y, xv, yv = data(args.images)
    total = cpu = 0.0
    for values in json.loads(Path(configs_file).read_text())["configs"]:
        hp = kt.HyperParameters()
        hp.values = values
        keras.backend.clear_session()
        start, cpu_start = time.perf_counter(), time.process_time()
        hm = get_family("cifar_cnn").hypermodel({"n_classes": 5})
        model = hm.build(hp)
        hm.fit(hp, model, x, y, validation_data=(xv, yv), epochs=args.epochs, verbose=0)
        total, cpu = total + time.perf_counter() - start, cpu + time.process_time() - cpu_start
    Path(out).write_text(json.dumps({"total": total, "cpu": cpu}))


def main():
    # The bare side is plain Keras: it must not import the suite's package, nor inherit the environment
    # that importing it sets (runners/__init__.py: how memory is allocated). The sides, started below,
    # get the environment this process had before the import, and counts already checked.
    environment = dict(os.environ)
    if "--side" in sys.argv:
        count = int
    else:
        from lyrics_cifar_search.runners.flag_types import positive_int as count
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=count, default=3)
    ap.add_argument("--epochs", type=count, default=2)
    ap.add_argument("--images", type=count, default=2000)
    ap.add_argument("--repeats", type=count, default=1, help="pairs of runs, alternating which side goes first")
    ap.add_argument("--side", choices=["search", "bare"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--configs", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side == "search":
        return run_search(args, args.out)
    if args.side == "bare":
        return run_bare(args, args.configs, args.out)
    common = ["--trials", str(args.trials), "--epochs", str(args.epochs), "--images", str(args.images)]
    import keras
    print(f"backend {keras.backend.backend()}: {args.trials} trials x {args.epochs} epochs on {args.images} images")
    ratios, cpu_ratios, search_sum, bare_sum = [], [], 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        s, b = Path(tmp) / "search.json", Path(tmp) / "bare.json"

        def side(name):
            extra = ["--configs", str(s)] if name == "bare" else []
            subprocess.run([sys.executable, __file__, *common, "--side", name, "--out", str(s if name == "search" else b),
                            *extra], check=True, stdout=subprocess.DEVNULL, env=environment)

        for i in range(args.repeats):
            # alternate which side runs first, so neither always meets a warmer machine; the first
            # pair starts with the search, whose configurations (seeded: the same every run) the bare side fits
            for name in ("search", "bare") if i % 2 == 0 else ("bare", "search"):
                side(name)
            search, bare = json.loads(s.read_text()), json.loads(b.read_text())
            ratios.append(search["total"] / bare["total"])
            cpu_ratios.append(search["cpu"] / bare["cpu"])
            search_sum, bare_sum = search_sum + search["total"], bare_sum + bare["total"]
            print(f"run {i + 1}: search through the suite {search['total']:.1f} s (inside trials: build + fit + "
                  f"validation metrics {search['in_trials']:.1f} s; oracle, tuner set-up, saving, records "
                  f"{search['total'] - search['in_trials']:.1f} s); bare build + fit of the same configurations "
                  f"{bare['total']:.1f} s; ratio {ratios[-1]:.3f}; CPU time {search['cpu']:.1f} s vs "
                  f"{bare['cpu']:.1f} s, ratio {cpu_ratios[-1]:.3f}")
            for label, seconds in sorted(search["spent"].items(), key=lambda kv: -kv[1]):
                print(f"    {label}: {seconds:.2f} s")
    print(f"overhead ratio: {statistics.median(ratios):.3f}"
          + (f" (median of {len(ratios)}: {', '.join(f'{r:.3f}' for r in sorted(ratios))}; all searches' time "
             f"over all bare fits' {search_sum / bare_sum:.3f})" if len(ratios) > 1 else ""))
    print(f"CPU time ratio: {statistics.median(cpu_ratios):.3f}"
          + (f" (median of {len(cpu_ratios)}: {', '.join(f'{r:.3f}' for r in sorted(cpu_ratios))})"
             if len(cpu_ratios) > 1 else ""))


if __name__ == "__main__":
    from lyrics_cifar_search.suite_common.process import tune_this_process
    tune_this_process()  # allocator and TensorFlow settings, before any framework starts
    main()
