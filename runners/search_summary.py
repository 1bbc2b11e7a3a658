"""What a search found, said when it ends (runners/search.py): Keras Tuner's results_summary() and Optuna's
best_params / best_value, with the baseline beside them and the best model scored on its test split.

    lyrics_lstm: 10 trials on record (10 complete, 0 failed); table results/lyrics_lstm/trials.csv
      verdict   no better than the baseline (on the test split)
      best      trial 5: val_accuracy 0.6667 | batch_size=32 dropout=0.4 embedding_dim=200 ...
      baseline  trial 0 (the earlier study's model): val_accuracy 0.6250
      test      the best model: accuracy 0.6333 (95 % interval 0.4551-0.7813, 30 rows); the baseline's model
                scores 0.6000 on the same rows: +0.0333 (paired exact McNemar, p = 1); always answering 'Rock'
                scores 0.3667: the model beats it (p = 0.0039, one-sided exact McNemar)
      next      lyrics-report ...  /  lyrics-demo --family lyrics_lstm ...  /  optuna-dashboard ...

The test split is scored once, here, after the search chose its model on validation. The summary opens with
the verdict in plain words (plain_verdict(): beats the baseline, no better than the baseline, or learned nothing beyond
the majority class), which search.json keeps (`verdict`) and the report shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pandas as pd

from lyrics_cifar_search import search_spaces
from lyrics_cifar_search.runners import search_progress, trials_table
from lyrics_cifar_search.runners.prepare import LOW_ARTIST_COVERAGE, coverage_words
from lyrics_cifar_search.suite_common import UserError, command, significance, tables
from lyrics_cifar_search.suite_common.status import Status

if TYPE_CHECKING:
    from lyrics_cifar_search.runners.best_model import BestModel
    from lyrics_cifar_search.search_spaces import Family


def counts(out_dir: Path, trials: pd.DataFrame) -> str:
    """How the trials ended, and what pruning did: "8 complete, 0 failed, 2 pruned: 11 of 60 epochs saved against
    training every trial to 6; the noise margin (2 standard errors of a trial's own score beyond its pruner's
    cut) spared 3 trials the pruner's rule would have stopped"."""
    from lyrics_cifar_search.runners.policy import NOISE_Z  # Optuna: the search has run
    statuses = trials["status"].value_counts()
    said = ", ".join(f"{int(statuses.get(s, 0))} {s.lower() if s != Status.FAIL else 'failed'}"
                     for s in (Status.COMPLETE, Status.FAIL, Status.PRUNED) if s != Status.PRUNED or statuses.get(s, 0))
    pruned = trials[trials["status"] == Status.PRUNED]
    budget = trials_table.run_record(out_dir).get("epochs")
    if len(pruned) and isinstance(budget, int) and "epochs_run" in pruned:
        saved = int((budget - pruned["epochs_run"].fillna(budget)).clip(lower=0).sum())
        said += f": {saved} of {budget * len(trials)} epochs saved against training every trial to {budget}"
    spared = int(trials["spared_by_margin"].fillna(False).astype(bool).sum()) if "spared_by_margin" in trials else 0
    if trials_table.run_record(out_dir).get("pruner") not in (None, "none"):  # its noise margin (runners/policy.py)
        said += (f"; the noise margin ({NOISE_Z:g} standard errors of a trial's own score beyond its pruner's cut) "
                 f"spared {spared} {'trial' if spared == 1 else 'trials'} the pruner's rule would have stopped")
    return said


def proposer(out_dir: Path) -> str:
    """Who proposed the trials, from the run record: "Optuna study (tpe sampler, median pruner)", "Keras Tuner
    random"."""
    record = trials_table.run_record(out_dir)
    tuner, sampler = record.get("tuner"), record.get("sampler")
    if "epochs" in record and tuner in ("random", "bayesian", "hyperband"):  # a Keras family's own oracle
        return f"Keras Tuner {tuner}"
    if sampler or tuner in ("tpe", "random"):  # (an Optuna family recorded its sampler as --tuner before)
        return f"Optuna study ({sampler or tuner} sampler" + (f", {record['pruner']} pruner)" if record.get("pruner")
                                                            else ")")
    return "a tuner its run record does not name"


