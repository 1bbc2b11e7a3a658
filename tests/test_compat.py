"""runners/compat.py: each patch of a third-party library still takes effect, and versions outside the
range the patches were written for are named in one line."""

import pytest

from lyrics_cifar_search.runners import compat


def test_versions_outside_the_range_are_named_in_one_line_each():
    inside = {name: low for name, (low, high, what) in compat.KNOWN.items()}
    assert compat.check_versions(inside) == []
    lines = compat.check_versions({**inside, "keras-tuner": "1.5.2", "keras": "4.0.0"})
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert lines[0].startswith("keras-tuner 1.5.2 is outside 1.4.7 to below 1.5") and "runners/compat.py" in lines[0]
    assert compat.check_versions({}) == []  # not installed: nothing to say


def test_the_installed_versions_are_the_ones_checked(monkeypatch):
    """check_versions() with no argument reads what is installed, each library by its distribution name."""
    asked = []
    monkeypatch.setattr(compat, "installed", lambda name: asked.append(name) or ("4.1" if name == "keras" else None))
    lines = compat.check_versions()
    assert asked == list(compat.KNOWN)
    assert len(lines) == 1 and lines[0].startswith("keras 4.1 is outside 3.5 to below 4")


def test_private_names_of_other_libraries_are_used_only_in_compat():
    """Every use of another library's private modules and attributes is in runners/compat.py, beside the
    version range it was written for."""
    import re
    from pathlib import Path
    root = Path(compat.__file__).resolve().parents[1]
    private = re.compile(r"^\s*(from|import)\s+(keras_tuner\.src|keras\.src|tensorflow\.python|torch\._)"
                         r"|\._retry_queue\b|\._contains\(|\._gradient_registry\b|\.__class__\s*=(?!=)"
                         r"|\._duplicate\(|\._max_collisions\b|\._save_trial\(|\._record_values\(|\._display\b"
                         r"|\._run_times\b")
    found = [f"{path.relative_to(root)}:{n}" for pkg in ("runners", "analysis", "search_spaces", "study_data",
                                                          "suite_common")
             for path in sorted((root / pkg).rglob("*.py")) if path.name != "compat.py"
             for n, line in enumerate(path.read_text().splitlines(), 1) if private.search(line)]
    assert found == []


def test_keras_tuner_state_is_written_atomically_after_apply(tmp_path, monkeypatch):
    """The oracle's own save goes through the suite's atomic write (it would not if Keras Tuner stopped
    calling utils.save_json through the module)."""
    import keras_tuner as kt
    from lyrics_cifar_search.suite_common import atomic
    compat.apply()
    written = []
    real = atomic.write_text
    monkeypatch.setattr(atomic, "write_text", lambda path, text: (written.append(str(path)), real(path, text)))
    oracle = kt.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=1)
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.hyperparameters.Int("units", 1, 4)
    oracle.create_trial("tuner0")  # writes the trial's file and the oracle's state
    assert any(p.endswith("oracle.json") for p in written), written
    assert any(p.endswith("trial.json") for p in written), written


def test_a_refused_write_of_keras_tuners_state_stops_the_search(tmp_path, monkeypatch):
    """A full disk under Keras Tuner's own state write raises the engine's WriteFailed (a Keras Tuner FatalError:
    the search stops with one line instead of recording the trial as failed), given to apply() by the engine."""
    import errno

    import keras_tuner as kt
    from keras_tuner.src import utils
    from lyrics_cifar_search.runners.keras_search.errors import WriteFailed
    from lyrics_cifar_search.suite_common import atomic
    compat.apply(write_failed=WriteFailed)

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(atomic, "write_text", full)
    with pytest.raises(WriteFailed) as e:
        utils.save_json(str(tmp_path / "oracle.json"), {})
    assert isinstance(e.value, kt.errors.FatalError) and e.value.errno == errno.ENOSPC


@pytest.mark.parametrize("values", [["a", "b"], [1, 2], [True], [0.5]])
def test_conditions_travel_to_workers_without_a_stray_line(values, capsys):
    from keras_tuner.src.engine import conditions
    compat.apply()
    proto = conditions.Parent("parent", values).to_proto()
    assert capsys.readouterr().out == ""  # keras-tuner 1.4.8's own to_proto prints the first value
    assert conditions.Parent.from_proto(proto).values == values


def test_traced_gradient_functions_are_forgotten_between_trials():
    tf = pytest.importorskip("tensorflow")
    from tensorflow.python.framework import ops

    @tf.custom_gradient
    def scaled(x):
        return 2 * x, lambda dy: 2 * dy

    tf.function(scaled).get_concrete_function(tf.TensorSpec([], tf.float32))
    registry = ops._gradient_registry._registry
    assert any(name.startswith("CustomGradient-") for name in registry)
    compat.forget_traced_gradients()
    assert not any(name.startswith("CustomGradient-") for name in registry)


def test_quick_fit_traces_the_train_step_once_keeps_iterators_and_changes_no_number():
    """compat.quick_fit (TensorFlow): Keras built the optimizer and compiled metrics inside the first trace, so
    TensorFlow traced the train step twice; and made four tf.data iterators an epoch. Same batches, same numbers."""
    pytest.importorskip("tensorflow")
    import keras
    import numpy as np
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a TensorFlow patch")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)).astype("float32"), rng.integers(0, 3, 40)
    xv, yv = rng.normal(size=(10, 6)).astype("float32"), rng.integers(0, 3, 10)

    def trained(quick):
        keras.backend.clear_session()
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        traces, iterators, fit = [], [], model.fit
        model.train_step = lambda data, step=model.train_step: traces.append(1) or step(data)
        model.fit = lambda *a, **k: iterators.append(k) or fit(*a, **k)  # what the real fit() is given
        if quick:
            compat.quick_fit(model)
        history = model.fit(x, y, batch_size=16, epochs=3, validation_data=(xv, yv), verbose=0)
        return history.history, len(traces), iterators[0]

    plain, plain_traces, plain_args = trained(False)
    quick, quick_traces, quick_args = trained(True)
    assert quick_traces == 1 <= plain_traces  # Keras 3.15 on TensorFlow traces twice; the patch, once
    assert "steps_per_epoch" not in plain_args and (quick_args["steps_per_epoch"], quick_args["validation_steps"]) \
        == (3, 1)  # 40 rows in batches of 16; 10 validation rows in one
    assert quick == plain  # the same batches, the same numbers
