#!/usr/bin/env python
"""Collect every search in results/ into comparison tables (CSV and Markdown).

    python analysis/compare.py [--results-dir results]
    python analysis/compare.py --repeats 5 --families lyrics_lstm,lyrics_tfidf_logreg

Writes, for every results/<family>[_artist]/ present:
  results/comparison_lyrics.csv, results/comparison_cifar.csv   one row per family and variant
  results/comparison_cifar_{activation,loss,skip,transfer}.csv   the Task 2 sub-comparisons
  results/mcnemar.csv        are the best two models of each task different on the test set?
  results/repeats.csv        (--repeats K) the best configurations retrained with K seeds
and each table as .md beside it. A folder that cannot be read gets one line
naming the problem; the other families are still compared.

`gain` is best_score - baseline_score in the objective's units: positive is
better for accuracy and macro-F1, negative for a loss or the autoencoder's
reconstruction MSE. Without --repeats it compares two single training runs
on one validation split; `--repeats K` retrains the baseline and the best
with K training seeds on the same split and reports the gain in test score
with a 95 % confidence interval. Every test accuracy carries its 95 % Wilson
interval, and every classifier row the majority-class reference: the
accuracy and macro-F1 of always predicting the training split's most
frequent class, and whether the model beats it on the test set (one-sided
exact McNemar test, p < 0.05).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import pandas as pd

from lyrics_cifar_search import search_spaces
from lyrics_cifar_search.runners import trials_table
from lyrics_cifar_search.runners.best_model import load_best
from lyrics_cifar_search.runners.search_progress import changes
from lyrics_cifar_search.runners.search_summary import baseline_on_test
from lyrics_cifar_search.suite_common import (CANNOT_WRITE, UserError, atomic, command, console, error_line,
                                              significance, tables, write_error_line)
from lyrics_cifar_search.suite_common.process import tune_this_process
from lyrics_cifar_search.suite_common.status import Status

if TYPE_CHECKING:
    from lyrics_cifar_search.runners.best_model import BestModel
    from lyrics_cifar_search.search_spaces import Family

TASKS = ("lyrics", "cifar")


def problem(msg: str) -> None:
    print(f"problem: {msg}", file=sys.stderr, flush=True)


def search_folders(results_dir: str | Path) -> list[tuple[Path, Family]]:
    """(folder, family module) for every results/<family>[_artist]/ with a trials.csv."""
    found = []
    for folder in sorted(Path(results_dir).iterdir()) if Path(results_dir).is_dir() else []:
        if not folder.is_dir() or folder.name.startswith(("_", ".")):
            continue
        name = folder.name[:-len("_artist")] if folder.name.endswith("_artist") else folder.name
        if name not in search_spaces.index():  # (read from the sources: no family module imported yet)
            continue
        if not (folder / "trials.csv").exists():
            problem(f"{folder} has no trials.csv (a search that never finished a trial?); skipped")
            continue
        found.append((folder, search_spaces.get_family(name)))
    return found


def compact_hyperparameters(row: pd.Series) -> str:
    return "; ".join(f"{c[3:]}={_short(row[c])}" for c in row.index if c.startswith("hp_") and pd.notna(row[c]))


def _short(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def summarize(folder: Path, family: Family, results_dir: str | Path) -> tuple[dict[str, Any], Optional[BestModel]]:
    """One comparison row for a search folder; test scores from its saved best model."""
    trials = trials_table.read_trials(folder)
    name, direction = trials_table.folder_objective(folder, family)
    objectives = trials_table.run_record(folder).get("objectives")  # a Pareto search: its best is the first's
    done = trials_table.finished(trials, name)
    row: dict[str, Any] = {"family": family.name, "variant": "lyrics+artist" if folder.name.endswith("_artist")
           else ("lyrics" if family.task == "lyrics" else f"block {family.block}"),
           "engine": family.engine, "objective": name,
           "trials_finished": int((trials["status"] == Status.COMPLETE).sum()),
           "trials_failed": int((trials["status"] == Status.FAIL).sum())}
    if objectives:  # the row's best is the first objective's, which the table says
        row["pareto_objectives"] = f"{','.join(n for n, _ in objectives)}: best of the first, ties by the next"
    if done.empty:
        problem(f"{folder}: no finished trial yet")
        return row, None
    base = tables.baseline(done)
    best = done.loc[trials_table.front_best_index(done, objectives) if objectives else
                    trials_table.best_index(done[name], direction)]  # best/'s trial
    row.update(baseline_score=float(base[name].iloc[0]) if len(base) else np.nan,
               best_score=float(best[name]), best_trial=best["trial_id"])
    row["gain"] = row["best_score"] - row["baseline_score"]
    row.update(best_hyperparameters=compact_hyperparameters(best), best_trial_seconds=best.get("duration_s"),
               best_epochs=best.get("epochs_run"))
    model = None
    try:
        model = load_best(family.name, results_dir, with_artist=folder.name.endswith("_artist"))
        row["parameters"] = model.meta.get("parameter_count")
        row["data"] = model.meta["data"]["source"]
        coverage = model.meta["data"].get("artist_coverage")
        if coverage:  # --with-artist: the share of rows whose artist was seen in training
            row["artist_seen_val"], row["artist_seen_test"] = coverage["val"], coverage["test"]
        scores, y, pred = model.score_test(results_dir)
        row.update(scores)
        if pred is not None:  # a classifier: its interval and the majority-class reference
            row["test_accuracy_low"], row["test_accuracy_high"] = significance.wilson(int(np.sum(pred == y)), len(y))
            row.update(significance.majority_reference(model.meta, y, pred))
        model.test_labels, model.test_predictions = y, pred
        if pred is not None:
            row["test_rows"] = len(y)
            row.update(baseline_on_test(folder, y, pred, best["trial_id"], base))
            row.update(transfer_vs_scratch(folder, y))
            majority = row.get("majority_val_accuracy")
            if majority is not None and np.isclose(row["best_score"], majority) and name == "val_accuracy":
                # the "best" is a tie-break among trials that all score what always answering one class scores
                row["trials_at_majority_rate"] = int(np.isclose(done[name], majority).sum())
    except UserError as e:
        problem(str(e))
    except Exception as e:
        problem(f"{folder}: cannot score the saved model on the test set ({type(e).__name__}: {e})")
    return row, model


def transfer_vs_scratch(folder: Path, y: np.ndarray) -> dict[str, Any]:
    """cifar_transfer's like-for-like question on test: the study's transfer model (trial 0, <search>/baseline/)
    against the same architecture trained from random weights (trial 1, kept as <search>/from_scratch/), on the
    same rows: each one's accuracy with its Wilson interval, and the exact two-sided McNemar p."""
    if not ((folder / "from_scratch" / "meta.json").exists() and (folder / "baseline" / "meta.json").exists()):
        return {}
    preds: dict[str, Any] = {}
    for name in ("baseline", "from_scratch"):
        _, labels, preds[name] = load_best(str(folder / name)).score_test(folder.parent)
        if not np.array_equal(labels, y):
            return {}
    out = {}
    for key, name in (("transfer", "baseline"), ("scratch", "from_scratch")):
        right = int(np.sum(preds[name] == y))
        out[f"{key}_test_accuracy"] = right / len(y)
        out[f"{key}_test_accuracy_low"], out[f"{key}_test_accuracy_high"] = significance.wilson(right, len(y))
    out["transfer_vs_scratch_p"] = significance.mcnemar(preds["baseline"], preds["from_scratch"], y)[2]
    return out


