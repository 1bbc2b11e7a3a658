#!/usr/bin/env python
"""The study's report: comparison tables and plots, as Markdown and self-contained HTML.

    python analysis/report.py [--results-dir results]

Runs the comparison (analysis/compare.py), then writes
  results/report.md, results/report.html (images embedded: opens anywhere)
  results/report_files/*.png:
    best_vs_baseline_<task>.png   best and baseline validation score per family
    curves_<search>.png           learning curves of each search's best trial
    confusion_<task>.png          confusion matrix of each task's best model on its test set
    history_<search>.png          optimisation history: every trial's score and the best so far
    importance_<search>.png       hyperparameter importances
    reconstructions.png           the best autoencoder's sample reconstructions

Hyperparameter importances use Optuna's fANOVA evaluator for both engines:
each search's finished trials (from trials.csv) are loaded into an in-memory
Optuna study, every hyperparameter as a categorical distribution of the
values it took, so Keras Tuner searches get the same analysis as Optuna's.
"""

import argparse
import base64
import re
import shutil
import sys
from pathlib import Path


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis import compare
from runners import best_store, trials_table
from suite_common import UserError, atomic


def save(fig, path):
    tmp = atomic.temp_path_beside(path, ".png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def best_vs_baseline(table, task, out):
    t = table[table["objective"] == "val_accuracy"]
    if t.empty:
        return None
    labels = [f"{f}\n({v})" for f, v in zip(t["family"], t["variant"])]
    x = np.arange(len(t))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(t)), 4))
    ax.bar(x - 0.2, t["baseline_score"], 0.4, label="baseline (earlier study)")
    ax.bar(x + 0.2, t["best_score"], 0.4, label="best found")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"{task}: best vs baseline")
    ax.legend(fontsize=8)
    return save(fig, out / f"best_vs_baseline_{task}.png")


def learning_curves(folder, best_trial, out):
    path = folder / "histories" / f"trial_{best_trial}.csv"
    if not path.exists():
        return None  # scikit-learn families have no epochs
    h = pd.read_csv(path)
    metrics = [m for m in ("loss", "accuracy") if m in h]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for col, style in ((metric, "-"), (f"val_{metric}", "--")):
            if col in h:
                ax.plot(h["epoch"], h[col], style, marker="o", label=col)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend(fontsize=8)
    fig.suptitle(f"{folder.name}: best trial {best_trial}")
    return save(fig, out / f"curves_{folder.name}.png")


def optimisation_history(folder, trials, objective, out):
    name, direction = objective
    done = trials[(trials["status"] == "COMPLETE") & trials[name].notna()] if name in trials else trials.iloc[:0]
    if done.empty:
        return None
    running = done[name].cummax() if direction == "max" else done[name].cummin()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(range(1, len(done) + 1), done[name], "o", label="trial")
    ax.plot(range(1, len(done) + 1), running, "-", label="best so far")
    ax.set_xlabel("finished trial")
    ax.set_ylabel(name)
    ax.set_title(f"{folder.name}: optimisation history")
    ax.legend(fontsize=8)
    return save(fig, out / f"history_{folder.name}.png")


