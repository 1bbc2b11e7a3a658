#!/usr/bin/env python
"""What a fixed time budget buys: the suite's default search against its random search and the plain tools.

    python bench/time_to_accuracy.py [--tasks lyrics,cifar] [--budget 5m] [--seeds 42,43,44]
                                     [--sides default,random,kt-random,kt-hyperband,optuna] [--record FILE]
                                     [--summarise-only] [--png FILE]

On the same hypermodel, data, seed and time budget (no new trial after it), each side searches:
- default: `runners/search.py FAMILY` as a user runs it: the Optuna study's TPE sampler and median pruner,
  trial 0 the earlier study's model;
- random: the same with `--sampler random --pruner none`; prior: with `--sampler tpe-prior` (piBO);
- default-nb, random-nb, prior-nb: each of those with `--no-baseline`: the search alone, without the earlier
  study's configuration as its first trial;
- kt-random, kt-hyperband, kt-bayesian: plain Keras Tuner `RandomSearch` / `Hyperband` (factor 3) /
  `BayesianOptimization` over the family's
  hypermodel, no baseline first, Keras Tuner's own checkpoints;
- optuna: plain Optuna, TPE and the median pruner with default settings,
  `optuna_integration.KerasPruningCallback`, each hyperparameter suggested as the hypermodel declares it
  (those it declares in fit(), e.g. batch_size, from the second trial on), no baseline.
Keras Tuner's sides report Keras Tuner's own value of a trial (its best validation accuracy over the epochs);
with BENCH_KT_VALUE=kept, the accuracy of the epoch early stopping keeps, as the suite and the optuna side do.
Every side trains with the family's early stopping and epoch budget.

Tasks: lyrics = lyrics_cnn on the 900 real rows (../shared/data/lyrics); cifar = cifar_cnn on block 1 of the
real CIFAR-10 JPEGs (../shared/data/cifar10-jpg.tar.gz), --images-per-class per class.

Per side it prints (median over the seeds): the best validation accuracy at the budget, the time to reach
plain random search's final best of the same seed (and on how many seeds it did), epochs trained, trials
finished and pruned, and the best model's test accuracy with its 95 % Wilson interval (the median seed's);
then each side's ratios to kt-random. With two or more seeds, also search_quality.py's summary of the same
runs: medians with bootstrap intervals over seeds, each suite side against each plain tool, and the curves
(--png). `--summarise-only` prints the summary of the runs kept in --record and runs nothing.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SIDES = ("default", "random", "kt-random", "kt-hyperband", "kt-bayesian", "optuna")
FAMILY = {"lyrics": "lyrics_cnn", "cifar": "cifar_cnn"}
DATA = {"lyrics": SHARED / "lyrics" / "mll-train-subset-en-900.tsv", "cifar": SHARED / "cifar10-jpg.tar.gz"}

# One side's search in a fresh process; prints RESULT {curve: [[seconds, best so far]], epochs, finished,
# pruned, right, n}. The plain sides score their best model with the suite's loader (the same test rows).
PLAIN = r'''
import json, os, sys, time
import keras, keras_tuner as kt, numpy as np, optuna
from lyrics_cifar_search.runners.best_model import load_best
from lyrics_cifar_search.runners import best_store, prepare
from lyrics_cifar_search.runners.search import build_parser, data_options
from lyrics_cifar_search.search_spaces import get_family

side, name, budget, work, flags = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5:]
family = get_family(name)
args = build_parser().parse_args([name, "--results-dir", work, *flags])
p = prepare.prepare(family, data_options(args))
prepare.save_cache(p)
epochs, seed = args.epochs or family.epochs, args.seed
hypermodel = family.hypermodel(p.spec)
curve, counts, start, best = [], {"epochs": 0, "finished": 0, "pruned": 0}, None, [-1.0, None, None]


class Count(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        counts["epochs"] += 1


def callbacks():
    stop = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=family.patience, restore_best_weights=True)]
    return [Count(), *(stop if family.patience else [])]


def ended(value, model=None, values=None):
    counts["finished"] += 1
    if value is not None and value > best[0]:
        best[:] = [value, model, values]
    curve.append((time.time() - start, max(best[0], 0.0), counts["epochs"]))


class OutOfTime(Exception):
    pass


KEPT = os.environ.get("BENCH_KT_VALUE") == "kept"


def kept_epoch_accuracy(trial):
    """The validation accuracy of the epoch early stopping keeps (lowest validation loss), as the suite scores a
    trial; Keras Tuner's own objective value is the best accuracy over the epochs."""
    if not (trial.metrics.exists("val_loss") and trial.metrics.exists("val_accuracy")):
        return None
    losses = {o.step: o.value[0] for o in trial.metrics.get_history("val_loss")}
    accuracies = {o.step: o.value[0] for o in trial.metrics.get_history("val_accuracy")}
    step = min(losses, key=losses.get) if family.patience else max(losses)
    return accuracies.get(step)


