"""What the trials table and the families' comparison tables share: finished trials, the best of a group (pandas).

A family that answers the earlier study's questions in small tables (cifar_cnn: best score per activation,
loss and skip setting; cifar_transfer: transferred vs from scratch) declares `comparison_tables(trials,
objective, direction)`; the engine writes them beside trials.csv and analysis/compare.py gathers them.
"""

from lyrics_cifar_search.suite_common.status import SCORED, Status


def finished(trials, objective):
    """The COMPLETE trials of a trials.csv table that have an `objective` score."""
    if objective not in trials:
        return trials.iloc[:0]
    return trials[(trials["status"] == Status.COMPLETE) & trials[objective].notna()]


def baseline(trials):
    """The rows of a trials.csv table that are the baseline (is_baseline: the first trial, the earlier study's
    configuration, as the engine tagged it when it ran); empty if there is none."""
    return trials[trials["is_baseline"].astype(bool)]


def best_index(scores, direction):
    """The index label of the best of a Series of scores ("max" or "min" is better)."""
    return scores.idxmax() if direction == "max" else scores.idxmin()


def ended(trials):
    """The trials of a trials.csv table that ended with a score: COMPLETE and PRUNED (a pruned trial is effort
    spent on its group, though its value is from fewer epochs and never the group's best)."""
    if "status" not in trials:
        return trials.iloc[:0]
    return trials[trials["status"].isin(SCORED)]


def at_equal_effort(trials, groups, objective, direction):
    """One row per group (a Series of group labels, indexed like trials): the best over all its complete trials,
    and the best over its first k ended trials (trial order), k the smallest group's count, so groups are
    compared on the same number of trials; with how many trials, complete and pruned, and epochs each stands on.
    A group searched more often is otherwise favoured just by having had more tries."""
    done = ended(trials)
    done = done.assign(_group=groups.reindex(done.index)).dropna(subset=["_group"])
    if done.empty:
        return done.iloc[:0], 0
    done = done.sort_values("trial_id", key=lambda ids: ids.astype(int))
    k = int(done.groupby("_group").size().min())
    rows = []
    for group, part in done.groupby("_group", sort=False):
        complete = part[(part["status"] == Status.COMPLETE) & part[objective].notna()]
        first = part.iloc[:k]
        first_complete = first[(first["status"] == Status.COMPLETE) & first[objective].notna()]
        row = {"group": group, "trials": len(part), "pruned": int((part["status"] == Status.PRUNED).sum()),
               "epochs": int(part["epochs_run"].fillna(0).sum()) if "epochs_run" in part else None,
               f"best_{objective}": None, "best_trial": None,
               f"best_{objective}_at_equal_effort": None, "equal_effort_trials": k}
        if len(complete):
            best = complete.loc[best_index(complete[objective], direction)]
            row.update({f"best_{objective}": best[objective], "best_trial": best["trial_id"]})
        if len(first_complete):
            row[f"best_{objective}_at_equal_effort"] = first_complete[objective].max() if direction == "max" \
                else first_complete[objective].min()
        rows.append(row)
    return rows, k

