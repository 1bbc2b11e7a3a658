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
from matplotlib.ticker import MaxNLocator

from analysis import compare
from runners import best_store, dashboard, trials_table
from suite_common import UserError, atomic


plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 10,
                     "ytick.labelsize": 10, "legend.fontsize": 9})
DEMO_MARK = "demo data, not real"


def mark_demo(fig, is_demo):
    """Every figure drawn from a generated demo set says so on the figure itself."""
    if is_demo:
        fig.text(0.99, 0.01, DEMO_MARK, ha="right", va="bottom", color="#b00", fontsize=10, style="italic")


def save(fig, path, is_demo=False):
    mark_demo(fig, is_demo)
    tmp = atomic.temp_path_beside(path, ".png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def best_vs_baseline(table, task, out, is_demo=False):
    t = table[table["objective"] == "val_accuracy"]
    if t.empty:
        return None
    labels = [f"{f}\n({v})" for f, v in zip(t["family"], t["variant"])]
    x = np.arange(len(t))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(t)), 4))
    ax.bar(x - 0.2, t["baseline_score"], 0.4, label="baseline (earlier study)")
    ax.bar(x + 0.2, t["best_score"], 0.4, label="best found")
    ax.set_xticks(x, labels, rotation=45, ha="right")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"{task}: best vs baseline")
    ax.legend()
    return save(fig, out / f"best_vs_baseline_{task}.png", is_demo)


def learning_curves(folder, best_trial, out, is_demo=False):
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
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(metric)
        ax.legend()
    fig.suptitle(f"{folder.name}: best trial {best_trial}")
    fig.tight_layout()
    return save(fig, out / f"curves_{folder.name}.png", is_demo)


