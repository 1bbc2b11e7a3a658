#!/usr/bin/env python
"""Can the bench tell the sides apart? Many seeds a side on a cheap task, anytime curves with bootstrap bands.

    python bench/search_quality.py [--budget 60s] [--seeds 10] [--rows 6500] [--epochs 6]
                                   [--sides default,prior,random,kt-random,kt-hyperband,kt-bayesian,optuna]
                                   [--record FILE] [--png FILE] [--family lyrics_embedding] [-- FLAG ...]

The cheap task: `--family` (lyrics_embedding: averaged word vectors, a trial in about 4 s) on a generated lyrics table of `--rows` rows (the suite's own demo
generator, study_data.lyrics_demo, with a faint genre signal), so that the validation split holds at least
1,000 songs (16 % of the rows) and a trial takes seconds on 2 CPU cores (`--seq-len 40 --vocab-size 2000`).
Each side searches it in a fresh process for `--budget` (no new trial after it), one run per seed, the sides
as in bench/time_to_accuracy.py (whose runners this uses):
- default: `runners/search.py FAMILY` as a user runs it (TPE, noise-guarded median pruner, the baseline first);
- prior: the same with `--sampler tpe-prior` (piBO: TPE weighted by a prior on the earlier study's
  configuration);
- random: the same with `--sampler random --pruner none`;
- default-nb, prior-nb, random-nb: each of those with `--no-baseline`, so that the table shows what TPE, the
  pruner and the prior add beyond the baseline (plain Keras Tuner and Optuna run no baseline either);
- kt-random, kt-hyperband, kt-bayesian: plain Keras Tuner RandomSearch, Hyperband (factor 3) and
  BayesianOptimization over the family's hypermodel;
- optuna: plain Optuna, TPESampler + MedianPruner + optuna_integration.KerasPruningCallback.
Every side is scored like for like: a trial's value is the validation accuracy of the epoch early stopping
keeps (BENCH_KT_VALUE=kept for Keras Tuner's sides, whose own value is the best accuracy over the epochs).

It prints, per side: the median final best (95 % bootstrap interval over seeds), the median time to reach plain
Keras Tuner random's final median best (lower medians, 95 % bootstrap interval; a seed that never reaches it counts
as never), and
its ratio to kt-random's (paired by seed, bootstrap interval); each suite side's final median best minus each plain
tool's (paired by seed, bootstrap interval, "within noise" where it holds 0); then draws best-so-far validation accuracy
against wall time and against epochs trained, the median over seeds and its bootstrap 95 % band, to a PNG.
A bench, not a test: it stays out of CI.
"""

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SIDES = ("default", "prior", "random", "default-nb", "prior-nb", "random-nb", "kt-random", "kt-hyperband",
         "kt-bayesian", "optuna")
BOOT = 2000  # bootstrap resamples of the seeds


def best_at(curve, t, axis=0):
    """Best so far at time (axis 0) or epochs (axis 2) t of a curve [[seconds, best, epochs], ...]."""
    best = 0.0
    for point in curve:
        if point[axis] <= t:
            best = max(best, point[1])
    return best


def final(curve):
    return max((p[1] for p in curve), default=0.0)


def reach(curve, target):
    """Seconds until the best so far first reaches target (inf if never)."""
    return next((p[0] for p in curve if p[1] >= target - 1e-12), math.inf)


def lower_median(v, axis=None):
    """The lower median: a seed that never got there (inf) is never averaged with one that did."""
    return np.quantile(v, 0.5, axis=axis, method="inverted_cdf")


def boot_median(values, rng, n=BOOT):
    """Lower median and its 95 % bootstrap interval (inf allowed: a seed that never got there)."""
    v = np.asarray(values, dtype=float)
    meds = lower_median(v[rng.integers(0, len(v), size=(n, len(v)))], axis=1)
    return (float(lower_median(v)), float(np.quantile(meds, 0.025, method="inverted_cdf")),
            float(np.quantile(meds, 0.975, method="inverted_cdf")))


