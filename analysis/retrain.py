"""Retrain a search's baseline or best configuration with other seeds (for `compare.py --repeats`).

The data, splits and preprocessing are rebuilt from the best model's
meta.json exactly as the search had them (same data seed, so the same
split); only the training seed changes, and baseline and best train with
the same epoch budget (the search's). Each retrained model is scored on the
same held-out test split as the saved one, the same way.
"""

from __future__ import annotations

from pathlib import Path

from lyrics_cifar_search.runners.best_model import BestModel, load_best
from lyrics_cifar_search.runners import engines, prepare
from lyrics_cifar_search.runners.prepare import DataOptions
from lyrics_cifar_search.search_spaces import get_family


def retrain(family_name: str, results_dir: str | Path, k: int, with_artist: bool = False,
            which: str = "best") -> tuple[list[dict[str, float]], bool]:
    """Test scores of the search's best (or baseline) configuration retrained with k new training seeds.

    Returns ([{metric: value}] per seed, whether the best configuration is the baseline's)."""
    saved = load_best(family_name, results_dir, with_artist=with_artist)
    family = get_family(family_name)
    prepared = prepare.prepare(family, DataOptions.from_meta(saved.meta, results_dir))  # the search's split
    x_test, y_test = saved.test_split(results_dir)
    epochs = saved.meta.get("epochs")  # the search's budget (None: the family's own)
    engine = engines.engine(family)
    baseline = engine.baseline(family, prepared)
    best = dict(saved.meta["hyperparameters"])
    best_is_baseline = all(baseline.get(name) == value for name, value in best.items())
    params = best if which == "best" else baseline
    scores = []
    for i in range(1, k + 1):
        model = engine.train_one(family, prepared, params, seed=saved.meta["seed"] + 1000 * i, epochs=epochs)
        scored = BestModel(saved.folder, saved.meta, model, saved.encoder)
        scores.append(scored.score(x_test, y_test)[0])
    return scores, best_is_baseline
