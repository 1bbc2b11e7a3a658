#!/usr/bin/env python
"""The study's report: comparison tables and plots, as Markdown and self-contained HTML.

    python analysis/report.py [--results-dir results]

Runs the comparison (analysis/compare.py), then writes
  results/report.md, results/report.html (images embedded: opens anywhere)
  results/report_files/*.png (analysis/figures.py):
    best_vs_baseline_<task>.png   best and baseline validation score per family
    curves_<search>.png           learning curves of each search's best trial
    confusion_<task>.png          confusion matrix of each task's best model on its test set
    history_<search>.png          every trial's score by trial id, and the best so far
    importance_<search>.png       hyperparameter importances (fANOVA; from 10 finished trials on)
    parallel_<search>.png, slice_<search>.png   Optuna's parallel-coordinate and slice plots
    pareto_<search>.png     a Pareto search's front (--objective a,b): Optuna's plot_pareto_front
    reconstructions.png           the best autoencoder's sample reconstructions

A headline per task, the main columns of each table (all of them in the
CSVs), the departures from the earlier study and each search's provenance.
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pandas as pd

from lyrics_cifar_search.analysis import compare, figures
from lyrics_cifar_search.runners import best_store, search_summary, trials_table
from lyrics_cifar_search.suite_common import (CANNOT_WRITE, UserError, atomic, console, error_line, tables,
                                              write_error_line)
from lyrics_cifar_search.suite_common.process import tune_this_process
# the sections on the data and on the earlier study (report_data.py, report_study.py)
from lyrics_cifar_search.analysis.report_data import data_lines, provenance_lines
from lyrics_cifar_search.analysis.report_study import departures, earlier_study_numbers

if TYPE_CHECKING:
    from lyrics_cifar_search.search_spaces import Family

# The key columns, narrow enough to read without scrolling at 1,400 px (every column is in the CSVs)
SHOWN_COLUMNS = ["family", "variant", "trials", "baseline (val)", "best (val)", "selected gain (val)",
                 "test accuracy (95 % CI)", "baseline (test)", "test gain (p)", "test macro-F1", "test MSE",
                 "majority (test)", "beats majority (p)"]


def shown_table(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison table's key columns, the test interval and the McNemar p-value in one cell each."""
    def num(v, fmt=".4f"):
        return format(v, fmt) if pd.notna(v) else ""
    rows = []
    for _, r in table.iterrows():
        row = {"family": r["family"], "variant": r["variant"], "trials": r.get("trials_finished"),
               "baseline (val)": num(r.get("baseline_score", np.nan)), "best (val)": num(r.get("best_score", np.nan)),
               "selected gain (val)": num(r.get("gain", np.nan), "+.4f")}
        if pd.notna(r.get("test_accuracy", np.nan)):
            row["test accuracy (95 % CI)"] = (f"{r['test_accuracy']:.4f} ({r['test_accuracy_low']:.3f}–"
                                              f"{r['test_accuracy_high']:.3f})")
        row["baseline (test)"] = num(r.get("baseline_test_accuracy", np.nan))
        if pd.notna(r.get("test_gain_p", np.nan)):
            row["test gain (p)"] = f"{r['test_gain']:+.4f} (p = {r['test_gain_p']:.2g})"
        row["test macro-F1"] = num(r.get("test_macro_f1", np.nan))
        row["test MSE"] = num(r.get("test_reconstruction_mse", np.nan), ".5f")
        row["majority (test)"] = num(r.get("majority_test_accuracy", np.nan))
        if pd.notna(r.get("beats_majority_p", np.nan)):
            row["beats majority (p)"] = f"{'yes' if r['beats_majority'] in (True, 'True') else 'no'} " \
                                        f"(p = {r['beats_majority_p']:.2g})"
        rows.append(row)
    out = pd.DataFrame(rows)
    return out[[c for c in SHOWN_COLUMNS if c in out and (out[c].astype(str) != "").any()]]


