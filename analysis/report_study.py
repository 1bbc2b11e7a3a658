"""The report's sections on the earlier study: its own published numbers beside this suite's run of the same
model (same_model: the fixed trial that is the study's), and the deliberate departures from it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

from lyrics_cifar_search import studies
from lyrics_cifar_search.runners import trials_table
from lyrics_cifar_search.suite_common import UserError, tables
from lyrics_cifar_search.suite_common.status import Status


def same_model(done: pd.DataFrame, setting: str = "") -> Optional[pd.Series]:
    """The finished trial that is the earlier study's model for a reported number: the baseline (trial 0) with no
    setting; with one ("activation=tanh"), the one-factor trial (suite_common.tables.one_factor_trial)."""
    if not setting:
        return tables.one_factor_trial(done)
    name, value = setting.split("=", 1)
    return tables.one_factor_trial(done, name, value)


def earlier_study_numbers(tables: dict[str, pd.DataFrame], results_dir: str | Path) -> list[str]:
    """The earlier study's reported accuracies with their sources (studies/earlier_study_results.csv) beside this
    suite's same model (the fixed trial that is the study's: same_model) and, apart, the best found with that
    setting."""
    study = pd.read_csv(studies.path("earlier_study_results.csv"), keep_default_na=False)
    rows = []
    for _, r in study.iterrows():
        folder = Path(results_dir) / (r["family"] + ("_artist" if r["variant"] == "lyrics+artist" else ""))
        try:
            trials = trials_table.read_trials(folder)
        except UserError:
            continue
        done = trials[(trials["status"] == Status.COMPLETE)] if "val_accuracy" in trials else trials.iloc[:0]
        same = same_model(done, r["setting"]) if not done.empty else None
        if r["setting"]:
            name, value = r["setting"].split("=", 1)
            col = f"hp_{name}"
            done = done[done[col].astype(str) == value] if col in done else done.iloc[:0]
        best = done.loc[done["val_accuracy"].idxmax()] if not done.empty else None
        rows.append({"model (the earlier study's name)": r["model"], "family": r["family"], "variant": r["variant"],
                     "setting": r["setting"], "earlier study, accuracy": r["study_accuracy"],
                     "on its": r["split"], "source": r["source"],
                     "this suite, the same model: val accuracy": f"{same['val_accuracy']:.4g} (trial "
                     f"{same['trial_id']})" if same is not None else "not run (no such fixed trial)",
                     "this suite, best found with that setting": f"{best['val_accuracy']:.4g} (trial "
                     f"{best['trial_id']}, of {len(done)})" if best is not None else ""})
    if not rows:
        return []
    return ["## The earlier study's own numbers", "",
            "Accuracies the earlier study reported, each with its source and the split it was measured on "
            "(validation, test, or unknown where no kept notebook output shows it), beside this suite's run of the "
            "same model (the baseline, or the fixed trial that differs from it in the row's setting alone) and, "
            "apart, the best trial found with that setting (other hyperparameters searched too). They are the "
            "study's own numbers on its own data: a 20 % sample of the Kaggle `train.csv`, and for images 50-class "
            "CIFAR-100 blocks validated on their test images. They are not comparable to results on another data "
            "set or split.", "",
            pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"), ""]


def departures() -> list[str]:
    """The deliberate departures from the earlier study (studies/departures.md, shipped with the package; the
    README holds the same table, tests/test_first_run.py checks it)."""
    return ["## Departures from the earlier study", studies.path("departures.md").read_text().strip(), ""]
