"""The report's figures, as PNG files: readable (10-pt text, labelled axes, whole-number epoch and trial
ticks), each marked when drawn from a generated demo set.

Optuna's own plots (importance, parallel coordinates, slices) are drawn on an
in-memory study of a search's finished trials with their real distributions
(`search_study`), for Keras Tuner searches as for Optuna's.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, cast

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from lyrics_cifar_search.runners import record, trials_table
from lyrics_cifar_search.suite_common import atomic
from lyrics_cifar_search.suite_common.status import Status

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure
    from lyrics_cifar_search.runners.best_model import BestModel

plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 10,
                     "ytick.labelsize": 10, "legend.fontsize": 9})
DEMO_MARK = "demo data, not real"


def mark_demo(fig: Figure, is_demo: bool) -> None:
    """Every figure drawn from a generated demo set says so on the figure itself: below everything drawn (tick
    labels, rotated ones too), right-aligned, so it covers nothing; save()'s tight box takes it in."""
    if is_demo:
        drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # type: ignore[attr-defined]  # Agg's canvas; inches
        width, height = fig.get_size_inches()
        fig.text(drawn.x1 / width, (drawn.y0 - 0.05) / height, DEMO_MARK, ha="right", va="top", color="#b00",
                 fontsize=10, style="italic")


def save(fig: Figure, path: Path, is_demo: bool = False) -> Path:
    mark_demo(fig, is_demo)
    tmp = atomic.temp_path_beside(path, ".png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def best_vs_baseline(table: pd.DataFrame, task: str, out: Path, is_demo: bool = False) -> Optional[Path]:
    """Per search: the baseline's and the best trial's validation accuracy (bars), the best model's test
    accuracy with its 95 % Wilson interval (error bar), and always answering the most frequent class on the
    test set (a dashed line over the search's bars)."""
    t = table[table["objective"] == "val_accuracy"]
    if t.empty:
        return None
    labels = [f"{f}\n({v})" for f, v in zip(t["family"], t["variant"])]
    x = np.arange(len(t))
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(t) + 3), 4.2))
    ax.bar(x - 0.3, t["baseline_score"], 0.3, label="baseline (earlier study), validation")
    ax.bar(x, t["best_score"], 0.3, label="best found, validation")
    if "test_accuracy" in t:
        low = (t["test_accuracy"] - t.get("test_accuracy_low", t["test_accuracy"])).clip(lower=0)
        high = (t.get("test_accuracy_high", t["test_accuracy"]) - t["test_accuracy"]).clip(lower=0)
        ax.errorbar(x + 0.3, t["test_accuracy"], yerr=[low, high], fmt="D", color="black", capsize=4,
                    label="best model, test (95 % interval)")
    if "majority_test_accuracy" in t:
        for i, m in zip(x, t["majority_test_accuracy"]):
            if pd.notna(m):
                ax.hlines(m, i - 0.48, i + 0.48, colors="#b00", linestyles="--",
                          label="most frequent class, test" if i == x[0] else "_nolegend_")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{task}: best vs baseline")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    return save(fig, out / f"best_vs_baseline_{task}.png", is_demo)