def kt_side(cls, **kw):
    class Timed(cls):
        def pre_create_trial(self):
            if time.time() - start > budget:
                raise OutOfTime

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            ended(kept_epoch_accuracy(trial) if KEPT else
                  trial.metrics.get_best_value("val_accuracy") if trial.metrics.exists("val_accuracy") else None)

    tuner = Timed(hypermodel, objective="val_accuracy", seed=seed, directory=work + "/kt", project_name=side,
                  overwrite=True, **kw)
    try:
        tuner.search(p.x_train, p.y_train, validation_data=(p.x_val, p.y_val), epochs=epochs, verbose=0,
                     callbacks=callbacks())
    except OutOfTime:
        pass
    best[1], best[2] = tuner.get_best_models(1)[0], tuner.get_best_hyperparameters(1)[0].values


def optuna_side():
    from optuna_integration import KerasPruningCallback
    space = kt.HyperParameters()
    hypermodel.build(space)  # the declared space (fit-time ones join after the first trial)

    def objective(trial):
        if time.time() - start > budget:
            study.stop()
            raise optuna.TrialPruned()  # not run: counted below as not finished
        hp = kt.HyperParameters()
        for h in space.space:
            hp.merge([h])
            if not hp.is_active(h):
                continue
            kind = type(h).__name__
            if kind == "Float":
                v = trial.suggest_float(h.name, h.min_value, h.max_value, log=h.sampling == "log")
            elif kind == "Int":
                v = trial.suggest_int(h.name, h.min_value, h.max_value, step=h.step or 1)
            elif kind in ("Choice", "Boolean"):
                v = trial.suggest_categorical(h.name, list(h.values) if kind == "Choice" else [False, True])
            else:
                v = h.default
            hp.values[h.name] = v
        keras.utils.set_random_seed(seed + trial.number)
        model = hypermodel.build(hp)
        try:
            hypermodel.fit(hp, model, p.x_train, p.y_train, validation_data=(p.x_val, p.y_val), epochs=epochs,
                           verbose=0, callbacks=[*callbacks(), KerasPruningCallback(trial, "val_accuracy")])
        except optuna.TrialPruned:
            counts["pruned"] += 1
            ended(None)  # an ended trial, its best unchanged
            raise
        finally:
            space.merge(hp.space)
        value = float(max(model.history.history["val_accuracy"]) if not family.patience else
                      model.history.history["val_accuracy"][int(np.argmin(model.history.history["val_loss"]))])
        ended(value, model, dict(hp.values))
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner())
    study.optimize(objective, n_trials=10 ** 6)


start = time.time()
if side == "kt-random":
    kt_side(kt.RandomSearch, max_trials=10 ** 6)
elif side == "kt-hyperband":
    kt_side(kt.Hyperband, max_epochs=epochs, factor=3, hyperband_iterations=10 ** 6)
elif side == "kt-bayesian":
    kt_side(kt.BayesianOptimization, max_trials=10 ** 6)
else:
    optuna_side()
model, values = best[1], best[2]
meta = {**p.meta, "trial_id": 0, "hyperparameters": values, "metrics": {"val_accuracy": best[0]},
        "model_file": "model.keras", "max_epochs": epochs, "parameter_count": int(model.count_params())}
