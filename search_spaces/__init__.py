"""The registry of model families.

Every module in this package (except the `_` building blocks) is one family
and holds its whole search space. It registers itself with `register_family`,
in the manner of timm's `@register_model`:

    @register_family("lyrics_lstm", task="lyrics", description="...", epochs=20)
    class HyperModel(LyricsHyperModel):       # a keras_tuner.HyperModel: build(hp), fit where searched
        ...

    @register_family("lyrics_tfidf_logreg", task="lyrics", engine="optuna", inputs="texts", defaults=DEFAULTS,
                     make_features=make_features, make_classifier=make_classifier)
    def suggest(trial): ...                    # an Optuna search space

`list_families(pattern, task=, engine=)` lists them and `get_family(name)`
returns one: a `KerasFamily` or an `OptunaFamily` (both a `Family`), whose
fields are the hooks its engine and the analysis use, each with its default.
Adding a family is adding one module here.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import sys
import traceback
from dataclasses import dataclass, field, fields
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, TypeVar

from lyrics_cifar_search.suite_common import UserError


@dataclass(frozen=True)
class Family:
    """What every family has: its name, its data and its tables (the engine's hooks are on the two types below)."""
    name: str  # what `runners/search.py NAME` takes
    task: str  # "lyrics" or "cifar": which data it gets
    engine: str  # "keras_tuner" or "optuna"
    description: str  # one line for --list
    inputs: str = "sequences"  # lyrics: token ids ("sequences") or cleaned texts ("texts"); cifar: "images"
    block: int = 1  # cifar: which block of classes it trains on (2: the transfer)
    targets: str = "labels"  # "images": trained to reproduce its input (an autoencoder)
    objective: Optional[tuple] = None  # its own (metric, "max"|"min"); None: a classifier (--objective)
    comparison_tables: Optional[Callable] = None  # (trials DataFrame, objective, direction) -> {name: DataFrame}
    module: str = ""  # where it is defined


@dataclass(frozen=True)
class KerasFamily(Family):
    """A Keras Tuner family: a HyperModel trained epoch by epoch."""
    hypermodel: Any = None  # a keras_tuner.HyperModel class, called with the data spec (Keras Tuner: untyped)
    epochs: Optional[int] = None  # max epochs of a trial (--epochs overrides)
    patience: Optional[int] = 5  # early stopping on validation loss, best epoch restored; None: every epoch
    first_trials: tuple = ({},)  # fixed first trials, as overrides of the defaults: trial 0 is the baseline
    kept_trials: dict = field(default_factory=dict)  # {folder: overrides}: such a trial's model is kept as
    #                                                  <search>/<folder>/ beside best/ and baseline/
    evaluate: Optional[Callable] = None  # (outputs, x_val, y_val) -> validation metrics, if not a classifier's
    save_extras: Optional[Callable] = None  # (model, prepared, folder): more files beside the best model
    source_families: dict = field(default_factory=dict)  # the transfer's block-1 sources


@dataclass(frozen=True)
class OptunaFamily(Family):
    """A scikit-learn family searched by Optuna: features, then a classifier."""
    suggest: Optional[Callable] = None  # (optuna trial) -> params
    defaults: Optional[dict] = None  # the params of trial 0, the baseline
    make_features: Optional[Callable] = None  # (params, spec) -> the feature step, cached by feature_params
    feature_params: tuple = ()  # the params the cached feature step depends on
    refine_features: Optional[Callable] = None  # (params, step, x_train, x_val) -> cheap settings on top
    make_classifier: Optional[Callable] = None  # (params, seed) -> a scikit-learn classifier


FAMILY_TYPES = {"keras_tuner": KerasFamily, "optuna": OptunaFamily}
# What --list, flag checks and data loading read from a family's source without importing it: each must be
# written as a literal (or a module constant holding one) in register_family(...). The rest are hooks.
DECLARED = ("task", "engine", "description", "inputs", "block", "epochs", "patience", "objective", "targets",
            "first_trials", "kept_trials", "source_families", "defaults", "feature_params")
# Each engine's own fields, from its type: a family of one engine that sets a field of the other is refused
# when it registers, with their names
ENGINE_FIELDS = {engine: tuple(f.name for f in fields(kind) if f.name not in {g.name for g in fields(Family)})
                 for engine, kind in FAMILY_TYPES.items()}
_REGISTRY: dict[str, Family] = {}
T = TypeVar("T")  # what register_family decorates: a HyperModel class or a suggest function
_DISCOVERED = False  # every module of the package imported


def register_family(name: str, *, task: str, description: str, engine: str = "keras_tuner",
                    **hooks) -> Callable[[T], T]:
    """Decorator: registers the decorated HyperModel class (Keras Tuner) or suggest function (Optuna)."""
    def register(obj):
        key = "hypermodel" if engine == "keras_tuner" else "suggest"
        family = _family(name, obj.__module__, {"task": task, "engine": engine, "description": description,
                                                key: obj, **hooks})
        if engine == "keras_tuner" and not family.epochs:
            raise TypeError(f"{name}: a Keras Tuner family needs epochs")
        if engine == "optuna" and not (family.defaults and family.make_features and family.make_classifier):
            raise TypeError(f"{name}: an Optuna family needs defaults, make_features and make_classifier")
        if family.module.startswith(__name__ + "."):  # one of the package's: its source must say the same
            source = Path(__path__[0]) / f"{family.module.rpartition('.')[2]}.py"
            declared = _family(name, family.module, dict(_declared(source)).get(name, {}))
            differ = [k for k in DECLARED if getattr(declared, k, None) != getattr(family, k, None)]
            if differ:
                raise TypeError(f"{source}: what {name}'s source declares differs from what it registers "
                                f"({', '.join(differ)})")
        _REGISTRY[name] = family
        return obj
    return register


def families() -> dict[str, Family]:
    """{name: Family} of every family, sorted by name (imports every family module: Keras and TensorFlow
    for the neural ones)."""
    global _DISCOVERED
    if not _DISCOVERED:
        for module in sorted(set(index().values())):
            importlib.import_module(f"{__name__}.{module}")  # it registers itself
        _DISCOVERED = True
    return dict(sorted(_REGISTRY.items()))


_INDEX: Optional[dict[str, str]] = None


def index() -> dict[str, str]:
    """{name: module} of every family, read from the modules' source without importing them, so listing
    families or naming a wrong one never starts Keras or TensorFlow."""
    global _INDEX
    if _INDEX is None:
        _INDEX = {}
        for info in pkgutil.iter_modules(__path__):
            if not info.name.startswith("_"):  # shared building blocks, not families
                for name, _ in _declared(Path(__path__[0]) / f"{info.name}.py"):
                    _INDEX[name] = info.name
    return dict(sorted(_INDEX.items()))


def _declared(path):
    """(name, {field: value}) of each register_family call in a module's source: the DECLARED fields, written
    as literals or as module constants holding literals (a TypeError if one is not: --list would otherwise
    show the field's default), and no hooks."""
    tree = ast.parse(path.read_text())
    constants = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name)}

    def literal(node):
        node = constants.get(node.id, node) if isinstance(node, ast.Name) else node
        try:
            return ast.literal_eval(node)
        except ValueError:  # a function, a class or an expression: known only once imported
            return literal

    for node in tree.body:
        for call in getattr(node, "decorator_list", []):
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "register_family" and call.args:
                written = {k.arg: literal(k.value) for k in call.keywords if k.arg in DECLARED}
                unread = [k for k, v in written.items() if v is literal]
                if literal(call.args[0]) is literal or unread:
                    raise TypeError(f"{path}: register_family's {', '.join(unread) or 'name'} must be written as a "
                                    "literal or a constant of the module holding one (listing reads the source)")
                yield literal(call.args[0]), {"engine": "keras_tuner", **written}