def optimisation_history(folder, trials, objective, out, is_demo=False):
    name, direction = objective
    done = trials_table.finished(trials, name)
    if done.empty:
        return None
    running = done[name].cummax() if direction == "max" else done[name].cummin()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ids = done["trial_id"].astype(int)  # the trial ids of trials.csv and the console
    ax.plot(ids, done[name], "o", label="trial")
    ax.plot(ids, running, "-", label="best so far")
    ax.set_xlabel("trial id")
    ax.set_ylabel(name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{folder.name}: optimisation history")
    ax.legend()
    return save(fig, out / f"history_{folder.name}.png", is_demo)


MIN_TRIALS_FOR_IMPORTANCE = 10  # fANOVA's forest on fewer finished trials says little


def search_study(folder, trials, objective):
    """An in-memory Optuna study of the search's finished trials, with the distributions they were drawn
    from (the copy in the results folder's optuna.db, runners/dashboard.py); from trials.csv, every
    hyperparameter as a categorical of the values it took, for a search made before that copy existed."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, direction = objective
    study = optuna.create_study(direction="maximize" if direction == "max" else "minimize")
    study.set_user_attr("objective", name)
    db = folder.parent / "optuna.db"
    if db.exists():
        try:
            mirrored = optuna.load_study(study_name=folder.name, storage=dashboard.storage_url(folder.parent))
            study.add_trials([t for t in mirrored.get_trials(deepcopy=False)
                              if t.state == optuna.trial.TrialState.COMPLETE])
            return study
        except KeyError:  # no copy of this search there
            pass
    done = trials_table.finished(trials, name)
    hp_cols = [c for c in done.columns if c.startswith("hp_") and done[c].nunique(dropna=True) > 1]
    for _, row in done.iterrows():
        params = {c[3:]: str(row[c]) for c in hp_cols}
        dists = {c[3:]: optuna.distributions.CategoricalDistribution(sorted(done[c].astype(str).unique()))
                 for c in hp_cols}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(row[name])))
    return study


def optuna_plots(folder, study, out, is_demo=False):
    """Optuna's own matplotlib plots of a search: importances (fANOVA, from enough trials only), parallel
    coordinates and slices. Returns (plots, notes)."""
    import warnings

    import optuna
    from optuna.visualization import matplotlib as ovm
    n = len(study.trials)
    everywhere = set.intersection(*(set(t.params) for t in study.trials)) if n else set()
    varied = sorted(k for k in everywhere if len({repr(t.params[k]) for t in study.trials}) > 1)
    sometimes = sorted(set().union(*(set(t.params) for t in study.trials)) - everywhere) if n else []
    plots, notes = [], []
    if sometimes:
        notes.append(f"Left out of these plots (set in some trials only, e.g. conditional): {', '.join(sometimes)}.")
    if n < 2 or not varied:
        return plots, notes
    target = study.user_attrs.get("objective") or "objective"
    # Optuna's plots switch matplotlib to its ggplot style for good: kept to these plots
    with warnings.catch_warnings(), plt.rc_context():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        if n >= MIN_TRIALS_FOR_IMPORTANCE:
            ax = ovm.plot_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), params=varied,
                target_name=target)
            for loc in ("left", "right"):
                ax.set_title("", loc=loc)  # Optuna's own title
            ax.set_title(f"{folder.name}: hyperparameter importance (fANOVA, {n} trials)")
            plots.append(save(ax.figure, out / f"importance_{folder.name}.png", is_demo))
        else:
            notes.append(f"No importances: {n} finished trials, fewer than the {MIN_TRIALS_FOR_IMPORTANCE} "
                         "fANOVA needs to say much.")
        ax = ovm.plot_parallel_coordinate(study, params=varied, target_name=target)
        ax.set_title(f"{folder.name}: parallel coordinates")
        ax.figure.set_size_inches(max(6, 1.2 * len(varied) + 2), 4)
        plots.append(save(ax.figure, out / f"parallel_{folder.name}.png", is_demo))
        axes = np.atleast_1d(ovm.plot_slice(study, params=varied, target_name=target))
        for a in axes:
            a.tick_params(axis="x", labelrotation=30)
        axes[0].figure.suptitle(f"{folder.name}: {target} against each hyperparameter")
        axes[0].figure.set_size_inches(max(6, 3 * len(varied)), 3.8)
        plots.append(save(axes[0].figure, out / f"slice_{folder.name}.png", is_demo))
    return plots, notes


def confusion(model, task, out, is_demo=False):
    from sklearn.metrics import ConfusionMatrixDisplay
    y, pred = model.test_labels, model.test_predictions
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ConfusionMatrixDisplay.from_predictions(y, pred, labels=list(range(len(model.label_names))),
                                            display_labels=model.label_names, ax=ax, colorbar=False,
                                            xticks_rotation=45)
    ax.set_title(f"{task}: {model.family} on its test set")
    return save(fig, out / f"confusion_{task}.png", is_demo)


SHOWN_COLUMNS = ["family", "variant", "trials_finished", "baseline_score", "best_score", "gain", "test_accuracy",
                 "test_accuracy_low", "test_accuracy_high", "test_macro_f1", "test_reconstruction_mse",
                 "majority_test_accuracy", "beats_majority"]


def headline(table, task):
    """One paragraph: the task's best classifier, its test accuracy with its interval, its gain over the
    earlier study's baseline, and the majority-class reference."""
    scored = table[table["objective"] == "val_accuracy"].dropna(subset=["test_accuracy"]) \
        if {"objective", "test_accuracy"} <= set(table) else table.iloc[:0]
    if scored.empty:
        return []
    top = scored.loc[scored["best_score"].idxmax()]
    text = (f"**{task}: `{top['family']}` ({top['variant']})** has the best validation accuracy "
            f"({top['best_score']:.3f}, {top['gain']:+.3f} over the earlier study's configuration, one run "
            f"each); on the held-out test set it scores **{top['test_accuracy']:.3f}** (95 % interval "
            f"{top['test_accuracy_low']:.3f}-{top['test_accuracy_high']:.3f}).")
    if "majority_test_accuracy" in top and pd.notna(top["majority_test_accuracy"]):
        beats = top.get("beats_majority")
        text += (f" Always answering the most frequent class scores {top['majority_test_accuracy']:.3f}; the model "
                 + ("is" if beats is True or beats == "True" else "is **not**")
                 + " significantly better than that (exact McNemar, p < 0.05).")
    return [text, ""]


def provenance_lines(folders):
    """When each search ran, by which command, with which versions, code and machine (search.json)."""
    rows = []
    for folder, _ in folders:
        for run in trials_table.run_record(folder).get("runs", []):
            v, m = run.get("versions", {}), run.get("machine", {})
            rows.append({"search": folder.name, "started": run.get("started_at"), "ended": run.get("ended_at"),
                         "versions": ", ".join(f"{k} {x}" for k, x in v.items()),
                         "commit": (run.get("git_commit") or "")[:12], "machine":
                         f"{m.get('cpu', '?')} x{m.get('cpu_count', '?')}" + (f", {', '.join(m['gpus'])}"
                                                                                if m.get("gpus") else "")})
    if not rows:
        return []
    return ["## Provenance", "", "Each run of each search (from its `search.json`; the command lines are there "
            "too).", "", pd.DataFrame(rows).to_markdown(index=False), ""]


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
        is_demo = table["data"].astype(str).str.contains("not real data").any() if "data" in table else False
        shown = [c for c in SHOWN_COLUMNS if c in table]
        lines += [f"## Task: {task}", ""] + headline(table, task) + [
            table[shown].to_markdown(index=False, floatfmt=".4g"), "",
            f"Every column (hyperparameters, parameter counts, times, the majority class): "
            f"`comparison_{task}.csv`.", ""]
        if "beats_majority" in table:
            weak = table[table["beats_majority"].eq(False)]
            if not weak.empty:
                lines += ["**Not significantly better than always predicting the most frequent class** "
                          "(test set): " + ", ".join(f"`{f}` ({v})" for f, v in zip(weak["family"], weak["variant"]))
                          + ".", ""]
        chart = best_vs_baseline(table, task, out, is_demo)
        if chart:
            lines += [md_image(chart, root), ""]
        # the task's best classifier on its test set
        with_test = table[table["objective"] == "val_accuracy"].dropna(subset=["test_accuracy"]) \
            if "test_accuracy" in table else table.iloc[:0]
        if not with_test.empty:
            top = with_test.loc[with_test["best_score"].idxmax()]
            model = scored[top["family"], top["variant"]]  # scored by compare: its test predictions
            lines += [f"Best {task} model: `{top['family']}` ({top['variant']}), test accuracy "
                      f"{top['test_accuracy']:.4f}.", "", md_image(confusion(model, task, out, is_demo), root), ""]
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
        is_demo = bool(best and best.get("data", {}).get("is_demo"))
        for plot in (learning_curves(folder, best["trial_id"], out, is_demo) if best else None,
                     optimisation_history(folder, trials, objective, out, is_demo)):
            if plot:
                lines += [md_image(plot, root), ""]
        plots, notes = _safe_optuna_plots(folder, search_study(folder, trials, objective), out, is_demo)
        lines += [md_image(plot, root) for plot in plots] + [""] + notes + ([""] if notes else [])
        recon = folder / "best" / "reconstructions.png"
        if recon.exists():
            shutil.copy(recon, out / "reconstructions.png")
            lines += [md_image(out / "reconstructions.png", root), ""]
    lines += earlier_study_numbers(tables, results_dir)
    lines += departures()
    lines += provenance_lines(folders)
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


def _safe_optuna_plots(folder, study, out, is_demo):
    try:
        return optuna_plots(folder, study, out, is_demo)
    except Exception as e:  # noqa: BLE001 - e.g. too uniform trials for fANOVA: the rest of the report still comes
        compare.problem(f"{folder.name}: no Optuna plots ({type(e).__name__}: {e})")
        plt.close("all")
        return [], []


def to_html(markdown_text, root):
    """Self-contained HTML: the Markdown rendered, every PNG embedded as base64."""
    import markdown
    body = markdown.markdown(markdown_text, extensions=["tables"])

    def embed(match):
        data = base64.b64encode((root / match.group(1)).read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'
    body = re.sub(r'src="([^"]+\.png)"', embed, body)
    # wide tables scroll inside the page instead of running off it
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.4}"
             "table{border-collapse:collapse;font-size:13px;display:block;max-width:100%;overflow-x:auto}"
             "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}th{background:#f3f3f3}"
             "img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Search report</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("--verbose", action="store_true", help="also show the frameworks' start-up and retracing lines")
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
    from suite_common.process import tune_this_process
    tune_this_process()  # allocator and TensorFlow settings, before any framework starts
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