out = work + "/" + name
best_store.promote(out, best_store.stage_best(out, 0, lambda d: model.save(d / "model.keras"), meta, p.artifacts))
scores, y, pred = load_best(name, work).score_test(work)
print("RESULT " + json.dumps({"curve": curve, **counts, "right": int((pred == y).sum()), "n": int(len(y))}))
'''


SUITE_SIDES = ("default", "random", "prior")  # each also as "<side>-nb": the same with --no-baseline


def is_suite(side):
    return side.removesuffix("-nb") in SUITE_SIDES


def run_suite(side, family, flags, budget, work):
    """One of the suite's sides: default, random (--sampler random --pruner none) or prior (--sampler tpe-prior);
    "<side>-nb" runs it with --no-baseline, the search measured without the earlier study's configuration."""
    import optuna
    import pandas as pd
    from lyrics_cifar_search.runners import record
    res = Path(work) / side
    base = side.removesuffix("-nb")
    cmd = [sys.executable, str(ROOT / "runners" / "search.py"), family, "--results-dir", str(res),
           "--time-budget", f"{budget}s", "--max-trials", "1000", *flags,
           *(["--sampler", "random", "--pruner", "none"] if base == "random" else []),
           *(["--sampler", "tpe-prior"] if base == "prior" else []),
           *(["--no-baseline"] if side.endswith("-nb") else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if out.returncode != 0:
        sys.exit(f"error: the suite's {side} search failed: {out.stderr.strip().splitlines()[-1:]}")
    # the curve from the search's record: each trial's end, from the first trial's start
    study = optuna.load_study(study_name=family, storage=f"sqlite:///{res / 'optuna.db'}")
    trials = sorted((t for t in study.trials if t.datetime_complete), key=lambda t: t.datetime_complete)
    t0, best, curve, epochs = min(t.datetime_start for t in trials), 0.0, [], 0
    for t in trials:
        if record.interrupted(t):
            continue  # never trained (a duplicate, a replaced proposal), or run again
        if t.state.name == "COMPLETE":
            best = max(best, t.value)
        epochs += int(t.user_attrs.get("epochs_run", len(t.intermediate_values)))
        curve.append(((t.datetime_complete - t0).total_seconds(), best, epochs))
    table = pd.read_csv(res / family / "trials.csv")
    from lyrics_cifar_search.runners.best_model import load_best
    scores, y, pred = load_best(family, res).score_test(res)
    return {"curve": curve, "epochs": int(table["epochs_run"].sum()), "finished": len(table),
            "pruned": int((table["status"] == "PRUNED").sum()), "right": int((pred == y).sum()), "n": int(len(y))}


def run_plain(side, family, flags, budget, work):
    out = subprocess.run([sys.executable, "-c", PLAIN, side, family, str(budget), str(Path(work) / side), *flags],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)})
    line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
    if out.returncode != 0 or not line:
        sys.exit(f"error: the plain {side} search failed: {out.stderr.strip().splitlines()[-3:]}")
    return json.loads(line[0][7:])


def first_reach(curve, target):
    return next((p[0] for p in curve if p[1] >= target), None)


def summarise(task, runs, budget):
    """runs: {side: {seed: result}}; prints one line per side, then ratios to kt-random."""
    from lyrics_cifar_search.suite_common import significance
    print(f"\n{task} ({FAMILY[task]}), budget {budget:g} s, seeds {', '.join(map(str, next(iter(runs.values()))))}:")
    print(f"{'side':13} {'best val':>8} {'to kt-random best':>18} {'epochs':>7} {'trials':>6} {'pruned':>6}  test (95 % CI)")
    lines = {}
    for side, by_seed in runs.items():
        finals = {s: max((p[1] for p in r["curve"]), default=0.0) for s, r in by_seed.items()}
        reach = []
        for s, r in by_seed.items():
            target = max((p[1] for p in runs["kt-random"][s]["curve"]), default=0.0) if "kt-random" in runs else None
            reach.append(first_reach(r["curve"], target) if target is not None else None)
        hit = [x for x in reach if x is not None]
        median_seed = sorted(by_seed, key=lambda s: finals[s])[len(by_seed) // 2]
        r = by_seed[median_seed]
        low, high = significance.wilson(r["right"], r["n"])
        lines[side] = {"best": statistics.median(finals.values()), "reach": statistics.median(hit) if hit else None,
                       "epochs": statistics.median(x["epochs"] for x in by_seed.values())}
        reached = f"{lines[side]['reach']:.0f} s" if hit else "never"
        print(f"{side:13} {lines[side]['best']:8.4f} {reached:>10} "
              f"({len(hit)}/{len(reach)}) {lines[side]['epochs']:7.0f} "
              f"{statistics.median(x['finished'] for x in by_seed.values()):6.0f} "
              f"{statistics.median(x['pruned'] for x in by_seed.values()):6.0f}  "
              f"{r['right'] / r['n']:.4f} ({low:.4f}-{high:.4f})")
    if "kt-random" in lines:
        base = lines["kt-random"]
        print("ratios to kt-random: " + "; ".join(
            f"{side} best {v['best'] / base['best']:.3f}x"
            + (f", time to its best {v['reach'] / base['reach']:.2f}x" if v["reach"] and base["reach"] else "")
            for side, v in lines.items() if side != "kt-random"))


def main(argv=None):
    from lyrics_cifar_search.runners.flag_types import duration, positive_int
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="lyrics,cifar")
    ap.add_argument("--sides", default=",".join(SIDES))
    ap.add_argument("--budget", type=duration, default=300.0, help="time budget of each side (default 5m)")
    ap.add_argument("--seeds", default="42,43,44")
    ap.add_argument("--images-per-class", type=positive_int, default=500)
    ap.add_argument("--epochs", type=positive_int, help="epoch budget of a trial (default: the family's)")
    ap.add_argument("--record", type=Path, help="JSON file that keeps each finished run; a rerun skips those "
                                                "already there and summarises them all")
    ap.add_argument("--summarise-only", action="store_true", help="only summarise the runs in --record")
    ap.add_argument("--png", default="time_to_accuracy_{task}.png",
                    help="where the curves go, {task} filled in (with 2 or more seeds)")
    args = ap.parse_args(argv)
    # {task: {side: {seed: result}}}, JSON keys are strings
    kept = json.loads(args.record.read_text()) if args.record and args.record.exists() else {}
    for task in args.tasks.split(","):
        wanted = DATA.get(task)
        if wanted is None or not (wanted.exists() or args.summarise_only):
            print(f"error: --tasks {task}: " + (f"needs {wanted}, which is not there: run from a clone beside "
                  "shared/, or leave the task out" if wanted else "choose lyrics or cifar"), file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as work:
        for task in args.tasks.split(","):
            if args.summarise_only:
                flags = []
            elif task == "cifar":
                with tarfile.open(DATA["cifar"]) as tar:
                    tar.extractall(Path(work) / "cifar10", filter="data")
                data = next((Path(work) / "cifar10").rglob("train/airplane")).parent.parent
                flags = ["--data", str(data), "--images-per-class", str(args.images_per_class)]
            else:
                flags = ["--data", str(DATA["lyrics"])]
            flags += ["--epochs", str(args.epochs)] if args.epochs else []
            runs = {}
            for side in args.sides.split(","):
                for seed in map(int, args.seeds.split(",")):
                    if str(seed) in kept.get(task, {}).get(side, {}):
                        runs.setdefault(side, {})[seed] = kept[task][side][str(seed)]
                        continue
                    if args.summarise_only:
                        continue
                    run = run_suite if is_suite(side) else run_plain
                    folder = Path(work) / f"{task}-{side}-{seed}"
                    runs.setdefault(side, {})[seed] = run(side, FAMILY[task], [*flags, "--seed", str(seed)],
                                                          args.budget, folder)
                    r = runs[side][seed]
                    if args.record:
                        kept.setdefault(task, {}).setdefault(side, {})[str(seed)] = r
                        part = args.record.with_name(args.record.name + ".part")
                        part.write_text(json.dumps(kept))
                        part.replace(args.record)  # a bench killed mid-write keeps the runs before
                    print(f"  {task} {side} seed {seed}: best {max((p[1] for p in r['curve']), default=0):.4f}, "
                          f"{len(r['curve'])} trials, {r['epochs']} epochs", flush=True)
            summarise(task, runs, args.budget)
            if len(args.seeds.split(",")) > 1:  # medians with bootstrap intervals over seeds, and the curves
                import search_quality
                search_quality.summarise(runs, args.budget, args.png.format(task=task), f"{FAMILY[task]} ({task})")
    return 0


if __name__ == "__main__":
    from lyrics_cifar_search.suite_common.process import tune_this_process
    tune_this_process()  # allocator and TensorFlow settings, before any framework starts
    sys.exit(main())
