"""The results schema, shared by both engines.

results/<family>[_artist]/
    trials.csv          one row per trial (columns below), rewritten atomically
    histories/trial_<id>.csv   per-epoch curves of each Keras trial
    best/               the best model and all it needs to be used again:
        model.keras | model.skops, meta.json, tokenizer.json
    keras_tuner/ | optuna.db    the engine's own state (resuming reads it)
"""

import json
import math
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, log_loss

from suite_common import UserError, atomic

METRIC_COLUMNS = ["val_accuracy", "val_loss", "val_macro_f1", "epochs_run", "best_epoch", "duration_s"]
HEAD_COLUMNS = ["trial_id", "status", "is_baseline"]
# The search's record of what it runs on (data, options, seed, objective): a
# re-run with anything different is refused (runners/search.py, check_resume).
RUN_RECORD = "search.json"
# What a search maximises unless the family says otherwise (OBJECTIVE = (name, "min"|"max")).
OBJECTIVE = ("val_accuracy", "max")
# What --objective may choose for a classifier family, with its direction.
OBJECTIVES = {"val_accuracy": "max", "val_macro_f1": "max", "val_loss": "min"}


def objective_of(family, meta=None):
    """(metric, "max"|"min") of a search: the one its run chose (meta["objective"], from --objective),
    else the family's own, else validation accuracy."""
    if meta and meta.get("objective"):
        return tuple(meta["objective"])
    return tuple(getattr(family, "OBJECTIVE", OBJECTIVE))


def folder_objective(folder, family):
    """The objective a results folder was searched with (its run record, else its best model's)."""
    for path in (Path(folder) / RUN_RECORD, Path(folder) / "best" / "meta.json"):
        try:
            return objective_of(family, json.loads(path.read_text()))
        except (OSError, ValueError, TypeError, AttributeError):
            continue
    return objective_of(family)


def best_of(rows, objective):
    """The finished, scored row with the best objective value (None if there is none)."""
    name, direction = objective
    scored = [r for r in rows if r["status"] == "COMPLETE" and r.get(name) is not None]
    return (min if direction == "min" else max)(scored, key=lambda r: r[name]) if scored else None


def trial_row(trial_id, status, is_baseline, hyperparameters, metrics, error=""):
    row = {"trial_id": trial_id, "status": status, "is_baseline": bool(is_baseline)}
    row.update({f"hp_{k}": v for k, v in hyperparameters.items()})
    row.update({k: metrics.get(k) for k in METRIC_COLUMNS})
    row.update({k: v for k, v in sorted(metrics.items()) if k not in row})  # a family's own metrics
    for k in ("epochs_run", "best_epoch"):  # Keras Tuner stores every metric as a float
        if row[k] is not None and math.isfinite(row[k]):
            row[k] = int(row[k])
    row["error"] = error
    return row


def write_trials_csv(out_dir, rows):
    """Rewrite trials.csv from the engine's state: each trial exactly once.

    Every row carries the data fingerprint of the folder's run record: the
    resume guard lets only runs on the same data add trials to a folder."""
    crash_point("before-csv")
    hp_cols = sorted({k for r in rows for k in r if k.startswith("hp_")})
    extra = sorted({k for r in rows for k in r} - set(HEAD_COLUMNS) - set(hp_cols) - set(METRIC_COLUMNS) - {"error"})
    columns = HEAD_COLUMNS + hp_cols + METRIC_COLUMNS + extra + ["error", "data_fingerprint"]
    table = pd.DataFrame(rows, columns=columns)
    table["data_fingerprint"] = run_record(out_dir).get("data_fingerprint", "")
    atomic.write_text(Path(out_dir) / "trials.csv", table.to_csv(index=False))


def run_record(out_dir):
    """The folder's run record ({} if it has none)."""
    try:
        record = json.loads((Path(out_dir) / RUN_RECORD).read_text())
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def classification_metrics(y_true, probs, n_classes):
    """Validation accuracy, cross-entropy and macro-F1 from predicted probabilities."""
    probs = np.asarray(probs, dtype="float64")
    if not np.all(np.isfinite(probs)):
        raise FloatingPointError("the model predicts NaN or infinite probabilities")
    pred = probs.argmax(axis=1)
    return {
        "val_accuracy": float(accuracy_score(y_true, pred)),
        "val_loss": float(log_loss(y_true, probs / probs.sum(axis=1, keepdims=True),
                                   labels=list(range(n_classes)))),
        "val_macro_f1": float(f1_score(y_true, pred, average="macro", labels=list(range(n_classes)),
                                       zero_division=0)),
    }


