"""Nothing of a finished trial stays alive into the next."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses or real trainings: `pytest -m "not slow"` skips them


ROOT = Path(__file__).resolve().parents[1]
FAST = ["--sample-fraction", "1", "--seq-len", "30", "--vocab-size", "300"]


def test_a_finished_trial_leaves_no_tensorflow_graph_behind(tmp_path):
    """TensorFlow keeps each traced train step's graph (and the model's variables) in a global gradient
    registry; the engine drops them between trials, so memory does not grow by a model per trial."""
    import gc
    import weakref

    import keras
    import keras_tuner as kt
    import numpy as np

    from lyrics_cifar_search.runners.keras_search import trial as keras_engine
    from lyrics_cifar_search.runners.prepare import Prepared
    from lyrics_cifar_search.search_spaces import get_family
    cifar_cnn = get_family("cifar_cnn")

    if keras.backend.backend() != "tensorflow":
        pytest.skip("a TensorFlow registry")
    from tensorflow.python.framework import func_graph

    rng = np.random.default_rng(0)
    x, y = rng.random((64, 32, 32, 3), dtype=np.float32), rng.integers(0, 4, 64)
    prepared = Prepared(x, y, x[:16], y[:16], list("abcd"), {"n_classes": 4}, {}, {})

    def trial(i):
        hm = cifar_cnn.hypermodel({"n_classes": 4})
        return keras_engine.train(cifar_cnn, hm, kt.HyperParameters(), prepared, epochs=1, seed=i,
                                  history_path=tmp_path / f"h{i}.csv")[0]

    model = trial(0)
    first = [weakref.ref(m) for m in [model, model.optimizer]]
    del model
    gc.collect()
    first_graphs = [weakref.ref(o) for o in gc.get_objects() if isinstance(o, func_graph.FuncGraph)]
    assert first_graphs  # the first trial traced its train and validation steps
    trial(1)
    gc.collect()
    assert all(r() is None for r in first + first_graphs), \
        f"{sum(r() is not None for r in first_graphs)} of the first trial's graphs are still alive"
