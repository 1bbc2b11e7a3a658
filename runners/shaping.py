"""Shaping a family's search space without writing a family: Keras Tuner's hp.Fixed and Optuna's
PartialFixedSampler, a narrowed range or set of choices, and Optuna's enqueue_trial, from the command line
and from Python (runners/api.py).

    --set NAME=VALUE        fixes NAME for every trial, the baseline's too
    --range NAME=LOW:HIGH   narrows a number's range (its step and log scale kept)
    --choices NAME=a,b      narrows a choice
    --enqueue FILE          configurations to run after the fixed first trials (JSON lines or CSV, one a line;
                            a configuration may name some hyperparameters only: the others are searched)

check() tests the shape against the family's space (runners/space_summary.py finds it) before anything runs:
an unknown name (with the closest names), a value outside the space, a range or choice that leaves out the
default trial 0 runs, a hyperparameter given twice, or one that is active only under a parent --set fixes
otherwise, is one line (UserError). The shape is recorded with the search (search.json), so a resume with
another shape is refused like any other changed flag.

The engines apply it: a Keras family's oracle starts from a space holding the shaped hyperparameters (Keras
Tuner keeps a hyperparameter already in the space when build() declares it again), and the enqueued
configurations join the family's fixed first trials; an Optuna family's sampler is wrapped in Optuna's
PartialFixedSampler, its suggest() sees the narrowed ranges and choices (ShapedTrial), and the enqueued
configurations are queued after the baseline.
"""

from __future__ import annotations

import csv
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from lyrics_cifar_search.suite_common import UserError


def parse_value(text: str) -> Any:
    """A value as typed: an integer, a number, true/false, or else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.strip().lower(), text)


def _pair(flag: str, item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.strip() or value == "":
        raise UserError(f"{flag} {item!r}: write NAME=VALUE{':HIGH' if flag == '--range' else ''}"
                        f"{',...' if flag == '--choices' else ''}")
    return name.strip(), value


@dataclass(frozen=True)
class Shape:
    """How a search's space is shaped: fixed values, narrowed ranges and choices, queued configurations."""
    fixed: dict = field(default_factory=dict)  # name -> value
    ranges: dict = field(default_factory=dict)  # name -> (low, high)
    choices: dict = field(default_factory=dict)  # name -> [values]
    enqueued: list = field(default_factory=list)  # [{name: value}], run after the fixed first trials

    def __bool__(self) -> bool:
        return bool(self.fixed or self.ranges or self.choices or self.enqueued)

    @classmethod
    def from_flags(cls, sets=(), ranges=(), choices=(), enqueue: Optional[str] = None) -> "Shape":
        fixed = {}
        for item in sets or ():
            name, value = _pair("--set", item)
            fixed[name] = parse_value(value)
        narrowed = {}
        for item in ranges or ():
            name, value = _pair("--range", item)
            low, sep, high = value.partition(":")
            low, high = parse_value(low), parse_value(high)
            if not sep or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
                raise UserError(f"--range {item!r}: write NAME=LOW:HIGH with two numbers")
            if low > high:
                raise UserError(f"--range {item!r}: LOW is above HIGH")
            narrowed[name] = (low, high)
        kept = {}
        for item in choices or ():
            name, value = _pair("--choices", item)
            kept[name] = [parse_value(v) for v in value.split(",")]
        return cls(fixed, narrowed, kept, read_enqueued(enqueue) if enqueue else [])

    def record(self) -> dict:
        """What search.json keeps of it (JSON), only what was given."""
        said = {"set": self.fixed, "range": {k: list(v) for k, v in self.ranges.items()}, "choices": self.choices,
                "enqueue": self.enqueued}
        return {k: v for k, v in said.items() if v}

    @classmethod
    def of_record(cls, said: Optional[dict]) -> "Shape":
        said = said or {}
        return cls(dict(said.get("set", {})), {k: tuple(v) for k, v in said.get("range", {}).items()},
                   dict(said.get("choices", {})), list(said.get("enqueue", [])))

    def lines(self) -> list[str]:
        """What it does, a phrase each: "units fixed at 32 (--set)"."""
        return ([f"{k} fixed at {v} (--set)" for k, v in self.fixed.items()]
                + [f"{k} in {lo} .. {hi} (--range)" for k, (lo, hi) in self.ranges.items()]
                + [f"{k} in {', '.join(map(str, v))} (--choices)" for k, v in self.choices.items()]
                + ([f"{len(self.enqueued)} queued configuration{'s' if len(self.enqueued) != 1 else ''} "
                    "(--enqueue)"] if self.enqueued else []))