def best_meta(out_dir):
    path = Path(out_dir) / "best" / "meta.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_score(value):
    """A finite number (not a bool, not a string): what a trial's objective value must be."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) \
        and math.isfinite(value)


def best_score(out_dir, objective=OBJECTIVE):
    """The objective value best/ was saved with; None if there is no best/ yet. A best/ whose meta.json
    is unreadable or holds no such number is damaged: one clear error, since any trial could replace it."""
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


def is_better(metrics, out_dir, objective=OBJECTIVE):
    name, direction = objective
    score = metrics.get(name)
    if not is_score(score):
        return False
    best = best_score(out_dir, objective)
    if best is None:
        return True
    return score > best if direction == "max" else score < best


# Saving the best model survives a kill at any moment. A trial's model is
# first staged as a complete folder (.candidate-<trial>/), then the engine
# records the trial as finished, then the candidate replaces best/. On the
# next start, `reconcile_best` promotes a candidate whose trial was recorded
# as finished and drops one whose trial was not (that trial runs again).
def stage_best(out_dir, trial_id, write_model, meta, artifacts):
    """Write a complete best/ candidate for a trial; return its folder."""
    cand = Path(out_dir) / f".candidate-{trial_id}"
    if cand.exists():
        shutil.rmtree(cand)
    cand.mkdir(parents=True)
    write_model(cand)
    for name, text in artifacts.items():
        atomic.write_text(cand / name, text)
    crash_point("candidate-written")
    atomic.write_text(cand / "meta.json", json.dumps(meta, indent=2, default=_json_default))
    return cand


def promote(out_dir, candidate, objective=OBJECTIVE):
    """Make a staged candidate best/, unless a better one got there first (another worker)."""
    import fcntl
    crash_point("before-promote")
    with open(Path(out_dir) / ".best.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # workers promote one at a time
        meta = json.loads((Path(candidate) / "meta.json").read_text())
        if is_better(meta["metrics"], out_dir, objective):
            atomic.replace_dir(candidate, Path(out_dir) / "best")
        else:
            shutil.rmtree(candidate)


def reconcile_best(out_dir, finished, objective=OBJECTIVE):
    """Finish or drop candidates left by a killed run.

    finished: {trial_id: objective value} of the trials the engine recorded
    as complete."""
    atomic.recover_dir(Path(out_dir) / "best")
    best_score(out_dir, objective)  # a damaged best/meta.json is reported before any trial runs
    for cand in sorted(Path(out_dir).glob(".candidate-*")):
        meta = None
        try:
            meta = json.loads((cand / "meta.json").read_text())
        except (OSError, ValueError):
            pass
        tid = meta and str(meta["trial_id"])
        keys = {str(k): v for k, v in finished.items()}
        if meta and tid in keys and _same(keys[tid], meta["metrics"].get(objective[0])) \
                and is_better(meta["metrics"], out_dir, objective):
            promote(out_dir, cand, objective)
        else:
            shutil.rmtree(cand)


def _same(a, b):
    return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


# Ctrl-C asks the search to stop after the trial in progress (the CLI's
# SIGINT handler sets this); the engines check it between trials.
STOP = threading.Event()
# Set by an engine when --time-budget ended the search before --max-trials.
BUDGET_REACHED = threading.Event()


def out_of_time(deadline):
    """True (and noted) once a --time-budget deadline (time.time() value, or None) has passed."""
    if deadline is not None and time.time() >= deadline:
        BUDGET_REACHED.set()
        return True
    return False


_crash_hits = {}


def crash_point(name):
    """Fault injection for the reliability tests: SEARCH_SUITE_CRASH_AT=name dies here, like kill -9
    (with SEARCH_SUITE_CRASH_SKIP=k, at the (k+1)-th pass only; with SEARCH_SUITE_CRASH_WORKER=i, only
    in worker i of --workers)."""
    if os.environ.get("SEARCH_SUITE_CRASH_AT") == name and \
            os.environ.get("SEARCH_SUITE_CRASH_WORKER", os.environ.get("SEARCH_SUITE_WORKER_INDEX")) \
            == os.environ.get("SEARCH_SUITE_WORKER_INDEX"):
        _crash_hits[name] = _crash_hits.get(name, 0) + 1
        if _crash_hits[name] > int(os.environ.get("SEARCH_SUITE_CRASH_SKIP", "0")):
            os._exit(137)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return str(o)


class Progress:
    """Prints 'trial n of N | score | best so far | elapsed | left' lines."""

    def __init__(self, family, total, done_before, objective=OBJECTIVE):
        self.family, self.total, self.done_before = family, total, done_before
        self.objective = objective[0]
        self.start = time.time()
        self.finished_here = 0

    def trial_done(self, n_done, status, score, best, best_id):
        self.finished_here += 1
        elapsed = time.time() - self.start
        left = (self.total - n_done) * elapsed / self.finished_here
        score_s = f"{self.objective} {score:.4f}" if score is not None else status
        best_s = f"best {best:.4f} (trial {best_id})" if best is not None else "no finished trial yet"
        print(f"[{self.family}] trial {n_done} of {self.total} {status}: {score_s} | {best_s} | "
              f"elapsed {_hms(elapsed)} | ~{_hms(left)} left", flush=True)


def _hms(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def log(msg):
    print(msg, file=sys.stderr, flush=True)