def mcnemar_table(rows: list[dict[str, Any]], models: list[Optional[BestModel]]) -> pd.DataFrame:
    out = []
    for task in TASKS:
        # (row, model, its test labels, its test predictions) of each classifier scored on test
        scored = [(r, m, m.test_labels, m.test_predictions) for r, m in zip(rows, models)
                  if m is not None and m.test_labels is not None and m.test_predictions is not None
                  and r.get("test_accuracy") is not None and r["family"] in search_spaces.list_families(task=task)]
        scored.sort(key=lambda rm: rm[0]["best_score"], reverse=True)
        # the best two that were scored on the same test rows
        for i in range(len(scored)):
            for j in range(i + 1, len(scored)):
                (ra, ma, ya, pa), (rb, mb, yb, pb) = scored[i], scored[j]
                if _test_set(ma) == _test_set(mb) and np.array_equal(ya, yb):
                    b, c, p = significance.mcnemar(pa, pb, ya)
                    out.append({"task": task, "model_a": f"{ra['family']} ({ra['variant']})",
                                "model_b": f"{rb['family']} ({rb['variant']})",
                                "test_accuracy_a": ra["test_accuracy"], "test_accuracy_b": rb["test_accuracy"],
                                "a_right_b_wrong": b, "a_wrong_b_right": c, "p_value": p,
                                "significant_at_0.05": p < 0.05})
                    break
            else:
                continue
            break
        if scored and not any(r["task"] == task for r in out):  # one family alone: no pair to test, said so
            out.append({"task": task, "note": f"no pair: a test needs two families scored on the same test rows "
                                              f"({len(scored)} scored here, on different rows or alone)"})
    if not out:
        out.append({"task": "", "note": "needs two families scored on the same test rows: none is yet"})
    return pd.DataFrame(out)


