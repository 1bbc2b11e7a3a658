"""What a family's comparison tables share: its finished trials and the best of a group (pandas only).

A family that answers the earlier study's questions in small tables (cifar_cnn: best score per activation,
loss and skip setting; cifar_transfer: transferred vs from scratch) declares `comparison_tables(trials,
objective, direction)`; the engine writes them beside trials.csv and analysis/compare.py gathers them.
"""


def finished(trials, objective):
    """The COMPLETE trials of a trials.csv table that have an `objective` score."""
    if objective not in trials:
        return trials.iloc[:0]
    return trials[(trials["status"] == "COMPLETE") & trials[objective].notna()]


def best_index(scores, direction):
    """The index label of the best of a Series of scores ("max" or "min" is better)."""
    return scores.idxmax() if direction == "max" else scores.idxmin()
