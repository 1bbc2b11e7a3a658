#!/usr/bin/env python
"""Images per second of the baseline cifar_cnn training on this backend and device.

    python bench/cifar_throughput.py [--images 2048] [--epochs 3] [--batch 32]
    KERAS_BACKEND=jax python bench/cifar_throughput.py

Random images of CIFAR's shape; the first epoch (compilation) is reported
apart from the steady epochs after it.
"""

import argparse
import time

import keras
import keras_tuner as kt
import numpy as np

from search_spaces import cifar_cnn


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((args.images, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 50, args.images)
    hp = kt.HyperParameters()
    hp.values["batch_size"] = args.batch
    hm = cifar_cnn.HyperModel({"n_classes": 50})
    model = hm.build(hp)
    timer = EpochTimer()
    timer.times = []
    hm.fit(hp, model, x, y, validation_data=(x[:64], y[:64]), epochs=args.epochs, callbacks=[timer], verbose=0)
    try:
        devices = keras.distribution.list_devices()
    except Exception:  # not every backend implements it (PyTorch)
        devices = [keras.backend.backend()]
    steady = timer.times[1:] or timer.times
    print(f"backend {keras.backend.backend()}, devices {devices}, batch {args.batch}, {args.images} images/epoch")
    print(f"first epoch (with compilation): {args.images / timer.times[0]:,.0f} images/s")
    print(f"steady epochs: {args.images * len(steady) / sum(steady):,.0f} images/s")


if __name__ == "__main__":
    main()
