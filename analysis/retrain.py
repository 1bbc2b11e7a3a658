"""Retrain a search's baseline or best configuration with other seeds (for `compare.py --repeats`).

The data, splits and preprocessing are rebuilt from the best model's
meta.json exactly as the search had them (same data seed, so the same
split); only the training seed changes, and baseline and best train with
the same epoch budget (the search's). Each retrained model is scored on the
same held-out test split as the saved one, the same way.
"""

import tempfile
from pathlib import Path

from analysis.best_model import BestModel, load_best
from runners.prepare import DataOptions, prepare_cifar, prepare_lyrics
from search_spaces import get_family


def retrain(family_name, results_dir, k, with_artist=False, which="best"):
    """Test scores of the search's best (or baseline) configuration retrained with k new training seeds.

    Returns ([{metric: value}] per seed, whether the best configuration is the baseline's)."""
    saved = load_best(family_name, results_dir, with_artist=with_artist)
    family = get_family(family_name)
    options = DataOptions.from_meta(saved.meta, results_dir)
    prepared = (prepare_cifar if saved.meta["inputs"] == "images" else prepare_lyrics)(family, options)
    x_test, y_test = saved.test_split(results_dir)
    epochs = saved.meta.get("epochs") or family.epochs
    if family.engine == "keras_tuner":
        import keras_tuner as kt
        from runners.keras_search import oracles, trial
        space = kt.HyperParameters()
        family.hypermodel(prepared.spec).build(space)
        baseline = oracles.default_values(space.space)
    else:
        baseline = dict(family.defaults)
    best = dict(saved.meta["hyperparameters"])
    best_is_baseline = all(baseline.get(name) == value for name, value in best.items())
    params = best if which == "best" else baseline
    scores = []
    for i in range(1, k + 1):
        seed = saved.meta["seed"] + 1000 * i
        if family.engine == "keras_tuner":
            hp = kt.HyperParameters()
            hp.values = dict(params)
            with tempfile.TemporaryDirectory() as tmp:
                model, _ = trial.train(family, family.hypermodel(prepared.spec), hp, prepared,
                                              epochs=epochs, seed=seed, history_path=Path(tmp) / "history.csv")
        else:
            from runners import optuna_engine
            cache = optuna_engine.FeatureCache(family, prepared.x_train, prepared.x_val, prepared.spec)
            model, _ = optuna_engine.train(family, params, prepared, cache, seed)
        scored = BestModel(saved.folder, saved.meta, model, saved.encoder)
        scores.append(scored.score(x_test, y_test)[0])
    return scores, best_is_baseline