# --- your own families ----------------------------------------------------------------------------------------
# A family outside this package registers itself with register_family when its module is imported. Modules are
# found through the entry-point group below (the packaging convention: a package of yours declares
# [options.entry_points] lyrics_cifar_search.families = my_gru = my_package.my_gru), the environment variable
# below (module names or .py files, separated by os.pathsep) and the search's --families-from.
ENTRY_POINT_GROUP = "lyrics_cifar_search.families"
FAMILIES_ENV = "LYRICS_SEARCH_FAMILIES"
_USER_LOADED: set[str] = set()
# the suite's packages were top-level import names up to version 0.1
_BEFORE_ONE_NAME = {"suite_common", "studies", "study_data", "search_spaces", "runners", "analysis"}


def load_user_families(extra: Sequence[str] = ()) -> None:
    """Import the modules of families outside this package (entry points, LYRICS_SEARCH_FAMILIES, `extra`:
    module names or paths of .py files), each once; they register themselves. A module that cannot be imported
    is one line naming its file and line (UserError)."""
    sources = [("entry point " + ep.name, ep.value) for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    sources += [(FAMILIES_ENV, item) for item in os.environ.get(FAMILIES_ENV, "").split(os.pathsep) if item]
    sources += [("--families-from", item) for item in extra]
    for where, item in sources:
        if item in _USER_LOADED:
            continue
        try:
            if item.endswith(".py"):
                path = Path(item).expanduser().resolve()
                if not path.is_file():
                    raise UserError(f"{where}: no such file {item}")
                spec = importlib.util.spec_from_file_location(f"user_families_{path.stem}", path)
                if spec is None or spec.loader is None:
                    raise UserError(f"{where}: {item} cannot be imported as a Python module")
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(item.split(":")[0])
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - the user's code: its own error, where it happened, in one line
            frame = traceback.extract_tb(e.__traceback__)[-1]
            if isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in _BEFORE_ONE_NAME:
                raise UserError(f"{where} {item} imports {e.name} ({frame.filename}, line {frame.lineno}): the "
                                f"suite's modules are under lyrics_cifar_search since 0.2; write `from "
                                f"lyrics_cifar_search.{e.name} import ...`") from None
            raise UserError(f"{where} {item}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                            f"({frame.filename}, line {frame.lineno})") from None
        _USER_LOADED.add(item)


def _user(name):
    """A family registered from outside this package (None if there is none of that name)."""
    load_user_families()
    family = _REGISTRY.get(name)
    return family if family is not None and not family.module.startswith(__name__ + ".") else None


def _user_or_refused(name):
    """A family of the user's by that name, or a UserError naming the closest valid names."""
    family = _user(name)
    if family is None:
        names = all_names()
        close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.6)
        raise UserError(f"unknown family {name!r}" + (f"; did you mean {' or '.join(close)}?" if close else "")
                        + f" (`--list` shows all {len(names)})")
    return family


def canonical_name(name: str) -> str:
    """A family's name as registered, given in any case (LYRICS_LSTM is lyrics_lstm); unknown names unchanged."""
    if name in index():
        return name
    names = all_names()
    if name in names:
        return name
    same = [n for n in names if n.lower() == name.lower()]
    return same[0] if len(same) == 1 else name


def is_study_family(name: str) -> bool:
    """One of the earlier study's families (this package's own), not a user's."""
    return name in index()


def describe(name: str) -> Family:
    """The family's Family as its source declares it, without importing it (no Keras, no TensorFlow): its
    name, task, engine, data fields and defaults, hooks None. Enough to check flags and load its data. A
    family of your own is imported (load_user_families) and described as it registered."""
    name = canonical_name(name)
    modules = index()
    if name not in modules:
        return _user_or_refused(name)
    declared = dict(_declared(Path(__path__[0]) / f"{modules[name]}.py"))[name]
    return _family(name, f"{__name__}.{modules[name]}", declared)


def all_names() -> list[str]:
    """The study's families and those of your own that are registered."""
    load_user_families()
    return sorted(set(index()) | {n for n, f in _REGISTRY.items() if not f.module.startswith(__name__ + ".")})


def _family(name, module, given):
    """The engine's Family type with the given fields, registered or read from source (a TypeError naming any
    field of the other engine's)."""
    engine = given.get("engine", "keras_tuner")
    if engine not in ENGINE_FIELDS:
        raise TypeError(f"{name}: engine must be one of {', '.join(ENGINE_FIELDS)}, got {engine!r}")
    foreign = [k for other, names in ENGINE_FIELDS.items() if other != engine for k in names if k in given]
    if foreign:
        raise TypeError(f"{name}: {', '.join(foreign)} belong to the other engine's families; a {engine} family "
                        f"takes {', '.join(k for k in ENGINE_FIELDS[engine] if k not in ('hypermodel', 'suggest'))}")
    return FAMILY_TYPES[engine](name=name, module=module, **given)


def summaries() -> list[tuple[str, str, str, str]]:
    """[(name, task, engine, description)] of every family, without importing any of the study's (for --list);
    your own families are imported to be found."""
    return [(f.name, f.task, f.engine, f.description) for f in map(describe, all_names())]


def list_families(pattern: str = "*", task: Optional[str] = None, engine: Optional[str] = None) -> list[str]:
    """Family names matching a glob pattern, a task and an engine (no family module is imported)."""
    return [name for name, t, e, _ in summaries()
            if fnmatch(name, pattern) and task in (None, t) and engine in (None, e)]


def get_family(name: str) -> Family:
    """The Family (its name in any case); a UserError naming the closest valid families if unknown."""
    name = canonical_name(name)
    modules = index()
    if name not in modules:
        return _user_or_refused(name)
    importlib.import_module(f"{__name__}.{modules[name]}")  # only this family's module: it registers itself
    return _REGISTRY[name]