def boot_ratio(a, b, rng, n=BOOT):
    """Lower median(a) / lower median(b) over seeds, paired by seed, with its 95 % bootstrap interval."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    idx = rng.integers(0, len(a), size=(n, len(a)))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = lower_median(a[idx], axis=1) / lower_median(b[idx], axis=1)
        point = float(lower_median(a) / lower_median(b))
    ratios = np.where(np.isnan(ratios), math.inf, ratios)  # never / never: no evidence either way
    point = math.inf if math.isnan(point) else point
    return point, float(np.quantile(ratios, 0.025, method="inverted_cdf")), \
        float(np.quantile(ratios, 0.975, method="inverted_cdf"))


def boot_diff(a, b, rng, n=BOOT):
    """Lower median(a) - lower median(b) over seeds, paired by seed, with its 95 % bootstrap interval."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    idx = rng.integers(0, len(a), size=(n, len(a)))
    diffs = lower_median(a[idx], axis=1) - lower_median(b[idx], axis=1)
    return (float(lower_median(a) - lower_median(b)), float(np.quantile(diffs, 0.025, method="inverted_cdf")),
            float(np.quantile(diffs, 0.975, method="inverted_cdf")))


def fmt(x, unit=""):
    return "never" if math.isinf(x) else f"{x:.0f}{unit}" if unit else f"{x:.3f}"


def summarise(runs, budget, png, title):
    rng = np.random.default_rng(0)
    sides = list(runs)
    seeds = sorted(set.intersection(*(set(r) for r in runs.values())), key=int)
    finals = {s: [final(runs[s][k]["curve"]) for k in seeds] for s in sides}
    target = float(lower_median(finals["kt-random"])) if "kt-random" in runs else None
    print(f"\n{title}: {len(seeds)} seeds a side, budget {budget:g} s"
          + (f"; target = kt-random's final median best {target:.4f}" if target is not None else ""))
    print(f"{'side':13} {'final best (95 % CI)':>26} {'time to target (95 % CI)':>28} {'reached':>7} "
          f"{'ratio to kt-random (95 % CI)':>30} {'trials':>6} {'pruned':>6} {'epochs':>6}")
    times = {s: [reach(runs[s][k]["curve"], target) for k in seeds] for s in sides} if target is not None else {}
    for s in sides:
        m, lo, hi = boot_median(finals[s], rng)
        line = f"{s:13} {m:.4f} ({lo:.4f}-{hi:.4f})".ljust(41)
        if target is not None:
            t, tlo, thi = boot_median(times[s], rng)
            reached = sum(not math.isinf(x) for x in times[s])
            line += f" {fmt(t, ' s'):>9} ({fmt(tlo, ' s')}-{fmt(thi, ' s')})".ljust(29) + f" {reached:>3}/{len(seeds)}"
            if s != "kt-random":
                r, rlo, rhi = boot_ratio(times[s], times["kt-random"], rng)
                line += f"   {fmt(r)}x ({fmt(rlo)}-{fmt(rhi)})".ljust(31)
            else:
                line += " " * 31
        med = {k: float(np.median([runs[s][x][k] for x in seeds])) for k in ("finished", "pruned", "epochs")}
        print(line + f" {med['finished']:6.0f} {med['pruned']:6.0f} {med['epochs']:6.0f}")
    for s in sides:
        if s != "kt-random" and "kt-random" in runs:
            others = [float(lower_median(finals[o])) for o in sides if o != s]
            mine = float(lower_median(finals[s]))
            print(f"  {s}: final median best {'at least' if mine >= max(others) else 'below'} "
                  f"every other side's ({mine:.4f} vs best other {max(others):.4f})")
    plain = [s for s in sides if s.startswith(("kt-", "optuna"))]
    for s in sides:
        if s not in plain and plain:  # a suite side against each plain tool, seed by seed
            diffs = [(o, *boot_diff(finals[s], finals[o], rng)) for o in plain]
            print(f"  {s} - " + "; ".join(f"{o}: {d:+.4f} ({lo:+.4f} to {hi:+.4f})"
                                          + (" within noise" if lo <= 0 <= hi else "") for o, d, lo, hi in diffs))
    draw(runs, seeds, budget, png, title, rng)


