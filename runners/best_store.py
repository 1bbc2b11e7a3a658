"""The best-model store: best/ holds the best trial's model, replaced only by a better one, safely.

Saving the best model survives a kill at any moment. A trial's model is
first staged as a complete folder (.candidate-<trial>/), then the engine
records the trial as finished, then the candidate replaces best/. On the
next start, `reconcile_best` promotes a candidate whose trial was recorded
as finished and drops one whose trial was not (that trial runs again).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from lyrics_cifar_search.runners.trials_table import OBJECTIVE, Objective, better, is_score
from lyrics_cifar_search.suite_common import UserError, atomic, provenance
from lyrics_cifar_search.suite_common.failpoints import failpoint

# one objective, or a Pareto search's list of them (the first is the one best/ is chosen by)
ObjectiveOrList = Union[Objective, Sequence[Objective]]


def best_meta(out_dir: str | Path) -> Optional[dict[str, Any]]:
    path = Path(out_dir) / "best" / "meta.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _listed(objective):
    """[(metric, direction), ...] from one objective or a Pareto search's list of them."""
    return [tuple(objective)] if isinstance(objective[0], str) else [tuple(o) for o in objective]


def best_score(out_dir: str | Path, objective: ObjectiveOrList = OBJECTIVE) -> Optional[float]:
    """The objective value best/ was saved with; None if there is no best/ yet. A best/ whose meta.json
    is unreadable or holds no such number is damaged: one clear error, since any trial could replace it."""
    objective = _listed(objective)[0]
    folder = Path(out_dir) / "best"
    if not folder.exists():
        return None
    meta = best_meta(out_dir)
    value = meta.get("metrics", {}).get(objective[0]) if isinstance(meta, dict) and \
        isinstance(meta.get("metrics"), dict) else None
    if not is_score(value):
        raise UserError(f"{folder / 'meta.json'} is damaged (no {objective[0]} recorded): restore it, or delete "
                        f"{folder} to let the best later trial replace it, or start again with --fresh")
    return value


def is_better(metrics: dict[str, Any], out_dir: str | Path, objective: ObjectiveOrList = OBJECTIVE) -> bool:
    """Whether a trial's metrics beat best/'s in the objective; a Pareto search's list of objectives: in the first,
    or equal in it and better in the next (so best/ is always on the front)."""
    objectives = _listed(objective)
    name, direction = objectives[0]
    score = metrics.get(name)
    if not is_score(score):
        return False
    best = best_score(out_dir, objectives[0])
    if best is None:
        return True
    saved: dict[str, Any] = (best_meta(out_dir) or {})["metrics"]  # best_score has read it
    for name, direction in objectives:
        mine: Any = metrics.get(name)  # a number where is_score says so
        theirs: Any = saved.get(name)
        if not (is_score(mine) and is_score(theirs)) or mine != theirs:
            return is_score(mine) and (not is_score(theirs) or better(mine, theirs, direction))
    return False


def stage_best(out_dir: str | Path, trial_id: int | str, write_model: Callable[[Path], None], meta: dict[str, Any],
               artifacts: dict[str, str], name: Optional[str] = None) -> Path:
    """Write a complete best/ candidate for a trial (or, with name, a folder of that name); return its folder."""
    cand = Path(out_dir) / (name or f".candidate-{trial_id}")
    if cand.exists():
        shutil.rmtree(cand)
    cand.mkdir(parents=True)
    write_model(cand)
    for name, text in artifacts.items():
        atomic.write_text(cand / name, text)
    failpoint("candidate-written")
    meta = {**meta, "saved_at": provenance.now()}  # beside meta["provenance"]: the run that made it
    atomic.write_text(cand / "meta.json", json.dumps(meta, indent=2, default=_json_default))
    return cand


def promote(out_dir: str | Path, candidate: str | Path, objective: ObjectiveOrList = OBJECTIVE) -> None:
    """Make a staged candidate best/, unless a better one got there first (another worker)."""
    failpoint("before-promote")
    # never through a link planted during the search (refuse_links checked the folder at its start)
    with os.fdopen(os.open(Path(out_dir) / ".best.lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                           0o644), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # workers promote one at a time
        meta = json.loads((Path(candidate) / "meta.json").read_text())
        if is_better(meta["metrics"], out_dir, objective):
            atomic.replace_dir(candidate, Path(out_dir) / "best")
        else:
            shutil.rmtree(candidate)


BASELINE = "baseline"  # <search>/baseline/: trial 0's model, for the paired test comparison with best/
BASELINE_STAGED = ".baseline-staged"


def staged_name(folder: str) -> str:
    return BASELINE_STAGED if folder == BASELINE else f".{folder}-staged"


def save_baseline(out_dir: str | Path, staged: str | Path, folder: str = BASELINE) -> None:
    """Put the baseline's model (or another kept trial's: a family's `kept_trials`) beside best/ as
    <search>/<folder>/, once its trial is recorded complete: `staged` is its best/ candidate, copied
    (promote moves that one), or a folder staged under staged_name(folder), moved."""
    out_dir, staged = Path(out_dir), Path(staged)
    if staged.name != staged_name(folder):
        copy = out_dir / staged_name(folder)
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(staged, copy)
        meta = json.loads((copy / "meta.json").read_text())
        atomic.write_text(copy / "meta.json", json.dumps({**meta, "is_baseline": folder == BASELINE}, indent=2))
        staged = copy
    atomic.replace_dir(staged, out_dir / folder)


def reconcile_best(out_dir: str | Path, finished: dict[Any, Any], objective: ObjectiveOrList = OBJECTIVE) -> None:
    """Finish or drop candidates left by a killed run.

    finished: {trial_id: objective value} of the trials the engine recorded
    as complete."""
    atomic.recover_dir(Path(out_dir) / "best")
    for old in Path(out_dir).glob("*.old"):  # a kept trial's folder (baseline/, ...) cut mid-replace
        if old.is_dir() and not old.is_symlink():
            atomic.recover_dir(old.with_name(old.name[:-len(".old")]))
    for staged in Path(out_dir).glob(".*-staged"):  # a kill before its trial was recorded
        shutil.rmtree(staged, ignore_errors=True)
    best_score(out_dir, objective)  # a damaged best/meta.json is reported before any trial runs
    for cand in sorted(Path(out_dir).glob(".candidate-*")):
        meta = None
        try:
            meta = json.loads((cand / "meta.json").read_text())
        except (OSError, ValueError):
            pass
        tid = meta and str(meta["trial_id"])
        keys = {str(k): v for k, v in finished.items()}
        if meta and tid in keys and _same(keys[tid], meta["metrics"].get(_listed(objective)[0][0])) \
                and is_better(meta["metrics"], out_dir, objective):
            promote(out_dir, cand, objective)
        else:
            shutil.rmtree(cand)


def _same(a, b):
    return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return str(o)
