"""The trials table, shared by both engines, and the rules every engine applies to it.

results/<family>[_artist]/
    trials.csv          one row per trial (columns below), rewritten atomically
    search.json         the run record: data, options, seed, objective (a different re-run is refused)
    histories/trial_<id>.csv   per-epoch curves of each Keras trial
    best/               the best model and all it needs to be used again (runners/best_store.py)
    keras_tuner/ | optuna.db    the engine's own state (resuming reads it)
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence

import numpy as np

from lyrics_cifar_search.suite_common import UserError, atomic, tables
from lyrics_cifar_search.suite_common.failpoints import failpoint
from lyrics_cifar_search.suite_common.status import Status

if TYPE_CHECKING:  # for the type checker only (pandas: imported where a table is read)
    import pandas as pd
    from lyrics_cifar_search.search_spaces import Family

METRIC_COLUMNS = ["val_accuracy", "val_loss", "val_macro_f1", "epochs_run", "best_epoch", "duration_s"]
HEAD_COLUMNS = ["trial_id", "status", "is_baseline"]
# The search's record of what it runs on (data, options, seed, objective): a
# re-run with anything different is refused (runners/search.py, check_resume).
RUN_RECORD = "search.json"
# What a search maximises unless the family says otherwise (OBJECTIVE = (name, "min"|"max")).
Objective = tuple[str, str]  # (metric, "max"|"min"), e.g. OBJECTIVE
OBJECTIVE = ("val_accuracy", "max")
# What --objective may choose for a classifier family, with its direction.
OBJECTIVES = {"val_accuracy": "max", "val_macro_f1": "max", "val_loss": "min"}
# What --objective may add after the first (a score): the costs of a model, each minimised (a Pareto search)
COSTS = {"params": "min", "predict_ms": "min", "train_s": "min"}
# A worker tells that it is alive this often (Keras Tuner: to its chief; Optuna: in the shared storage); one
# silent for a few of these has its trial handed to another worker.
HEARTBEAT_S = 4
# A search stops when this many trials in a row have failed (every engine, workers included).
MAX_CONSECUTIVE_FAILURES = 3


def failed_in_a_row(statuses: Sequence[str]) -> bool:
    """True when the last MAX_CONSECUTIVE_FAILURES ended trials (statuses in end order) all failed."""
    ended = [s for s in statuses if s in (Status.COMPLETE, Status.FAIL)][-MAX_CONSECUTIVE_FAILURES:]
    return len(ended) == MAX_CONSECUTIVE_FAILURES and all(s == Status.FAIL for s in ended)


# Which trials a table counts and which is best: the rule the families' own tables use too
finished, best_index = tables.finished, tables.best_index


def better(score: float, than: float, direction: str) -> bool:
    """Is `score` better than `than` for an objective in this direction ("max" or "min")?"""
    return score > than if direction == "max" else score < than


def objective_of(family: Family, meta: Optional[dict[str, Any]] = None) -> Objective:
    """(metric, "max"|"min") of a search: the one its run chose (meta["objective"], from --objective),
    else the family's own, else validation accuracy."""
    if meta and meta.get("objective"):
        return tuple(meta["objective"])
    return tuple(family.objective or OBJECTIVE)


def objectives_of(family: Family, meta: Optional[dict[str, Any]] = None) -> list[Objective]:
    """Every objective of a search, the first (objective_of's) first: several with --objective a,b,... (a Pareto
    search, meta["objectives"]), else the one."""
    if meta and meta.get("objectives"):
        return [tuple(o) for o in meta["objectives"]]
    return [objective_of(family, meta)]


def folder_objective(folder: str | Path, family: Family) -> Objective:
    """The objective a results folder was searched with (its run record, else its best model's)."""
    for path in (Path(folder) / RUN_RECORD, Path(folder) / "best" / "meta.json"):
        try:
            return objective_of(family, json.loads(path.read_text()))
        except (OSError, ValueError, TypeError, AttributeError):
            continue
    return objective_of(family)


def best_of(rows: Iterable[dict[str, Any]], objective: Objective) -> Optional[dict[str, Any]]:
    """The finished, scored row (a dict) with the best objective value (None if there is none)."""
    name, direction = objective
    scored = [r for r in rows if r["status"] == Status.COMPLETE and r.get(name) is not None]
    best = None
    for r in scored:
        if best is None or better(r[name], best[name], direction):
            best = r
    return best


def front_best_index(done: pd.DataFrame, objectives: Sequence[Objective]) -> Any:
    """The index of a Pareto search's best finished trial as best/ holds it: the best in the first objective,
    ties broken by the next (best_store.is_better's order), so it is on the front."""
    return in_objective_order(done, objectives).index[0]