def headline(table: pd.DataFrame, task: str) -> list[str]:
    """One paragraph: the task's best classifier, its test accuracy with its interval, its gain over the
    earlier study's baseline, and the majority-class reference."""
    scored = table[table["objective"] == "val_accuracy"].dropna(subset=["test_accuracy"]) \
        if {"objective", "test_accuracy"} <= set(table) else table.iloc[:0]
    if scored.empty:
        return []
    top = scored.loc[scored["best_score"].idxmax()]
    text = (f"**{task}: `{top['family']}` ({top['variant']})** was selected on validation accuracy "
            f"({top['best_score']:.3f}; the earlier study's configuration scored {top['baseline_score']:.3f} there, "
            "but the best of several runs on one validation split is what the search selected on, not an "
            f"effect). On the held-out test set ({top['test_rows']:.0f} rows) it scores **{top['test_accuracy']:.3f}** "
            f"(95 % interval {top['test_accuracy_low']:.3f}-{top['test_accuracy_high']:.3f})")
    if pd.notna(top.get("test_gain_p", np.nan)):
        if top.get("best_is_baseline") in (True, "True"):
            text += "; it is the baseline itself: the search found nothing better on validation."
        else:
            text += (f" against the baseline's **{top['baseline_test_accuracy']:.3f}** on the same rows: "
                     f"{top['test_gain']:+.3f} (paired exact McNemar, p = {top['test_gain_p']:.2g}; "
                     + ("significant" if top["test_gain_p"] < 0.05 else "**not** significant") + " at 0.05).")
    else:
        text += "; the baseline's model was not saved (a search made before it was), so no paired comparison."
    if pd.notna(top.get("trials_at_majority_rate", np.nan)):
        text += (f" Its validation score is exactly always answering the most frequent class's, as for "
                 f"{int(top['trials_at_majority_rate'])} finished trials: the pick among them is a tie-break, "
                 "not a finding.")
    if "majority_test_accuracy" in top and pd.notna(top["majority_test_accuracy"]):
        beats = top.get("beats_majority")
        text += (f" Always answering the most frequent class scores {top['majority_test_accuracy']:.3f} on test; "
                 "the model " + ("is" if beats is True or beats == "True" else "is **not**")
                 + f" significantly better than that (one-sided exact McNemar, p = {top['beats_majority_p']:.2g}; "
                 "significant below 0.05).")
    return [text, ""]


def transfer_note(table: pd.DataFrame) -> list[str]:
    """Block 2's headline says whether transfer beat training from scratch: the best trial's source, and its
    test score beside the other kind's where a saved model gives one (the baseline is the study's transfer)."""
    t = table[table["family"] == "cifar_transfer"].dropna(subset=["test_accuracy"]) \
        if {"family", "test_accuracy"} <= set(table) else table.iloc[:0]
    if t.empty:
        return []
    r = t.iloc[0]
    source = dict(kv.split("=", 1) for kv in str(r.get("best_hyperparameters", "")).split("; ") if "=" in kv) \
        .get("source", "both")
    interval = f"{r['test_accuracy']:.3f} ({r['test_accuracy_low']:.3f}-{r['test_accuracy_high']:.3f})"
    if source == "none":
        text = ("**Transfer did not win on block 2**: the best block-2 trial is trained from scratch (`source=none`, "
                f"the same architecture with random weights), test accuracy {interval}")
        if pd.notna(r.get("baseline_test_accuracy", np.nan)):
            text += (f"; the earlier study's transfer model (trial 0) scores {r['baseline_test_accuracy']:.3f} on "
                     f"the same rows (paired exact McNemar p = {r['test_gain_p']:.2g})")
    else:
        text = (f"**Transfer won on block 2 on validation**: the best block-2 trial transfers (`source={source}`), "
                f"test accuracy {interval}; `comparison_cifar_transfer.csv` has the best from-scratch trial's "
                "validation score beside it")
    lines = [text + ".", ""]
    if pd.notna(r.get("scratch_test_accuracy", np.nan)):
        a, b, p = r["transfer_test_accuracy"], r["scratch_test_accuracy"], r["transfer_vs_scratch_p"]
        verdict = ("transfer beat training from scratch" if a > b and p < 0.05 else
                   "training from scratch beat transfer" if b > a and p < 0.05 else
                   "no significant difference between transfer and training from scratch")
        lines += [f"**Transfer vs from scratch on block 2 (test, like for like)**: the earlier study's transfer "
                  f"model (trial 0) scores {a:.3f} ({r['transfer_test_accuracy_low']:.3f}-"
                  f"{r['transfer_test_accuracy_high']:.3f}), the same architecture from random weights (trial 1) "
                  f"{b:.3f} ({r['scratch_test_accuracy_low']:.3f}-{r['scratch_test_accuracy_high']:.3f}), on the "
                  f"same rows: {verdict} (paired exact McNemar p = {p:.2g}).", ""]
    return lines


