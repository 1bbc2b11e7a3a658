"""The report's figures, as PNG files: readable (10-pt text, labelled axes, whole-number epoch and trial
ticks), each marked when drawn from a generated demo set.

Optuna's own plots (importance, parallel coordinates, slices) are drawn on an
in-memory study of a search's finished trials with their real distributions
(`search_study`), for Keras Tuner searches as for Optuna's.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from runners import dashboard, trials_table
from suite_common import atomic

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
