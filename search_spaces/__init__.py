"""The registry of model families.

Every module in this package is one family. It names itself with four
module-level constants and holds its whole search space:

    NAME = "lyrics_lstm"          # what `runners/search.py NAME` takes
    TASK = "lyrics"               # "lyrics" or "cifar": which data it gets
    ENGINE = "keras_tuner"        # or "optuna"
    DESCRIPTION = "one line for --list"

A Keras Tuner family defines `HyperModel(spec)`, a `keras_tuner.HyperModel`
with `build(hp)` (and `fit` where batch size is searched). An Optuna family
defines `DEFAULTS`, `suggest(trial)`, `make_features(params, texts)` and
`make_classifier(params)`. Adding a family is adding one module here.
"""

import importlib
import pkgutil
from fnmatch import fnmatch

from suite_common import UserError

_REQUIRED = ("NAME", "TASK", "ENGINE", "DESCRIPTION")


def _discover():
    families = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue  # shared building blocks, not families
        module = importlib.import_module(f"{__name__}.{info.name}")
        if all(hasattr(module, k) for k in _REQUIRED):
            families[module.NAME] = module
    return dict(sorted(families.items()))


_FAMILIES = None


def families():
    global _FAMILIES
    if _FAMILIES is None:
        _FAMILIES = _discover()
    return _FAMILIES


def list_families(pattern="*", task=None, engine=None):
    """Family names matching a glob pattern, a task and an engine."""
    return [name for name, m in families().items()
            if fnmatch(name, pattern) and task in (None, m.TASK) and engine in (None, m.ENGINE)]


def get_family(name):
    """The family's module; a UserError naming the valid families if unknown."""
    try:
        return families()[name]
    except KeyError:
        raise UserError(f"unknown family {name!r}; valid families: {', '.join(families())}") from None