def space_lines(folder: Path, trials: pd.DataFrame, best: pd.Series, objective: tuple[str, str]) -> list[str]:
    """The search's ranges (from the distributions its trials were drawn from) beside the baseline's and the
    best trial's values."""
    study = figures.search_study(folder, trials, objective)
    distributions: dict[str, Any] = {}  # name -> its Categorical, Int or Float distribution
    for t in study.trials:
        distributions.update(t.distributions)
    base = tables.baseline(trials)
    rows = []
    for name, dist in distributions.items():
        if hasattr(dist, "choices"):
            what = ", ".join(str(c) for c in dist.choices)
        else:
            what = f"{dist.low:.4g} to {dist.high:.4g}" + (" (log)" if getattr(dist, "log", False) else "")
        baseline = base[f"hp_{name}"].iloc[0] if len(base) and f"hp_{name}" in base else ""
        rows.append({"hyperparameter": name, "searched over": what,
                     "baseline (earlier study)": "" if pd.isna(baseline) else compare._short(baseline),
                     f"best (trial {best['trial_id']})" if best else "best":
                         compare._short(best["hyperparameters"].get(name, "")) if best else ""})
    if not rows:
        return []
    return ["Search space, the baseline and the best configuration:", "", pd.DataFrame(rows).to_markdown(index=False),
            ""]


def md_image(path: Path, root: Path) -> str:
    return f"![{path.stem}]({path.relative_to(root).as_posix()})"


def build_report(results_dir: str | Path = "results") -> tuple[Path, Path, list[Path]]:
    """The report's sections in the order they are read, each from its own function below; returns the paths of
    report.md, report.html and the PNG plots."""
    root = Path(results_dir)
    scored: dict = {}  # (family, variant) -> its scored best model
    tables = compare.compare(results_dir, scored=scored)
    out = root / "report_files"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    folders = compare.search_folders(results_dir)
    lines = ["# Hyperparameter search report", ""]
    lines += data_lines(tables, folders) + HOW_TO_READ
    for task in compare.TASKS:
        lines += task_lines(task, tables, scored, root, out)
    for name in sorted(t for t in tables if t.startswith("comparison_cifar_")) + ["mcnemar", "repeats"]:
        if name in tables and not tables[name].empty:
            lines += [f"### {TABLE_TITLES.get(name, name.replace('_', ' '))}", "",
                      tables[name].to_markdown(index=False, floatfmt=".4g"), ""]
    lines += ["## Searches", ""]
    for folder, family in folders:
        lines += search_lines(folder, family, root, out)
    lines += earlier_study_numbers(tables, results_dir)
    lines += departures()
    lines += provenance_lines(folders)
    markdown_text = "\n".join(lines) + "\n"
    atomic.write_text(root / "report.md", markdown_text)
    atomic.write_text(root / "report.html", to_html(markdown_text, root))
    return root / "report.md", root / "report.html", sorted(out.glob("*.png"))