def _test_set(model):
    """What identifies a test split: the data and, for images, the block."""
    return model.meta["data"]["fingerprint"], model.meta.get("blocks", {}).get("block")


def sub_comparisons(folders: list[tuple[Path, Family]]) -> dict[str, pd.DataFrame]:
    """Task 2's small tables, recomputed from the trials of the families that define them."""
    tables = {}
    for folder, family in folders:
        if family.comparison_tables is not None:
            objective = trials_table.folder_objective(folder, family)
            for name, table in family.comparison_tables(trials_table.read_trials(folder), *objective).items():
                tables[name.replace("compare_", "comparison_cifar_")] = table
    return tables


def repeats(results_dir: str | Path, searches: Sequence[str], k: int) -> pd.DataFrame:
    """Retrain each search's baseline and best configuration with k training seeds on the same split;
    the gain in mean test score with a 95 % confidence interval (Welch's t)."""
    from scipy import stats  # SciPy: only for the intervals

    from lyrics_cifar_search.analysis.retrain import retrain  # Keras or scikit-learn: only for --repeats
    rows = []
    for search in searches:
        name, with_artist = (search[:-len("_artist")], True) if search.endswith("_artist") else (search, False)
        best, best_is_baseline = retrain(name, results_dir, k, with_artist, which="best")
        metric = next(iter(best[0]))  # test_accuracy, or the autoencoder's test_reconstruction_mse
        best_scores = np.array([s[metric] for s in best])
        base_scores = best_scores if best_is_baseline else np.array(
            [s[metric] for s in retrain(name, results_dir, k, with_artist, which="baseline")[0]])
        row: dict[str, Any] = {"search": search, "repeats": k, "metric": metric}
        notes = ["the best configuration is the baseline"] if best_is_baseline else []
        for label, scores in (("baseline", base_scores), ("best", best_scores)):
            deterministic = k > 1 and np.ptp(scores) == 0
            row[f"{label}_mean"] = float(np.mean(scores))
            # every seed gives the same model (e.g. logistic regression): no spread to report
            row[f"{label}_std"] = np.nan if deterministic or k < 2 else float(np.std(scores, ddof=1))
            row[f"{label}_scores"] = " ".join(f"{v:.4f}" for v in scores)
            if deterministic:
                notes.append(f"{label} deterministic (every seed gives the same model)")
        row["gain"] = row["best_mean"] - row["baseline_mean"]
        if best_is_baseline:
            low = high = 0.0
        elif k < 2:
            low = high = np.nan
        else:
            if np.ptp(best_scores) == 0 and np.ptp(base_scores) == 0:
                # both deterministic: no training-seed variance to put an interval on; what uncertainty there
                # is comes from the test sample (the comparison table's paired test_gain_p)
                low = high = np.nan
                notes.append("no training-seed variance: the gain's uncertainty is the test sample's only "
                             "(test_gain_p in the comparison table)")
            else:
                ci = stats.ttest_ind(best_scores, base_scores, equal_var=False).confidence_interval(0.95)
                low, high = ci.low, ci.high
        row.update(gain_low=float(low), gain_high=float(high), note="; ".join(notes))
        rows.append(row)
        interval = f"95 % CI {low:+.4f} to {high:+.4f}" if np.isfinite(low) else "no seed interval"
        print(f"{search}: {metric} baseline {row['baseline_mean']:.4f}, best {row['best_mean']:.4f}, gain "
              f"{row['gain']:+.4f} ({interval}) over {k} seeds"
              + (f"; {row['note']}" if row["note"] else ""), flush=True)
    return pd.DataFrame(rows)


def write_table(results_dir: str | Path, name: str, table: pd.DataFrame) -> None:
    atomic.write_text(Path(results_dir) / f"{name}.csv", table.to_csv(index=False))
    atomic.write_text(Path(results_dir) / f"{name}.md", table.to_markdown(index=False, floatfmt=".4g") + "\n")


