"""What the trials table and the families' comparison tables share: finished trials, the best of a group (pandas).

A family that answers the earlier study's questions in small tables (cifar_cnn: best score per activation,
loss and skip setting; cifar_transfer: transferred vs from scratch) declares `comparison_tables(trials,
objective, direction)`; the engine writes them beside trials.csv and analysis/compare.py gathers them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from lyrics_cifar_search.suite_common.status import SCORED, Status

if TYPE_CHECKING:  # pandas: the tables' type, for the type checker only (imported by whoever reads a table)
    import pandas as pd


def finished(trials: pd.DataFrame, objective: str) -> pd.DataFrame:
    """The COMPLETE trials of a trials.csv table that have an `objective` score."""
    if objective not in trials:
        return trials.iloc[:0]
    return trials[(trials["status"] == Status.COMPLETE) & trials[objective].notna()]


def baseline(trials: pd.DataFrame) -> pd.DataFrame:
    """The rows of a trials.csv table that are the baseline (is_baseline: the first trial, the earlier study's
    configuration, as the engine tagged it when it ran); empty if there is none."""
    return trials[trials["is_baseline"].astype(bool)]


def best_index(scores: pd.Series, direction: str) -> Any:
    """The index label of the best of a Series of scores ("max" or "min" is better)."""
    return scores.idxmax() if direction == "max" else scores.idxmin()


def ended(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials of a trials.csv table that ended with a score: COMPLETE and PRUNED (a pruned trial is effort
    spent on its group, though its value is from fewer epochs and never the group's best)."""
    if "status" not in trials:
        return trials.iloc[:0]
    return trials[trials["status"].isin(SCORED)]


def one_factor_trial(trials: pd.DataFrame, name: Optional[str] = None, value: Any = None) -> Optional[pd.Series]:
    """The finished row that is the earlier study's model for a setting: the baseline (trial 0) with no name; with
    one, the row whose hyperparameters are the baseline's but `name` = `value` (a fixed one-factor trial: cifar_cnn
    runs the study's tanh and sigmoid-output models so); the baseline itself where `value` is its own. None where
    the search ran no such trial."""
    if "status" not in trials or "is_baseline" not in trials:
        return None
    done = trials[trials["status"] == Status.COMPLETE]
    base = done[done["is_baseline"].astype(str) == "True"]
    if base.empty:
        return None
    if name is None:
        return base.iloc[0]
    hp = [c for c in done.columns if c.startswith("hp_")]
    if f"hp_{name}" not in hp:
        return None
    wanted = base.iloc[0][hp].astype(str).copy()
    wanted[f"hp_{name}"] = str(value)
    match = done[(done[hp].astype(str) == wanted).all(axis=1)]
    return match.iloc[0] if len(match) else None


def at_equal_effort(trials: pd.DataFrame, groups: pd.Series, objective: str, direction: str,
                    hp: Optional[str] = None) -> tuple[Any, int]:
    """One row per group (a Series of group labels, indexed like trials): the best over all its complete trials;
    the best at equal effort, over its first trials (trial order) within the epochs the least-trained group spent
    in all (its first trial always; pruned trials count their epochs, not as whole trials; without epochs, the
    smallest group's number of trials), with the trials and epochs that best stands on beside those of all the
    group's trials; and, with
    hp (the hyperparameter the groups are values of), the earlier study's own model for the group, the one-factor
    trial (one_factor_trial), so each row has the study's model beside the best found. A group searched more
    often is otherwise favoured just by having had more tries."""
    done = ended(trials)
    done = done.assign(_group=groups.reindex(done.index)).dropna(subset=["_group"])
    if done.empty:
        return done.iloc[:0], 0
    done = done.sort_values("trial_id", key=lambda ids: ids.astype(int))
    has_epochs = "epochs_run" in done and done["epochs_run"].notna().all()
    if has_epochs:
        budget = int(done.groupby("_group")["epochs_run"].sum().min())
    k = int(done.groupby("_group").size().min())
    rows = []
    for group, part in done.groupby("_group", sort=False):
        complete = part[(part["status"] == Status.COMPLETE) & part[objective].notna()]
        # the first trials within the budget (a group's first trial always: its one try)
        if has_epochs:
            spent = part["epochs_run"].cumsum()
            first = part[(spent <= budget) | (spent == spent.iloc[0])]
        else:
            first = part.iloc[:k]
        first_complete = first[(first["status"] == Status.COMPLETE) & first[objective].notna()]
        row = {"group": group, "trials": len(part), "pruned": int((part["status"] == Status.PRUNED).sum()),
               "epochs": int(part["epochs_run"].fillna(0).sum()) if "epochs_run" in part else None,
               f"best_{objective}": None, "best_trial": None,
               f"best_{objective}_at_equal_effort": None, "equal_effort_trials": len(first),
               "equal_effort_epochs": int(first["epochs_run"].sum()) if has_epochs else None}
        if hp is not None:
            study = one_factor_trial(trials, hp, group)
            row.update({f"study_model_{objective}": study[objective] if study is not None else None,
                        "study_model_trial": study["trial_id"] if study is not None else None})
        if len(complete):
            best = complete.loc[best_index(complete[objective], direction)]
            row.update({f"best_{objective}": best[objective], "best_trial": best["trial_id"]})
        if len(first_complete):
            row[f"best_{objective}_at_equal_effort"] = first_complete[objective].max() if direction == "max" \
                else first_complete[objective].min()
        rows.append(row)
    return rows, (budget if has_epochs else k)