HOW_TO_READ = [
    "## How to read the tables", "",
    "- `selected gain (val)` is the best trial's validation score minus the baseline's (the earlier "
    "study's configuration, trial 0, trained with the same epoch budget): the best of N runs on the split "
    "the search selected on, so it overstates the effect. `test gain (p)` is the evidence: the best "
    "model minus the baseline's model on the same held-out test rows, with the paired exact McNemar "
    "p-value. `analysis/compare.py --repeats K --families ...` retrains both with K seeds and reports "
    "the gain with a 95 % confidence interval (table `repeats` below, when run).",
    "- `test accuracy (95 % CI)`: the best model on the held-out test set, with the 95 % Wilson interval.",
    "- `majority (test)`: always predicting the training split's most frequent class. `beats majority (p)` "
    "is whether the model is better than that on the test set (one-sided exact McNemar test; yes when "
    "p < 0.05), with the p-value.",
    ""]


def task_lines(task: str, tables: dict[str, pd.DataFrame], scored: dict, root: Path, out: Path) -> list[str]:
    """A task's section: its headline, comparison table, the models no better than the majority class, the best
    vs baseline chart, and its best classifier's confusion matrix (one per CIFAR block)."""
    table = tables.get(f"comparison_{task}")
    if table is None:
        return []
    is_demo = table["data"].astype(str).str.contains("not real data").any() if "data" in table else False
    # a headline per CIFAR block: blocks hold different classes, so no model of one is "better" than the other's
    groups = [(task, table)] if task != "cifar" else \
        [(f"cifar {v}", table[table["variant"] == v]) for v in sorted(table["variant"].unique())]
    heads = [line for label, part in groups for line in headline(part, label) + transfer_note(part)]
    lines = [f"## Task: {task}", ""] + heads + [
        shown_table(table).to_markdown(index=False), "",
        f"Every column (hyperparameters, parameter counts, times, the majority class): "
        f"`comparison_{task}.csv`.", ""]
    if "beats_majority" in table:
        weak = table[table["beats_majority"].eq(False)]
        if not weak.empty:
            lines += ["**Not significantly better than always predicting the most frequent class** "
                      "(test set): " + ", ".join(f"`{f}` ({v}, p = {p:.2g})" for f, v, p in
                                                 zip(weak["family"], weak["variant"], weak["beats_majority_p"]))
                      + ".", ""]
    chart = figures.best_vs_baseline(table, task, out, is_demo)
    if chart:
        lines += [md_image(chart, root), ""]
    # the task's best classifier on its test set
    with_test = table[table["objective"] == "val_accuracy"].dropna(subset=["test_accuracy"]) \
        if "test_accuracy" in table else table.iloc[:0]
    for variant in sorted(with_test["variant"].unique()) if task == "cifar" else ([None] if len(with_test) else []):
        part = with_test if variant is None else with_test[with_test["variant"] == variant]
        top = part.loc[part["best_score"].idxmax()]
        model = scored[top["family"], top["variant"]]  # scored by compare: its test predictions
        label = task if variant is None else f"{task}_{variant.replace(' ', '')}"
        lines += [f"Best {task} model{'' if variant is None else ' on ' + variant}: `{top['family']}` "
                  f"({top['variant']}), test accuracy {top['test_accuracy']:.4f}.", "",
                  md_image(figures.confusion(model, label, out, is_demo), root), ""]
    return lines