def _reference(out_dir, objective):
    """trials_table.chance() from the saved best model's meta.json (None if there is none)."""
    try:
        meta = json.loads((Path(out_dir) / "best" / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return trials_table.chance(meta, objective) if isinstance(meta, dict) else None


def _values(row):
    return {c[3:]: row[c] for c in row.index if c.startswith("hp_") and pd.notna(row[c])}


def front_lines(out_dir: Path, done: pd.DataFrame, first: str) -> list[str]:
    """A Pareto search's front: each trial on it with every objective, best first objective first ([] for a
    search of one objective). "best" above is the front's best in the first objective, the one tables rank by."""
    objectives = trials_table.run_record(out_dir).get("objectives")
    if not objectives or "pareto" not in done:
        return []
    front = done[done["pareto"].astype(str) == "True"]
    front = trials_table.in_objective_order(front, objectives)
    lines = [f"  front     {len(front)} of {len(done)} finished trials are Pareto-optimal in "
             f"{', '.join(f'{n} ({d})' for n, d in objectives)}; `best` is the front's best {first}:"]
    for _, row in front.iterrows():
        lines.append(f"            trial {row['trial_id']}: " + ", ".join(f"{n} {row[n]:.4g}" for n, _ in objectives)
                     + (" (baseline)" if str(row["is_baseline"]) == "True" else ""))
    return lines


def plain_verdict(versus: dict[str, Any], ref: dict[str, Any]) -> Optional[str]:
    """The search's outcome in plain words, from the test split: "learned nothing beyond always answering 'Rock'"
    (the best model does not beat the majority class, one-sided exact McNemar, p < 0.05), "beats the baseline"
    (better than the baseline's model on the same rows, paired exact McNemar, p < 0.05), else "no better than the
    baseline". None where the test gives no such comparison (an autoencoder)."""
    if ref and not ref.get("beats_majority", True):
        return f"learned nothing beyond always answering {ref['majority_class']!r}"
    if versus and not versus.get("best_is_baseline") and versus["test_gain"] > 0 and versus["test_gain_p"] < 0.05:
        return "beats the baseline"
    if not versus and ref:  # --no-baseline, or the baseline's model is missing
        return f"beats always answering {ref['majority_class']!r}; no baseline's model to compare with"
    if versus:
        return "no better than the baseline" + (" (the best is the baseline itself)"
                                                  if versus.get("best_is_baseline") else "")
    return None


def test_line(model: BestModel, results_dir: str | Path, baseline_rows: pd.DataFrame,
              said: Optional[dict[str, Any]] = None) -> str:
    """The best model's test score: accuracy with its Wilson interval, the baseline's model on the same rows
    (paired exact McNemar) and the majority-class reference, or an autoencoder's reconstruction error.
    baseline_rows: the baseline's finished row of trials.csv (none if it did not finish). said: a dict that
    gets the verdict (plain_verdict()) and the numbers behind it."""
    scores, y, pred = model.score_test(results_dir)
    if pred is None:
        return f"the best model: reconstruction MSE {scores['test_reconstruction_mse']:.5f} on {len(y)} images"
    right = int(np.sum(pred == y))
    low, high = significance.wilson(right, len(y))
    line = (f"the best model: accuracy {scores['test_accuracy']:.4f} (95 % interval {low:.4f}-{high:.4f}, "
            f"{len(y)} rows)")
    versus = baseline_on_test(Path(model.folder).parent, y, pred, model.meta["trial_id"], baseline_rows)
    if versus.get("best_is_baseline"):
        line += "; it is the baseline itself"
    elif versus:
        line += (f"; the baseline's model scores {versus['baseline_test_accuracy']:.4f} on the same rows: "
                 f"{versus['test_gain']:+.4f} (paired exact McNemar, p = {versus['test_gain_p']:.2g})")
    ref = significance.majority_reference(model.meta, y, pred)
    if ref:
        verdict = "beats it" if ref["beats_majority"] else "does not beat it significantly"
        line += (f"; always answering {ref['majority_class']!r} scores {ref['majority_test_accuracy']:.4f}: "
                 f"the model {verdict} (p = {ref['beats_majority_p']:.2g}, one-sided exact McNemar)")
    if said is not None:
        said.update(verdict=plain_verdict(versus, ref), test_accuracy=scores["test_accuracy"],
                    **{k: versus[k] for k in ("baseline_test_accuracy", "test_gain", "test_gain_p") if k in versus},
                    **{k: ref[k] for k in ("majority_class", "majority_test_accuracy", "beats_majority_p") if k in ref})
    return line


def next_commands(out_dir: Path, family: Family, results_dir: str | Path,
                  tensorboard: Optional[str] = None) -> list[str]:
    """(command, what it shows) for what a researcher runs after a search."""
    where = "" if str(results_dir) == "results" else f" --results-dir {results_dir}"
    own_input = " --lyrics '...'" + (" --artist NAME" if out_dir.name.endswith("_artist") else "") \
        if family.task == "lyrics" else " --image IMAGE"
    commands = [(f"{command('report')}{where}", "report.html: tables, curves, importances"),
                (f"{command('demo')}{where} --family {family.name}{own_input}", "the best model on your own input"),
                (f"optuna-dashboard sqlite:///{results_dir}/optuna.db",
                 "every trial (pip install 'lyrics-cifar-search[dashboard]')")]
    if tensorboard:
        commands.append((f"tensorboard --logdir {tensorboard}", "the Keras trials' curves and hyperparameters"))
    width = max(len(c) for c, _ in commands)
    return [f"{c:<{width}}  # {what}" for c, what in commands]


def summary_lines(family: Family, out_dir: str | Path, results_dir: str | Path,
                  tensorboard: Optional[str] = None) -> list[str]:
    """The lines that end a search (search.json gets the verdict: save_verdict; nothing else is written)."""
    out_dir = Path(out_dir)
    from lyrics_cifar_search.runners.policy import NOISE_Z  # Optuna: the search has run
    lines = []
    try:
        trials = trials_table.read_trials(out_dir)
    except UserError:
        return [f"{family.name}: no trial finished; nothing to summarise"]
    # ids as trials.csv and the trial lines write them (Keras Tuner's are zero-padded: "05")
    trials["trial_id"] = pd.read_csv(out_dir / "trials.csv", usecols=["trial_id"], dtype=str)["trial_id"]
    name, direction = trials_table.folder_objective(out_dir, family)
    done = trials_table.finished(trials, name)
    lines.append(f"{family.name}: {len(trials)} trials on record ({counts(out_dir, trials)}); "
                 f"table {out_dir / 'trials.csv'}")
    shape = trials_table.run_record(out_dir).get("shape")
    if shape:  # the space as the search was told to shape it (runners/shaping.py)
        from lyrics_cifar_search.runners.shaping import Shape
        lines.append(f"  shaped    {'; '.join(Shape.of_record(shape).lines())}")
    if done.empty:
        return lines + ["  no finished trial: nothing to compare"]
    objectives = trials_table.run_record(out_dir).get("objectives")
    best = done.loc[trials_table.front_best_index(done, objectives) if objectives else
                    trials_table.best_index(done[name], direction)]
    reference = _reference(out_dir, name)
    if trials_table.learned_nothing(best[name], reference, direction):
        lines.append(f"  learned   nothing beyond {reference['what']}: every finished trial is within noise of its "
                     f"{name} {reference['value']:.4f} (+/- {reference['margin']:.4f}, {NOISE_Z:g} "
                     "standard errors); try more data, more epochs (--epochs), or check the labels")
    base = tables.baseline(done)
    baseline_values = _values(base.iloc[0]) if len(base) else {}
    best_values = _values(best)
    differs = search_progress.changes(best_values, baseline_values) if baseline_values else \
        " ".join(f"{k}={v}" for k, v in best_values.items())
    lines.append(f"  best      trial {best['trial_id']}: {name} {best[name]:.4f} | {differs}")
    lines += front_lines(out_dir, done, name)
    if len(base):
        b = base.iloc[0]
        whose = "the earlier study's model" if search_spaces.is_study_family(family.name) else "the family's defaults"
        lines.append(f"  baseline  trial {b['trial_id']} ({whose}): {name} {b[name]:.4f}")
    else:
        lines.append("  baseline  not finished (trial 0 failed or was cut short)")
    if not (out_dir / "best").exists():
        return lines + ["  test      no best model saved"]
    try:
        # Keras and scikit-learn: only when a model is loaded
        from lyrics_cifar_search.runners.best_model import load_best
        model = load_best(str(out_dir / "best"))
        said: dict[str, Any] = {}
        lines.append("  test      " + test_line(model, results_dir, base, said))
        if said.get("verdict"):  # the plain verdict opens the summary; the details follow
            lines.insert(1, f"  verdict   {said['verdict']} (on the test split)")
            save_verdict(out_dir, said)
        coverage = model.meta["data"].get("artist_coverage")
        if coverage:  # --with-artist: how many rows the artist can help at all
            lines.append(f"  artists   seen in training: {coverage['val']:.0%} of the validation rows, "
                         f"{coverage['test']:.0%} of the test rows"
                         + (f" (low: {coverage_words(coverage)}, so the artist can add little)"
                            if min(coverage.values()) < LOW_ARTIST_COVERAGE else ""))
    except UserError as e:
        lines.append(f"  test      not scored: {e}")
    lines += ["  next      " + cmd if i == 0 else "            " + cmd
              for i, cmd in enumerate(next_commands(out_dir, family, results_dir, tensorboard))]
    return lines


def save_verdict(out_dir: Path, said: dict[str, Any]) -> None:
    """The verdict and its numbers into search.json (`verdict`), where the report reads it."""
    from lyrics_cifar_search.suite_common import atomic
    path = Path(out_dir) / trials_table.RUN_RECORD
    record = trials_table.run_record(out_dir)
    if record:
        clean = {k: (float(v) if isinstance(v, (np.floating, np.integer)) else v) for k, v in said.items()}
        atomic.write_text(path, json.dumps({**record, "verdict": clean}, indent=2))


def baseline_on_test(folder: Path, y: np.ndarray, best_pred: np.ndarray, best_trial: Any,
                     base: pd.DataFrame) -> dict[str, Any]:
    """The best model against the baseline's (trial 0, saved as <search>/baseline/) on the same test rows: their
    test accuracies and the exact two-sided McNemar test of the difference; what the search selected on
    (validation) is not evidence of a gain, this is."""
    if len(base) and str(base["trial_id"].iloc[0]) == str(best_trial):
        acc = float(np.mean(best_pred == y))
        return {"baseline_test_accuracy": acc, "test_gain": 0.0, "test_gain_p": 1.0, "best_is_baseline": True}
    if not (folder / "baseline" / "meta.json").exists():
        return {}
    from lyrics_cifar_search.runners.best_model import load_best  # Keras and scikit-learn: only when a model is loaded
    base_model = load_best(str(folder / "baseline"))
    _, _, base_pred = base_model.score_test(folder.parent)
    if base_pred is None:  # not a classifier's: nothing to pair
        return {}
    b, c, p = significance.mcnemar(best_pred, base_pred, y)
    return {"baseline_test_accuracy": float(np.mean(base_pred == y)),
            "test_gain": float(np.mean(best_pred == y) - np.mean(base_pred == y)),
            "test_gain_best_right_baseline_wrong": b, "test_gain_best_wrong_baseline_right": c, "test_gain_p": p,
            "best_is_baseline": False}
