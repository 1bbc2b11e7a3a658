#!/usr/bin/env python
"""Training images per second of the baseline cifar_cnn: plain model.fit on NumPy vs the suite's training.

    python bench/cifar_throughput.py [--images 16384] [--epochs 3] [--batch 32]
    KERAS_BACKEND=jax python bench/cifar_throughput.py

Same model (the earlier study's configuration), data, batch size and backend,
one after the other in this process:
  plain   model.fit(x, y) on NumPy arrays, no callbacks;
  suite   runners.keras_search.trial.train, as every trial runs (its callbacks, validation
          metrics), without fused steps (SEARCH_SUITE_FUSE_STEPS=0);
  fused   the same with the suite's GPU path: on JAX, fused train steps
          (runners/keras_search/accelerate.py); on PyTorch with a CUDA GPU, each
          step replayed as a recorded CUDA graph (runners/keras_search/accelerate.py).
Random images of CIFAR's shape; steady epochs only (the first, with
compilation, is reported apart). Prints images/s and the ratios to plain.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path


import keras
import keras_tuner as kt
import numpy as np

from lyrics_cifar_search.runners.keras_search import trial as keras_engine
import dataclasses

from lyrics_cifar_search.runners.prepare import Prepared
from lyrics_cifar_search.search_spaces import get_family


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def rates(timer, images):
    steady = timer.times[1:] or timer.times
    return images / timer.times[0], images * len(steady) / sum(steady)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=16384)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--modes", default="plain,suite,fused")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((args.images, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 50, args.images)
    xv, yv = x[:256], y[:256]
    cifar_cnn = dataclasses.replace(get_family("cifar_cnn"), patience=args.epochs + 1)  # every epoch runs
    results = {}
    for mode in args.modes.split(","):
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        hp = kt.HyperParameters()
        hp.values["batch_size"] = args.batch
        hm = cifar_cnn.hypermodel({"n_classes": 50})
        timer = EpochTimer()
        if mode == "plain":
            model = hm.build(hp)
            model.fit(x, y, batch_size=args.batch, epochs=args.epochs, validation_data=(xv, yv),
                      callbacks=[timer], verbose=0)
        else:
            os.environ["SEARCH_SUITE_FUSE_STEPS"] = "1" if mode == "fused" else "0"
            prepared = Prepared(x, y, xv, yv, [str(i) for i in range(50)], {"n_classes": 50}, {}, {})
            with tempfile.TemporaryDirectory() as tmp:
                keras_engine.train(cifar_cnn, hm, hp, prepared, epochs=args.epochs, seed=0,
                                   history_path=Path(tmp) / "h.csv", callbacks=[timer])
        results[mode] = rates(timer, args.images)
    try:
        devices = keras.distribution.list_devices()
    except Exception:  # not every backend implements it
        devices = ["?"]
    print(f"backend {keras.backend.backend()}, devices {devices}, batch {args.batch}, {args.images} images/epoch")
    plain = results.get("plain", (None, None))[1]
    for mode, (first, steady) in results.items():
        ratio = f"  ({steady / plain:.2f}x plain)" if plain else ""
        print(f"{mode:6s} first epoch {first:9,.0f} images/s, steady {steady:9,.0f} images/s{ratio}")


if __name__ == "__main__":
    from lyrics_cifar_search.suite_common.process import tune_this_process
    tune_this_process()  # allocator and TensorFlow settings, before any framework starts
    main()