def search_lines(folder: Path, family: Family, root: Path, out: Path) -> list[str]:
    """One search's section: its trials, space, baseline and best, learning curves, history and Optuna's plots."""
    try:
        trials = trials_table.read_trials(folder)
    except UserError as e:
        compare.problem(str(e))
        return []
    objective = trials_table.folder_objective(folder, family)
    lines = [f"### {folder.name}", "",
             f"{len(trials)} trials ({search_summary.counts(folder, trials)}), proposed by "
             f"{search_summary.proposer(folder)}.", ""]
    best = best_store.best_meta(folder)
    said = trials_table.run_record(folder).get("verdict")
    if isinstance(said, dict) and said.get("verdict"):  # the search's own closing verdict (search.json)
        lines += [f"**Verdict: {said['verdict']}** (on the test split, as the search's summary said it).", ""]
    lines += space_lines(folder, trials, best, objective)
    is_demo = bool(best and best.get("data", {}).get("is_demo"))
    for plot in (figures.learning_curves(folder, best["trial_id"], out, is_demo) if best else None,
                 figures.optimisation_history(folder, trials, objective, out, is_demo)):
        if plot:
            lines += [md_image(plot, root), ""]
    objectives = trials_table.run_record(folder).get("objectives")
    if objectives:  # a Pareto search: its front, and what the tables rank it by
        front = figures.pareto_front(folder, out, is_demo)
        lines += ([md_image(front, root), ""] if front else []) + [
            f"A Pareto search of {', '.join(n for n, _ in objectives)} (trials.csv's `pareto` column marks the "
            f"front); the tables, best/ and the plots below take the best {objective[0]}, the first objective "
            f"(ties: the next).", ""]
    plots, notes = _safe_optuna_plots(folder, figures.search_study(folder, trials, objective), out, is_demo)
    lines += [md_image(plot, root) for plot in plots] + [""] + notes + ([""] if notes else [])
    recon = folder / "best" / "reconstructions.png"
    if recon.exists():
        shutil.copy(recon, out / "reconstructions.png")
        lines += [md_image(out / "reconstructions.png", root), ""]
    return lines


# The small tables' headings, for a reader (their file names stay as they are: comparison_cifar_loss.csv, ...)
TABLE_TITLES = {
    "comparison_cifar_activation": "CIFAR, block 1: activation functions (best, and at equal effort)",
    "comparison_cifar_loss": "CIFAR, block 1: loss functions (best, and at equal effort)",
    "comparison_cifar_skip": "CIFAR, block 1: skip connections (best, and at equal effort)",
    "comparison_cifar_transfer": "CIFAR, block 2: transferred vs trained from scratch",
    "mcnemar": "McNemar test: pairs of best models on the same test rows",
    "repeats": "Baseline vs best, retrained over several seeds",
}


def _safe_optuna_plots(folder, study, out, is_demo):
    try:
        return figures.optuna_plots(folder, study, out, is_demo)
    except Exception as e:  # noqa: BLE001 - e.g. too uniform trials for fANOVA: the rest of the report still comes
        compare.problem(f"{folder.name}: no Optuna plots ({type(e).__name__}: {e})")
        figures.plt.close("all")  # what the failed plot left open
        return [], []


def to_html(markdown_text: str, root: Path) -> str:
    """Self-contained HTML: the Markdown rendered, every PNG embedded as base64."""
    import markdown  # only when the report is written
    body = markdown.markdown(markdown_text, extensions=["tables"])

    def embed(match):
        data = base64.b64encode((root / match.group(1)).read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'
    body = re.sub(r'src="([^"]+\.png)"', embed, body)
    # wide tables scroll inside the page instead of running off it
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.4}"
             "table{border-collapse:collapse;font-size:13px;display:block;max-width:100%;overflow-x:auto}"
             "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}th{background:#f3f3f3}"
             "img{min-width:50%;max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Search report</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results-dir", default="results")
    console.add_flags(ap)
    args = ap.parse_args(argv)
    console.show(verbose=args.verbose, quiet=args.quiet)
    try:
        md, html, pngs = build_report(args.results_dir)
    except UserError as e:
        print(error_line(e), file=sys.stderr)
        return 2
    except OSError as e:  # a read-only or full results folder
        if e.errno not in CANNOT_WRITE:
            raise
        print(write_error_line(e), file=sys.stderr)
        return 2
    print(f"wrote {md}, {html} and {len(pngs)} PNG plots in {md.parent / 'report_files'}/")
    return 0


def entry_point() -> None:
    """`python analysis/report.py` and its console script."""
    tune_this_process()  # allocator and TensorFlow settings, before any framework starts
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
