#!/usr/bin/env python
"""What a fixed time budget buys: the suite's cifar_cnn search vs a plain Keras Tuner RandomSearch.

    python bench/time_to_accuracy.py [--data DIR] [--images-per-class 500] [--budget 10m] [--sides suite,plain]

Both sides search block 1 of the real CIFAR-10 JPEGs (../shared/data/cifar10-jpg.tar.gz,
unpacked to a temporary folder unless --data names one): five classes by the
seeded block draw, the official test images of those classes as the test
set, validation carved from the official training images, --images-per-class
training (and test) images per class.

- suite: `runners/search.py cifar_cnn --time-budget BUDGET` (trial 0 the
  earlier study's CNN, then random search), in its own process;
- plain: Keras Tuner's own RandomSearch over the same hypermodel
  (search_spaces/cifar_cnn.py), no baseline first, Keras Tuner's own
  per-epoch checkpoints, the same early stopping, no new trial after BUDGET.

For each it prints the best validation accuracy against wall time (from the
first trial's start), the time to first reach 0.80 / 0.85 / 0.90 validation
accuracy, the number of trials, and the best model's test accuracy with its
95 % Wilson interval; then the ratios of the two side by side.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = (0.80, 0.85, 0.90)
PROGRESS = re.compile(r"trial (\S+) (\w+) .*?\| best ([0-9.]+) \(trial \S+\) \| \d+ of \d+ done, "
                      r"(\d+):(\d\d):(\d\d) elapsed")


def unpack_cifar10(into):
    tar_path = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"
    if not tar_path.exists():
        sys.exit(f"error: {tar_path} is absent: pass --data with a CIFAR-10 image-folder tree")
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    roots = [p.parent.parent for p in Path(into).rglob("train/airplane")]
    return roots[0]


def run_suite(data, per_class, budget, seed, work):
    """The suite's search; (curve [(seconds, best)], trials, best model's test accuracy, its interval)."""
    res = Path(work) / "suite"
    cmd = [sys.executable, str(ROOT / "runners" / "search.py"), "cifar_cnn", "--data", str(data),
           "--images-per-class", str(per_class), "--time-budget", f"{budget}s", "--max-trials", "1000",
           "--seed", str(seed), "--results-dir", str(res)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if out.returncode != 0:
        sys.exit(f"error: the suite's search failed: {out.stderr.strip().splitlines()[-1:]}")
    curve = []
    for m in PROGRESS.finditer(out.stdout):
        seconds = int(m.group(4)) * 3600 + int(m.group(5)) * 60 + int(m.group(6))
        curve.append((seconds, float(m.group(3))))
    from analysis import compare
    from analysis.best_model import load_best
    model = load_best("cifar_cnn", res)
    scores, y, pred = model.score_test(res)
    right = int((pred == y).sum())
    trials = json.loads((res / "cifar_cnn" / "best" / "meta.json").read_text())
    return curve, len(curve), scores["test_accuracy"], compare.wilson(right, len(y)), trials["trial_id"]


PLAIN = r'''
import json, sys, time
import keras, keras_tuner as kt, numpy as np
from search_spaces import get_family
from study_data import images

data, per_class, budget, seed, work = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
block = images.make_block(images.load_images(data, cache_dir=work + "/cache", per_class=per_class), 1, seed=seed)
curve, start, best = [], None, 0.0

class OutOfTime(Exception):
    pass

class Timed(kt.RandomSearch):
    def pre_create_trial(self):
        if start is not None and time.time() - start > budget:
            raise OutOfTime

    def on_trial_end(self, trial):
        global best
        super().on_trial_end(trial)
        value = trial.metrics.get_best_value("val_accuracy") if trial.metrics.exists("val_accuracy") else None
        if value is not None:
            best = max(best, value)
        curve.append((time.time() - start, best))
        print(f"plain trial {len(curve)}: best {best:.4f} at {time.time() - start:.0f} s", flush=True)

tuner = Timed(get_family("cifar_cnn").hypermodel({"n_classes": len(block.class_names)}), objective="val_accuracy",
              max_trials=1000, seed=seed, directory=work + "/plain", project_name="kt", overwrite=True)
start = time.time()
try:
    tuner.search(block.x_train, block.y_train, validation_data=(block.x_val, block.y_val), epochs=40, verbose=0,
                 callbacks=[keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)])
except OutOfTime:
    pass
model = tuner.get_best_models(1)[0]
pred = np.asarray(model.predict(block.x_test, verbose=0)).argmax(1)
print("RESULT " + json.dumps({"curve": curve, "right": int((pred == block.y_test).sum()), "n": int(len(pred))}))
'''


def run_plain(data, per_class, budget, seed, work):
    out = subprocess.run([sys.executable, "-c", PLAIN, str(data), str(per_class), str(budget), str(seed), str(work)],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)})
    line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
    if out.returncode != 0 or not line:
        sys.exit(f"error: the plain Keras Tuner search failed: {out.stderr.strip().splitlines()[-3:]}")
    r = json.loads(line[0][7:])
    from analysis import compare
    return ([tuple(c) for c in r["curve"]], len(r["curve"]), r["right"] / r["n"], compare.wilson(r["right"], r["n"]),
            None)


def first_reach(curve, target):
    return next((s for s, best in curve if best >= target), None)


def report(name, result):
    curve, trials, test, (low, high), best_trial = result
    print(f"\n{name}: {trials} trials; best validation accuracy over time:")
    for seconds, best in curve:
        print(f"  {seconds:7.0f} s  {best:.4f}")
    for t in TARGETS:
        s = first_reach(curve, t)
        print(f"  time to {t:.2f}: " + (f"{s:.0f} s" if s is not None else "not reached"))
    print(f"  best model's test accuracy {test:.4f} (95 % CI {low:.4f}-{high:.4f})"
          + (f", trial {best_trial}" if best_trial is not None else ""))


def main(argv=None):
    from runners.search import duration, positive_int
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="a CIFAR-10 image-folder tree (default: unpacked from ../shared)")
    ap.add_argument("--images-per-class", type=positive_int, default=500)
    ap.add_argument("--budget", type=duration, default=600.0, help="time budget of each side (default 10m)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--sides", default="suite,plain")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        data = Path(args.data) if args.data else unpack_cifar10(Path(work) / "cifar10")
        results = {}
        for side in args.sides.split(","):
            t0 = time.time()
            runner = run_suite if side == "suite" else run_plain
            results[side] = runner(data, args.images_per_class, args.budget, args.seed, work)
            report(side, results[side])
            print(f"  ({time.time() - t0:.0f} s in all, start-up and the last trial included)")
    if len(results) == 2:
        (s_curve, _, s_test, _, _), (p_curve, _, p_test, _, _) = results["suite"], results["plain"]
        s_best, p_best = (max(b for _, b in c) if c else float("nan") for c in (s_curve, p_curve))
        print(f"\nbest validation accuracy in {args.budget:g} s: suite {s_best:.4f} / plain {p_best:.4f} = "
              f"{s_best / p_best:.3f}x; test accuracy {s_test:.4f} / {p_test:.4f} = {s_test / p_test:.3f}x")
        for t in TARGETS:
            s, p = first_reach(s_curve, t), first_reach(p_curve, t)
            print(f"time to {t:.2f}: suite " + (f"{s:.0f} s" if s is not None else "not reached") + ", plain "
                  + (f"{p:.0f} s" if p is not None else "not reached"))
    return 0


if __name__ == "__main__":
    from suite_common.process import tune_this_process
    tune_this_process()  # allocator and TensorFlow settings, before any framework starts
    sys.exit(main())
