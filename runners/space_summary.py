"""`runners/search.py FAMILY --describe`: a family's search space, like Keras Tuner's search_space_summary().

Each hyperparameter with its type, range or choices, its default (the earlier study's value: trial 0) and,
for a conditional one, when it is active. Keras Tuner declares hyperparameters while a model is built (and,
for a searched batch size, in fit()), so the space is found by building: once with every default, then once
for each other value of each choice or small integer range, which declares what only that value uses. No model is trained. An
Optuna family's space is read from trials asked of an in-memory study (nothing is fitted).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Optional, cast

import numpy as np

from lyrics_cifar_search import search_spaces

if TYPE_CHECKING:
    from lyrics_cifar_search.runners.shaping import Shape
    from lyrics_cifar_search.search_spaces import Family, KerasFamily, OptunaFamily

MAX_BUILDS = 60  # a family's choices times their values, with room to spare


class _Untrained:
    """Stands in for the model when a hypermodel's fit() runs only to declare its hyperparameters."""
    layers = ()
    optimizer = SimpleNamespace(learning_rate=1e-3)

    def fit(self, *args, **kwargs):
        return SimpleNamespace(history={"loss": [0.0]})

    def compile(self, *args, **kwargs):
        pass


def _spec(family, with_artist, folder):
    """A data spec of the study's shape: vocabulary 20,000, 300 words, 10 genres; 50-class blocks."""
    if family.task == "lyrics":
        return {"vocab_size": 20000, "seq_len": 300, "n_classes": 10, "with_artist": with_artist,
                "n_artists": 100, "pretrained": np.zeros((20000, 50), "float32")}
    spec: dict[str, Any] = {"n_classes": 50}
    if family.block == 2:  # transfer: block-1 models to transfer from (untrained baselines)
        import keras_tuner as kt  # Keras Tuner: only for a Keras family

        spec["sources"] = {}
        for source, name in family.source_families.items():
            path = Path(folder) / f"{name}.keras"
            cast("KerasFamily", search_spaces.get_family(name)).hypermodel({"n_classes": 50}).build(kt.HyperParameters()).save(path)
            spec["sources"][source] = str(path)
        spec["sources"]["cnn_skip_model"] = spec["sources"]["cnn"]  # so cnn_weights lists both choices
    return spec


def _condition(hp):
    parts = [f"{c.name} in {list(c.values)}" if len(c.values) > 1 else f"{c.name} = {c.values[0]}"
             for c in getattr(hp, "conditions", [])]
    return " and ".join(parts)


_KERAS_SPACES: dict = {}  # (family, with_artist) -> keras_space's list: a shaped search's check and its engine share it


def keras_space(family: KerasFamily, with_artist: bool = False) -> list[Any]:
    """A Keras family's hyperparameters, each its first declaration (a keras_tuner hyperparameter, with its
    conditions), in the order they were found: by building, as the module's docstring says (once a process)."""
    key = (family.name, family.module, bool(with_artist))
    if key not in _KERAS_SPACES:
        _KERAS_SPACES[key] = _build_keras_space(family, with_artist)
    return list(_KERAS_SPACES[key])


def _build_keras_space(family, with_artist):
    import keras  # Keras starts only when a Keras model is built or loaded
    import keras_tuner as kt  # Keras Tuner: only for a Keras family
    found: dict[str, Any] = {}  # name -> keras_tuner hyperparameter (its first declaration)
    builds = 0
    with tempfile.TemporaryDirectory() as folder:
        hypermodel = family.hypermodel(_spec(family, with_artist, folder))

        def declare(fixed):
            nonlocal builds
            builds += 1
            hp = kt.HyperParameters()
            hp.values.update(fixed)  # a value set before its declaration is the one used
            try:
                model = hypermodel.build(hp)
                hypermodel.fit(hp, _Untrained(), np.zeros((1, 1)), np.zeros((1,), "int32"),
                               validation_data=None, epochs=family.epochs or 1)
                del model
            except Exception:  # noqa: BLE001 - a combination the data spec cannot build: its names still count
                pass
            finally:
                keras.backend.clear_session()
            for h in hp.space:
                found.setdefault(h.name, h)

        declare({})
        tried = set()
        while builds < MAX_BUILDS:
            todo = [(h.name, v) for h in list(found.values()) for v in _tried_values(h) if v != h.default
                    and (h.name, v) not in tried]
            if not todo:
                break
            for name, value in todo[:MAX_BUILDS - builds]:
                tried.add((name, value))
                parents = {c.name: c.values[0] for c in getattr(found[name], "conditions", [])}
                declare({**parents, name: value})
    return list(found.values())