def read_enqueued(path: str) -> list[dict]:
    """--enqueue FILE: JSON lines (one object a line) or CSV (a header of names; an empty cell leaves that
    hyperparameter to the search)."""
    file = Path(path)
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--enqueue {path}: cannot read it ({type(e).__name__}); give a JSON-lines or CSV file") \
            from None
    rows = []
    if file.suffix.lower() == ".csv":
        for row in csv.DictReader(text.splitlines()):
            rows.append({k.strip(): parse_value(v) for k, v in row.items() if k and v not in (None, "")})
    else:
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise UserError(f"--enqueue {path}, line {i}: not a JSON object; write one configuration a line, "
                                'e.g. {"units": 32}, or give a .csv file') from None
            if not isinstance(row, dict):
                raise UserError(f"--enqueue {path}, line {i}: not a JSON object")
            rows.append(row)
    if not rows:
        raise UserError(f"--enqueue {path}: no configuration in it")
    return rows


def flags_of(name: str, value: dict) -> list[str]:
    """A shaping keyword as flags: set={"units": 32} -> --set units=32; range={"lr": (1e-4, 1e-3)} -> --range
    lr=0.0001:0.001; choices={"pooling": ["avg", "max"]} -> --choices pooling=avg,max (the Python API's and a
    study plan's tables)."""
    argv = []
    for key, v in value.items():
        if name == "range":
            if not isinstance(v, (list, tuple)) or len(v) != 2:
                raise UserError(f"range {key}: give (LOW, HIGH), not {v!r}")
            text = f"{v[0]}:{v[1]}"
        elif name == "choices":
            text = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
        else:
            text = str(v)
        argv += ["--" + name, f"{key}={text}"]
    return argv


def of_entry(entry: dict) -> Shape:
    """The shape a study plan's search entry asks for (set, range and choices as tables or flag strings, enqueue a
    file)."""
    items = {}
    for name in ("set", "range", "choices"):
        value = entry.get(name)
        items[name] = flags_of(name, value)[1::2] if isinstance(value, dict) else \
            list(value) if isinstance(value, (list, tuple)) else [str(value)] if value else []
    return Shape.from_flags(items["set"], items["range"], items["choices"], entry.get("enqueue"))