def importances(trials, objective):
    """fANOVA importances of the hyperparameters over a search's finished trials."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, direction = objective
    done = trials[(trials["status"] == "COMPLETE") & trials[name].notna()] if name in trials else trials.iloc[:0]
    hp_cols = [c for c in done.columns if c.startswith("hp_") and done[c].nunique(dropna=True) > 1]
    if len(done) < 3 or not hp_cols:
        return {}
    study = optuna.create_study(direction="maximize" if direction == "max" else "minimize")
    for _, row in done.iterrows():
        params = {c[3:]: str(row[c]) for c in hp_cols}
        dists = {c[3:]: optuna.distributions.CategoricalDistribution(sorted(done[c].astype(str).unique()))
                 for c in hp_cols}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(row[name])))
    return optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))


def importance_plot(folder, trials, objective, out):
    imp = importances(trials, objective)
    if not imp:
        return None
    names, values = list(imp)[::-1], list(imp.values())[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(names) + 1.2))
    ax.barh(names, values)
    ax.set_xlabel("importance (fANOVA)")
    ax.set_title(f"{folder.name}: hyperparameter importance")
    return save(fig, out / f"importance_{folder.name}.png")


def confusion(model, task, out):
    from sklearn.metrics import ConfusionMatrixDisplay
    y, pred = model.test_labels, model.test_predictions
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ConfusionMatrixDisplay.from_predictions(y, pred, labels=list(range(len(model.label_names))),
                                            display_labels=model.label_names, ax=ax, colorbar=False,
                                            xticks_rotation=45)
    ax.set_title(f"{task}: {model.family} on its test set")
    return save(fig, out / f"confusion_{task}.png")


def md_image(path, root):
    return f"![{path.stem}]({path.relative_to(root).as_posix()})"


def build_report(results_dir="results"):
    """The report's sections in the order they are read (long on purpose: one linear page)."""
    root = Path(results_dir)
    scored = {}
    tables = compare.compare(results_dir, scored=scored)
    out = root / "report_files"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    folders = compare.search_folders(results_dir)
    lines = ["# Hyperparameter search report", ""]
    sources = set()
    for name in ("comparison_lyrics", "comparison_cifar"):
        if name in tables and "data" in tables[name]:
            sources |= set(tables[name]["data"].dropna())
    lines += ["## Data", ""] + [f"- {s}" + (" — **demo set, not real data**" if "not real data" in s else "")
                                for s in sorted(sources)] + [""]
    lines += ["## How to read the tables", "",
              "- `gain` is the best trial's validation score minus the baseline's (the earlier study's "
              "configuration, trial 0, trained with the same epoch budget): two single training runs on one "
              "validation split, no uncertainty. `analysis/compare.py --repeats K --families ...` retrains both "
              "with K seeds and reports the gain with a 95 % confidence interval (table `repeats` below, "
              "when run).",
              "- `test_accuracy_low` / `_high`: 95 % Wilson interval of the test accuracy.",
              "- `majority_*`: always predicting the training split's most frequent class. `beats_majority` is "
              "whether the model is better than that on the test set (one-sided exact McNemar test, p < 0.05).",
              ""]
    for task in compare.TASKS:
        table = tables.get(f"comparison_{task}")
        if table is None:
            continue
        lines += [f"## Task: {task}", "", table.drop(columns=["data"], errors="ignore").to_markdown(
            index=False, floatfmt=".4g"), ""]
        if "beats_majority" in table:
            weak = table[table["beats_majority"].eq(False)]
            if not weak.empty:
                lines += ["**Not significantly better than always predicting the most frequent class** "
                          "(test set): " + ", ".join(f"`{f}` ({v})" for f, v in zip(weak["family"], weak["variant"]))
                          + ".", ""]
        chart = best_vs_baseline(table, task, out)
        if chart:
            lines += [md_image(chart, root), ""]
        # the task's best classifier on its test set
        with_test = table[table["objective"] == "val_accuracy"].dropna(subset=["test_accuracy"]) \
            if "test_accuracy" in table else table.iloc[:0]
        if not with_test.empty:
            top = with_test.loc[with_test["best_score"].idxmax()]
            model = scored[top["family"], top["variant"]]  # scored by compare: its test predictions
            lines += [f"Best {task} model: `{top['family']}` ({top['variant']}), test accuracy "
                      f"{top['test_accuracy']:.4f}.", "", md_image(confusion(model, task, out), root), ""]
    for name in sorted(t for t in tables if t.startswith("comparison_cifar_")) + ["mcnemar", "repeats"]:
        if name in tables and not tables[name].empty:
            lines += [f"### {name.replace('_', ' ')}", "", tables[name].to_markdown(index=False, floatfmt=".4g"), ""]
    lines += ["## Searches", ""]
    for folder, family in folders:
        try:
            trials = compare.read_trials(folder)
        except UserError as e:
            compare.problem(str(e))
            continue
        objective = trials_table.folder_objective(folder, family)
        lines += [f"### {folder.name}", ""]
        best = best_store.best_meta(folder)
        for plot in (learning_curves(folder, best["trial_id"], out) if best else None,
                     optimisation_history(folder, trials, objective, out),
                     _safe_importance(folder, trials, objective, out)):
            if plot:
                lines += [md_image(plot, root), ""]
        recon = folder / "best" / "reconstructions.png"
        if recon.exists():
            shutil.copy(recon, out / "reconstructions.png")
            lines += [md_image(out / "reconstructions.png", root), ""]
    lines += earlier_study_numbers(tables, results_dir)
    lines += departures()
    markdown_text = "\n".join(lines) + "\n"
    atomic.write_text(root / "report.md", markdown_text)
    atomic.write_text(root / "report.html", to_html(markdown_text, root))
    return root / "report.md", root / "report.html", sorted(out.glob("*.png"))


