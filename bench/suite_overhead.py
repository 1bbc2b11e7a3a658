#!/usr/bin/env python
"""The suite's overhead: a search of N trials vs bare model.fit calls of the same configurations.

    python bench/suite_overhead.py [--trials 3] [--epochs 2] [--images 2000]
    KERAS_BACKEND=jax python bench/suite_overhead.py

The search runs cifar_cnn through the real Keras Tuner engine (oracle, state
files, per-epoch histories, metrics, best-model saving, trials.csv) on random
CIFAR-shaped data; then each trial's configuration is built and fitted bare,
with the same epochs and batch size and no callbacks. Prints both times and
the ratio (search / sum of bare fits).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners import keras_engine  # noqa: E402
from runners.search import Prepared  # noqa: E402
from search_spaces import cifar_cnn  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--images", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((args.images, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 5, args.images)
    xv, yv = x[: args.images // 5], y[: args.images // 5]
    prepared = Prepared(x, y, xv, yv, [str(i) for i in range(5)], {"n_classes": 5}, {"family": "cifar_cnn"}, {})
    # no early stop within the few epochs: both sides train exactly --epochs
    cifar_cnn.PATIENCE = args.epochs + 1
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        rows = keras_engine.run(cifar_cnn, prepared, tmp, max_trials=args.trials, epochs=args.epochs,
                                tuner="random", seed=0)
        search = time.perf_counter() - start
    bare = 0.0
    for row in rows:
        hp = kt.HyperParameters()
        hp.values = {k[3:]: v for k, v in row.items() if k.startswith("hp_") and v is not None}
        keras.backend.clear_session()
        start = time.perf_counter()
        hm = cifar_cnn.HyperModel({"n_classes": 5})
        model = hm.build(hp)
        hm.fit(hp, model, x, y, validation_data=(xv, yv), epochs=args.epochs, verbose=0)
        bare += time.perf_counter() - start
    print(f"backend {keras.backend.backend()}: {args.trials} trials x {args.epochs} epochs on {args.images} images")
    print(f"search through the suite: {search:.1f} s; bare build + fit of the same configurations: {bare:.1f} s")
    print(f"overhead ratio: {search / bare:.3f}")


if __name__ == "__main__":
    main()
