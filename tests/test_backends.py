"""The suite on Keras's JAX and PyTorch backends (a GPU machine may have no TensorFlow).

Each run is a fresh process: Keras picks its backend once, at import.
"""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # subprocesses or real trainings: `pytest -m "not slow"` skips them

ROOT = Path(__file__).resolve().parents[1]


def on_backend(backend, *args, timeout=300):
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def test_jax_search_then_demo_reloads_and_scores(tmp_path):
    """Two trials of cifar_cnn (compiled log-loss and macro-F1 metrics included), then the demo reloads the best.

    The search imports no TensorFlow: Keras imports it, when installed, to seed it and when saving a model
    (2.3 s); on another backend the engine tells Keras it is absent (runners/compat.py)."""
    pytest.importorskip("jax")
    res = tmp_path / "r"
    out = on_backend("jax", "-X", "importtime", "runners/search.py", "cifar_cnn", "--data", "demo", "--max-trials",
                     "2", "--epochs", "1", "--results-dir", str(res))
    assert out.returncode == 0, out.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "jax" in imported and "tensorflow" not in imported
    trials = pd.read_csv(res / "cifar_cnn" / "trials.csv")
    assert list(trials["status"]) == ["COMPLETE", "COMPLETE"]
    assert trials["val_macro_f1"].between(0, 1).all() and (trials["val_loss"] > 0).all()

    out = on_backend("jax", "analysis/demo.py", "--results-dir", str(res))
    assert out.returncode == 0, out.stderr[-3000:]
    row = next(line for line in out.stdout.splitlines() if line.strip().startswith("cifar_cnn"))
    test_accuracy = float(row.split()[3])
    assert 0 <= test_accuracy <= 1


DYNAMO_RESET_CHECK = """
import numpy as np, keras, torch._dynamo
from lyrics_cifar_search.runners.keras_search import trial as keras_engine
resets = []
original = torch._dynamo.reset
counting = torch._dynamo.reset = lambda: (resets.append(1), original())
for jit_compile in (False, True):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="kept")])
    model.compile("adam", "mse", jit_compile=jit_compile)
    model.fit(np.ones((8, 4)), np.ones((8, 2)), epochs=1, verbose=0)
    keras_engine._free_last_trial()
    print("JIT", jit_compile, "RESETS", len(resets), "NEXT", keras.layers.Dense(1).name,
          "RESTORED", torch._dynamo.reset is counting)
"""


def test_between_trials_pytorch_resets_dynamo_only_after_it_compiled():
    """Keras's clear_session resets torch.compile's caches, and with a CUDA GPU that reset first imports
    torch._inductor (about 1 s, once), which bare fits never pay. The engine skips it when dynamo compiled
    nothing (Keras's default on PyTorch) and still clears Keras's own state; after a jit_compile=True
    fit it resets as before."""
    pytest.importorskip("torch")
    out = on_backend("torch", "-c", DYNAMO_RESET_CHECK)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("JIT")]
    # "dense": Keras's name counter restarted, i.e. clear_session still ran; the reset is put back after.
    assert lines == ["JIT False RESETS 0 NEXT dense RESTORED True",
                     "JIT True RESETS 1 NEXT dense RESTORED True"], out.stdout[-2000:]


AUGMENTED_CNN_CHECK = """
import tempfile, numpy as np, keras, keras_tuner as kt
from lyrics_cifar_search.search_spaces import get_family

hp = kt.HyperParameters()
hp.values = {"augment": True}
hm = get_family("cifar_cnn").hypermodel({"n_classes": 3})
model = hm.build(hp)
translate = next(l for l in model.layers if "translation" in l.name)
state = np.array(translate.generator.state.value)
x, y = np.random.default_rng(0).random((64, 32, 32, 3), dtype="float32"), np.arange(64) % 3
history = hm.fit(hp, model, x, y, epochs=1, verbose=0)
print("JIT", model.jit_compile, "FINITE", bool(np.isfinite(history.history["loss"][0])),
      "SEED MOVED", not np.array_equal(state, np.array(translate.generator.state.value)))
with tempfile.TemporaryDirectory() as tmp:
    model.save(tmp + "/m.keras")
    from lyrics_cifar_search.runners.best_model import _load_keras
    again = _load_keras(tmp + "/m.keras")
print("RELOADED JIT", again.jit_compile, "SAME", np.allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                                                     atol=1e-6))
"""


def test_augmented_cnn_trains_compiled_on_jax():
    """Keras marks RandomTranslation unjittable on every backend (TensorFlow's transform has no XLA kernel),
    which made Keras train the whole augmented cifar_cnn op by op on JAX: 3x slower, and every op's kernel
    cached, the memory growth across trials. The suite's RandomTranslation compiles with the model on JAX,
    draws new offsets every step, and reloads as itself."""
    pytest.importorskip("jax")
    out = on_backend("jax", "-c", AUGMENTED_CNN_CHECK)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "JIT True FINITE True SEED MOVED True" in out.stdout, out.stdout[-2000:]
    assert "RELOADED JIT True SAME True" in out.stdout, out.stdout[-2000:]