def draw(runs, seeds, budget, png, title, rng):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    max_epochs = max(p[2] for r in runs.values() for k in seeds for p in r[k]["curve"] or [[0, 0, 1]])
    for ax, axis, limit, label in ((axes[0], 0, budget, "wall time (s)"), (axes[1], 2, max_epochs, "epochs trained")):
        grid = np.linspace(0, limit, 80)
        for s, by_seed in runs.items():
            ys = np.array([[best_at(by_seed[k]["curve"], t, axis) for t in grid] for k in seeds])
            idx = rng.integers(0, len(seeds), size=(500, len(seeds)))
            meds = np.median(ys[idx], axis=1)
            ax.plot(grid, np.median(ys, axis=0), label=s)
            ax.fill_between(grid, np.quantile(meds, 0.025, axis=0), np.quantile(meds, 0.975, axis=0), alpha=0.2)
        ax.set_xlabel(label)
        ax.set_ylabel("best validation accuracy so far")
        ax.grid(alpha=0.3)
    lows = [final(r[k]["curve"]) for r in runs.values() for k in seeds]
    for ax in axes:
        ax.set_ylim(max(0.0, min(lows) - 0.05), max(lows) + 0.02)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{title}: median of {len(seeds)} seeds, bootstrap 95 % band of the median", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    print(f"curves: {png}")


def main(argv=None):
    import time_to_accuracy as tta
    from lyrics_cifar_search.runners.flag_types import duration, positive_int
    from lyrics_cifar_search.study_data.lyrics_demo import make_demo_table
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="lyrics_embedding")
    ap.add_argument("--sides", default=",".join(SIDES))
    ap.add_argument("--budget", type=duration, default=60.0)
    ap.add_argument("--seeds", type=positive_int, default=10, help="seeds a side: 1, 2, ... N")
    ap.add_argument("--rows", type=positive_int, default=6500)
    ap.add_argument("--own-share", type=float, default=0.05, help="the genre signal of the generated table")
    ap.add_argument("--epochs", type=positive_int, default=6)
    ap.add_argument("--record", type=Path, help="JSON file that keeps each finished run; a rerun skips them")
    ap.add_argument("--png", type=Path, default=Path("search_quality.png"))
    ap.add_argument("--summarise-only", action="store_true", help="only summarise the runs in --record")
    ap.add_argument("extra", nargs="*", help="flags for every side (after --)")
    args = ap.parse_args(argv)
    kept = json.loads(args.record.read_text()) if args.record and args.record.exists() else {}
    title = f"{args.family} on {args.rows} generated rows"
    with tempfile.TemporaryDirectory() as work:
        data = make_demo_table(Path(work) / "table.csv", n_rows=args.rows, seed=1, own_share=args.own_share)
        flags = ["--data", str(data), "--seq-len", "40", "--vocab-size", "2000", "--epochs", str(args.epochs),
                 *args.extra]
        os.environ["BENCH_KT_VALUE"] = "kept"  # like for like: the kept epoch's accuracy on every side
        runs = {}
        for seed in range(1, args.seeds + 1):  # seeds outermost: a bench cut short has every side on its seeds
            for side in args.sides.split(","):
                if str(seed) in kept.get(side, {}):
                    runs.setdefault(side, {})[str(seed)] = kept[side][str(seed)]
                    continue
                if args.summarise_only:
                    continue
                run = tta.run_suite if tta.is_suite(side) else tta.run_plain
                r = run(side, args.family, [*flags, "--seed", str(seed)], args.budget, Path(work) / f"{side}-{seed}")
                runs.setdefault(side, {})[str(seed)] = r
                if args.record:
                    kept.setdefault(side, {})[str(seed)] = r
                    part = args.record.with_name(args.record.name + ".part")
                    part.write_text(json.dumps(kept))
                    part.replace(args.record)
                print(f"  seed {seed} {side}: best {final(r['curve']):.4f}, {r['finished']} trials, "
                      f"{r['epochs']} epochs", flush=True)
    summarise(runs, args.budget, args.png, title)
    return 0


if __name__ == "__main__":
    from lyrics_cifar_search.suite_common.process import tune_this_process
    tune_this_process()
    sys.exit(main())