def _keras_rows(family, with_artist):
    rows = []
    for h in keras_space(family, with_artist):
        kind = type(h).__name__.lower()
        if kind in ("choice", "boolean"):
            what = ", ".join(str(v) for v in _values(h))
        elif kind == "fixed":
            what = str(h.value)
        else:
            what = f"{h.min_value} .. {h.max_value}" + (f" step {h.step}" if getattr(h, "step", None) else "") \
                + (" (log)" if getattr(h, "sampling", "linear") == "log" else "")
        rows.append((h.name, kind, what, h.default, _condition(h)))
    return rows


def _values(h):
    return [False, True] if type(h).__name__ == "Boolean" else list(h.values)


def _tried_values(h):
    """The values built to find what each declares: every choice, and an integer's every value (its ends, when
    it has over 8): lyrics_cnn's 4th conv block declares filters_4 only with conv_blocks = 4."""
    kind = type(h).__name__
    if kind in ("Choice", "Boolean"):
        return _values(h)
    if kind == "Int" and h.sampling == "linear":
        every = list(range(h.min_value, h.max_value + 1, h.step or 1))
        return every if len(every) <= 8 else [h.min_value, h.max_value]
    return []


def optuna_space(family: OptunaFamily, n_asks: int = 300) -> dict[str, tuple[Any, bool]]:
    """An Optuna family's parameters: {name: (its distribution, whether every configuration has it)}, read from
    trials asked of an in-memory study (nothing is fitted)."""
    import optuna  # Optuna: only once a search or its record is used
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen: dict[str, int] = {}  # configurations that have the parameter
    distributions: dict[str, Any] = {}
    assert family.suggest is not None  # the registry refuses an Optuna family without it
    for i in range(n_asks):
        trial = study.ask()
        family.suggest(trial)
        for name, d in trial.distributions.items():
            distributions.setdefault(name, d)
            seen[name] = seen.get(name, 0) + 1
        study.tell(trial, 0.0)
    return {name: (d, seen[name] == n_asks) for name, d in distributions.items()}


def _optuna_rows(family, n_asks=300):
    import optuna  # Optuna: only once a search or its record is used
    rows = []
    for name, (d, always) in optuna_space(family, n_asks).items():
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            kind, what = "choice", ", ".join(str(c) for c in d.choices)
        else:
            kind = "int" if isinstance(d, optuna.distributions.IntDistribution) else "float"
            what = f"{d.low} .. {d.high}" + (f" step {d.step}" if d.step not in (None, 1) else "") \
                + (" (log)" if d.log else "")
        rows.append((name, kind, what, family.defaults.get(name, "-"), "" if always else "in some configurations only"))
    return rows


def summary(family: Family, with_artist: bool = False, shape: Optional[Shape] = None) -> list[str]:
    """The lines --describe prints; with a shape (--set, --range, --choices: runners/shaping.py), the space as
    shaped, each shaped row marked."""
    rows = _keras_rows(family, with_artist) if family.engine == "keras_tuner" else _optuna_rows(family)
    if shape:
        rows = [_shaped(row, shape) for row in rows]
    engine = "Keras Tuner" if family.engine == "keras_tuner" else "Optuna"
    head = [f"{family.name}{' (with the artist)' if with_artist else ''}: {family.description}",
            f"{engine}, {family.task}; {len(rows)} hyperparameters. Default = the earlier study's value, which "
            "trial 0 runs."]
    first = family.objective[0] if family.objective else "val_accuracy"
    tail = [f"Objective: {first} ({family.objective[1] if family.objective else 'max'}); add costs (params, "
            f"predict_ms, train_s) for a Pareto search, e.g. --objective {first},params; --keep-models K keeps the "
            "K best trials' models (a Pareto search: the front's)."]
    table = [("hyperparameter", "type", "range or choices", "default", "active when")] + \
        [(n, k, w, str(d), c) for n, k, w, d, c in rows]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    lines = ["  ".join(f"{r[i]:<{widths[i]}}" for i in range(4)) + ("  " + r[4] if r[4] else "") for r in table]
    shaped = [f"Shaped: {'; '.join(shape.lines())}."] if shape else []
    return head + shaped + [""] + ["  " + line.rstrip() for line in lines] + [""] + tail


def _shaped(row, shape):
    """A --describe row under the shape: a fixed value, a narrowed range or narrowed choices, marked."""
    name, kind, what, default, when = row
    if name in shape.fixed:
        return name, kind, f"{shape.fixed[name]} (--set; was {what})", shape.fixed[name], when
    if name in shape.ranges:
        low, high = shape.ranges[name]
        return name, kind, f"{low} .. {high} (--range; was {what})", default, when
    if name in shape.choices:
        return name, kind, f"{', '.join(map(str, shape.choices[name]))} (--choices; was {what})", default, when
    return row