def compare(results_dir: str | Path = "results", repeat_families: Sequence[str] = (), k: int = 0,
            scored: Optional[dict] = None) -> dict[str, pd.DataFrame]:
    """Write every table; return them as {name: DataFrame}.

    scored: a dict to receive each scored best model by (family, variant),
    with its test labels and predictions, so callers need not score again."""
    folders = search_folders(results_dir)
    if not folders:
        raise UserError(f"no search results in {results_dir}/: run e.g. `{command('search')} lyrics_lstm` first")
    rows, models = [], []
    for folder, family in folders:
        try:
            row, model = summarize(folder, family, results_dir)
        except UserError as e:
            problem(str(e))
            continue
        rows.append(row)
        models.append(model)
        if scored is not None and model is not None:
            scored[row["family"], row["variant"]] = model
    tables = {}
    for task in TASKS:
        task_rows = [r for r in rows if r["family"] in search_spaces.list_families(task=task)]
        if task_rows:
            tables[f"comparison_{task}"] = pd.DataFrame(task_rows)
    tables.update(sub_comparisons(folders))
    tables["mcnemar"] = mcnemar_table(rows, models)
    if k:
        tables["repeats"] = repeats(results_dir, repeat_families, k)
    for name, table in tables.items():
        write_table(results_dir, name, table)
    return tables


def top_trials(folder: Path, family: Family, n: int) -> pd.DataFrame:
    """The n best finished trials of a search, best first: id, objective, the hyperparameters that differ from
    the baseline's, epochs and seconds."""
    trials = trials_table.read_trials(folder)
    name, direction = trials_table.folder_objective(folder, family)
    done = trials_table.finished(trials, name).sort_values(name, ascending=direction == "min", kind="stable")
    hp = [c for c in trials if c.startswith("hp_")]
    base = trials[trials["is_baseline"].astype(bool)]
    baseline = {c[3:]: base[c].iloc[0] for c in hp if len(base) and pd.notna(base[c].iloc[0])}
    rows = []
    for _, r in done.head(n).iterrows():
        params = {c[3:]: r[c] for c in hp if pd.notna(r[c])}
        rows.append({"trial": r["trial_id"], name: r[name], "baseline": bool(r["is_baseline"]),
                     "differs from the baseline": changes(params, baseline),
                     "epochs": r.get("epochs_run"), "seconds": r.get("duration_s")})
    return pd.DataFrame(rows)


def print_top(results_dir: str | Path, names: Sequence[str], n: int) -> int:
    if n < 1:
        print("error: --top N needs N >= 1", file=sys.stderr)
        return 2
    found = [(f, fam) for f, fam in search_folders(results_dir) if not names or f.name in names]
    if not found:
        print(f"error: no search results for {', '.join(names) or 'any family'} in {results_dir}/: run e.g. "
              f"`{command('search')} lyrics_lstm` first", file=sys.stderr)
        return 2
    for folder, family in found:
        try:
            table = top_trials(folder, family, n)
        except UserError as e:
            problem(str(e))
            continue
        print(f"\n{folder.name}: the {len(table)} best of {len(trials_table.read_trials(folder))} trials")
        print(table.to_string(index=False) if not table.empty else "no finished trial yet")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results-dir", default="results")
    console.add_flags(ap)
    ap.add_argument("--repeats", type=int, default=0,
                    help="retrain the baseline and the best configuration of each named search with K seeds")
    ap.add_argument("--families", default="", help="comma-separated searches for --repeats (lyrics_lstm, "
                    "lyrics_lstm_artist for the artist variant)")
    ap.add_argument("--top", type=int, metavar="N", help="print the N best trials of each search named by --families "
                    "(all searches without it), like Keras Tuner's results_summary(), and stop")
    args = ap.parse_args(argv)
    console.show(verbose=args.verbose, quiet=args.quiet)
    if args.top is not None:
        return print_top(args.results_dir, [f for f in args.families.split(",") if f], args.top)
    try:
        if args.repeats < 0 or (args.repeats and not args.families):
            raise UserError("--repeats K needs K >= 1 and --families naming the families to retrain")
        tables = compare(args.results_dir, [f for f in args.families.split(",") if f], args.repeats)
    except UserError as e:
        print(error_line(e), file=sys.stderr)
        return 2
    except OSError as e:  # a read-only or full results folder
        if e.errno not in CANNOT_WRITE:
            raise
        print(write_error_line(e), file=sys.stderr)
        return 2
    for name, table in tables.items():
        if name in ("comparison_lyrics", "comparison_cifar") and not table.empty:
            cols = [c for c in ("family", "variant", "best_score", "gain", "test_accuracy", "test_accuracy_low",
                                "test_accuracy_high", "majority_test_accuracy", "beats_majority") if c in table]
            print(f"\n{name}:\n{table[cols].to_string(index=False)}")
    if not args.repeats:
        print("\ngain = best - baseline validation score, each a single training run; "
              "--repeats K --families ... retrains both with K seeds and gives the gain's 95 % interval")
    print(f"\ntables written to {args.results_dir}/ ({', '.join(sorted(tables))}; .csv and .md)")
    return 0


def entry_point() -> None:
    """`python analysis/compare.py` and its console script."""
    tune_this_process()  # allocator and TensorFlow settings, before any framework starts
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