def _whole_number_ticks(ax, values):
    """Whole-number ticks (epochs, trial ids), also with one or two values (MaxNLocator alone then shows
    fractions around them)."""
    values = sorted(set(int(v) for v in values))
    if len(values) <= 12:
        ax.set_xticks(values)
        ax.set_xlim(values[0] - 0.5, values[-1] + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def learning_curves(folder: Path, best_trial: Any, out: Path, is_demo: bool = False) -> Optional[Path]:
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
        _whole_number_ticks(ax, h["epoch"])
        ax.set_title(metric)
        ax.legend()
    fig.suptitle(f"{folder.name}: best trial {best_trial}")
    fig.tight_layout()
    return save(fig, out / f"curves_{folder.name}.png", is_demo)


def optimisation_history(folder: Path, trials: pd.DataFrame, objective: tuple[str, str], out: Path,
                         is_demo: bool = False) -> Optional[Path]:
    name, direction = objective
    done = trials_table.finished(trials, name)
    if done.empty:
        return None
    running = done[name].cummax() if direction == "max" else done[name].cummin()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ids = done["trial_id"].astype(int)  # the trial ids of trials.csv and the console
    ax.plot(ids, done[name], "o", label="trial")
    pruned = trials[(trials["status"] == Status.PRUNED) & trials[name].notna()] if name in trials else trials.iloc[:0]
    if len(pruned):  # the same value as trials.csv, the trial line and the dashboard: its last epoch's
        ax.plot(pruned["trial_id"].astype(int), pruned[name], "x", color="grey", label="pruned (last epoch)")
    ax.plot(ids, running, "-", label="best so far")
    ax.set_xlabel("trial id")
    ax.set_ylabel(name)
    _whole_number_ticks(ax, ids)
    ax.set_title(f"{folder.name}: optimisation history")
    ax.legend()
    return save(fig, out / f"history_{folder.name}.png", is_demo)


MIN_TRIALS_FOR_IMPORTANCE = 10  # fANOVA's forest on fewer finished trials says little


def search_study(folder: Path, trials: pd.DataFrame, objective: tuple[str, str]) -> optuna.Study:
    """An in-memory Optuna study of the search's finished trials, with the distributions they were drawn
    from (the search's record in the results folder's optuna.db, runners/record.py); from trials.csv, every
    hyperparameter as a categorical of the values it took, for a search with no record there (made before it
    existed, or recorded in a --storage elsewhere)."""
    import optuna  # Optuna: only once a search or its record is used
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, direction = objective
    study = optuna.create_study(direction="maximize" if direction == "max" else "minimize")
    study.set_user_attr("objective", name)
    db = folder.parent / "optuna.db"
    if db.exists():
        try:
            mirrored = optuna.load_study(study_name=folder.name, storage=record.storage_url(folder.parent))
            kept = mirrored.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
            for t in kept:  # the copy numbers its trials afresh: each keeps its own id, trials.csv's
                t.set_user_attr("trial_id", record.trial_id(t))
                if len(t.values) > 1:  # a Pareto search: these plots are of its first objective, the tables'
                    t.values = t.values[:1]
            study.add_trials(kept)
            return study
        except KeyError:  # no record of this search there
            pass
    done = trials_table.finished(trials, name)
    hp_cols = [c for c in done.columns if c.startswith("hp_") and done[c].nunique(dropna=True) > 1]
    for _, row in done.iterrows():
        params = {c[3:]: str(row[c]) for c in hp_cols}
        dists: dict[str, optuna.distributions.BaseDistribution] = {
            c[3:]: optuna.distributions.CategoricalDistribution(sorted(done[c].astype(str).unique())) for c in hp_cols}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(row[name]),
                                                  user_attrs={"trial_id": int(row["trial_id"])}))
    return study


def pareto_front(folder: Path, out: Path, is_demo: bool = False) -> Optional[Path]:
    """A Pareto search's front, drawn by Optuna's matplotlib plot_pareto_front from the search's record (every
    finished trial; the front highlighted); the first three objectives where it has more. None for a search of
    one objective, or with no record in the results folder's optuna.db."""
    import optuna  # Optuna: only once a search or its record is used
    from optuna.visualization import matplotlib as ovm
    if not (folder.parent / "optuna.db").exists():
        return None
    try:
        study = optuna.load_study(study_name=folder.name, storage=record.storage_url(folder.parent))
    except KeyError:
        return None
    if len(study.directions) < 2 or not study.best_trials:
        return None
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    shown = min(3, len(names))
    with warnings.catch_warnings(), plt.rc_context():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        ax = ovm.plot_pareto_front(study, targets=lambda t: tuple(t.values[:shown]), target_names=names[:shown])
    fig = ax.figure
    fig.suptitle(f"{folder.name}: Pareto front of {', '.join(names[:shown])} ({len(study.best_trials)} of "
                 f"{len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))} trials)")
    return save(cast("Figure", fig), out / f"pareto_{folder.name}.png", is_demo)


