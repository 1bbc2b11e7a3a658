"""One trial of a scikit-learn family: its features (fitted on the training rows, cached by the settings they
depend on), its classifier, the fitted pipeline and its validation metrics; and a Pareto search's costs of it.
Used by every trial of runners/optuna_engine.py, and by the analysis to retrain a configuration."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
from sklearn.pipeline import Pipeline

from lyrics_cifar_search.runners import trials_table

if TYPE_CHECKING:
    from lyrics_cifar_search.runners.prepare import Prepared
    from lyrics_cifar_search.search_spaces import OptunaFamily


class FeatureCache:
    """Fitted feature transformers and their matrices, by FEATURE_PARAMS setting."""

    def __init__(self, family: OptunaFamily, texts_train: Sequence[str], texts_val: Sequence[str],
                 spec: Optional[dict[str, Any]] = None) -> None:
        self.family, self.texts_train, self.texts_val, self.spec = family, texts_train, texts_val, spec or {}
        self.entries: dict[tuple, tuple[Any, Any, Any]] = {}  # (features, train matrix, val matrix)
        self.hits = self.misses = 0

    def get(self, params: dict[str, Any]) -> tuple[Any, Any, Any]:
        key = tuple((k, params.get(k)) for k in self.family.feature_params)
        if key in self.entries:
            self.hits += 1
        else:
            self.misses += 1
            assert self.family.make_features is not None  # the registry refuses an Optuna family without it
            features = self.family.make_features(params, self.spec)
            x_train = features.fit_transform(self.texts_train)
            self.entries[key] = (features, x_train, features.transform(self.texts_val))
        return self.entries[key]


def train(family: OptunaFamily, params: dict[str, Any], p: Prepared, cache: FeatureCache,
          seed: int) -> tuple[Pipeline, dict[str, Any]]:
    """Fit one configuration; return the fitted pipeline and its validation metrics.

    Used by every trial, and again by the analysis to retrain a best
    configuration with other seeds."""
    start = time.time()
    features, x_train, x_val = cache.get(params)
    if family.refine_features is not None:  # cheap settings applied on top of the cached step
        features, x_train, x_val = family.refine_features(params, features, x_train, x_val)
    assert family.make_classifier is not None  # the registry refuses an Optuna family without it
    clf = family.make_classifier(params, seed)
    clf.fit(x_train, p.y_train)
    metrics = trials_table.classification_metrics(p.y_val, _full_proba(clf, x_val, len(p.label_names)),
                                             len(p.label_names))
    metrics.update(duration_s=round(time.time() - start, 3))
    return Pipeline([("features", features), ("classifier", clf)]), metrics


def _full_proba(clf, x, n_classes):
    """predict_proba with a column for every class, also those absent from training."""
    probs = clf.predict_proba(x)
    full = np.zeros((probs.shape[0], n_classes))
    full[:, clf.classes_] = probs
    return full


def costs(model: Pipeline, names: Sequence[str], one_example: Sequence[str], metrics: dict[str, Any]) -> dict[str, Any]:
    """A Pareto search's costs of a fitted pipeline: params (parameter_count), predict_ms (predicting one raw
    validation example, features included: the median of 5 after a first call), train_s (the trial's fit)."""
    out: dict[str, Any] = {}
    if "params" in names:
        out["params"] = parameter_count(model.named_steps["classifier"])
    if "predict_ms" in names:
        out["predict_ms"] = trials_table.median_ms(lambda: model.predict(one_example))
    if "train_s" in names:
        out["train_s"] = metrics["duration_s"]
    return out


def parameter_count(clf: Any) -> int:
    """Learned numbers of a fitted estimator: weights of a linear model, nodes of a tree."""
    if hasattr(clf, "tree_"):
        return int(clf.tree_.node_count)
    return int(sum(np.size(getattr(clf, a)) for a in ("coef_", "intercept_") if hasattr(clf, a)))