# --- the family's space ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One hyperparameter as shaping sees it: kind "choice" (values), "int" or "float" (low, high), its
    default, and the parents it depends on [(name, values)] (Keras families; an Optuna family's are unknown)."""
    name: str
    kind: str
    values: tuple = ()
    low: float = 0.0
    high: float = 0.0
    default: Any = None
    conditions: tuple = ()

    def holds(self, value) -> bool:
        if self.kind == "choice":
            return value in self.values
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return self.low <= value <= self.high and (self.kind == "float" or float(value).is_integer())

    def what(self) -> str:
        return ", ".join(map(str, self.values)) if self.kind == "choice" else f"{self.low} .. {self.high}"


def family_space(family, with_artist=False) -> dict[str, Param]:
    """{name: Param} of a family's search space."""
    from lyrics_cifar_search.runners import space_summary  # Keras Tuner or Optuna: only once a shape is checked
    space = {}
    if family.engine == "keras_tuner":
        for h in space_summary.keras_space(family, with_artist):
            kind = type(h).__name__
            conditions = tuple((c.name, tuple(c.values)) for c in getattr(h, "conditions", []))
            if kind in ("Choice", "Boolean", "Fixed"):
                values = tuple([False, True] if kind == "Boolean" else [h.value] if kind == "Fixed" else h.values)
                space[h.name] = Param(h.name, "choice", values=values, default=h.default, conditions=conditions)
            else:
                space[h.name] = Param(h.name, kind.lower(), low=h.min_value, high=h.max_value, default=h.default,
                                      conditions=conditions)
        return space
    import optuna  # Optuna: an Optuna family
    for name, (d, _) in space_summary.optuna_space(family).items():
        default = family.defaults.get(name)
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            space[name] = Param(name, "choice", values=tuple(d.choices), default=default)
        else:
            kind = "int" if isinstance(d, optuna.distributions.IntDistribution) else "float"
            space[name] = Param(name, kind, low=d.low, high=d.high, default=default)
    return space


def check(shape: Shape, family, space: dict[str, Param], baseline: bool = True) -> None:
    """The shape against the family's space (family_space): one line (UserError) for the first problem."""
    def known(flag, name):
        if name not in space:
            close = difflib.get_close_matches(name, list(space), n=3)
            raise UserError(f"{flag} {name}: {family.name} has no hyperparameter {name!r}"
                            + (f"; did you mean {', '.join(close)}?" if close else "")
                            + f" (`--describe` lists its {len(space)})")
        return space[name]

    given = [("--set", n) for n in shape.fixed] + [("--range", n) for n in shape.ranges] \
        + [("--choices", n) for n in shape.choices]
    flags_of: dict[str, list[str]] = {}
    for flag, name in given:
        flags_of.setdefault(name, []).append(flag)
    for name, flags in flags_of.items():
        if len(flags) > 1:
            raise UserError(f"{name} is shaped twice ({' and '.join(flags)}): keep one")
    for name, value in shape.fixed.items():
        p = known("--set", name)
        if not p.holds(value):
            raise UserError(f"--set {name}={value}: outside its space ({p.what()}); `--describe` lists it")
    for name, (low, high) in shape.ranges.items():
        p = known("--range", name)
        if p.kind == "choice":
            raise UserError(f"--range {name}: {name} is a choice ({p.what()}), not a number: use --choices")
        if low < p.low or high > p.high:
            raise UserError(f"--range {name}={low}:{high} reaches outside its space ({p.what()})")
        if baseline and not low <= p.default <= high:
            raise UserError(f"--range {name}={low}:{high} leaves out its default ({p.default}), which trial 0 runs: "
                            "include it, fix the value with --set, or add --no-baseline")
    for name, values in shape.choices.items():
        p = known("--choices", name)
        if p.kind != "choice":
            raise UserError(f"--choices {name}: {name} is a number ({p.what()}): use --range")
        outside = [v for v in values if v not in p.values]
        if outside:
            raise UserError(f"--choices {name}: {', '.join(map(str, outside))} not among its choices ({p.what()})")
        if baseline and p.default not in values:
            raise UserError(f"--choices {name}={','.join(map(str, values))} leaves out its default ({p.default}), "
                            "which trial 0 runs: include it, fix the value with --set, or add --no-baseline")
    for i, row in enumerate(shape.enqueued, 1):
        for name, value in row.items():
            p = known(f"--enqueue (configuration {i})", name)
            if name in shape.fixed and value != shape.fixed[name]:
                raise UserError(f"--enqueue (configuration {i}): {name}={value}, where --set fixes "
                                f"{name}={shape.fixed[name]}")
            if not p.holds(value):
                raise UserError(f"--enqueue (configuration {i}): {name}={value} is outside its space ({p.what()})")
    for flag, name in given + [("--enqueue", n) for row in shape.enqueued for n in row]:
        for parent, values in space[name].conditions:
            if parent in shape.fixed and shape.fixed[parent] not in values:
                raise UserError(f"{flag} {name}: it is active only when {parent} is {' or '.join(map(str, values))}, "
                                f"and --set fixes {parent}={shape.fixed[parent]}")


# --- applying it -------------------------------------------------------------------------------------------------

def keras_hyperparameters(shape: Shape, family, with_artist=False):
    """The space a Keras family's oracle starts from: each shaped hyperparameter (a Fixed for --set, a narrowed
    Int, Float or Choice), under its conditions, after the parents it depends on. Keras Tuner keeps a
    hyperparameter already in the space when build() or fit() declares it again."""
    import keras_tuner as kt  # Keras Tuner: a Keras family
    from lyrics_cifar_search.runners import space_summary
    declared = space_summary.keras_space(family, with_artist)
    by_name = {h.name: h for h in declared}
    shaped = set(shape.fixed) | set(shape.ranges) | set(shape.choices)
    needed = set(shaped)
    for name in shaped:
        needed |= {c.name for c in getattr(by_name[name], "conditions", [])}
    hp = kt.HyperParameters()
    for h in declared:
        if h.name not in needed:
            continue
        scopes = [hp.conditional_scope(c.name, list(c.values)) for c in getattr(h, "conditions", [])]
        for scope in scopes:
            scope.__enter__()
        try:
            _declare(hp, h, shape)
        finally:
            for scope in reversed(scopes):
                scope.__exit__(None, None, None)
    return hp


def _declare(hp, h, shape):
    kind = type(h).__name__
    if h.name in shape.fixed:
        hp.Fixed(h.name, shape.fixed[h.name])
    elif h.name in shape.ranges:
        low, high = shape.ranges[h.name]
        step = getattr(h, "step", None)
        if kind == "Int":
            hp.Int(h.name, int(low), int(high), step=step or 1, sampling=h.sampling, default=h.default)
        else:
            hp.Float(h.name, float(low), float(high), step=step, sampling=h.sampling, default=h.default)
    elif h.name in shape.choices:
        hp.Choice(h.name, shape.choices[h.name], default=h.default)
    else:
        hp.merge([h])


def fixed_first_trials(shape: Shape, first_trials: tuple) -> tuple:
    """A Keras family's fixed first trials under the shape: --set wins over a fixed trial's own overrides (so the
    baseline runs the fixed values too), and the --enqueue configurations follow."""
    kept = tuple({k: v for k, v in overrides.items() if k not in shape.fixed} for overrides in first_trials)
    return kept + tuple(dict(row) for row in shape.enqueued)


class ShapedTrial:
    """An Optuna trial as an Optuna family's suggest() sees it under --range and --choices (the fixed values come
    from Optuna's PartialFixedSampler); everything else is the trial's own."""

    def __init__(self, trial, shape: Shape):
        self._trial, self._shape = trial, shape

    def __getattr__(self, name):
        return getattr(self._trial, name)

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float:
        low, high = self._shape.ranges.get(name, (low, high))
        return self._trial.suggest_float(name, float(low), float(high), **kwargs)

    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> int:
        low, high = self._shape.ranges.get(name, (low, high))
        return self._trial.suggest_int(name, int(low), int(high), **kwargs)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._trial.suggest_categorical(name, list(self._shape.choices.get(name, choices)))