def optuna_plots(folder: Path, study: optuna.Study, out: Path, is_demo: bool = False) -> tuple[list[Path], list[str]]:
    """Optuna's own matplotlib plots of a search: importances (fANOVA, from enough trials only), parallel
    coordinates and slices. Returns (plots, notes)."""

    import optuna  # Optuna: only once a search or its record is used
    from optuna.visualization import matplotlib as ovm  # Optuna: only once a search or its record is used
    n = len(study.trials)
    everywhere = set.intersection(*(set(t.params) for t in study.trials)) if n else set()
    varied = sorted(k for k in everywhere if len({repr(t.params[k]) for t in study.trials}) > 1)
    sometimes = sorted(set().union(*(set(t.params) for t in study.trials)) - everywhere) if n else []
    plots: list[Path] = []
    notes: list[str] = []
    if sometimes:
        notes.append(f"Left out of these plots (set in some trials only, e.g. conditional): {', '.join(sometimes)}.")
    if n < MIN_TRIALS_FOR_IMPORTANCE:  # said however few: how many finished trials the importances need
        notes.append(f"No importances: {n} finished trials, fewer than the {MIN_TRIALS_FOR_IMPORTANCE} "
                     "fANOVA needs to say much.")
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
            plots.append(save(cast("Figure", ax.figure), out / f"importance_{folder.name}.png", is_demo))
            notes.append(f"Importances: Optuna's fANOVA evaluator (seed 0) on the {n} complete trials over the "
                         "hyperparameters every trial set. optuna-dashboard ranks with Optuna's default evaluator "
                         "(PED-ANOVA, which weighs the top-scoring trials against the rest) on the trials it "
                         "holds, so its order may differ, most where trials are few.")
    plots.append(parallel_coordinates(folder, study, varied, target, out, is_demo))
    plots.append(slices(folder, study, varied, target, out, is_demo))
    return plots, notes


def _axis_position(dist, value):
    """Where a value sits on its hyperparameter's axis, from 0 to 1 (log-scaled for a log distribution)."""
    import optuna  # Optuna: only once a search or its record is used
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        n = len(dist.choices)
        return dist.choices.index(value) / (n - 1) if n > 1 else 0.5
    low, high, v = dist.low, dist.high, value
    if getattr(dist, "log", False):
        low, high, v = np.log10(low), np.log10(high), np.log10(v)
    return (v - low) / (high - low) if high > low else 0.5


def _axis_labels(dist):
    """(position, label) pairs for an axis: every choice, or the two ends of a range."""
    import optuna  # Optuna: only once a search or its record is used
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return [(_axis_position(dist, c), str(c)) for c in dist.choices]
    return [(0.0, f"{dist.low:.3g}"), (1.0, f"{dist.high:.3g}" + (" (log)" if getattr(dist, "log", False) else ""))]


# Hyperparameter axes in one row of the parallel-coordinates figure: a row fits the report's 1,100-pixel column
# at its own size, so its labels are read at the size they were drawn (12 axes in one row came out at half size)
PARALLEL_AXES_PER_ROW = 5


