"""The suite on Keras's JAX backend, end to end (a GPU machine may have no TensorFlow).

Each run is a fresh process: Keras picks its backend once, at import.
"""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def on_jax(*args, timeout=300):
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def test_jax_search_then_demo_reloads_and_scores(tmp_path):
    """Two trials of cifar_cnn (compiled log-loss and macro-F1 metrics included), then the demo reloads the best."""
    pytest.importorskip("jax")
    res = tmp_path / "r"
    out = on_jax("runners/search.py", "cifar_cnn", "--data", "demo", "--max-trials", "2", "--epochs", "1",
                 "--results-dir", str(res))
    assert out.returncode == 0, out.stderr[-3000:]
    trials = pd.read_csv(res / "cifar_cnn" / "trials.csv")
    assert list(trials["status"]) == ["COMPLETE", "COMPLETE"]
    assert trials["val_macro_f1"].between(0, 1).all() and (trials["val_loss"] > 0).all()

    out = on_jax("analysis/demo.py", "--results-dir", str(res))
    assert out.returncode == 0, out.stderr[-3000:]
    row = next(line for line in out.stdout.splitlines() if line.strip().startswith("cifar_cnn"))
    test_accuracy = float(row.split()[3])
    assert 0 <= test_accuracy <= 1


NO_TENSORFLOW_CHECK = """
import sys, tempfile
from runners.search import cli
with tempfile.TemporaryDirectory() as tmp:
    code = cli(["cifar_cnn", "--data", "demo", "--max-trials", "1", "--epochs", "1", "--results-dir", tmp])
print("CODE", code, "TENSORFLOW", "tensorflow" in sys.modules)
"""


def test_a_jax_search_does_not_import_tensorflow():
    """Keras imports TensorFlow, when installed, to seed it and when saving a model (2.3 s); on another
    backend the engine tells Keras it is absent, so a search (seeding, training, saving the best) runs without."""
    pytest.importorskip("jax")
    out = on_jax("-c", NO_TENSORFLOW_CHECK)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "CODE 0 TENSORFLOW False" in out.stdout, out.stdout[-2000:]
