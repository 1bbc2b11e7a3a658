"""The GPU training paths (runners/keras_search/accelerate.py) give Keras's own updates."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses or real trainings: `pytest -m "not slow"` skips them

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--sample-fraction", "1", "--seq-len", "30", "--vocab-size", "300"]


FUSED_CHECK = """
import numpy as np, keras
from lyrics_cifar_search.runners.keras_search import accelerate as keras_engine
rng = np.random.default_rng(0)
n = 330  # 10 full batches of 32 and a smaller last one
x = rng.random((n, 20), dtype=np.float32); y = rng.integers(0, 5, n)
runs = {}
for fuse in (False, True):
    keras.backend.clear_session(); keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((20,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.BatchNormalization(), keras.layers.Dropout(0.3),
                          keras.layers.Dense(5, activation="softmax")])
    m.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    k = keras_engine.fuse_train_steps(m, n, 32) if fuse else 1
    h = m.fit(x, y, batch_size=32, epochs=3, verbose=0, validation_data=(x[:50], y[:50]))
    runs[fuse] = (k, m.get_weights(), h.history)
assert runs[True][0] == 10, runs[True][0]
assert runs[False][2] == runs[True][2], (runs[False][2], runs[True][2])
assert all(np.array_equal(a, b) for a, b in zip(runs[False][1], runs[True][1]))
print("fused == unfused")
"""


def test_fused_train_steps_give_keras_own_updates():
    """JAX: k steps in one lax.scan (the suite's GPU path) = Keras's own loop, weight for weight."""
    pytest.importorskip("jax")
    out = subprocess.run([sys.executable, "-c", FUSED_CHECK], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and "fused == unfused" in out.stdout, out.stderr[-3000:]


GRAPH_CHECK = """
import numpy as np, keras, torch
from lyrics_cifar_search.runners.keras_search import accelerate as keras_engine

torch.backends.cudnn.deterministic = True
rng = np.random.default_rng(0)
n = 330  # 10 full batches of 32 and a smaller last one
x = rng.random((n, 8, 8, 3), dtype=np.float32); y = rng.integers(0, 5, n)
runs = {}
for graphed in (False, True):
    keras.backend.clear_session(); keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                          keras.layers.BatchNormalization(), keras.layers.MaxPooling2D(2),
                          keras.layers.Flatten(), keras.layers.Dense(5, activation="softmax")])
    m.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    f = keras_engine.graph_train_steps(m) if graphed else None
    h = m.fit(x, y, batch_size=32, epochs=3, verbose=0, validation_data=(x[:50], y[:50]))
    runs[graphed] = (f is not None and f.captured, m.get_weights(), h.history)
assert runs[True][0], "no graph was recorded"
for key, values in runs[False][2].items():
    assert np.allclose(values, runs[True][2][key], rtol=1e-4, atol=1e-6), (key, values, runs[True][2][key])
assert all(np.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(runs[False][1], runs[True][1]))
print("graphed == eager")
"""


def test_cuda_graph_train_steps_give_keras_own_updates():
    """PyTorch on a GPU: a recorded and replayed train step (the suite's path there) = Keras's own loop.
    Needs a CUDA GPU (bench/gpu_figures.sh runs it on one); skipped elsewhere."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", GRAPH_CHECK], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env={**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": path})
    assert out.returncode == 0 and "graphed == eager" in out.stdout, out.stderr[-3000:]