def earlier_study_numbers(tables, results_dir):
    """The earlier study's published validation accuracies (studies/earlier_study_results.csv) beside
    this suite's best validation accuracy for the same family, variant and setting, where it has run."""
    path = Path(__file__).resolve().parents[1] / "studies" / "earlier_study_results.csv"
    if not path.exists():
        return []
    study = pd.read_csv(path, keep_default_na=False)
    rows = []
    for _, r in study.iterrows():
        folder = Path(results_dir) / (r["family"] + ("_artist" if r["variant"] == "lyrics+artist" else ""))
        try:
            trials = compare.read_trials(folder)
        except UserError:
            continue
        done = trials[(trials["status"] == "COMPLETE")] if "val_accuracy" in trials else trials.iloc[:0]
        if r["setting"]:
            name, value = r["setting"].split("=", 1)
            col = f"hp_{name}"
            done = done[done[col].astype(str) == value] if col in done else done.iloc[:0]
        rows.append({"model (the earlier study's name)": r["model"], "family": r["family"], "variant": r["variant"],
                     "setting": r["setting"], "earlier study, val accuracy": r["study_val_accuracy"],
                     "this suite, best val accuracy": done["val_accuracy"].max() if not done.empty else np.nan,
                     "trials": len(done)})
    if not rows:
        return []
    return ["## The earlier study's own numbers", "",
            "Validation accuracies the earlier study published (its notebooks), beside this suite's best for the "
            "same family, variant and setting. They are the study's own numbers on its own data: a 20 % sample "
            "of the Kaggle `train.csv`, and for images 50-class CIFAR-100 blocks validated on their test images. "
            "They are not comparable to results on another data set or split.", "",
            pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"), ""]


def departures():
    """The README's table of deliberate departures from the earlier study (its one source)."""
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text() if readme.exists() else ""
    match = re.search(r"^## Departures from the earlier study\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    return ["## Departures from the earlier study", match.group(1).strip(), ""] if match else []


def _safe_importance(folder, trials, objective, out):
    try:
        return importance_plot(folder, trials, objective, out)
    except Exception as e:  # too few or too uniform trials for fANOVA
        compare.problem(f"{folder.name}: no hyperparameter importances ({type(e).__name__}: {e})")
        return None


def to_html(markdown_text, root):
    """Self-contained HTML: the Markdown rendered, every PNG embedded as base64."""
    import markdown
    body = markdown.markdown(markdown_text, extensions=["tables"])

    def embed(match):
        data = base64.b64encode((root / match.group(1)).read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'
    body = re.sub(r'src="([^"]+\.png)"', embed, body)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Search report</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results-dir", default="results")
    args = ap.parse_args(argv)
    try:
        md, html, pngs = build_report(args.results_dir)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {md}, {html} and {len(pngs)} PNG plots in {md.parent / 'report_files'}/")
    return 0


def entry_point():
    """`python analysis/report.py` and its console script."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