def parallel_coordinates(folder: Path, study: optuna.Study, params: Sequence[str], target: str, out: Path,
                         is_demo: bool = False) -> Path:
    """One line per finished trial across the objective and each hyperparameter's axis (its whole search
    range, the ends labelled), coloured by the objective; the best trial drawn on top in red. Rows of at most
    PARALLEL_AXES_PER_ROW hyperparameters, each row starting again from the objective's axis."""
    trials = [t for t in study.trials if all(p in t.params for p in params)]
    values = np.array([t.value for t in trials], dtype=float)
    lo, hi = np.nanmin(values), np.nanmax(values)
    scaled = (values - lo) / (hi - lo) if hi > lo else np.full_like(values, 0.5)
    per_row = -(-len(params) // -(-len(params) // PARALLEL_AXES_PER_ROW))  # rows of even length: 6 -> 3 + 3
    rows = [params[i:i + per_row] for i in range(0, len(params), per_row)]
    fig, axes = plt.subplots(len(rows), 1, figsize=(10.5, 3.3 * len(rows)), squeeze=False)
    cmap = plt.get_cmap("viridis")
    best = study.best_trial.number
    order = sorted(range(len(trials)), key=lambda i: trials[i].number == best)  # the best drawn last, on top
    for ax, row in zip(axes[:, 0], rows):
        columns = [target, *row]
        for i in order:
            t = trials[i]
            ys = [scaled[i], *(_axis_position(t.distributions[p], t.params[p]) for p in row)]
            is_best = t.number == best
            ax.plot(range(len(columns)), ys, color="#b00" if is_best else cmap(scaled[i]),
                    lw=2.5 if is_best else 1, alpha=1 if is_best else 0.6)
        for k, column in enumerate(columns):
            ax.axvline(k, color="#888", lw=0.8)
            labels = [(0.0, f"{lo:.4g}"), (1.0, f"{hi:.4g}")] if k == 0 else \
                _axis_labels(trials[0].distributions[column])
            for y, text in labels:
                ax.text(k + 0.04, y, text, fontsize=9, va="center", ha="left",
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 1})
        ax.set_xticks(range(len(columns)), columns, fontsize=10)
        ax.set_yticks([])
        ax.set_xlim(-0.2, per_row + 0.8)  # every row's axes at the same places
        ax.set_ylim(-0.08, 1.08)
    axes[0, 0].set_title(f"{folder.name}: parallel coordinates ({len(trials)} trials; colour: {target}; "
                         f"red: the best, trial {record.trial_id(study.best_trial)})", pad=10)
    fig.tight_layout()
    return save(fig, out / f"parallel_{folder.name}.png", is_demo)


def slices(folder: Path, study: optuna.Study, params: Sequence[str], target: str, out: Path,
           is_demo: bool = False) -> Path:
    """The objective against each hyperparameter, three plots a row, over the hyperparameter's whole search
    range (log axes where it is searched on a log scale); points coloured by trial order."""
    import optuna  # Optuna: only once a search or its record is used
    n_cols = min(3, len(params))
    n_rows = -(-len(params) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.3 * n_rows), squeeze=False)
    trials = study.trials
    for ax, p in zip(axes.flat, params):
        shown = [t for t in trials if p in t.params]
        dist: Any = shown[0].distributions[p]  # a Categorical, Int or Float distribution
        ys = [t.value for t in shown]
        colours = [t.number for t in shown]
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            choices = [str(c) for c in dist.choices]
            xs = [choices.index(str(t.params[p])) for t in shown]
            ax.set_xticks(range(len(choices)), choices, rotation=30 if max(map(len, choices)) > 6 else 0,
                          ha="right" if max(map(len, choices)) > 6 else "center")
            ax.set_xlim(-0.5, len(choices) - 0.5)
        else:
            xs = [t.params[p] for t in shown]
            if getattr(dist, "log", False):  # the whole range, 4 % beyond each end so end points show
                ax.set_xscale("log")
                ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(numticks=4))
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                pad = (dist.high / dist.low) ** 0.04
                ax.set_xlim(dist.low / pad, dist.high * pad)
            else:
                ax.xaxis.set_major_locator(MaxNLocator(4, integer=isinstance(
                    dist, optuna.distributions.IntDistribution)))
                pad = 0.04 * (dist.high - dist.low) or 0.5
                ax.set_xlim(dist.low - pad, dist.high + pad)
        ax.scatter(xs, ys, c=colours, cmap="viridis", s=25, edgecolors="black", linewidths=0.3)
        ax.set_xlabel(p)
        ax.set_ylabel(target)
    for ax in list(axes.flat)[len(params):]:
        ax.set_visible(False)
    fig.suptitle(f"{folder.name}: {target} against each hyperparameter (colour: trial order)")
    fig.tight_layout()
    return save(fig, out / f"slice_{folder.name}.png", is_demo)


def confusion(model: BestModel, task: str, out: Path, is_demo: bool = False) -> Path:
    from sklearn.metrics import ConfusionMatrixDisplay  # scikit-learn: only where its models are used
    y, pred = model.test_labels, model.test_predictions
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ConfusionMatrixDisplay.from_predictions(y, pred, labels=list(range(len(model.label_names))),
                                            display_labels=model.label_names, ax=ax, colorbar=False,
                                            xticks_rotation=45)
    ax.set_title(f"{task}: {model.family} on its test set")
    return save(fig, out / f"confusion_{task}.png", is_demo)
