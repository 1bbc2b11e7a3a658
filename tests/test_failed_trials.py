"""A trial whose loss turns NaN, or that raises, is recorded as failed; the search goes on."""

import dataclasses

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from lyrics_cifar_search.runners import keras_search as keras_engine, optuna_engine
from lyrics_cifar_search.runners.prepare import Prepared
from lyrics_cifar_search.search_spaces import KerasFamily, OptunaFamily


class BrokenHyperModel(kt.HyperModel):
    def __init__(self, spec):
        super().__init__()

    def build(self, hp):
        mode = hp.Choice("mode", ["nan", "raise"], default="nan")
        if mode == "raise":
            raise ValueError("this configuration cannot be built")
        inp = keras.Input((4,), name="x")
        out = keras.layers.Dense(2, activation="softmax",
                                 kernel_initializer=keras.initializers.Constant(float("nan")))(inp)
        model = keras.Model({"x": inp}, out)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


def prepared(x_train, y_train, x_val, y_val):
    return Prepared(x_train, y_train, x_val, y_val, ["a", "b"], spec={}, meta={"family": "fake"}, artifacts={})


def test_keras_nan_and_raising_trials_are_recorded_as_failed(tmp_path):
    rng = np.random.default_rng(0)
    x, y = {"x": rng.normal(size=(32, 4)).astype("float32")}, rng.integers(0, 2, 32)
    family = KerasFamily("fake", "lyrics", "keras_tuner", "fake", hypermodel=BrokenHyperModel, epochs=2)
    rows = keras_engine.run(family, prepared(x, y, x, y), tmp_path, max_trials=2, epochs=2, tuner="random", seed=0)
    t = pd.read_csv(tmp_path / "trials.csv")
    assert len(rows) == len(t) == 2 and list(t["status"]) == ["FAIL", "FAIL"]
    assert "loss became NaN at epoch 1" in t["error"][0]
    assert "ValueError: this configuration cannot be built" in t["error"][1]
    assert not (tmp_path / "best").exists()  # no finished trial, no best model


def k_from_1_to_20(trial):
    return {"k": trial.suggest_int("k", 1, 20)}


def logreg_refusing_k_1(params, seed):
    if params["k"] == 1:
        raise ValueError("k=1 is not allowed")
    return LogisticRegression(C=params["k"])


# An Optuna family whose baseline (k=1) raises and whose other settings work.
BadFirst = OptunaFamily("fake_sk", "lyrics", "optuna", "fake", suggest=k_from_1_to_20, defaults={"k": 1},
                      make_features=lambda params, spec: CountVectorizer(), make_classifier=logreg_refusing_k_1)


def texts(n, rng):
    y = rng.integers(0, 2, n)
    return [("alpha " if v else "beta ") + "common words" for v in y], y


def test_optuna_failed_trial_is_recorded_and_search_continues(tmp_path):
    rng = np.random.default_rng(0)
    (xt, yt), (xv, yv) = texts(40, rng), texts(10, rng)
    optuna_engine.run(BadFirst, prepared(xt, yt, xv, yv), tmp_path, max_trials=3, seed=0, sampler="random")
    t = pd.read_csv(tmp_path / "trials.csv")
    assert list(t["status"]) == ["FAIL", "COMPLETE", "COMPLETE"] and bool(t["is_baseline"][0])
    assert t["error"][0] == "ValueError: k=1 is not allowed"
    assert (t["val_accuracy"][1:] == 1.0).all()


def never_works(params, seed):
    raise RuntimeError("never works")


AlwaysFails = dataclasses.replace(BadFirst, name="fake_fail", make_classifier=never_works)


def test_optuna_stops_after_three_consecutive_failures(tmp_path, capsys):
    rng = np.random.default_rng(0)
    (xt, yt), (xv, yv) = texts(40, rng), texts(10, rng)
    optuna_engine.run(AlwaysFails, prepared(xt, yt, xv, yv), tmp_path, max_trials=10, seed=0)
    t = pd.read_csv(tmp_path / "trials.csv")
    assert len(t) == 3 and (t["status"] == "FAIL").all()
    # the line the Keras engine ends such a search with too (runners/trial_end.py, test_reliability)
    assert ("fake_fail: 3 trials failed in a row (last: RuntimeError: never works); stopping the search"
            in capsys.readouterr().err)