def in_objective_order(done: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """Finished rows best first: by the first objective, ties by the next (best_store.is_better's order)."""
    return done.sort_values([n for n, _ in objectives], ascending=[d == "min" for _, d in objectives], kind="stable")


def trial_row(trial_id: int | str, status: str, is_baseline: bool, hyperparameters: dict[str, Any],
              metrics: dict[str, Any], error: str = "") -> dict[str, Any]:
    row: dict[str, Any] = {"trial_id": trial_id, "status": status, "is_baseline": bool(is_baseline)}
    row.update({f"hp_{k}": v for k, v in hyperparameters.items()})
    row.update({k: metrics.get(k) for k in METRIC_COLUMNS})
    row.update({k: v for k, v in sorted(metrics.items()) if k not in row})  # a family's own metrics
    for k in ("epochs_run", "best_epoch"):  # Keras Tuner stores every metric as a float
        if row[k] is not None and math.isfinite(row[k]):
            row[k] = int(row[k])
    row["error"] = error
    return row


def write_trials_csv(out_dir: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rewrite trials.csv from the engine's state: each trial exactly once.

    Every row carries the data fingerprint of the folder's run record: the
    resume guard lets only runs on the same data add trials to a folder."""
    import pandas as pd  # pandas: only where a table is read
    failpoint("before-csv")
    hp_cols = sorted({k for r in rows for k in r if k.startswith("hp_")})
    front = ["pareto"] if any("pareto" in r for r in rows) else []  # a Pareto search: on the front or not
    extra = sorted({k for r in rows for k in r} - set(HEAD_COLUMNS) - set(hp_cols) - set(METRIC_COLUMNS)
                   - {"error", *front})
    columns = HEAD_COLUMNS + front + hp_cols + METRIC_COLUMNS + extra + ["error", "data_fingerprint"]
    table = pd.DataFrame(rows, columns=columns)
    table["data_fingerprint"] = run_record(out_dir).get("data_fingerprint", "")
    # 12 significant digits: 0.3, not 0.30000000000000004 (a float's last bits, not a value anyone set), and
    # 64, not 64.0, where a column of whole numbers has gaps (pandas makes it float)
    atomic.write_text(Path(out_dir) / "trials.csv", table.to_csv(index=False, float_format="%.12g"))


def run_record(out_dir: str | Path) -> dict[str, Any]:
    """The folder's run record ({} if it has none)."""
    try:
        record = json.loads((Path(out_dir) / RUN_RECORD).read_text())
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, n_classes: int) -> dict[str, float]:
    """Validation accuracy, cross-entropy and macro-F1 from predicted probabilities."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss  # scikit-learn: only where its models are used
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


def median_ms(call: Callable[[], Any], repeats: int = 5) -> float:
    """The median wall time of call() in milliseconds, over `repeats` calls after a first (warm-up) one."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def is_score(value: Any) -> bool:
    """A finite number (not a bool, not a string): what a trial's objective value must be."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) \
        and math.isfinite(value)


def chance(meta: dict[str, Any], objective: str) -> Optional[dict[str, Any]]:
    """What a model that learned nothing scores on validation, and the noise around it: {"what", "value",
    "margin"} (margin: NOISE_Z standard errors at the validation size), or None where unknown. A classifier:
    always answering the training split's most frequent class (accuracy, or macro-F1); the autoencoder:
    reconstructing every image as the training split's mean image (reconstruction MSE)."""
    from lyrics_cifar_search.runners.policy import NOISE_Z  # the search's margin (Optuna: only once a search ran)
    data = meta.get("data") or {}
    if objective == "val_reconstruction_mse" and data.get("mean_image_val_mse") is not None:
        ref = data["mean_image_val_mse"]
        return {"what": "reconstructing every image as the mean training image", "value": ref["mse"],
                "margin": NOISE_Z * ref["se"]}
    counts = data.get("class_counts")
    if not counts or objective not in ("val_accuracy", "val_macro_f1") or not sum(counts.get("val", [])):
        return None
    majority = int(np.argmax(counts["train"]))
    n, n_major = sum(counts["val"]), counts["val"][majority]
    rate = n_major / n
    value = rate if objective == "val_accuracy" else 2 * n_major / (n + n_major) / len(counts["val"])
    name = (meta.get("label_names") or [str(majority)] * (majority + 1))[majority]
    return {"what": f"always answering {name!r}", "value": value,
            "margin": NOISE_Z * math.sqrt(max(value * (1 - value), 1e-12) / n)}


def learned_nothing(best: Optional[float], reference: Optional[dict[str, Any]], direction: str) -> bool:
    """Whether the best finished score is within the noise of the reference (chance()) or worse."""
    if reference is None or best is None or not is_score(best):
        return False
    if direction == "max":
        return best <= reference["value"] + reference["margin"]
    return best >= reference["value"] - reference["margin"]


def read_trials(folder: Path) -> pd.DataFrame:
    """A search folder's trials.csv as a DataFrame (unreadable, or without the results columns: a UserError)."""
    import pandas as pd  # pandas: only where a table is read
    try:
        trials = pd.read_csv(folder / "trials.csv")
    except Exception as e:
        raise UserError(f"{folder}/trials.csv is unreadable ({type(e).__name__}); re-run its search") from None
    if not {"trial_id", "status", "is_baseline"} <= set(trials.columns):
        raise UserError(f"{folder}/trials.csv lacks the results columns; re-run its search")
    return trials
